"""Clients of the token master: over HTTP, or in the same process.

Both speak the master's five requests with the same arguments and raise the
same typed errors, so workers, tools and tests do not care which they hold.
Every write carries a fresh request id; a client that lost the answer and
sends the request again with that id gets the first answer, never a second
application of the change.
"""

import abc
import contextlib
import http.client
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from pinball_core.errors import (
    ErrorCode,
    MasterError,
    MasterUnavailableError,
    UnauthorizedError,
)
from pinball_core.protocol import SECRET_HEADER, Query
from pinball_core.token import Token

log = logging.getLogger(__name__)

_WRITES = frozenset({"modify", "query_and_own", "archive"})

# The least an attempt waits for an answer, however close its deadline: a
# master that is up answers in that time.
_SHORTEST_WAIT_SEC = 0.2


class StopSignal(Protocol):
    """What :meth:`MasterClient.give_up_when` watches: a threading.Event, or
    anything else that can say whether it is set and wait until it is.

    One that also has a ``deadline`` attribute (wall-clock seconds, or None)
    limits how long each attempt may wait for the master's answer to the
    time left until then.
    """

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class MasterClient(abc.ABC):
    """The master's requests as typed methods."""

    def modify(
        self, updates: Iterable[Token] = (), deletes: Iterable[Token] = ()
    ) -> list[Token]:
        """Insert, update and delete in one all-or-nothing request.

        Returns the updated tokens as stored, with their new versions, in the
        order given. Raises VersionConflictError, NotFoundError or InputError
        and then nothing was changed.
        """
        body = {
            "updates": [t.to_dict() for t in updates],
            "deletes": [t.to_dict() for t in deletes],
        }
        return _tokens(self.call("modify", body)["updates"])

    def query(
        self,
        prefix: str = "",
        max_tokens: int | None = None,
        *,
        contains: str | None = None,
    ) -> list[Token]:
        """Tokens under ``prefix``: all in name order, or the top ``max_tokens``.

        With ``contains``, only those whose names contain it.
        """
        return self.query_many([Query(prefix, max_tokens, contains)])[0]

    def query_many(self, queries: Sequence[Query]) -> list[list[Token]]:
        """Several queries answered from the same state."""
        return self.read(queries)[0]

    def read(
        self, queries: Sequence[Query], counts: Sequence[str] = ()
    ) -> tuple[list[list[Token]], list[int]]:
        """The tokens each query matches, and how many tokens each prefix in
        ``counts`` holds, all from the same state, in one request.

        A job's end needs a few tokens and the size of folders too big to
        read; asking for both at once saves the worker a round trip.
        """
        body: dict[str, Any] = {"queries": [q.to_dict() for q in queries]}
        if counts:
            body["counts"] = list(counts)
        answer = self.call("query", body)
        tokens = [_tokens(ts) for ts in answer["tokens"]]
        if not counts:
            return tokens, []
        counted: list[int] | None = answer.get("counts")
        if counted is None:
            # A master older than counts in queries ignores them: ask again.
            counted = self.count(counts)
        return tokens, counted

    def query_and_own(
        self,
        owner: str,
        prefix: str,
        max_tokens: int | None = None,
        *,
        lease_sec: float | None = None,
        expiration: float | None = None,
        contains: str | None = None,
        wait_sec: float | None = None,
    ) -> list[Token]:
        """Claim unowned tokens under ``prefix``, highest priority first.

        The lease lasts ``lease_sec`` from the master's receipt of the request,
        or until the absolute ``expiration``; give one of the two. Only names
        that contain ``contains`` are claimed, if given. With ``wait_sec`` the
        master holds a claim that finds nothing until a token becomes free or
        the time is up.
        """
        body = {
            "owner": owner,
            "query": Query(prefix, max_tokens, contains).to_dict(),
            "lease_sec": lease_sec,
            "expiration": expiration,
            "wait_sec": wait_sec,
        }
        return _tokens(self.call("query_and_own", body)["tokens"])

    def group(self, prefix: str, suffix: str | None = None) -> dict[str, int]:
        """Count names under ``prefix`` by their part up to ``suffix``."""
        counts: dict[str, int] = self.call(
            "group", {"prefix": prefix, "suffix": suffix}
        )["counts"]
        return counts

    def count(self, prefixes: Sequence[str]) -> list[int]:
        """How many tokens each prefix holds, without fetching them."""
        counts: list[int] = self.call("count", {"prefixes": list(prefixes)})["counts"]
        return counts

    def archive(self, tokens: Iterable[Token]) -> None:
        """Move tokens, each with its current version, to the archive."""
        self.call("archive", {"tokens": [t.to_dict() for t in tokens]})

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request; writes get a request id that retries reuse."""
        if operation in _WRITES and not body.get("request_id"):
            body = body | {"request_id": uuid.uuid4().hex}
        return self._send(operation, body)

    def give_up_when(
        self, event: StopSignal
    ) -> contextlib.AbstractContextManager[None]:
        """Within this context, this thread's requests stop retrying once
        ``event`` is set.

        A worker or scheduler asked to stop must not first ride out minutes
        of backoff against a master that is down. Each request is still sent
        once, so a stop can hand back its work when the master is up; a
        retry that ``event`` cuts short raises :class:`MasterUnavailableError`.
        A client that does not retry has nothing to cut short. An ``event``
        with a ``deadline`` (see :class:`StopSignal`) also cuts short an
        attempt that waits for an answer past it.
        """
        return contextlib.nullcontext()

    @abc.abstractmethod
    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Deliver the request and return the decoded answer or raise."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "MasterClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class HttpClient(MasterClient):
    """A master client over HTTP with keep-alive, retries and backoff.

    A request that could not be delivered, timed out, or met a master whose
    store was unavailable is sent again with the same request id, up to
    ``connect_attempts`` times, waiting a randomised, doubling backoff capped
    at ``max_backoff_sec`` in between; :meth:`give_up_when` ends that wait
    early. Each failed attempt is logged at ``retry_log_level``: a warning
    for a service riding out a restart, debug for a command whose one error
    line says it all. Each thread keeps its own connection, so one client
    can serve many worker threads.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 9090,
        *,
        secret: str | None = None,
        timeout_sec: float = 180.0,
        connect_attempts: int = 10,
        max_backoff_sec: float = 1200.0,
        first_backoff_sec: float = 0.1,
        retry_log_level: int = logging.WARNING,
    ) -> None:
        self.base_url = f"http://{host}:{port}"
        #: ``HOST:PORT``, for messages.
        self.address = f"{host}:{port}"
        self._host = host
        self._port = port
        self._retry_log_level = retry_log_level
        self._timeout = timeout_sec
        self._attempts = max(1, connect_attempts)
        self._max_backoff = max_backoff_sec
        self._first_backoff = first_backoff_sec
        self._headers = {"Content-Type": "application/json"}
        if secret:
            self._headers[SECRET_HEADER] = secret
        self._local = threading.local()
        # Per thread, the event that ends retries (see give_up_when); apart
        # from _local, which close() replaces.
        self._give_up = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def give_up_when(self, event: StopSignal) -> Iterator[None]:
        outer = getattr(self._give_up, "event", None)
        self._give_up.event = event
        try:
            yield
        finally:
            self._give_up.event = outer

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(
            self._local, "connection", None
        )
        if connection is None:
            connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._timeout
            )
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body).encode()
        backoff = self._first_backoff
        began = time.monotonic()
        for attempt in range(1, self._attempts + 1):
            connection = self._connection()
            self._limit_wait(connection)
            try:
                connection.request(
                    "POST", f"/v1/{operation}", body=payload, headers=self._headers
                )
                response = connection.getresponse()
                status, data = response.status, response.read()
            except socket.gaierror as exc:
                # A name that does not resolve will not resolve on retry either.
                raise MasterUnavailableError(
                    f"cannot find the master's host {self._host!r}: {exc}; check "
                    "master_host"
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                # The connection may be half-used; the next attempt opens anew.
                connection.close()
                failure: Exception = exc
            else:
                answer = _decode(status, data)
                if status == 503 and attempt < self._attempts:
                    failure = _error(answer, status, self.address)
                elif status >= 400:
                    raise _error(answer, status, self.address)
                else:
                    return answer

            if attempt == self._attempts:
                took = time.monotonic() - began
                raise MasterUnavailableError(
                    f"cannot reach the master at {self.address}: {failure}; gave "
                    f"up after {attempt} attempts in {took:.1f} s; is it running? "
                    "(`pinball master`)"
                ) from failure
            give_up: StopSignal | None = getattr(self._give_up, "event", None)
            delay = min(backoff, self._max_backoff) * random.uniform(0.5, 1.5)
            if give_up is None or not give_up.is_set():
                log.log(
                    self._retry_log_level,
                    "%s to %s failed (attempt %d of %d): %s; again in %.1f s",
                    operation,
                    self.base_url,
                    attempt,
                    self._attempts,
                    failure,
                    delay,
                )
            if give_up is None:
                time.sleep(delay)
            elif give_up.wait(delay):
                raise MasterUnavailableError(
                    f"cannot reach the master at {self.address}: {failure}; "
                    "not retrying, since this is stopping"
                ) from failure
            backoff *= 2
        raise AssertionError("unreachable")

    def _limit_wait(self, connection: http.client.HTTPConnection) -> None:
        """Wait for this attempt's answer no longer than the thread's give-up
        deadline allows, if it has one."""
        give_up = getattr(self._give_up, "event", None)
        deadline: float | None = getattr(give_up, "deadline", None)
        timeout = self._timeout
        if deadline is not None:
            timeout = max(_SHORTEST_WAIT_SEC, min(timeout, deadline - time.time()))
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def _decode(status: int, data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data or b"{}")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise MasterUnavailableError(
            f"the master answered HTTP {status} with a body that is not "
            "a JSON object; is this port a Pinball master?"
        )
    return answer


def _error(answer: dict[str, Any], status: int, address: str) -> MasterError:
    error = answer.get("error") or {}
    code = str(error.get("code", ErrorCode.UNKNOWN))
    message = str(error.get("message", f"HTTP {status}"))
    if status == 401:
        return UnauthorizedError(message + "; set master_secret to the master's")
    found = MasterError.from_code(code, message)
    if found.code is ErrorCode.UNKNOWN:
        # Without a code the message alone must say where it came from.
        found = MasterError(
            f"the master at {address} answered HTTP {status}: {message}"
        )
    return found


def _tokens(raw: list[dict[str, Any]]) -> list[Token]:
    return [Token.from_dict(t) for t in raw]
