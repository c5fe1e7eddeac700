"""The token master: every active token in memory, every change made durable.

The master runs on one asyncio event loop. A write (modify, claim, archive) is
checked and given its versions at once, against the state it will find once
every write queued before it has committed, and then waits for its group
commit: writes that arrive while a commit is in flight go to the store
together in the next transaction. Memory changes only after the store
accepted the batch, so the two never disagree; readers see committed state.

A write that carries a request id is remembered with its answer. The same id
sent again, say by a client whose connection dropped after the commit, gets
that answer back and changes nothing.
"""

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import heapq
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from pinball_core.errors import (
    InputError,
    MasterError,
    MasterUnavailableError,
    NotFoundError,
    VersionConflictError,
)
from pinball_core.protocol import (
    ArchiveRequest,
    GroupRequest,
    ModifyRequest,
    Query,
    QueryAndOwnRequest,
)
from pinball_core.store import AppliedRequest, Store, StoreChange
from pinball_core.stores.sql import group_key
from pinball_core.token import (
    FOREVER,
    MASTER_OWNER,
    VERSION_TOKEN_NAME,
    Token,
    validate_name,
)
from pinball_core.token_map import TokenMap

log = logging.getLogger(__name__)

# Owners are stored in a 255-character column by every store.
_MAX_OWNER_LENGTH = 255

# Up to this many tokens under a claim's prefix are simply scanned.
_SCAN_LIMIT = 256

# Expired request ids are dropped from the store at most this often.
_FORGET_INTERVAL_SEC = 60.0


@dataclasses.dataclass(slots=True, eq=False)
class _Write:
    """One write request on its way to the store.

    ``prepare`` checks the request against the pending state and returns its
    changes and its answer; it is run again if an earlier batch failed.
    """

    request_id: str | None
    prepare: Callable[[], tuple[dict[str, Token | None], list[Token], Any]]
    future: "asyncio.Future[Any]"
    changes: dict[str, Token | None] = dataclasses.field(default_factory=dict)
    archives: list[Token] = dataclasses.field(default_factory=list)
    result: Any = None


class TokenMaster:
    """Holds active tokens and applies the five requests to them atomically.

    Call :meth:`start` on the loop that will serve requests; it loads every
    active token from the store. All request methods must be called on that
    same loop.
    """

    def __init__(self, store: Store, *, request_id_retention_sec: float = 600.0):
        self._store = store
        self._retention = request_id_retention_sec
        self._tokens = TokenMap()
        self._version = 0

        # Writes checked but not yet committed, and their net effect by name.
        self._queue: list[_Write] = []
        self._pending: dict[str, Token | None] = {}
        self._committer: asyncio.Task[None] | None = None

        # Answers of applied writes by request id, oldest first.
        self._applied: collections.OrderedDict[str, tuple[float, str]] = (
            collections.OrderedDict()
        )
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        self._last_forget = 0.0
        self._probe = False

        #: Set when the master stopped serving after an internal error.
        self.halted = asyncio.Event()
        self._halted: MasterUnavailableError | None = None
        self._stopping = False

        # Claims waiting for a token to become free.
        self._waiters: list[asyncio.Future[None]] = []

        # One thread talks to the store, so its connection never changes hands.
        self._io = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pinball-store"
        )

    # -- Life cycle -------------------------------------------------------

    async def start(self) -> None:
        """Load all active tokens and applied request ids from the store."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._store.initialize)
        tokens = await loop.run_in_executor(self._io, self._store.load_active_tokens)
        since = time.time() - self._retention
        applied = await loop.run_in_executor(
            self._io, self._store.load_applied_requests, since
        )

        now = time.time()
        for token in tokens:
            self._tokens.put(token, now)
            self._version = max(self._version, token.version or 0)
        for request in applied:
            self._applied[request.request_id] = (request.applied_at, request.response)

        if VERSION_TOKEN_NAME not in self._tokens and tokens:
            log.warning(
                "the store holds %d tokens but no version counter; "
                "continuing after the highest stored version %d",
                len(tokens),
                self._version,
            )
        # Persist the counter before serving anything: this also proves the
        # store takes writes, so a read-only one fails now, not on a request.
        self._probe = True
        await self._submit(lambda: ({}, [], None), None, force=True)
        log.info(
            "master loaded %d active tokens from %s; next version above %d",
            len(self._tokens),
            self._store.display_url,
            self._version,
        )

    async def stop(self) -> None:
        """Refuse new writes, let queued ones commit, release the store thread.

        A write refused here was not applied; a client that sends it again
        reaches the next master with the same request id.
        """
        self._stopping = True
        self._wake_waiters()
        if self._committer is not None:
            await asyncio.shield(self._committer)
        self._io.shutdown(wait=True)

    # -- Reads ------------------------------------------------------------

    def query(self, queries: list[Query]) -> list[list[Token]]:
        """Answer each query from committed state, in order."""
        return [self._select(q, self._committed_scan(q.prefix)) for q in queries]

    def group(self, request: GroupRequest) -> dict[str, int]:
        """Count committed token names under the prefix by ``suffix``."""
        counts: dict[str, int] = {}
        for token in self._committed_scan(request.prefix):
            key = group_key(token.name, request.prefix, request.suffix or "")
            counts[key] = counts.get(key, 0) + 1
        return counts

    def count(self, prefixes: list[str]) -> list[int]:
        """How many committed tokens each prefix holds, without reading them.

        Cheap (a bisection per prefix), so a worker can tell that a job with
        many inputs is not ready yet without fetching every queued event.
        """
        return [self._tokens.count(prefix) for prefix in prefixes]

    def __len__(self) -> int:
        return len(self._tokens)

    def get(self, name: str) -> Token | None:
        """The committed token called ``name``, if any."""
        return self._tokens.get(name)

    @property
    def version(self) -> int:
        """The highest version handed out so far."""
        return self._version

    # -- Writes -----------------------------------------------------------

    async def modify(self, request: ModifyRequest) -> list[Token]:
        """Apply inserts, updates and deletes together; return stored updates."""
        result: list[Token] = await self._write(
            _key("modify", request.request_id),
            lambda: self._prepare_modify(request),
            # A repeat carries the same tokens; only their versions are kept.
            replay=lambda versions: [
                dataclasses.replace(token, version=version)
                for token, version in zip(request.updates, versions, strict=True)
            ],
        )
        return result

    async def query_and_own(self, request: QueryAndOwnRequest) -> list[Token]:
        """Claim unowned matches, highest priority first; return the claims.

        With ``wait_sec``, a claim that finds nothing is tried again whenever a
        commit or an ending lease may have freed a token, until the time is up.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (request.wait_sec or 0.0)
        key = _key("claim", request.request_id)
        while True:
            result: list[Token] = await self._write(
                key, lambda: self._prepare_claim(request)
            )
            remaining = deadline - loop.time()
            if result or remaining <= 0 or self._stopping:
                return result
            await self._wait_for_change(remaining)

    async def _wait_for_change(self, timeout: float) -> None:
        """Sleep until the next commit, the next lease end, or ``timeout``."""
        next_end = self._tokens.next_expiration()
        if next_end is not None:
            # A little past the end, so the lease has surely lapsed on waking.
            timeout = min(timeout, max(0.0, next_end - time.time()) + 0.005)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout)

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def archive(self, request: ArchiveRequest) -> None:
        """Move tokens out of the master into the store's archive."""
        await self._write(
            _key("archive", request.request_id),
            lambda: self._prepare_archive(request),
        )

    async def _write(
        self,
        request_id: str | None,
        prepare: Callable[[], tuple[dict[str, Token | None], list[Token], Any]],
        replay: Callable[[Any], Any] | None = None,
    ) -> Any:
        if request_id is not None:
            if request_id in self._applied:
                log.info("request %s was applied before; answering again", request_id)
                return _decode_answer(self._applied[request_id][1], replay)
            if request_id in self._in_flight:
                return await asyncio.shield(self._in_flight[request_id])
        return await self._submit(prepare, request_id)

    async def _submit(
        self,
        prepare: Callable[[], tuple[dict[str, Token | None], list[Token], Any]],
        request_id: str | None,
        *,
        force: bool = False,
    ) -> Any:
        if self._halted is not None:
            raise self._halted
        if self._stopping:
            raise MasterUnavailableError("the master is stopping; send again shortly")
        write = _Write(request_id, prepare, asyncio.get_running_loop().create_future())
        self._check(write)
        if not (write.changes or write.archives or force):
            # Nothing to store (an empty modify, a claim that found nothing):
            # answer at once rather than write to the store on every poll.
            return write.result

        self._enqueue(write)
        if request_id is not None:
            self._in_flight[request_id] = write.future
        return await write.future

    def _check(self, write: _Write) -> None:
        """Run the write's checks; raises MasterError and queues nothing."""
        write.changes, write.archives, write.result = write.prepare()

    def _enqueue(self, write: _Write) -> None:
        self._queue.append(write)
        self._pending.update(write.changes)
        for token in write.archives:
            self._pending[token.name] = None
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit())

    async def _commit(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                change = self._change_for(batch)
                try:
                    await loop.run_in_executor(self._io, self._store.commit, change)
                except Exception as exc:
                    self._fail(batch, exc)
                    continue

                try:
                    self._apply(change)
                except Exception as exc:
                    self._halt(batch, exc)
                    return
                for write in batch:
                    if write.request_id is not None:
                        self._in_flight.pop(write.request_id, None)
                    if not write.future.done():
                        write.future.set_result(write.result)
                self._recompute_pending()
                if change.updates or change.deletes:
                    self._wake_waiters()
        finally:
            self._committer = None

    def _halt(self, batch: list[_Write], exc: Exception) -> None:
        """Stop serving after memory failed to follow a commit.

        The store holds the change but memory may not; answering anything more
        could contradict the store, so every request is refused from now on
        and :attr:`halted` tells the server to exit. A restart reloads the
        store's state.
        """
        log.critical("master state no longer matches its store; halting", exc_info=exc)
        self._halted = MasterUnavailableError(
            f"the master halted after an internal error ({exc}); restart it"
        )
        for write in batch + self._queue:
            if not write.future.done():
                write.future.set_exception(self._halted)
        self._queue = []
        self.halted.set()

    def _change_for(self, batch: list[_Write]) -> StoreChange:
        change = StoreChange()
        merged: dict[str, Token | None] = {}
        now = time.time()
        for write in batch:
            merged.update(write.changes)
            change.archives.extend(write.archives)
            for token in write.archives:
                merged.pop(token.name, None)
            if write.request_id is not None:
                answer = json.dumps(_encode_answer(write.request_id, write.result))
                change.requests.append(AppliedRequest(write.request_id, now, answer))

        for name, merged_token in merged.items():
            if merged_token is None:
                change.deletes.append(name)
            else:
                change.updates.append(merged_token)
        if change.updates or change.deletes or self._probe:
            change.updates.append(self._version_token())
            self._probe = False

        if now - self._last_forget > _FORGET_INTERVAL_SEC:
            change.forget_requests_before = now - self._retention
            self._last_forget = now
        return change

    def _apply(self, change: StoreChange) -> None:
        now = time.time()
        for token in change.updates:
            self._tokens.put(token, now)
        for name in change.deletes:
            self._tokens.pop(name)
        for token in change.archives:
            self._tokens.pop(token.name)

        for request in change.requests:
            self._applied[request.request_id] = (request.applied_at, request.response)
        horizon = time.time() - self._retention
        while self._applied:
            request_id, (applied_at, _) = next(iter(self._applied.items()))
            if applied_at >= horizon:
                break
            self._applied.popitem(last=False)

    def _fail(self, batch: list[_Write], exc: Exception) -> None:
        """Refuse a batch the store did not take, and recheck what queued after."""
        log.error("store commit of %d requests failed: %s", len(batch), exc)
        error = MasterUnavailableError(
            f"the store did not accept the change, so nothing was applied: {exc}"
        )
        for write in batch:
            if write.request_id is not None:
                self._in_flight.pop(write.request_id, None)
            if not write.future.done():
                write.future.set_exception(error)

        # Later writes were checked on top of the failed batch; check them again.
        waiting, self._queue = self._queue, []
        self._pending = {}
        for write in waiting:
            try:
                self._check(write)
            except MasterError as refused:
                if write.request_id is not None:
                    self._in_flight.pop(write.request_id, None)
                write.future.set_exception(refused)
                continue
            self._queue.append(write)
            self._pending.update(write.changes)
            for token in write.archives:
                self._pending[token.name] = None

    def _recompute_pending(self) -> None:
        self._pending = {}
        for write in self._queue:
            self._pending.update(write.changes)
            for token in write.archives:
                self._pending[token.name] = None

    # -- Checks that turn a request into changes --------------------------

    def _prepare_modify(
        self, request: ModifyRequest
    ) -> tuple[dict[str, Token | None], list[Token], list[Token]]:
        _refuse_duplicates([t.name for t in request.updates + request.deletes])
        for token in request.updates:
            self._check_writable(token)
            self._check_current(token, for_delete=False)
        for token in request.deletes:
            if token.version is None:
                raise InputError(f"delete of {token.name} must carry its version")
            self._check_writable(token)
            self._check_current(token, for_delete=True)

        changes: dict[str, Token | None] = {}
        stored = []
        for token in request.updates:
            new = dataclasses.replace(token, version=self._next_version())
            changes[new.name] = new
            stored.append(new)
        for token in request.deletes:
            changes[token.name] = None
        return changes, [], stored

    def _prepare_claim(
        self, request: QueryAndOwnRequest
    ) -> tuple[dict[str, Token | None], list[Token], list[Token]]:
        if len(request.owner) > _MAX_OWNER_LENGTH:
            raise InputError(f"owner is longer than {_MAX_OWNER_LENGTH} characters")
        now = time.time()
        if request.lease_sec is not None:
            expiration = now + request.lease_sec
        else:
            expiration = request.expiration or 0.0
        expiration = min(expiration, FOREVER)

        chosen = self._claimable(request.query, now)
        claimed = [
            dataclasses.replace(
                t,
                owner=request.owner,
                expiration=expiration,
                version=self._next_version(),
            )
            for t in chosen
        ]
        return {t.name: t for t in claimed}, [], claimed

    def _prepare_archive(
        self, request: ArchiveRequest
    ) -> tuple[dict[str, Token | None], list[Token], None]:
        _refuse_duplicates([t.name for t in request.tokens])
        archived = []
        for token in request.tokens:
            if token.version is None:
                raise InputError(f"archive of {token.name} must carry its version")
            self._check_writable(token)
            archived.append(self._check_current(token, for_delete=True))
        return {}, archived, None

    def _check_writable(self, token: Token) -> None:
        validate_name(token.name)
        if token.name == VERSION_TOKEN_NAME:
            raise InputError(f"{VERSION_TOKEN_NAME} is the master's own; leave it be")
        if token.owner is not None and len(token.owner) > _MAX_OWNER_LENGTH:
            raise InputError(
                f"{token.name}: owner is longer than {_MAX_OWNER_LENGTH} characters"
            )

    def _check_current(self, token: Token, *, for_delete: bool) -> Token:
        """The stored token ``token`` refers to, or the error why there is none."""
        current = self._lookup(token.name)
        if current is None:
            if token.version is not None or for_delete:
                raise NotFoundError(
                    f"{token.name} (version {token.version}) does not exist"
                )
            return token
        if token.version != current.version:
            if token.version is None:
                raise VersionConflictError(
                    f"{token.name} exists (version {current.version}); "
                    "send its version to update it"
                )
            raise VersionConflictError(
                f"{token.name}: sent version {token.version}, "
                f"stored version is {current.version}"
            )
        return current

    # -- State access -------------------------------------------------------

    def _lookup(self, name: str) -> Token | None:
        if name in self._pending:
            return self._pending[name]
        return self._tokens.get(name)

    def _committed_scan(self, prefix: str) -> Iterator[Token]:
        return self._tokens.scan(prefix)

    def _pending_scan(self, prefix: str) -> Iterator[Token]:
        """Tokens under ``prefix`` as they will be once queued writes commit."""
        if not self._pending:
            yield from self._committed_scan(prefix)
            return
        for token in self._committed_scan(prefix):
            if token.name in self._pending:
                replaced = self._pending[token.name]
                if replaced is not None:
                    yield replaced
            else:
                yield token
        for name, pending in self._pending.items():
            if pending is None or name in self._tokens:
                continue
            if name.startswith(prefix):
                yield pending

    def _claimable(self, query: Query, now: float) -> list[Token]:
        """The unowned tokens a claim takes, as they stand after queued writes."""
        prefix, limit = query.prefix, query.max_tokens
        in_range = self._tokens.count(prefix)
        if limit is None or in_range <= _SCAN_LIMIT or in_range < limit * 8:
            free = (t for t in self._pending_scan(prefix) if not t.is_owned(now))
            return self._select(query, free)

        # Many tokens under the prefix: walk the free ones by priority and
        # stop once enough are found. Names with queued changes are judged
        # by their pending state instead, which is small.
        found: list[Token] = []
        for token in self._tokens.free_by_priority(now, query.contains or ""):
            if len(found) == limit:
                break
            if token.name.startswith(prefix) and token.name not in self._pending:
                found.append(token)
        for name, pending in self._pending.items():
            if pending is None or pending.is_owned(now):
                continue
            if query.matches(name):
                found.append(pending)
        return self._select(query, iter(found))

    @staticmethod
    def _select(query: Query, tokens: Iterator[Token]) -> list[Token]:
        if query.contains is not None:
            tokens = (t for t in tokens if query.contains in t.name)
        if query.max_tokens is None:
            return sorted(tokens, key=_by_name)
        # Name order first makes ties between equal priorities repeatable.
        return heapq.nsmallest(
            query.max_tokens, sorted(tokens, key=_by_name), key=_by_priority
        )

    def _next_version(self) -> int:
        # Roughly the time in milliseconds, but never equal to or below the last.
        self._version = max(self._version + 1, int(time.time() * 1000))
        return self._version

    def _version_token(self) -> Token:
        return Token(
            name=VERSION_TOKEN_NAME,
            version=self._next_version(),
            owner=MASTER_OWNER,
            expiration=FOREVER,
            priority=0.0,
            data="the master's version counter",
        )


def _by_name(token: Token) -> str:
    return token.name


def _by_priority(token: Token) -> float:
    return -token.priority


def _key(operation: str, request_id: str | None) -> str | None:
    """Where a request's answer is kept: an id reused by another kind of
    request is a different request, not a repeat."""
    return None if request_id is None else f"{operation}:{request_id}"


def _refuse_duplicates(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{name} appears more than once in one request")
        seen.add(name)


def _encode_answer(key: str, result: Any) -> Any:
    """What is kept of an answer: just the versions for a modify, whose
    repeat carries the tokens again; whole tokens for a claim."""
    if isinstance(result, list):
        if key.startswith("modify:"):
            return {"versions": [t.version for t in result]}
        return [t.to_dict() for t in result]
    return result


def _decode_answer(text: str, replay: Callable[[Any], Any] | None) -> Any:
    raw = json.loads(text)
    if isinstance(raw, dict) and "versions" in raw and replay is not None:
        return replay(raw["versions"])
    if isinstance(raw, list):
        return [Token.from_dict(t) for t in raw]
    return raw
