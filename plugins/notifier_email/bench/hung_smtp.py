"""How long a run of failing jobs takes with the email notifier in the way.

Runs the same instance (one start job, then JOBS jobs that all fail, each
with its own address, on THREADS worker threads) three times on an
in-process master:

- with no notifier at all;
- with the notifier and an SMTP server that accepts connections and never
  answers (a hung server, timeout 600 s): every mail waits;
- with the notifier and a working aiosmtpd server (in a process of its own,
  as a real server would be).

It prints the wall time of each run, from the instance's tokens being posted
to its end, and the longest time one hook call took in the worker. Needs the
test extra (aiosmtpd): ``pip install -e 'plugins/notifier_email[test]'``.

    python plugins/notifier_email/bench/hung_smtp.py [JOBS] [THREADS]
"""

import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import yaml
from pinball_core import hookimpl
from pinball_core.config import load_config
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import Worker, WorkerSettings


class _Ends:
    """Records the instance's end."""

    def __init__(self) -> None:
        self.done = threading.Event()

    @hookimpl
    def pinball_instance_finished(self, workflow: str, instance: str) -> None:
        self.done.set()


class _Timed:
    """Wraps the hook relay to time each call a worker makes."""

    def __init__(self, relay: Any) -> None:
        self.relay = relay
        self.longest = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        hook = getattr(self.relay, name)

        def call(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return hook(**kwargs)
            finally:
                took = time.perf_counter() - started
                with self._lock:
                    self.calls += 1
                    self.longest = max(self.longest, took)

        return call


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(
    folder: pathlib.Path, jobs: int, threads: int, smtp: str
) -> tuple[float, float, int]:
    store = SqliteStore(f"sqlite:///{folder / f'{smtp}.db'}")
    store.initialize()
    port = _free_port()
    hole: socket.socket | None = None
    server: subprocess.Popen[bytes] | None = None
    if smtp == "hung":
        hole = socket.socket()
        hole.bind(("127.0.0.1", port))
        hole.listen(64)
    elif smtp == "working":
        server = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
            + ["-c", "aiosmtpd.handlers.Sink"]
        )
        _wait_listening(port)

    with MasterThread(store, port=0) as master:
        config_file = folder / f"{smtp}.yaml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    # Its own home, so that its unsent mails stay in its own
                    # spool and no real Pinball process on this host sends them.
                    "home": str(folder / "home" / smtp),
                    "logs_dir": str(folder / "logs" / smtp),
                    "master_host": "127.0.0.1",
                    "master_port": master.port,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "disabled_plugins": [] if smtp != "none" else ["notifier.email"],
                    "plugins": {"email": {"timeout_sec": 600, "exit_flush_sec": 0}},
                }
            )
        )
        config = load_config(config_file)
        plugins = PluginManager(blocked=config.disabled_plugins)
        plugins.load_optional()
        ends = _Ends()
        plugins.register(ends, "bench.ends")
        plugins.configure(config)
        relay = _Timed(plugins.hook)

        definitions = {"start": Job(command="true")}
        for n in range(jobs):
            definitions[f"fail_{n}"] = Job(
                command="exit 1", inputs=["start"], emails=[f"f{n}@example.com"]
            )
        settings = WorkerSettings(
            lease_sec=60, poll_sec=0.5, logs_dir=str(folder / "logs" / smtp)
        )
        stop = threading.Event()
        workers = [
            Worker(master.client(), LocalExecutor(), settings, hook=relay)
            for _ in range(threads)
        ]
        running = [
            threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers
        ]
        started = time.perf_counter()
        master.client().modify(instance_tokens("bench", "1", definitions))
        for thread in running:
            thread.start()
        ends.done.wait(600)
        took = time.perf_counter() - started
        stop.set()
        for thread in running:
            thread.join(60)
        for plugin in plugins.hook.pinball_notify.get_hookimpls():
            close = getattr(plugin.plugin, "close", None)
            if close is not None:
                close(timeout=0)
    store.close()
    if hole is not None:
        hole.close()
    if server is not None:
        server.terminate()
        server.wait(30)
    return took, relay.longest, relay.calls


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    print(f"{jobs} failing jobs on {threads} worker threads")
    with tempfile.TemporaryDirectory() as folder:
        for smtp in ("none", "hung", "working"):
            took, longest, calls = _run(pathlib.Path(folder), jobs, threads, smtp)
            label = {"none": "no notifier", "hung": "hung SMTP", "working": "aiosmtpd"}
            print(
                f"{label[smtp]:>12}: {took:6.2f} s, {jobs / took:6.1f} jobs/s, "
                f"longest hook call {longest * 1000:6.2f} ms ({calls} calls)"
            )


if __name__ == "__main__":
    main()
