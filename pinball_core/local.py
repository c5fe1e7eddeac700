"""A master on a thread of its own, and a client that calls it directly.

For tests, benchmarks and single-process tools: the master keeps its own
event loop, so synchronous code (workers, tools) uses it exactly as it would
use a remote one, with or without HTTP in between.
"""

import asyncio
import concurrent.futures
import threading
from typing import Any

import tornado.httpserver
import tornado.netutil

from pinball_core.client import MasterClient
from pinball_core.errors import MasterError, MasterUnavailableError
from pinball_core.master import TokenMaster
from pinball_core.server import OPERATIONS, make_server
from pinball_core.store import Store


class MasterThread:
    """Runs a :class:`TokenMaster` on ``store`` in a daemon thread.

    With ``port`` set (0 picks a free one) it also serves HTTP on 127.0.0.1;
    :attr:`port` is the bound port. Use as a context manager, or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        store: Store,
        *,
        port: int | None = None,
        secret: str | None = None,
        request_id_retention_sec: float = 600.0,
    ) -> None:
        self.store = store
        self.master = TokenMaster(
            store, request_id_retention_sec=request_id_retention_sec
        )
        self.port: int | None = None
        self._want_port = port
        self._secret = secret
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pinball-master", daemon=True
        )
        self._server: tornado.httpserver.HTTPServer | None = None

    def start(self) -> "MasterThread":
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.store.lock_for_master()
        await self.master.start()
        if self._want_port is not None:
            self._server = make_server(self.master, self._secret)
            sockets = tornado.netutil.bind_sockets(self._want_port, "127.0.0.1")
            self._server.add_sockets(sockets)
            self.port = sockets[0].getsockname()[1]

    def run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the master's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def client(self) -> "LocalClient":
        """A client that calls this master without HTTP."""
        return LocalClient(self)

    def stop(self) -> None:
        """Stop serving, let queued writes commit, and end the thread."""
        if self._server is not None:
            self._server.stop()
        self.run(self.master.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "MasterThread":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LocalClient(MasterClient):
    """Calls a :class:`MasterThread` directly, with the server's decoding."""

    def __init__(self, master: MasterThread) -> None:
        self._master = master

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise MasterError(f"no request {operation!r}")
        try:
            answer: dict[str, Any] = self._master.run(
                handler(self._master.master, body)
            )
        except concurrent.futures.CancelledError as exc:
            raise MasterUnavailableError("the master stopped") from exc
        return answer

    def close(self) -> None:
        """Nothing to release: the master thread outlives its clients."""
