"""End-to-end tests of the workflow engine: real worker processes, real signals.

A master runs in the test process (:class:`~pinball_core.local.MasterThread`,
serving HTTP on a free port, so the test can also read its store's archive).
Workers are ``pinball -c CONFIG workers`` child processes talking to it over
HTTP, or worker threads in the test process where a test needs to see the
lifecycle hooks or drive a worker step by step. Jobs are always real shell
processes run by the local executor.

What is covered:

- a worker process killed with SIGKILL mid-job (its job killed with it, as a
  dead host would take it along): another process reruns the job once the
  lease ends, and the lost attempt is in the job's history;
- 300 jobs (roots, fan-outs, fan-ins, a final join) on 4 worker threads of
  one process: each job runs exactly once, never before its upstream jobs;
- ``abort_timeout_sec`` kills the job's whole process group, including a
  grandchild that ignores SIGTERM; ``warn_timeout_sec`` calls the
  ``pinball_job_timed_out`` hook once;
- ``pinball workflow abort`` while a job runs: the job is killed, the
  instance ends ABORTED and is archived at once;
- surplus events queue for later executions: three events posted by hand run
  a job three times, one event each; two inputs with two events each run it
  twice, one event from each input per run;
- ``pinball workers`` and SIGTERM: the first lets the running job finish, the
  second stops it;
- two upstream jobs of a fan-in ending at the same moment on two workers,
  their steps put in a chosen order: the instance is not marked finished
  before the fan-in job runs;
- the worker scenarios of the original's ``worker_test.py`` (inventory 11.7)
  and archiver scenarios (11.4) that still apply, see below.

Inventory 11.7 scenarios, and what became of them here:

- 52 (one triggering event per input) and the "surplus events queue" rule of
  3.4: ``test_surplus_events_*``.
- 53, 54, 56 (a top-level job without its start event is not started; after
  the event is posted it is made runnable and claimed):
  ``test_waiting_job_starts_only_once_its_event_is_posted``. In this design a
  new instance's top-level jobs are already runnable (see
  :mod:`pinball_core.workflow.instance`), so the start event is posted by hand
  into a waiting job's start input, the way a tool would.
- 55 (making runnable an unknown workflow or instance) is skipped: it tests
  the original's per-instance scan, and this worker claims across all
  workflows at once, with no per-instance call to get wrong.
- 57 (the parent's output event is a token under the child's input named
  after the parent): ``test_event_waits_under_the_input_of_a_job_lacking_others``.
  Here a child with every input satisfied is made runnable in the parent's
  completion and its event never becomes a token, so the scenario is checked
  on a child that still lacks another input.
- 58, 59, 60 (records kept when moving to waiting, retry stays runnable, a
  finished job is owned by nobody) are checked at the end of the 300-job test
  and by ``tests/test_worker.py`` (retries).
- 61, 62 (instance-end and failure emails) are skipped: mail is a notifier
  plugin's business here, fed by the lifecycle hooks; the hooks are checked
  in ``tests/test_worker.py`` and here (``pinball_job_timed_out``).
- 63, with archiver scenarios 38 and 39 (nothing is archived before its time;
  once due, exactly the instance's tokens are):
  ``test_finished_instance_is_archived_when_due``, which moves the clock of
  the whole process (master included) a day ahead, as the original moved the
  archiver's clock.
- 64 (a worker whose loop raises keeps being restarted):
  ``test_worker_survives_an_unreadable_job_token``.
- Archiver scenarios 37 and 40 to 42 are about the original's separate
  abort-archiving pass, which this design replaced: an ABORTed instance is
  archived when its last job has ended (checked in the ABORT test, where the
  archived job has its end recorded).

Nothing here asserts on durations. Every wait has a hard limit only so that
a hang fails the test instead of the run; every process a test starts,
including job processes whose worker was killed, is killed at teardown.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from pinball_core.client import MasterClient
from pinball_core.config import MASTER_SECRET_ENV
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.testing.hooks import HookRecorder
from pinball_core.token import Token
from pinball_core.workflow import names, status
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import ABORT, ARCHIVE, DRAIN, Event, Job
from pinball_core.workflow.signals import set_signal
from pinball_core.workflow.worker import Worker, WorkerSettings

T = TypeVar("T")

# Hard limit on any one wait (a process to start, a job to run, an instance to
# end); generous, since CI machines are slow.
_WAIT_TIMEOUT_SEC = 60.0
_POLL_SEC = 0.05

# The instance every test runs; tests use workflows of their own.
_INSTANCE = "1"

# Settings of every worker unless a test says otherwise: short polls so hand
# posted events and due archives are seen soon, a lease long enough that a
# slow machine does not lose it, and a short grace before SIGKILL.
_WORKER_CONFIG: dict[str, Any] = {
    "workers": 1,
    "worker_poll_time_sec": 0.2,
    "worker_lease_sec": 30,
    "abort_grace_sec": 0.5,
    "archive_delay_sec": 3600,
    "generation": 1,
    "client_connect_attempts": 3,
    "client_timeout_sec": 10,
}


# -- Waiting and processes ------------------------------------------------------


def _wait_for(
    what: str,
    check: Callable[[], T],
    *,
    watch: tuple["WorkerProcess", ...] = (),
    timeout: float = _WAIT_TIMEOUT_SEC,
) -> T:
    """Poll ``check`` until it returns something true, and return that.

    Fails the test when ``timeout`` passes. A worker process in ``watch``
    that exits is an assertion error instead, with what the process said:
    workers must not exit on their own, and tests marked ``xfail`` for a bug
    that kills them expect exactly that error, never a timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for process in watch:
            if process.poll() is not None:
                raise AssertionError(
                    f"waiting for {what}, worker process {process.pid} exited with "
                    f"{process.poll()}:\n{process.output()}"
                )
        if time.monotonic() > deadline:
            said = "".join(f"\n--- worker {p.pid}:\n{p.output()}" for p in watch)
            pytest.fail(f"{what} did not happen within {timeout:.0f} s{said}")
        time.sleep(_POLL_SEC)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists; a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended: only its parent's (or init's) reaping is left.
    with contextlib.suppress(OSError):
        if _stat(pid)[0] == "Z":
            return False
    return True


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` from the state on (the name may hold spaces)."""
    text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def _started_at(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks since boot; None if it is gone."""
    try:
        return _stat(pid)[19]
    except (OSError, IndexError):
        return None


class Leftovers:
    """Job processes a test made, to kill at teardown should they still run.

    A job runs in a session of its own, so killing its worker does not kill
    it. Each process is recorded with its start time so that a pid reused by
    an unrelated process after the job ended is never signalled.
    """

    def __init__(self) -> None:
        self._groups: dict[int, str | None] = {}

    def add(self, pid: int) -> None:
        """Kill ``pid`` and its process group at teardown if it still runs."""
        self._groups[pid] = _started_at(pid)

    def kill_all(self) -> None:
        for pid, started in self._groups.items():
            if started is None or _started_at(pid) != started:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def leftovers() -> Iterator[Leftovers]:
    found = Leftovers()
    yield found
    found.kill_all()


def _read_pid(path: pathlib.Path, leftovers: Leftovers, line: int = 0) -> int:
    """The pid a job wrote on ``line`` of ``path``, once it is there whole."""

    def written() -> int | None:
        try:
            lines = path.read_text().splitlines(keepends=True)
        except FileNotFoundError:
            return None
        if len(lines) <= line or not lines[line].endswith("\n"):
            return None
        return int(lines[line])

    pid = _wait_for(f"a pid in {path.name}", written)
    leftovers.add(pid)
    return pid


class WorkerProcess:
    """One ``pinball -c CONFIG workers`` child process and its output."""

    def __init__(self, config: pathlib.Path, log_path: pathlib.Path) -> None:
        self.config = config
        self._log_path = log_path
        # A secret in the test's environment would lock the worker out.
        env = {k: v for k, v in os.environ.items() if k != MASTER_SECRET_ENV}
        command = [sys.executable, "-m", "pinball_core", "-c", str(config), "workers"]
        with log_path.open("wb") as output:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=config.parent,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

    def output(self) -> str:
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: signal.Signals) -> None:
        if self.poll() is not None:
            pytest.fail(
                f"worker process {self.pid} exited with {self.poll()} before it was "
                f"sent {signum.name}:\n{self.output()}"
            )
        self._process.send_signal(signum)

    def wait(self, timeout: float = _WAIT_TIMEOUT_SEC) -> int:
        """Wait for the process to exit and return its exit code."""
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"worker process {self.pid} did not exit within {timeout:.0f} s:\n"
                f"{self.output()}"
            )

    def kill(self) -> None:
        """SIGKILL the process, if it runs, and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=_WAIT_TIMEOUT_SEC)

    def stop(self) -> None:
        """Stop the process and the jobs it runs, politely and then not.

        A second SIGTERM makes the workers kill their running jobs; SIGKILL
        would leave those jobs running, since each is a session of its own.
        """
        for _ in range(2):
            if self._process.poll() is not None:
                return
            self._process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=0.5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        self.kill()


class WorkerProcesses:
    """Starts ``pinball workers`` processes on the test's master; stops them all."""

    def __init__(self, master: MasterThread, home: pathlib.Path) -> None:
        assert master.port is not None
        self.port = master.port
        self.home = home
        self.processes: list[WorkerProcess] = []

    def config(self, **overrides: Any) -> pathlib.Path:
        """A config for the test's master with ``overrides`` of the worker keys."""
        index = len(list(self.home.glob("pinball-*.yaml")))
        keys = {
            "home": str(self.home),
            "master_host": "127.0.0.1",
            "master_port": self.port,
            "logs_dir": str(self.home / "logs"),
            **_WORKER_CONFIG,
            **overrides,
        }
        path = self.home / f"pinball-{index}.yaml"
        # JSON is YAML, and quotes every path safely.
        path.write_text(json.dumps(keys, indent=1), encoding="utf-8")
        return path

    def start(self, **overrides: Any) -> WorkerProcess:
        config = self.config(**overrides)
        process = WorkerProcess(config, config.with_suffix(".log"))
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def worker_processes(
    master: MasterThread, tmp_path: pathlib.Path
) -> Iterator[WorkerProcesses]:
    home = tmp_path / "home"
    home.mkdir()
    processes = WorkerProcesses(master, home)
    try:
        yield processes
    finally:
        processes.stop_all()


# -- Worker threads in this process -----------------------------------------------


def _settings(tmp_path: pathlib.Path, **overrides: Any) -> WorkerSettings:
    fields: dict[str, Any] = {
        "lease_sec": 30,
        "poll_sec": 0.2,
        "logs_dir": str(tmp_path / "logs"),
        "archive_delay_sec": 3600,
        "abort_grace_sec": 0.5,
        "tick_sec": 0.1,
    }
    return WorkerSettings(**(fields | overrides))


class WorkerThreads:
    """Worker threads on the test's master, recording hooks; stopped at the end."""

    def __init__(self, client: MasterClient, settings: WorkerSettings) -> None:
        self.client = client
        self.settings = settings
        self.hooks = HookRecorder()
        self.stop = threading.Event()
        self.workers: list[Worker] = []
        self.threads: list[threading.Thread] = []

    def make(self, client: MasterClient | None = None) -> Worker:
        """A worker that is not started, for a test to drive step by step."""
        worker = Worker(
            client or self.client, LocalExecutor(), self.settings, hook=self.hooks
        )
        self.workers.append(worker)
        return worker

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            worker = self.make()
            thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.abort_running.set()
        for thread in self.threads:
            thread.join(timeout=_WAIT_TIMEOUT_SEC)


@pytest.fixture
def worker_threads(
    master: MasterThread, tmp_path: pathlib.Path
) -> Iterator[WorkerThreads]:
    threads = WorkerThreads(master.client(), _settings(tmp_path))
    try:
        yield threads
    finally:
        threads.close()


# -- Instances ------------------------------------------------------------------


def _shell(command: str, *inputs: str, **fields: Any) -> Job:
    return Job(command=command, inputs=list(inputs), **fields)


def _start(
    client: MasterClient,
    workflow: str,
    jobs: dict[str, Job],
    priorities: dict[str, float] | None = None,
) -> None:
    client.modify(instance_tokens(workflow, _INSTANCE, jobs, priorities))


def _job(client: MasterClient, workflow: str, job: str) -> Job:
    prefix = names.job_prefix(workflow, _INSTANCE)
    (token,) = [t for t in client.query(prefix) if t.name.endswith(f"/{job}")]
    return Job.from_json(token.data)


def _archive_signal(client: MasterClient, workflow: str) -> Token | None:
    name = names.signal_prefix(workflow, _INSTANCE) + ARCHIVE
    return next((t for t in client.query(name) if t.name == name), None)


def _wait_finished(
    client: MasterClient, workflow: str, *watch: WorkerProcess
) -> status.InstanceSummary:
    """The instance's status once a worker has marked it finished.

    The ARCHIVE signal is the mark: the worker that ends the last job posts
    it, leased until the instance is due for archiving. The status must say
    finished too: a worker can post the mark while a fan-in job is still
    being started (see ``test_instance_is_not_finished_while_a_fan_in_starts``),
    and the other tests are about what runs, not about that race.
    """

    def finished() -> status.InstanceSummary | None:
        if _archive_signal(client, workflow) is None:
            return None
        summary = status.read_instance(client, workflow, _INSTANCE, time.time())
        if summary is None or summary.status is status.Status.RUNNING:
            return None
        return summary

    return _wait_for(
        f"instance {workflow}/{_INSTANCE} to finish", finished, watch=watch
    )


def _history(job: Job) -> list[tuple[int | None, str | None]]:
    """A job's executions as (exit code, reason), for readable failures."""
    return [(record.exit_code, record.reason) for record in job.history]


# -- A worker process killed mid-job ----------------------------------------------


def test_worker_killed_mid_job_is_rerun_by_another_process(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    leftovers: Leftovers,
    tmp_path: pathlib.Path,
) -> None:
    """A dead worker's job is rerun after its lease; the lost attempt is recorded."""
    pids = tmp_path / "a.pids"
    b_out = tmp_path / "b.out"
    client = master.client()
    _start(
        client,
        "killed",
        {
            "a": _shell(f"echo $$ >> {pids}; sleep 3", max_attempts=2),
            "b": _shell(f"echo b >> {b_out}", "a"),
        },
    )
    config = {"worker_lease_sec": 2, "worker_poll_time_sec": 0.1}
    first = worker_processes.start(**config)
    first_job = _read_pid(pids, leftovers)

    # The host dies: the worker and the job it ran go at the same moment.
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    os.killpg(first_job, signal.SIGKILL)
    second = worker_processes.start(**config)

    summary = _wait_finished(client, "killed", second)
    assert summary.status is status.Status.SUCCESS

    a = _job(client, "killed", "a")
    assert len(a.history) == 2, _history(a)
    lost, rerun = a.history
    assert lost.exit_code == 1 and "lost" in (lost.reason or "")
    assert f"_{first.pid}_" in lost.worker
    assert rerun.exit_code == 0 and f"_{second.pid}_" in rerun.worker
    assert [r.exit_code for r in _job(client, "killed", "b").history] == [0]
    assert b_out.read_text() == "b\n"

    # The rerun was a new process; the first one is gone for good.
    second_job = _read_pid(pids, leftovers, line=1)
    assert second_job != first_job
    assert not _alive(first_job)


# -- Many workers, many jobs ------------------------------------------------------

_JOBS = 300
_ROOTS = 4
# How far back a job may pick its upstream jobs: wide enough for long fan-outs,
# narrow enough that the graph is deep rather than one wide layer.
_WINDOW = 40


def _random_dag(count: int, seed: int) -> dict[str, list[str]]:
    """Inputs of ``count`` jobs: a few roots, fan-outs and fan-ins, a final join.

    Each job after the roots takes one to three upstream jobs among the
    ones just before it, so the graph has no cycle; the final job joins
    every job that nothing else depends on.
    """
    rng = random.Random(seed)
    order = [f"j{i:03d}" for i in range(count - 1)]
    inputs: dict[str, list[str]] = {}
    for index, name in enumerate(order):
        window = order[max(0, index - _WINDOW) : index]
        if index < _ROOTS:
            inputs[name] = []
        else:
            inputs[name] = rng.sample(window, k=min(len(window), rng.randint(1, 3)))
    used = {upstream for ups in inputs.values() for upstream in ups}
    inputs["final"] = [name for name in order if name not in used]
    return inputs


def _logged_command(job: str, log: pathlib.Path) -> str:
    """Appends ``start <job> <time>`` then ``end <job> <time>`` to ``log``.

    Appends of short lines are atomic, so lines of concurrent jobs never mix,
    and their order in the file is the order they were written in.
    """
    target = shlex.quote(str(log))
    return (
        f'echo "start {job} $(date +%s.%N)" >> {target}; '
        f'echo "end {job} $(date +%s.%N)" >> {target}'
    )


def test_four_workers_run_each_of_300_jobs_once_in_order(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    tmp_path: pathlib.Path,
) -> None:
    """300 jobs on 4 worker threads: each once, and none before its upstream jobs."""
    log = tmp_path / "runs"
    dag = _random_dag(_JOBS, seed=20240611)
    assert len(dag) == _JOBS
    client = master.client()
    _start(
        client,
        "many",
        {job: _shell(_logged_command(job, log), *ups) for job, ups in dag.items()},
    )
    workers = worker_processes.start(workers=4)

    summary = _wait_finished(client, "many", workers)
    assert summary.status is status.Status.SUCCESS

    # Each job started and ended exactly once.
    lines = [line.split() for line in log.read_text().splitlines()]
    position: dict[tuple[str, str], int] = {}
    stamp: dict[tuple[str, str], float] = {}
    for index, (kind, job, when) in enumerate(lines):
        assert (kind, job) not in position, f"{job} logged {kind} twice"
        position[kind, job] = index
        stamp[kind, job] = float(when)
    assert len(lines) == 2 * _JOBS
    assert {job for _, job in position} == set(dag)

    # No job started before every one of its upstream jobs had ended, by the
    # order of the lines and by the clock.
    for job, upstreams in dag.items():
        assert position["start", job] < position["end", job]
        for upstream in upstreams:
            assert position["end", upstream] < position["start", job], (job, upstream)
            assert stamp["end", upstream] <= stamp["start", job], (job, upstream)

    # The master agrees: one successful execution each, and no job is held
    # by a worker any more.
    jobs = client.query(names.job_prefix("many", _INSTANCE))
    assert len(jobs) == _JOBS
    for token in jobs:
        job = Job.from_json(token.data)
        assert [r.exit_code for r in job.history] == [0], token.name
        assert token.owner is None and names.WAITING in token.name
    assert (
        client.query(names.instance_prefix("many", _INSTANCE), contains="/input/") == []
    )


# -- Timeouts ---------------------------------------------------------------------


def test_abort_timeout_kills_the_job_and_its_grandchildren(
    master: MasterThread,
    worker_threads: WorkerThreads,
    leftovers: Leftovers,
    tmp_path: pathlib.Path,
) -> None:
    """Past ``abort_timeout_sec`` the whole process group goes, SIGTERM or not."""
    pid_file = tmp_path / "job.pid"
    grandchild_file = tmp_path / "grandchild.pid"
    # The grandchild ignores SIGTERM (kept across exec), so only the SIGKILL
    # after the grace period can end it.
    command = (
        f"(trap '' TERM; exec sleep 300) & echo $! > {grandchild_file}; "
        f"echo $$ > {pid_file}; sleep 300"
    )
    client = master.client()
    _start(client, "slow", {"slow": _shell(command, abort_timeout_sec=1)})
    worker_threads.start()
    grandchild = _read_pid(grandchild_file, leftovers)
    job_pid = _read_pid(pid_file, leftovers)

    summary = _wait_finished(client, "slow")

    assert summary.status is status.Status.FAILURE
    record = _job(client, "slow", "slow").history[-1]
    assert record.exit_code not in (None, 0)
    assert "timed out" in (record.reason or "")
    _wait_for("the job's process to end", lambda: not _alive(job_pid))
    _wait_for("the grandchild to end", lambda: not _alive(grandchild))
    failed = worker_threads.hooks.named("pinball_job_failed")
    assert [(c["job"], c["will_retry"]) for c in failed] == [("slow", False)]


def test_warn_timeout_calls_its_hook_once(
    master: MasterThread, worker_threads: WorkerThreads
) -> None:
    """A job running past ``warn_timeout_sec`` is reported once, and still succeeds."""
    client = master.client()
    _start(
        client,
        "warned",
        {
            "long": _shell("sleep 1.5", warn_timeout_sec=0.3),
            "short": _shell("true", "long", warn_timeout_sec=600),
        },
    )
    worker_threads.start()

    summary = _wait_finished(client, "warned")

    assert summary.status is status.Status.SUCCESS
    timed_out = worker_threads.hooks.named("pinball_job_timed_out")
    assert [(c["job"], c["timeout"]) for c in timed_out] == [("long", 0.3)]
    assert [r.exit_code for r in _job(client, "warned", "long").history] == [0]


# -- ABORT from the command line --------------------------------------------------


def test_abort_from_the_command_line_kills_and_archives(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    leftovers: Leftovers,
    tmp_path: pathlib.Path,
) -> None:
    """``pinball workflow abort -f`` kills the running job; the instance is archived."""
    pid_file = tmp_path / "job.pid"
    client = master.client()
    _start(
        client,
        "doomed",
        {
            "long": _shell(f"echo $$ > {pid_file}; sleep 300"),
            "after": _shell(f"touch {tmp_path / 'after_ran'}", "long"),
        },
    )
    workers = worker_processes.start()
    job_pid = _read_pid(pid_file, leftovers)

    aborted = subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(workers.config)]
        + ["workflow", "abort", "-w", "doomed", "-i", _INSTANCE, "-f"],
        capture_output=True,
        text=True,
        timeout=_WAIT_TIMEOUT_SEC,
    )
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr

    _wait_for("the aborted job to die", lambda: not _alive(job_pid), watch=(workers,))
    prefix = names.instance_prefix("doomed", _INSTANCE)
    _wait_for("the instance to be archived", lambda: not client.query(prefix))

    archived = master.store.read_tokens(prefix, archived=True)
    summary = status.instance_status(archived, time.time(), archived=True)
    assert summary is not None
    assert summary.status is status.Status.ABORTED
    by_name = {t.name.rsplit("/", 1)[-1]: t for t in archived}
    assert {ABORT, ARCHIVE, "long", "after"} <= set(by_name)
    # Archived only once the killed job's end was recorded.
    (record,) = Job.from_json(by_name["long"].data).history
    assert record.end_time is not None and record.exit_code != 0
    assert "ABORT" in (record.reason or "")
    assert Job.from_json(by_name["after"].data).history == []
    assert not (tmp_path / "after_ran").exists()


# -- Events -----------------------------------------------------------------------


def _waiting_job(workflow: str, job: str, definition: Job) -> Token:
    """A waiting job token written by hand, as a tool would write it."""
    return Token(
        names.job_name(workflow, _INSTANCE, names.WAITING, job),
        data=definition.to_json(),
    )


def _event(workflow: str, job: str, upstream: str, event: str, **attrs: str) -> Token:
    return Token(
        names.event_name(workflow, _INSTANCE, job, upstream, event),
        data=Event(creator="test", attributes=attrs).to_json(),
    )


def test_surplus_events_queue_for_the_next_executions(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    tmp_path: pathlib.Path,
) -> None:
    """Three events posted to a waiting job run it three times, one event each."""
    out = tmp_path / "out"
    client = master.client()
    command = f"echo %(n)s >> {out}"
    client.modify([_waiting_job("stream", "consumer", _shell(command, "feed"))])
    workers = worker_processes.start()

    # One request, so the job sees all three whenever the sweep comes.
    client.modify(
        [_event("stream", "consumer", "feed", f"e{n}", n=str(n)) for n in "012"]
    )

    summary = _wait_finished(client, "stream", workers)
    assert summary.status is status.Status.SUCCESS
    job = _job(client, "stream", "consumer")
    assert [r.exit_code for r in job.history] == [0, 0, 0]
    consumed = [[e["name"] for e in record.events] for record in job.history]
    assert consumed == [["e0"], ["e1"], ["e2"]]
    assert out.read_text().split() == ["0", "1", "2"]
    assert client.query(names.input_prefix("stream", _INSTANCE, "consumer")) == []


def test_surplus_events_take_one_event_from_each_input(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    tmp_path: pathlib.Path,
) -> None:
    """Two inputs with two events each: two runs, each with one event of each."""
    out = tmp_path / "out"
    client = master.client()
    command = f"echo %(x)s %(y)s >> {out}"
    client.modify([_waiting_job("pairs", "join", _shell(command, "left", "right"))])
    workers = worker_processes.start()

    client.modify(
        [
            _event("pairs", "join", "left", "l0", x="l0"),
            _event("pairs", "join", "left", "l1", x="l1"),
            _event("pairs", "join", "right", "r0", y="r0"),
            _event("pairs", "join", "right", "r1", y="r1"),
        ]
    )

    summary = _wait_finished(client, "pairs", workers)
    assert summary.status is status.Status.SUCCESS
    job = _job(client, "pairs", "join")
    consumed = [sorted(e["name"] for e in record.events) for record in job.history]
    assert consumed == [["l0", "r0"], ["l1", "r1"]]
    assert out.read_text().splitlines() == ["l0 r0", "l1 r1"]


# A short job's end uses what was read as the job started; these check that
# nothing arriving in between is left for the sweep. Ticks and polls are long,
# so the view read ahead is used and no sweep comes.


def _held_command(tmp_path: pathlib.Path, first: str) -> str:
    """A command whose run for event attribute ``n`` = ``first`` waits for the
    file ``go``, after creating ``started``."""
    started, go = tmp_path / "started", tmp_path / "go"
    return (
        f"echo %(n)s >> {tmp_path / 'out'}; if [ %(n)s = {first} ]; then "
        f"touch {started}; while [ ! -e {go} ]; do sleep 0.01; done; fi"
    )


def _work_on_in_thread(worker: Worker, token: Token) -> Callable[[], Token | None]:
    """Run ``worker.work_on(token)`` in a thread; a call that joins it and
    returns the successor it claimed."""
    result: list[Token | None] = []
    thread = threading.Thread(target=lambda: result.append(worker.work_on(token)))
    thread.start()

    def join() -> Token | None:
        thread.join(timeout=_WAIT_TIMEOUT_SEC)
        assert result, "work_on did not return"
        return result[0]

    return join


def test_an_event_reaching_a_running_job_runs_it_again_at_its_end(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    command = _held_command(tmp_path, first="0")
    client.modify(
        [
            _waiting_job("live", "consumer", _shell(command, "feed")),
            _event("live", "consumer", "feed", "e0", n="0"),
        ]
    )
    worker = Worker(
        client,
        LocalExecutor(),
        _settings(tmp_path, poll_sec=3600, tick_sec=3600),
    )
    assert worker.chores.sweep() == 1
    (token,) = client.query_and_own(worker.name, names.WORKFLOW_PREFIX, 1, lease_sec=30)

    join = _work_on_in_thread(worker, token)
    _wait_for("the job to start", (tmp_path / "started").exists)
    client.modify([_event("live", "consumer", "feed", "e1", n="1")])
    (tmp_path / "go").touch()
    successor = join()

    assert successor is not None and successor.name == token.name
    assert worker.work_on(successor) is None
    job = _job(client, "live", "consumer")
    assert [[e["name"] for e in run.events] for run in job.history] == [["e0"], ["e1"]]
    assert (tmp_path / "out").read_text().split() == ["0", "1"]


def test_an_output_that_ended_while_its_upstream_ran_gets_started(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    up = _shell(_held_command(tmp_path, first="0"), "feed", outputs=["down"])
    down = _shell(f"echo down >> {tmp_path / 'out'}", "up")
    running_down = Token(
        names.job_name("live", _INSTANCE, names.RUNNABLE, "down"),
        owner="another-worker",
        expiration=time.time() + 30,
        data=down.to_json(),
    )
    client.modify(
        [
            _waiting_job("live", "up", up),
            _event("live", "up", "feed", "e0", n="0"),
            running_down,
        ]
    )
    worker = Worker(
        client,
        LocalExecutor(),
        _settings(tmp_path, poll_sec=3600, tick_sec=3600),
    )
    assert worker.chores.sweep() == 1
    (token,) = client.query_and_own(
        worker.name, names.WORKFLOW_PREFIX, 1, lease_sec=30, contains="/up"
    )

    join = _work_on_in_thread(worker, token)
    _wait_for("the job to start", (tmp_path / "started").exists)
    # The other worker's run of down ends: it waits again.
    (running_down,) = client.query(running_down.name)
    client.modify([_waiting_job("live", "down", down)], deletes=[running_down])
    (tmp_path / "go").touch()
    successor = join()

    assert successor is not None
    assert successor.name == names.job_name("live", _INSTANCE, names.RUNNABLE, "down")
    worker.work_on(successor)
    assert (tmp_path / "out").read_text().split() == ["0", "down"]


def test_a_drain_set_while_a_job_ran_a_tick_or_more_keeps_its_output_unclaimed(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    """Signals read as a job started go stale: after a tick they are read again."""
    client = master.client()
    up = _shell(_held_command(tmp_path, first="0"), "feed", outputs=["down"])
    down = _shell(f"echo down >> {tmp_path / 'out'}", "up")
    client.modify(
        [
            _waiting_job("live", "up", up),
            _waiting_job("live", "down", down),
            _event("live", "up", "feed", "e0", n="0"),
        ]
    )
    tick_sec = 0.1
    worker = Worker(
        client,
        LocalExecutor(),
        _settings(tmp_path, poll_sec=3600, tick_sec=tick_sec),
    )
    assert worker.chores.sweep() == 1
    (token,) = client.query_and_own(worker.name, names.WORKFLOW_PREFIX, 1, lease_sec=30)

    join = _work_on_in_thread(worker, token)
    _wait_for("the job to start", (tmp_path / "started").exists)
    set_signal(client, DRAIN, "live", _INSTANCE)
    time.sleep(tick_sec * 2)
    (tmp_path / "go").touch()

    assert join() is None
    (runnable,) = client.query(names.job_prefix("live", _INSTANCE, names.RUNNABLE))
    assert runnable.name.endswith("/down") and runnable.owner is None


def test_waiting_job_starts_only_once_its_event_is_posted(
    master: MasterThread, worker_threads: WorkerThreads, tmp_path: pathlib.Path
) -> None:
    """Inventory 11.7, 53 to 56: no start event, no start; then started and claimed."""
    client = master.client()
    parent = _shell(f"echo parent >> {tmp_path / 'ran'}", names.WORKFLOW_START)
    parent.outputs = ["child"]
    child = _shell(f"echo child >> {tmp_path / 'ran'}", "parent")
    client.modify(
        [_waiting_job("f3", "parent", parent), _waiting_job("f3", "child", child)]
    )
    worker = worker_threads.make()

    # Nothing has an event: the sweep starts nothing, a claim gets nothing.
    assert worker.chores.sweep() == 0
    assert worker.run_once()
    assert [t.name for t in client.query(names.WORKFLOW_PREFIX)] == [
        names.job_name("f3", _INSTANCE, names.WAITING, "child"),
        names.job_name("f3", _INSTANCE, names.WAITING, "parent"),
    ]

    client.modify([_event("f3", "parent", names.WORKFLOW_START, "start")])
    assert worker.chores.sweep() == 1
    assert [t.name for t in client.query(names.WORKFLOW_PREFIX)] == [
        names.job_name("f3", _INSTANCE, names.RUNNABLE, "parent"),
        names.job_name("f3", _INSTANCE, names.WAITING, "child"),
    ]

    # The worker claims and runs the parent, then the child it started.
    _wait_for(
        "the worker to finish f3",
        lambda: worker.run_once() and _archive_signal(client, "f3"),
    )
    assert (tmp_path / "ran").read_text().split() == ["parent", "child"]
    (record,) = _job(client, "f3", "parent").history
    assert [e["name"] for e in record.events] == ["start"]


def test_event_waits_under_the_input_of_a_job_lacking_others(
    master: MasterThread, worker_threads: WorkerThreads
) -> None:
    """Inventory 11.7, 57: an output event is a token named after its upstream job."""
    client = master.client()
    _start(
        client,
        "partial",
        {
            "parent": _shell("echo PINBALL:EVENT_ATTR:rows=7"),
            "gate": _shell("true"),
            "child": _shell("echo %(rows)s", "parent", "gate"),
        },
    )
    # Hold the gate back the way `workflow pause` does: a lease nobody renews.
    gate_name = names.job_name("partial", _INSTANCE, names.RUNNABLE, "gate")
    (held,) = client.query_and_own("test", gate_name, 1, lease_sec=3600)
    worker = worker_threads.make()

    _wait_for(
        "the parent to run",
        lambda: worker.run_once() and _job(client, "partial", "parent").history,
    )

    (event,) = client.query(names.input_prefix("partial", _INSTANCE, "child"))
    parsed = names.parse_event_name(event.name)
    assert parsed is not None
    assert (parsed.upstream, parsed.event.startswith("parent_")) == ("parent", True)
    assert Event.from_json(event.data).attributes == {"rows": "7"}
    assert Event.from_json(event.data).creator == worker.name

    # Once the gate runs, its completion finds the queued event and starts
    # the child, consuming it.
    client.modify([dataclasses.replace(held, owner=None, expiration=None)])
    _wait_for(
        "the instance to finish",
        lambda: worker.run_once() and _archive_signal(client, "partial"),
    )
    (record,) = _job(client, "partial", "child").history
    assert record.info == "echo 7" and record.exit_code == 0
    assert client.query(names.input_prefix("partial", _INSTANCE, "child")) == []


# -- The end of an instance -------------------------------------------------------


class PausingClient(MasterClient):
    """A master client that lets a test hold a worker's requests at chosen points.

    ``before`` sees each request before it is sent, ``after`` each request
    with its answer; either may block to order two workers' steps.
    """

    def __init__(
        self,
        inner: MasterClient,
        before: Callable[[str, dict[str, Any]], None],
        after: Callable[[str, dict[str, Any], dict[str, Any]], None],
    ) -> None:
        self._inner = inner
        self._before = before
        self._after = after

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self._before(operation, body)
        answer = self._inner.call(operation, body)
        self._after(operation, body, answer)
        return answer

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("call() sends through the inner client")

    def close(self) -> None:
        """The inner client belongs to the test."""


# How long a paused worker waits for the other one before going on anyway; the
# test then fails on its check that every pause was reached.
_PAUSE_TIMEOUT_SEC = 10.0


def test_instance_is_not_finished_while_a_fan_in_starts(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    """Two upstream jobs of a fan-in end together: the instance is not finished early.

    Worker A runs ``u1`` and worker B ``u2``; both read the instance before
    either records its end, so neither sees the other's event. B records
    first: ``final`` still lacks A's event, so B does not start it. A records
    its end next, which completes ``final``'s inputs, and B checks whether
    the instance has finished before A gets to start ``final``. Nothing is
    runnable at that moment, yet ``final`` is ready: the instance is not
    finished. This is the order in which the 300-job test saw it go wrong.
    """
    client = master.client()
    _start(
        client,
        "race",
        {
            "u1": _shell("true"),
            "u2": _shell("true"),
            "final": _shell("true", "u1", "u2"),
        },
        priorities={"u1": 2, "u2": 1},
    )
    runnable = names.job_prefix("race", _INSTANCE, names.RUNNABLE)
    a_claimed, a_at_end, a_ended, a_went_on = (threading.Event() for _ in range(4))
    b_ended, b_checking, b_done = (threading.Event() for _ in range(3))

    def records_end_of(job: str, operation: str, body: dict[str, Any]) -> bool:
        # Recording a job's end deletes its runnable token; starting it does not.
        deletes = body.get("deletes", []) if operation == "modify" else []
        return any(t["name"] == runnable + job for t in deletes)

    def a_before(operation: str, body: dict[str, Any]) -> None:
        if a_ended.is_set() and not a_went_on.is_set():
            a_went_on.set()
            b_done.wait(_PAUSE_TIMEOUT_SEC)
        if records_end_of("u1", operation, body):
            a_at_end.set()
            b_checking.wait(_PAUSE_TIMEOUT_SEC)

    def a_after(operation: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        if operation == "query_and_own" and any(
            t["name"] == runnable + "u1" for t in answer.get("tokens", [])
        ):
            a_claimed.set()
        if records_end_of("u1", operation, body):
            a_ended.set()

    def b_before(operation: str, body: dict[str, Any]) -> None:
        if records_end_of("u2", operation, body):
            a_at_end.wait(_PAUSE_TIMEOUT_SEC)
        queries = body.get("queries", []) if operation == "query" else []
        if b_ended.is_set() and queries and queries[0]["prefix"] == runnable:
            b_checking.set()
            a_ended.wait(_PAUSE_TIMEOUT_SEC)

    def b_after(operation: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        if records_end_of("u2", operation, body):
            b_ended.set()

    threads = WorkerThreads(client, _settings(tmp_path))
    worker_a = threads.make(PausingClient(client, a_before, a_after))
    worker_b = threads.make(PausingClient(client, b_before, b_after))

    def all_done() -> bool:
        calls = threads.hooks.sequence()
        return ("pinball_job_succeeded", "final") in calls and (
            "pinball_instance_finished",
            None,
        ) in calls

    def run_a() -> None:
        while not threads.stop.is_set() and not all_done():
            worker_a.run_once(threads.stop)

    def run_b() -> None:
        a_claimed.wait(_PAUSE_TIMEOUT_SEC)
        worker_b.run_once(threads.stop)
        b_done.set()

    for target in (run_a, run_b):
        thread = threading.Thread(target=target, daemon=True)
        threads.threads.append(thread)
        thread.start()
    try:
        _wait_for("both workers to end their jobs and the instance", all_done)
    finally:
        threads.close()

    pauses = [a_claimed, a_at_end, b_ended, b_checking, a_ended, a_went_on]
    if not all(p.is_set() for p in pauses):
        # Not an assertion error: the xfail mark must not hide a test that no
        # longer builds its interleaving (say, after the worker changed).
        pytest.fail("the workers' steps did not come in the order this test sets")
    order = threads.hooks.sequence()
    finished = [c["status"] for c in threads.hooks.named("pinball_instance_finished")]
    assert finished == ["SUCCESS"]
    assert order.index(("pinball_job_succeeded", "final")) < order.index(
        ("pinball_instance_finished", None)
    ), order


# -- Archiving --------------------------------------------------------------------


def test_finished_instance_is_archived_when_due(
    master: MasterThread,
    worker_threads: WorkerThreads,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inventory 11.7, 63 and 11.4, 38 and 39: archived when due, not before."""
    ran = tmp_path / "ran"
    client = master.client()
    _start(
        client,
        "f3",
        {
            "parent": _shell(f"echo parent >> {ran}"),
            "child": _shell(f"echo child >> {ran}", "parent"),
        },
    )
    worker = worker_threads.make()
    _wait_for(
        "the instance to finish",
        lambda: worker.run_once() and _archive_signal(client, "f3"),
    )
    prefix = names.instance_prefix("f3", _INSTANCE)
    active = client.query(prefix)

    # Not due for an hour: nothing is archived.
    assert worker.chores.archive_due() == 0
    assert client.query(prefix) == active

    # A day later, for the master and the worker alike.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86400)
    assert worker.chores.archive_due() == 1

    assert client.query(prefix) == []
    archived = master.store.read_tokens(prefix, archived=True)
    assert sorted(t.name.rsplit("/", 1)[-1] for t in archived) == [
        ARCHIVE,
        "child",
        "parent",
    ]
    for token in archived:
        if names.parse_job_name(token.name) is not None:
            job = Job.from_json(token.data)
            assert [r.exit_code for r in job.history] == [0], token.name
    assert ran.read_text().split() == ["parent", "child"]


# -- Stopping workers -------------------------------------------------------------


def test_first_sigterm_lets_the_running_job_finish(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    tmp_path: pathlib.Path,
) -> None:
    """SIGTERM: the running job finishes, and the next process runs the rest."""
    started = tmp_path / "a.started"
    client = master.client()
    _start(
        client,
        "graceful",
        {
            "a": _shell(f"touch {started}; sleep 1"),
            "b": _shell(f"echo b >> {tmp_path / 'b.out'}", "a"),
        },
    )
    config = {"worker_lease_sec": 2, "worker_poll_time_sec": 0.1}
    first = worker_processes.start(**config)
    _wait_for("a to start", started.exists, watch=(first,))

    first.signal(signal.SIGTERM)
    assert first.wait() == 0, first.output()
    assert [r.exit_code for r in _job(client, "graceful", "a").history] == [0]

    second = worker_processes.start(**config)
    summary = _wait_finished(client, "graceful", second)
    b = _job(client, "graceful", "b")
    assert _history(b) == [(0, None)]
    assert summary.status is status.Status.SUCCESS
    assert (tmp_path / "b.out").read_text() == "b\n"


def test_second_sigterm_stops_the_running_job(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    leftovers: Leftovers,
    tmp_path: pathlib.Path,
) -> None:
    """A second SIGTERM kills running jobs and records why, then the process exits."""
    pid_file = tmp_path / "job.pid"
    client = master.client()
    _start(client, "stopped", {"long": _shell(f"echo $$ > {pid_file}; sleep 300")})
    workers = worker_processes.start()
    job_pid = _read_pid(pid_file, leftovers)

    workers.signal(signal.SIGTERM)
    # The first SIGTERM waits for the job, which would take 300 s.
    _wait_for(
        "the first SIGTERM to be handled", lambda: "finishing" in workers.output()
    )
    workers.signal(signal.SIGTERM)

    assert workers.wait() == 0, workers.output()
    _wait_for("the job to die", lambda: not _alive(job_pid))
    record = _job(client, "stopped", "long").history[-1]
    assert record.end_time is not None and record.exit_code != 0
    # Stopping workers is not the job's fault: the attempt is lost, not
    # failed, so it uses up none of the job's retries.
    assert record.reason == "lost: stopped with its worker"
    assert record.lost


# -- A worker that meets a broken token -------------------------------------------


def test_worker_survives_an_unreadable_job_token(
    master: MasterThread,
    worker_processes: WorkerProcesses,
    tmp_path: pathlib.Path,
) -> None:
    """Inventory 11.7, 64: a bad token in one instance does not stop the workers."""
    client = master.client()
    broken = Token(
        names.job_name("broken", _INSTANCE, names.WAITING, "bad"), data="not a job"
    )
    client.modify([broken, _event("broken", "bad", "feed", "e0")])
    workers = worker_processes.start(workers=2)

    _start(client, "healthy", {"a": _shell(f"touch {tmp_path / 'a_ran'}")})

    summary = _wait_finished(client, "healthy", workers)
    assert summary.status is status.Status.SUCCESS
    assert (tmp_path / "a_ran").exists()
