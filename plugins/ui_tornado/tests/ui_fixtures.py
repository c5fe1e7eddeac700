"""What the UI's tests build on: a real master, real workers, real workflows.

A master runs in the test process on a SQLite store and serves HTTP on a
free loopback port; worker threads run jobs as real shell processes with the
local executor; the UI reads the same store and sends its actions to the
master over HTTP, as it does in production. Workflows come from a small
in-process parser plugin registered under the config's ``parser`` name.
"""

import asyncio
import pathlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest
import tornado.httpserver
import tornado.netutil
import yaml
from pinball_core import hookimpl
from pinball_core.app import Application
from pinball_core.client import MasterClient
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.token import Token
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import Worker, WorkerSettings

from pinball_ui_tornado.base import Ui
from pinball_ui_tornado.server import make_app

T = TypeVar("T")

#: Hard limit on any wait; generous for slow CI machines.
WAIT_SEC = 60.0

#: Job definitions by workflow: job name to (command, upstream jobs).
Definitions = Mapping[str, Mapping[str, tuple[str, list[str]]]]

DEFAULT_WORKFLOWS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "etl": {
        "extract": ("echo extracting; echo PINBALL:EVENT_ATTR:rows=10", []),
        "transform": (
            "echo got %(rows)s rows; echo 'PINBALL:kv_job_url=report|https://example.com/r/1'",
            ["extract"],
        ),
        "load": ("echo loading", ["transform"]),
    },
    "slow": {
        "wait": ("echo waiting; sleep 600", []),
        "after": ("echo after", ["wait"]),
    },
    "fails": {
        "ok": ("echo fine", []),
        "broken": ("echo about to fail >&2; exit 3", ["ok"]),
    },
}


class StaticParser:
    """A parser over definitions held in memory."""

    def __init__(self, workflows: Definitions) -> None:
        self.workflows = workflows

    def workflow_names(self) -> list[str]:
        return sorted(self.workflows)

    def jobs(self, workflow: str) -> dict[str, Job]:
        return {
            name: Job(name=name, command=command, inputs=list(upstream))
            for name, (command, upstream) in self.workflows[workflow].items()
        }

    def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
        return instance_tokens(workflow, instance, self.jobs(workflow))

    def schedule_token(self, workflow: str) -> Token | None:
        return None

    def validate(self) -> list[str]:
        return []


class StaticParserPlugin:
    def __init__(self, workflows: Definitions) -> None:
        self.parser = StaticParser(workflows)

    @hookimpl
    def pinball_make_parser(self, params: Mapping[str, Any]) -> StaticParser:
        return self.parser


def wait_for(what: str, check: Callable[[], T], timeout: float = WAIT_SEC) -> T:
    """Poll ``check`` until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


class Env:
    """A master, its store, a config file and an application on it."""

    def __init__(self, root: pathlib.Path, extra: Mapping[str, Any]) -> None:
        self.root = root
        self.logs_dir = root / "logs"
        self.store_url = f"sqlite:///{root / 'pinball.db'}"
        self.master_store = SqliteStore(self.store_url)
        self.master_store.initialize()
        self.master = MasterThread(self.master_store, port=0).start()
        self._master_running = True
        self.config_path = root / "pinball.yaml"
        self.workflows: dict[str, dict[str, tuple[str, list[str]]]] = {
            k: dict(v) for k, v in DEFAULT_WORKFLOWS.items()
        }
        config = {
            "home": str(root),
            "store": self.store_url,
            "logs_dir": str(self.logs_dir),
            "master_host": "127.0.0.1",
            "master_port": self.master.port,
            "parser": "uitest",
            "client_connect_attempts": 2,
            "client_timeout_sec": 20,
            "default_max_workflow_running_instances": 5,
            **extra,
        }
        self.config_path.write_text(yaml.safe_dump(config))
        self.app = Application(self.config_path)
        self.app.plugins.register(StaticParserPlugin(self.workflows), "parser.uitest")
        self.ui_store = self.app.open_store()
        self.ui_store.initialize()
        self._workers: list[tuple[threading.Thread, threading.Event, Worker]] = []

    @property
    def client(self) -> MasterClient:
        return self.master.client()

    def start(self, workflow: str, instance: str | None = None) -> str:
        """Insert a new instance of ``workflow``; its id."""
        instance = instance or str(int(time.time() * 1000))
        parser = StaticParser(self.workflows)
        self.client.modify(parser.instance_tokens(workflow, instance))
        return instance

    def start_workers(self, count: int = 2) -> None:
        settings = WorkerSettings(
            lease_sec=30,
            poll_sec=0.2,
            logs_dir=str(self.logs_dir),
            archive_delay_sec=3600,
            abort_grace_sec=0.5,
            tick_sec=0.1,
        )
        for _ in range(count):
            worker = Worker(self.client, LocalExecutor(), settings)
            stop = threading.Event()
            thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
            thread.start()
            self._workers.append((thread, stop, worker))

    def job_status(self, workflow: str, instance: str, job: str) -> str | None:
        from pinball_core.workflow.status import read_instance

        summary = read_instance(self.client, workflow, instance, time.time())
        if summary is None:
            return None
        return next((str(j.status) for j in summary.jobs if j.name == job), None)

    def instance_status(self, workflow: str, instance: str) -> str | None:
        from pinball_core.workflow.status import read_instance

        summary = read_instance(self.client, workflow, instance, time.time())
        return None if summary is None else str(summary.status)

    def close(self) -> None:
        for _, stop, worker in self._workers:
            # Jobs still running (a test's sleep) are killed, not waited for.
            worker.abort_running.set()
            stop.set()
        for thread, _, _ in self._workers:
            thread.join(timeout=30)
        self.ui_store.close()
        self.stop_master()

    def stop_master(self) -> None:
        """Stop the master for good, as a crash would leave the UI."""
        if self._master_running:
            self._master_running = False
            self.master.stop()
            self.master_store.close()


class ServedUi:
    """The UI served over real HTTP on a free loopback port."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self._server = tornado.httpserver.HTTPServer(make_app(self.ui))
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self._server.add_sockets(sockets)
        return int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def _stop() -> None:
            self._server.stop()
            await self._server.close_all_connections()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
