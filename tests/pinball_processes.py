"""Pinball's commands as child processes, the way a user runs them."""

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest


def free_port() -> int:
    """A loopback port free a moment ago (another process may take it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def alive(pid: int) -> bool:
    """Whether the process ``pid`` still runs; a zombie does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An orphan's zombie lingers until init reaps it; it runs no more.
    return _stat(pid)[:1] != ["Z"]


def children_of(pid: int) -> list[int]:
    """The running processes whose parent is ``pid``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(pid)]:
            found.append(int(entry.name))
    return [child for child in found if alive(child)]


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command: state, parent, ..."""
    with contextlib.suppress(OSError):
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return []


def wait_until_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """Wait for the processes to end; those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return []
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def kill_all(pids: list[int]) -> None:
    """SIGKILL those of the processes still running, so a test leaves none."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class RunProcess:
    """``pinball -c CONFIG run`` in the background, its output collected."""

    def __init__(self, config: pathlib.Path, *args: str) -> None:
        self.config = config
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pinball_core", "-c", str(config), "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                if text in self.output:
                    return
                pytest.fail(f"run exited before {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout} s:\n{self.output}")
            time.sleep(0.1)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"run did not stop after {timeout} s:\n{self.output}")
        self._reader.join(timeout=5)
        return code

    def close(self) -> None:
        """Kill ``run`` if it still runs, and the services it started."""
        if self.process.poll() is None:
            services = children_of(self.process.pid)
            self.process.kill()
            self.process.wait()
            kill_all(services)

    def pinball(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pinball_core", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )


def wait_for_success(
    run: RunProcess, workflow: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = run.pinball("workflow", "status", "-w", workflow, "--json")
        if shown.returncode == 0:
            instances = json.loads(shown.stdout)["instances"]
            done = [i for i in instances if i["status"] == "SUCCESS"]
            if done:
                return done[0]
        if time.monotonic() > deadline:
            pytest.fail(f"{workflow} did not succeed:\n{shown.stdout}{shown.stderr}")
        time.sleep(0.3)


class ServiceProcess:
    """One ``pinball -c CONFIG COMMAND`` service, killed and restarted at will.

    Each start writes to a log file of its own under ``logs``, so a service
    that misbehaves is reported with what every one of its lives said.
    """

    def __init__(
        self, config: pathlib.Path, command: str, logs: pathlib.Path, name: str = ""
    ) -> None:
        self.config = config
        self.command = command
        self.name = name or command
        self.logs = logs
        self.lives = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.lives += 1
        log = self.logs / f"{self.name}.{self.lives}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pinball_core", "-c", str(self.config)]
                + self.command.split(),
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def kill(self) -> None:
        """SIGKILL the service, as a crash would, and reap it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it does not stop within ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        """Everything every life of the service wrote."""
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.logs.glob(f"{self.name}.*.log"))
        )
