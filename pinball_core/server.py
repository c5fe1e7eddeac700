"""The master's JSON-over-HTTP interface, served by Tornado.

Every request is a POST of a JSON object to ``/v1/<request>``; the answer is
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
import tornado.netutil
import tornado.web

from pinball_core.errors import ErrorCode, InputError, MasterError
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
    return {"tokens": [[t.to_dict() for t in ts] for ts in master.query(queries)]}


async def _query_and_own(master: TokenMaster, body: Any) -> dict[str, Any]:
    claimed = await master.query_and_own(QueryAndOwnRequest.from_dict(body))
    return {"tokens": [t.to_dict() for t in claimed]}


async def _group(master: TokenMaster, body: Any) -> dict[str, Any]:
    return {"counts": master.group(GroupRequest.from_dict(body))}


async def _archive(master: TokenMaster, body: Any) -> dict[str, Any]:
    await master.archive(ArchiveRequest.from_dict(body))
    return {}


_Operation = Callable[[TokenMaster, Any], Awaitable[dict[str, Any]]]

OPERATIONS: dict[str, _Operation] = {
    "modify": _modify,
    "query": _query,
    "query_and_own": _query_and_own,
    "group": _group,
    "archive": _archive,
}


class _Handler(tornado.web.RequestHandler):
    """Base: checks the secret and writes JSON answers and errors."""

    def initialize(self, master: TokenMaster, secret: str | None) -> None:
        self.master = master
        self.secret = secret

    def prepare(self) -> None:
        if self.secret is None:
            return
        sent = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(sent.encode(), self.secret.encode()):
            self._error(ErrorCode.UNAUTHORIZED, f"missing or wrong {SECRET_HEADER}")
            self.finish()

    def _answer(self, body: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def _error(self, code: ErrorCode, message: str) -> None:
        self.set_status(_STATUS[code])
        self._answer({"error": {"code": code.value, "message": message}})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # No tracebacks to clients; the log has them.
        self._answer({"error": {"code": "UNKNOWN", "message": self._reason or "error"}})


class OperationHandler(_Handler):
    """``POST /v1/<operation>``: one master request."""

    async def post(self, operation: str) -> None:
        handler = OPERATIONS.get(operation)
        if handler is None:
            known = ", ".join(sorted(OPERATIONS))
            self._error(
                ErrorCode.INPUT_ERROR, f"no request {operation!r}; known: {known}"
            )
            return
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            self._error(ErrorCode.INPUT_ERROR, f"the body is not JSON: {exc}")
            return

        try:
            self._answer(await handler(self.master, body))
        except MasterError as exc:
            self._error(exc.code, exc.message)


class HealthHandler(_Handler):
    """``GET /v1/health``: whether the master is up, and what it holds."""

    def get(self) -> None:
        self._answer(
            {"status": "ok", "tokens": len(self.master), "version": self.master.version}
        )


def make_app(master: TokenMaster, secret: str | None = None) -> tornado.web.Application:
    """The Tornado application that serves ``master``."""
    options = {"master": master, "secret": secret or None}
    return tornado.web.Application(
        [
            (r"/v1/health", HealthHandler, options),
            (r"/v1/([a-z_]+)", OperationHandler, options),
        ],
    )


async def serve(
    store: Store,
    *,
    host: str,
    port: int,
    secret: str | None = None,
    request_id_retention_sec: float = 3600.0,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Run a master on ``store`` at ``host:port`` until SIGINT or SIGTERM.

    ``ready`` is called with the bound port once the master accepts requests
    (useful with port 0). On a signal the master stops accepting, lets queued
    writes commit and closes the store.
    """
    master = TokenMaster(store, request_id_retention_sec=request_id_retention_sec)
    await master.start()

    server = tornado.httpserver.HTTPServer(
        make_app(master, secret), max_body_size=_MAX_BODY_BYTES, xheaders=False
    )
    sockets = tornado.netutil.bind_sockets(port, address=host)
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
    await stop.wait()

    log.info("master stopping")
    server.stop()
    await master.stop()
    store.close()
