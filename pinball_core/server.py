"""The master's JSON-over-HTTP interface, served by Tornado.

Every request is a POST of a JSON object to ``/v1/<request>``
(``modify``, ``query``, ``query_and_own``, ``group``, ``count``,
``archive``); the answer is
a JSON object, or ``{"error": {"code": ..., "message": ...}}`` with an HTTP
status that matches the code. With a shared secret configured, a request
without the ``X-Pinball-Secret`` header gets 401 and changes nothing.
"""

import asyncio
import hmac
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.netutil

from pinball_core.errors import (
    ErrorCode,
    InputError,
    MasterError,
    MasterUnavailableError,
    ServeError,
)
from pinball_core.master import TokenMaster
from pinball_core.protocol import (
    SECRET_HEADER,
    ArchiveRequest,
    GroupRequest,
    ModifyRequest,
    Query,
    QueryAndOwnRequest,
)
from pinball_core.store import Store

log = logging.getLogger(__name__)

# Large enough for a whole workflow instance in one modify.
_MAX_BODY_BYTES = 64 * 1024 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

_STATUS = {
    ErrorCode.VERSION_CONFLICT: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INPUT_ERROR: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.UNKNOWN: 503,
}


async def _modify(master: TokenMaster, body: Any) -> dict[str, Any]:
    updates = await master.modify(ModifyRequest.from_dict(body))
    return {"updates": [t.to_dict() for t in updates]}


async def _query(master: TokenMaster, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("queries", []), list):
        raise InputError("a query request needs a list of queries")
    queries = [Query.from_dict(q) for q in body.get("queries", [])]
    answer: dict[str, Any] = {
        "tokens": [[t.to_dict() for t in ts] for ts in master.query(queries)]
    }
    if "counts" in body:
        answer["counts"] = master.count(_prefixes(body["counts"], "a query's counts"))
    return answer


async def _query_and_own(master: TokenMaster, body: Any) -> dict[str, Any]:
    claimed = await master.query_and_own(QueryAndOwnRequest.from_dict(body))
    return {"tokens": [t.to_dict() for t in claimed]}


async def _group(master: TokenMaster, body: Any) -> dict[str, Any]:
    return {"counts": master.group(GroupRequest.from_dict(body))}


async def _count(master: TokenMaster, body: Any) -> dict[str, Any]:
    prefixes = body.get("prefixes") if isinstance(body, dict) else None
    return {"counts": master.count(_prefixes(prefixes, "a count request"))}


def _prefixes(raw: Any, what: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise InputError(f"{what} needs a list of prefixes (strings)")
    return raw


async def _archive(master: TokenMaster, body: Any) -> dict[str, Any]:
    await master.archive(ArchiveRequest.from_dict(body))
    return {}


_Operation = Callable[[TokenMaster, Any], Awaitable[dict[str, Any]]]

OPERATIONS: dict[str, _Operation] = {
    "modify": _modify,
    "query": _query,
    "query_and_own": _query_and_own,
    "group": _group,
    "count": _count,
    "archive": _archive,
}


class MasterApp:
    """Serves the master's requests as a Tornado request callback.

    The master's requests are small and many, so this answers them straight
    from the HTTP connection rather than through ``tornado.web``'s routing and
    handler objects, which would cost more than the request itself.
    """

    def __init__(self, master: TokenMaster, secret: str | None = None) -> None:
        self.master = master
        self._secret = secret.encode() if secret else None

    def __call__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        # Tornado reads the next request on this connection only after this
        # one's answer is finished, so the task needs no tracking here.
        asyncio.ensure_future(self._handle(request))

    async def _handle(self, request: tornado.httputil.HTTPServerRequest) -> None:
        try:
            status, answer = await self._answer(request)
        except Exception:
            log.exception("master request %s %s failed", request.method, request.path)
            status, answer = 500, _error_body(ErrorCode.UNKNOWN, "internal error")

        body = json.dumps(answer).encode()
        headers = tornado.httputil.HTTPHeaders(
            {"Content-Type": "application/json", "Content-Length": str(len(body))}
        )
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", status, _REASONS[status])
        assert request.connection is not None
        request.connection.write_headers(start, headers, body)
        request.connection.finish()

    async def _answer(
        self, request: tornado.httputil.HTTPServerRequest
    ) -> tuple[int, dict[str, Any]]:
        if self._secret is not None:
            sent = request.headers.get(SECRET_HEADER, "").encode()
            if not hmac.compare_digest(sent, self._secret):
                return _error(
                    ErrorCode.UNAUTHORIZED, f"missing or wrong {SECRET_HEADER}"
                )

        path = request.path
        if path == "/v1/health" and request.method == "GET":
            master = self.master
            return 200, {
                "status": "ok",
                "tokens": len(master),
                "version": master.version,
            }

        operation = OPERATIONS.get(path.removeprefix("/v1/"))
        if operation is None or not path.startswith("/v1/"):
            known = ", ".join(f"/v1/{name}" for name in sorted(OPERATIONS))
            return _error(
                ErrorCode.INPUT_ERROR,
                f"no request at {path}; POST to one of {known}, or GET /v1/health",
            )
        if request.method != "POST":
            return _error(
                ErrorCode.INPUT_ERROR, f"{path} takes POST, not {request.method}"
            )

        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            return _error(ErrorCode.INPUT_ERROR, f"the body is not JSON: {exc}")
        except RecursionError:
            return _error(ErrorCode.INPUT_ERROR, "the body is nested too deeply")
        try:
            return 200, await operation(self.master, body)
        except MasterError as exc:
            return _error(exc.code, exc.message)


def _error(code: ErrorCode, message: str) -> tuple[int, dict[str, Any]]:
    return _STATUS[code], _error_body(code, message)


def _error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"error": {"code": code.value, "message": message}}


def make_server(
    master: TokenMaster, secret: str | None = None
) -> tornado.httpserver.HTTPServer:
    """An HTTP server for ``master``; add sockets to it to start serving."""
    return tornado.httpserver.HTTPServer(
        MasterApp(master, secret), max_body_size=_MAX_BODY_BYTES
    )


async def serve(
    store: Store,
    *,
    host: str,
    port: int,
    secret: str | None = None,
    request_id_retention_sec: float = 600.0,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Run a master on ``store`` at ``host:port`` until SIGINT or SIGTERM.

    ``ready`` is called with the bound port once the master accepts requests
    (useful with port 0). On a signal the master stops accepting, lets queued
    writes commit and closes the store.
    """
    try:
        sockets = tornado.netutil.bind_sockets(port, address=host)
    except OSError as exc:
        raise ServeError(f"the master cannot listen on {host}:{port}: {exc}") from exc
    store.lock_for_master()
    master = TokenMaster(store, request_id_retention_sec=request_id_retention_sec)
    await master.start()

    server = make_server(master, secret)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    log.info(
        "master serving on http://%s:%d (store %s)", host, bound, store.display_url
    )
    if ready is not None:
        ready(bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    halted = asyncio.ensure_future(master.halted.wait())
    await asyncio.wait(
        [asyncio.ensure_future(stop.wait()), halted],
        return_when=asyncio.FIRST_COMPLETED,
    )
    if halted.done():
        server.stop()
        store.close()
        raise MasterUnavailableError("the master halted; see the log above")

    log.info("master stopping")
    server.stop()
    await master.stop()
    await server.close_all_connections()
    store.close()
