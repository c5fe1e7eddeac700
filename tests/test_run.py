"""``pinball run`` and ``pinball init`` as a user runs them: real processes."""

import json
import os
import pathlib
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from pinball_processes import (
    RunProcess,
    ServiceProcess,
    alive,
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
from pinball_core.workflow.model import STOPPED_WITH_WORKER

WORKFLOWS = """\
workflows:
  hello:
    jobs:
      greet: {command: "echo PINBALL:EVENT_ATTR:name=world"}
      answer: {command: "echo hello, %(name)s", depends_on: [greet]}
  slow:
    jobs:
      nap: {command: "echo napping; sleep 3; echo woke"}
  long:
    jobs:
      doze:
        command: >-
          echo pid $$;
          if [ "$PINBALL_EXECUTION" = 0 ]; then exec sleep 300; fi;
          echo rested
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
        # The scheduler had stopped before the workers began to drain, so
        # it started nothing meanwhile.
        lines = run.lines
        scheduler_stopped = _index(lines, "scheduler", "stopped after")
        assert scheduler_stopped < _index(lines, "pinball", "stopping workers")
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


def test_sighup_stops_run_in_order(config: pathlib.Path) -> None:
    run = RunProcess(config)
    services: list[int] = []
    try:
        run.wait_for("running: master")
        services = children_of(run.process.pid)

        assert run.stop(signal.SIGHUP) == 0

        assert _stops(run) == ["ui", "scheduler", "workers", "master"]
        assert wait_until_gone(services) == []
    finally:
        run.close()
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


def test_killing_run_stops_its_services_and_their_running_jobs(
    config: pathlib.Path,
) -> None:
    run = RunProcess(config, "--start", "long")
    services: list[int] = []
    job: list[int] = []
    try:
        run.wait_for("started workflow long")
        job = [_job_pid(run, config, "doze")]
        services = children_of(run.process.pid)
        assert len(services) == 4, run.output

        run.process.kill()
        run.process.wait()

        # The job would sleep for 300 s: the workers stopped it rather than
        # wait for it, and the master stayed until they recorded that.
        assert wait_until_gone(services + job) == []
    finally:
        run.close()
        kill_all(services + job)

    # Nothing is left holding the ports or the store: the next run starts,
    # and runs the job again although it has one attempt only.
    again = RunProcess(config, "--without", "ui")
    try:
        wait_for_success(again, "long")

        first, second = _history(again, "long", "doze")
        assert first["reason"] == STOPPED_WITH_WORKER
        assert second["exit_code"] == 0
        assert again.stop() == 0
    finally:
        again.close()


def test_a_second_run_on_the_same_config_changes_nothing(
    running: RunProcess,
) -> None:
    wait_for_success(running, "hello")
    before = running.pinball("workflow", "status", "-w", "hello", "--json").stdout

    second = running.pinball("run", "--start", "hello", "--without", "ui")

    assert second.returncode == 2
    assert second.stderr.count("\n") == 1, second.stderr
    assert "master_port" in second.stderr
    assert "stop it first, or set another master_port" in second.stderr
    after = running.pinball("workflow", "status", "-w", "hello", "--json").stdout
    assert json.loads(after)["instances"] == json.loads(before)["instances"]
    assert running.stop() == 0


def test_run_refuses_a_store_another_master_holds(
    config: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # The same store, another port: only the store's lock is in the way.
    master = ServiceProcess(config, f"master -p {free_port()}", tmp_path)
    master.start()
    try:
        _wait_for_output(master, "master serving on")

        done = _pinball(config, "run", "--without", "ui")
    finally:
        master.stop()

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "another master is using the store" in done.stderr
    assert "master    |" not in done.stderr


def test_run_refuses_a_taken_ui_port(config: pathlib.Path) -> None:
    ui_port = int(re.findall(r"ui_port: (\d+)", config.read_text())[0])
    home = config.parent / "home"
    assert not home.exists()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ui_port))
        squatter.listen()

        done = _pinball(config, "run")

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"ui_port {ui_port}" in done.stderr
    assert "--without ui" in done.stderr
    # Refused before anything: no home folder, so no store or lock file either.
    assert not home.exists()


def test_workers_that_leave_on_exit_are_not_restarted(
    running: RunProcess, config: pathlib.Path
) -> None:
    running.wait_for("running: master")
    newer = config.with_name("newer.yaml")
    newer.write_text(config.read_text() + "generation: 2\n")

    told = _pinball(newer, "workflow", "exit", "-f")

    assert told.returncode == 0, told.stderr
    running.wait_for("workers left: EXIT signal for generation 2")
    running.wait_for("workers ended with code 0 though not asked to stop")
    # The master runs on: the EXIT can be removed through it.
    assert running.pinball("workflow", "unexit").returncode == 0
    assert running.stop() == 0
    assert "restarting in" not in running.output
    assert "restarted" not in running.output
    assert running.output.count("workers left") == 1


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


def test_supervisor_leaves_ended_a_service_that_exits_with_0() -> None:
    lines: list[str] = []
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    leaver = [sys.executable, "-c", "print('leaving')"]
    supervisor = Supervisor(
        [Service("stays", sleeper), Service("leaves", leaver)],
        out=_Sink(lines),  # type: ignore[arg-type]
    )
    supervisor.start()
    watching = threading.Thread(target=supervisor.watch, kwargs={"poll_sec": 0.05})
    watching.start()
    try:
        _wait_for_line(lines, "not restarting it; the others run on")
    finally:
        supervisor.request_stop()
        watching.join(timeout=60)

    assert not any("restarted" in line for line in lines), lines
    assert [line for line in lines if "leaving" in line] == ["leaves    | leaving\n"]


def test_supervisor_stops_once_no_service_is_left() -> None:
    lines: list[str] = []
    leaver = [sys.executable, "-c", "pass"]
    supervisor = Supervisor(
        [Service("leaves", leaver)],
        out=_Sink(lines),  # type: ignore[arg-type]
    )
    supervisor.start()

    assert supervisor.watch(poll_sec=0.05) == 0
    assert any("no service is left running" in line for line in lines), lines


def test_supervisor_stops_services_in_reverse_order() -> None:
    lines: list[str] = []
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor(
        [Service("first", sleeper), Service("second", sleeper)],
        out=_Sink(lines),  # type: ignore[arg-type]
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


class _Sink:
    """A stream that keeps every line written to it."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


def _wait_for_line(lines: list[str], text: str) -> None:
    deadline = time.monotonic() + 30
    while not any(text in line for line in lines):
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in:\n{''.join(lines)}")
        time.sleep(0.05)


def _stops(run: RunProcess) -> list[str]:
    """The services ``run`` stopped, in the order it stopped them."""
    found = (re.fullmatch(r"pinball\s+\| stopping (\w+)", line) for line in run.lines)
    return [match.group(1) for match in found if match]


def _index(lines: list[str], service: str, text: str) -> int:
    """Where the first line of ``service`` containing ``text`` is."""
    for i, line in enumerate(lines):
        name, _, rest = line.partition(" | ")
        if name.strip() == service and text in rest:
            return i
    pytest.fail(f"no {service} line with {text!r}:\n" + "\n".join(lines))


def _pinball(config: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_for_output(service: ServiceProcess, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in service.output():
        assert service.process is not None
        if service.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} from {service.name}:\n{service.output()}")
        time.sleep(0.1)


def _job_pid(run: RunProcess, config: pathlib.Path, job: str) -> int:
    """The pid of a running job that starts with ``echo pid $$``."""
    deadline = time.monotonic() + 60
    while not (found := re.search(r"^pid (\d+)$", _job_log(config, job), re.M)):
        if time.monotonic() > deadline or run.process.poll() is not None:
            pytest.fail(f"{job} did not start:\n{run.output}")
        time.sleep(0.1)
    pid = int(found.group(1))
    assert alive(pid)
    return pid


def _history(run: RunProcess, workflow: str, job: str) -> list[dict[str, object]]:
    """The records of a job's executions, from its token."""
    shown = run.pinball("tokens", "cat", "-r", f"/workflow/{workflow}/", "--json")
    assert shown.returncode == 0, shown.stderr
    for token in json.loads(shown.stdout):
        if token["name"].endswith(f"/job/runnable/{job}") or token["name"].endswith(
            f"/job/waiting/{job}"
        ):
            history: list[dict[str, object]] = json.loads(token["data"])["history"]
            return history
    pytest.fail(f"no token of job {job}:\n{shown.stdout}")


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
