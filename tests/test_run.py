"""``pinball run`` and ``pinball init`` as a user runs them: real processes."""

import os
import pathlib
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from pinball_processes import (
    RunProcess,
    children_of,
    free_port,
    kill_all,
    wait_for_success,
    wait_until_gone,
)

from pinball_core.supervisor import (
    SUPERVISOR_PID_ENV,
    Service,
    ServiceFailed,
    Supervisor,
)

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
    run.close()


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
        run.close()


def test_abort_running_stops_running_jobs_to_run_them_again(
    config: pathlib.Path,
) -> None:
    run = RunProcess(config, "--start", "slow", "--without", "ui", "--abort-running")
    try:
        run.wait_for("started workflow slow")
        _wait_for_log(run, config, "napping")

        assert run.stop() == 0
        assert "woke" not in _job_log(config, "nap")
    finally:
        run.close()

    # The stop was not the job's failure: the next run runs it again, though
    # it has one attempt only.
    again = RunProcess(config, "--without", "ui")
    try:
        instance = wait_for_success(again, "slow")

        assert instance["status"] == "SUCCESS"
        assert "woke" in _job_log(config, "nap")
        assert again.stop() == 0
    finally:
        again.close()


def test_sighup_stops_run_in_order(running: RunProcess) -> None:
    running.wait_for("running: master")
    services = children_of(running.process.pid)
    try:
        assert running.stop(signal.SIGHUP) == 0

        assert "stopping master" in running.output
        assert wait_until_gone(services) == []
    finally:
        kill_all(services)


def test_closing_the_terminal_stops_run_and_its_services(
    config: pathlib.Path,
) -> None:
    # The terminal goes away first, so every later write to it fails (EIO);
    # then its hangup arrives.
    terminal, side = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pinball_core", "-c", str(config), "run"],
        stdin=side,
        stdout=side,
        stderr=side,
    )
    os.close(side)
    services: list[int] = []
    try:
        try:
            _read_until(terminal, b"running: master", process)
            services = children_of(process.pid)
        finally:
            os.close(terminal)

        process.send_signal(signal.SIGHUP)

        assert process.wait(timeout=60) == 0
        assert wait_until_gone(services) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_all(services)


def test_services_end_when_run_is_killed(config: pathlib.Path) -> None:
    run = RunProcess(config)
    services: list[int] = []
    try:
        run.wait_for("running: master")
        services = children_of(run.process.pid)
        assert len(services) >= 3, run.output

        run.process.kill()
        run.process.wait()

        assert wait_until_gone(services) == []
    finally:
        run.close()
        kill_all(services)

    # Nothing is left holding the ports: the next run starts.
    again = RunProcess(config, "--without", "ui")
    try:
        again.wait_for("running: master")
        assert again.stop() == 0
    finally:
        again.close()


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
    assert "another Pinball master may still be running" in done.stderr


def test_a_service_whose_supervisor_has_ended_does_not_start(
    config: pathlib.Path,
) -> None:
    # Its supervisor, by the environment, is not its parent: it has ended.
    env = os.environ | {SUPERVISOR_PID_ENV: "1"}

    done = subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), "workers"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert done.returncode == 0
    assert "(pid 1) has ended; not starting" in done.stderr
    assert "workers of generation" not in done.stderr


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


def _read_until(fd: int, text: bytes, process: subprocess.Popen[bytes]) -> None:
    """Read the terminal ``fd`` until ``process`` has written ``text`` to it."""
    seen = b""
    deadline = time.monotonic() + 60
    while text not in seen:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} from run:\n{seen.decode(errors='replace')}")
        if select.select([fd], [], [], 0.1)[0]:
            seen += os.read(fd, 4096)


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
