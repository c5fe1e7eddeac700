"""``pinball run`` and ``pinball init`` as a user runs them: real processes."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from pinball_processes import RunProcess, free_port, wait_for_success

from pinball_core.supervisor import Service, ServiceFailed, Supervisor

WORKFLOWS = """\
workflows:
  hello:
    jobs:
      greet: {command: "echo PINBALL:EVENT_ATTR:name=world"}
      answer: {command: "echo hello, %(name)s", depends_on: [greet]}
  slow:
    jobs:
      nap: {command: "echo napping; sleep 3; echo woke"}
"""


@pytest.fixture
def config(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "workflows.yaml").write_text(WORKFLOWS)
    path = tmp_path / "pinball.yaml"
    path.write_text(
        f"home: {tmp_path / 'home'}\n"
        f"master_port: {free_port()}\n"
        f"ui_port: {free_port()}\n"
        "parser: yaml\n"
        "parser_params: {path: workflows.yaml}\n"
        "workers: 2\n"
        "worker_poll_time_sec: 1\n"
    )
    return path


@pytest.fixture
def running(config: pathlib.Path) -> Iterator[RunProcess]:
    run = RunProcess(config, "--start", "hello", "--without", "ui")
    yield run
    if run.process.poll() is None:
        run.process.kill()
        run.process.wait()


def test_run_starts_a_workflow_and_stops_cleanly(running: RunProcess) -> None:
    running.wait_for("started workflow hello")

    instance = wait_for_success(running, "hello")

    assert instance["status"] == "SUCCESS"
    assert "master    |" in running.output
    assert "workers   |" in running.output
    assert running.stop() == 0
    assert "stopping master" in running.output


def test_a_dead_service_is_restarted_and_reported(running: RunProcess) -> None:
    running.wait_for("running: master")
    workers = _child_pid(running, "workers")

    os.kill(workers, signal.SIGKILL)

    running.wait_for("workers exited with code -9")
    running.wait_for("restarted workers")
    assert _child_pid(running, "workers") != workers
    assert running.stop() == 0


def test_running_jobs_finish_before_the_workers_stop(config: pathlib.Path) -> None:
    run = RunProcess(config, "--start", "slow", "--without", "ui")
    try:
        run.wait_for("started workflow slow")
        _wait_for_log(run, config, "napping")

        assert run.stop(signal.SIGINT) == 0

        nap = _job_log(config, "nap")
        assert "woke" in nap
    finally:
        if run.process.poll() is None:
            run.process.kill()


def test_abort_running_stops_running_jobs(config: pathlib.Path) -> None:
    run = RunProcess(config, "--start", "slow", "--without", "ui", "--abort-running")
    try:
        run.wait_for("started workflow slow")
        _wait_for_log(run, config, "napping")

        assert run.stop() == 0

        assert "woke" not in _job_log(config, "nap")
    finally:
        if run.process.poll() is None:
            run.process.kill()


def test_a_service_that_cannot_start_stops_the_run(tmp_path: pathlib.Path) -> None:
    port = free_port()
    config = tmp_path / "pinball.yaml"
    config.write_text(f"home: {tmp_path}\nmaster_port: {port}\n")
    with socket.socket() as squatter:
        squatter.bind(("localhost", port))
        squatter.listen()

        done = subprocess.run(
            [sys.executable, "-m", "pinball_core", "-c", str(config), "run"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode == 1
    assert "master exited with code" in done.stderr


def test_supervisor_stops_services_in_reverse_order() -> None:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor(
        [Service("first", sleeper), Service("second", sleeper)],
        out=Sink(),  # type: ignore[arg-type]
    )
    supervisor.start()
    supervisor.stop()

    stops = [line for line in lines if "stopping" in line]
    assert [line.split()[-1] for line in stops] == ["second", "first"]


def test_supervisor_reports_a_service_that_exits_while_starting() -> None:
    failing = [sys.executable, "-c", "print('no luck'); raise SystemExit(3)"]
    with open(os.devnull, "w") as sink:
        never = Service("broken", failing, ready=lambda: False)
        supervisor = Supervisor([never], out=sink)

        with pytest.raises(ServiceFailed, match="broken exited with code 3"):
            supervisor.start()


def test_init_writes_a_config_that_runs(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "project"

    first = subprocess.run(
        [sys.executable, "-m", "pinball_core", "init", str(folder)],
        capture_output=True,
        text=True,
    )
    again = subprocess.run(
        [sys.executable, "-m", "pinball_core", "init", str(folder)],
        capture_output=True,
        text=True,
    )
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "pinball_core",
            "-c",
            str(folder / "pinball.yaml"),
            "config",
            "check",
        ],
        capture_output=True,
        text=True,
    )

    assert first.returncode == 0, first.stderr
    assert (folder / "workflows" / "examples.yaml").is_file()
    assert again.returncode == 2
    assert "give --force" in again.stderr
    assert checked.returncode == 0, checked.stderr


def _child_pid(run: RunProcess, service: str) -> int:
    """The pid of a service's process, found among run's children."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == run.process.pid and service.encode() in cmdline:
                return int(entry.name)
        time.sleep(0.1)
    pytest.fail(f"no {service} child of run:\n{run.output}")


def _job_log(config: pathlib.Path, job: str) -> str:
    """Everything the job's executions wrote, from their log files."""
    logs = config.parent / "home" / "logs"
    found = [
        path.read_text(errors="replace")
        for path in logs.rglob("*")
        if path.is_file() and job in str(path)
    ]
    return "\n".join(found)


def _wait_for_log(run: RunProcess, config: pathlib.Path, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in _job_log(config, ""):
        if time.monotonic() > deadline or run.process.poll() is not None:
            pytest.fail(f"no job wrote {text!r}:\n{run.output}")
        time.sleep(0.1)
