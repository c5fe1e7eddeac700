"""Workers running real shell jobs against a real master on SQLite."""

import contextlib
import dataclasses
import os
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pinball_processes import free_port

from pinball_core.client import HttpClient, MasterClient
from pinball_core.errors import MasterUnavailableError
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.testing.hooks import HookRecorder
from pinball_core.token import Token
from pinball_core.workflow import names, signals, transitions
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import (
    ABORT,
    ARCHIVE,
    EXIT,
    STOPPED_WITH_WORKER,
    ExecutionRecord,
    Job,
)
from pinball_core.workflow.status import Status, instance_status
from pinball_core.workflow.worker import Worker, WorkerSettings, substitute


@pytest.fixture
def hooks() -> HookRecorder:
    return HookRecorder()


@pytest.fixture
def settings(tmp_path: pathlib.Path) -> WorkerSettings:
    return WorkerSettings(
        lease_sec=30,
        poll_sec=0.5,
        logs_dir=str(tmp_path / "logs"),
        archive_delay_sec=3600,
        abort_grace_sec=1,
        tick_sec=0.1,
    )


class Workers:
    """Worker threads for one test, stopped at its end."""

    def __init__(
        self, client: MasterClient, settings: WorkerSettings, hooks: HookRecorder
    ) -> None:
        self.client = client
        self.settings = settings
        self.hooks = hooks
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.workers: list[Worker] = []

    def start(self, count: int = 1, **overrides: Any) -> list[Worker]:
        started = []
        for _ in range(count):
            settings = WorkerSettings(**{**vars(self.settings), **overrides})
            worker = Worker(self.client, LocalExecutor(), settings, hook=self.hooks)
            thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
            thread.start()
            self.threads.append(thread)
            self.workers.append(worker)
            started.append(worker)
        return started

    def close(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.abort_running.set()
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.fixture
def workers(
    master: MasterThread, settings: WorkerSettings, hooks: HookRecorder
) -> Iterator[Workers]:
    pool = Workers(master.client(), settings, hooks)
    yield pool
    pool.close()


def start(
    client: MasterClient, workflow: str, jobs: dict[str, Job], instance: str = "1"
) -> None:
    client.modify(instance_tokens(workflow, instance, jobs))


def wait_finished(hooks: HookRecorder, workflow: str, instance: str = "1") -> str:
    deadline = time.time() + 60
    while time.time() < deadline:
        for call in hooks.named("pinball_instance_finished"):
            if (call["workflow"], call["instance"]) == (workflow, instance):
                return str(call["status"])
        time.sleep(0.05)
    raise AssertionError(f"instance {workflow}/{instance} did not finish")


def job_of(client: MasterClient, workflow: str, job: str, instance: str = "1") -> Job:
    prefix = names.job_prefix(workflow, instance)
    (token,) = [t for t in client.query(prefix) if t.name.endswith(f"/{job}")]
    return Job.from_json(token.data)


def shell(command: str, *inputs: str, **fields: Any) -> Job:
    return Job(command=command, inputs=list(inputs), **fields)


def test_chain_runs_in_order(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "order"
    client = master.client()
    start(
        client,
        "chain",
        {
            "a": shell(f"echo a >> {out}"),
            "b": shell(f"echo b >> {out}", "a"),
            "c": shell(f"echo c >> {out}", "b"),
        },
    )
    workers.start(2)

    assert wait_finished(hooks, "chain") == "SUCCESS"
    assert out.read_text().split() == ["a", "b", "c"]
    for name in "abc":
        (record,) = job_of(client, "chain", name).history
        assert record.exit_code == 0 and record.end_time is not None
    archive = client.query(names.signal_prefix("chain", "1") + ARCHIVE)
    assert archive and archive[0].owner == "archive-timer"
    assert [c["status"] for c in hooks.named("pinball_instance_finished")] == [
        "SUCCESS"
    ]


def test_event_attributes_reach_downstream_commands(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "joined"
    client = master.client()
    start(
        client,
        "attrs",
        {
            "a": shell("echo PINBALL:EVENT_ATTR:rows=10"),
            "b": shell("echo PINBALL:EVENT_ATTR:rows=20 >&2"),
            "c": shell(f"echo '%(rows)s %(missing)s|' > {out}", "a", "b"),
        },
    )
    workers.start(2)

    assert wait_finished(hooks, "attrs") == "SUCCESS"
    assert out.read_text() == "10,20 |\n"
    (record,) = job_of(client, "attrs", "c").history
    assert record.info.startswith("echo '10,20 |'")


def test_retry_until_success_keeps_attributes(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "tried"
    out = tmp_path / "value"
    client = master.client()
    flaky = f"test -f {marker} || {{ touch {marker}; exit 3; }}; echo %(v)s > {out}"
    start(
        client,
        "flaky",
        {
            "a": shell("echo PINBALL:EVENT_ATTR:v=kept"),
            "b": shell(flaky, "a", max_attempts=3, retry_delay_sec=0.2),
        },
    )
    workers.start(1)

    assert wait_finished(hooks, "flaky") == "SUCCESS"
    first, second = job_of(client, "flaky", "b").history
    assert (first.exit_code, second.exit_code) == (3, 0)
    assert out.read_text() == "kept\n"
    failed = hooks.named("pinball_job_failed")
    assert [(c["job"], c["will_retry"]) for c in failed] == [("b", True)]


def test_failure_stops_the_branch(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    start(
        client,
        "broken",
        {
            "a": shell("exit 7"),
            "b": shell(f"touch {tmp_path / 'b_ran'}", "a"),
            "side": shell("true"),
        },
    )
    workers.start(2)

    assert wait_finished(hooks, "broken") == "FAILURE"
    assert not (tmp_path / "b_ran").exists()
    assert job_of(client, "broken", "a").history[-1].exit_code == 7
    assert job_of(client, "broken", "b").history == []
    assert job_of(client, "broken", "side").history[-1].exit_code == 0
    assert len(hooks.named("pinball_instance_finished")) == 1


def test_disabled_job_succeeds_without_running(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    start(
        client,
        "skip",
        {
            "a": shell(f"touch {tmp_path / 'a_ran'}", disabled=True),
            "b": shell(f"touch {tmp_path / 'b_ran'}", "a"),
        },
    )
    workers.start(1)

    assert wait_finished(hooks, "skip") == "SUCCESS"
    assert not (tmp_path / "a_ran").exists()
    assert (tmp_path / "b_ran").exists()
    assert job_of(client, "skip", "a").history[-1].info == "DISABLED"


def test_abort_kills_running_job_and_archives(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    start(
        client,
        "long",
        {"sleepy": shell("sleep 300"), "after": shell("true", "sleepy")},
    )
    (worker,) = workers.start(1)
    deadline = time.time() + 30
    while not hooks.named("pinball_job_started") and time.time() < deadline:
        time.sleep(0.05)

    signals.set_signal(client, ABORT, "long", "1")

    assert wait_finished(hooks, "long") == "ABORTED"
    record = job_of(client, "long", "sleepy").history[-1]
    assert "ABORT" in (record.reason or "") and record.exit_code != 0
    assert job_of(client, "long", "after").history == []

    deadline = time.time() + 30
    while client.query(names.instance_prefix("long", "1")) and time.time() < deadline:
        time.sleep(0.1)
    assert client.query(names.instance_prefix("long", "1")) == []
    archived = master.store.read_tokens(
        names.instance_prefix("long", "1"), archived=True
    )
    assert any(t.name.endswith("/sleepy") for t in archived)


def test_worker_that_loses_its_lease_stops_its_job(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    pid_file = tmp_path / "pid"
    client = master.client()
    start(client, "fenced", {"a": shell(f"echo $$ > {pid_file}; exec sleep 300")})
    workers.start(1, lease_sec=1.5)
    deadline = time.time() + 30
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())

    # Someone else takes the job over, as a tool or another worker would.
    (token,) = client.query(names.job_prefix("fenced", "1", names.RUNNABLE))
    taken = Token(
        token.name,
        token.version,
        "intruder",
        time.time() + 600,
        token.priority,
        token.data,
    )
    client.modify([taken])

    deadline = time.time() + 30
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    (current,) = client.query(names.job_prefix("fenced", "1", names.RUNNABLE))
    assert current.owner == "intruder"
    assert Job.from_json(current.data).history[-1].end_time is None


def test_a_job_is_stopped_when_its_lease_runs_out_with_the_master_down(
    store: SqliteStore, settings: WorkerSettings, tmp_path: pathlib.Path
) -> None:
    """The worker's requests give up when the lease ends, so a master that is
    away longer does not keep it from stopping a job another worker may take
    once the master is back."""
    pid_file = tmp_path / "pid"
    master = MasterThread(store, port=0).start()
    assert master.port is not None
    start(
        master.client(), "outage", {"a": shell(f"echo $$ > {pid_file}; exec sleep 300")}
    )
    # Retries for minutes, as a service's client does.
    client = HttpClient(
        "127.0.0.1", master.port, connect_attempts=1000, max_backoff_sec=0.2
    )
    pool = Workers(client, settings, HookRecorder())
    pool.start(1, lease_sec=1.5)
    try:
        deadline = time.time() + 30
        while not pid_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        pid = int(pid_file.read_text())

        master.stop()
        deadline = time.time() + 30
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)

        assert not _alive(pid)
    finally:
        pool.close()
        with contextlib.suppress(OSError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), 9)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; its parent reaps it later.
    with contextlib.suppress(OSError):
        if pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def test_lost_attempt_is_recorded_and_rerun(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    start(client, "lost", {"a": shell("true", max_attempts=2)})
    # A worker claims the job, records its start, and dies.
    (claimed,) = client.query_and_own(
        "dead", "/workflow/lost/", 1, lease_sec=0.5, contains="/runnable/"
    )
    job = Job.from_json(claimed.data)
    from pinball_core.workflow.transitions import start_record

    start_record(job, "1", "dead", time.time())
    client.modify(
        [
            Token(
                claimed.name,
                claimed.version,
                "dead",
                time.time() + 0.5,
                claimed.priority,
                job.to_json(),
            )
        ]
    )

    workers.start(1)

    assert wait_finished(hooks, "lost") == "SUCCESS"
    lost, rerun = job_of(client, "lost", "a").history
    assert lost.worker == "dead" and lost.exit_code == 1
    assert "lost" in (lost.reason or "")
    assert rerun.exit_code == 0


def _claimed_long_ago(
    client: MasterClient, worker: Worker, workflow: str, command: str
) -> Token:
    """A job this worker claimed, start recorded, in an answer that came so
    late that the lease has run out, as when the master restarted meanwhile."""
    start(client, workflow, {"a": shell(command)})
    (claimed,) = client.query_and_own(
        worker.name, f"/workflow/{workflow}/", 1, lease_sec=30, contains="/runnable/"
    )
    job = Job.from_json(claimed.data)
    from pinball_core.workflow.transitions import start_record

    start_record(job, "1", worker.name, time.time() - 31).info = command
    (late,) = client.modify(
        [dataclasses.replace(claimed, expiration=time.time() - 1, data=job.to_json())]
    )
    return late


def test_a_claim_whose_lease_ran_out_to_another_worker_is_not_run(
    master: MasterThread, settings: WorkerSettings, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    ran = tmp_path / "ran"
    worker = Worker(client, LocalExecutor(), settings)
    late = _claimed_long_ago(client, worker, "late", f"touch {ran}")
    (taken,) = client.query_and_own(
        "other", "/workflow/late/", 1, lease_sec=30, contains="/runnable/"
    )

    assert worker.work_on(late) is None

    assert not ran.exists()
    (token,) = client.query(late.name)
    assert token.owner == "other" and token.version == taken.version


def test_a_claim_whose_lease_ran_out_unclaimed_is_renewed_and_run(
    master: MasterThread, settings: WorkerSettings, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    ran = tmp_path / "ran"
    worker = Worker(client, LocalExecutor(), settings)
    late = _claimed_long_ago(client, worker, "late", f"touch {ran}")

    worker.work_on(late)

    assert ran.exists()
    (run,) = job_of(client, "late", "a").history
    assert run.worker == worker.name and run.exit_code == 0


def test_a_job_stopped_with_its_worker_runs_again_without_failing(
    master: MasterThread,
    settings: WorkerSettings,
    hooks: HookRecorder,
    tmp_path: pathlib.Path,
) -> None:
    marker = tmp_path / "ran"
    client = master.client()
    # The first run waits to be stopped; the rerun finds the marker and ends.
    command = f"test -e {marker} || {{ touch {marker}; exec sleep 300; }}"
    start(client, "stopped", {"a": shell(command)})
    first = Workers(client, settings, hooks)
    first.start(1)
    deadline = time.time() + 30
    while not hooks.named("pinball_job_started") and time.time() < deadline:
        time.sleep(0.05)

    # What a second Ctrl-C does: stop, and stop the running jobs too.
    first.close()

    stopped = job_of(client, "stopped", "a").history[-1]
    assert stopped.reason == STOPPED_WITH_WORKER and stopped.lost
    assert hooks.named("pinball_job_failed") == []
    assert hooks.named("pinball_instance_finished") == []
    tokens = client.query(names.instance_prefix("stopped", "1"))
    summary = instance_status(tokens, time.time())
    assert summary is not None and summary.status is Status.RUNNING

    again = Workers(client, settings, hooks)
    try:
        again.start(1)

        assert wait_finished(hooks, "stopped") == "SUCCESS"
    finally:
        again.close()
    history = job_of(client, "stopped", "a").history
    assert [r.reason for r in history] == [STOPPED_WITH_WORKER, None]
    assert hooks.named("pinball_job_failed") == []


def test_a_stopping_worker_does_not_retry_a_master_that_is_down() -> None:
    stop = threading.Event()
    stop.set()
    # Nothing listens on the port: every attempt is refused.
    dead = HttpClient("127.0.0.1", free_port(), connect_attempts=2, first_backoff_sec=5)

    with dead.give_up_when(stop), pytest.raises(MasterUnavailableError) as raised:
        dead.query("/")

    assert "not retrying, since this is stopping" in str(raised.value)


def test_exit_signal_stops_older_generations(
    master: MasterThread, workers: Workers, hooks: HookRecorder
) -> None:
    client = master.client()
    signals.set_signal(client, EXIT, generation=2)
    old = workers.start(1, generation=1)
    new = workers.start(1, generation=2)
    workers.threads[0].join(timeout=30)
    assert not workers.threads[0].is_alive()
    assert workers.threads[1].is_alive()
    assert old[0].name != new[0].name


def test_many_workers_run_each_job_once(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    log_file = tmp_path / "runs"
    client = master.client()
    jobs = {"root": shell(f"echo root >> {log_file}")}
    for i in range(30):
        jobs[f"mid{i}"] = shell(f"echo mid{i} >> {log_file}", "root")
    jobs["sink"] = shell(f"echo sink >> {log_file}", *[f"mid{i}" for i in range(30)])
    start(client, "fan", jobs)
    workers.start(4)

    assert wait_finished(hooks, "fan") == "SUCCESS"
    runs = log_file.read_text().split()
    assert sorted(runs) == sorted(jobs)
    assert runs[0] == "root" and runs[-1] == "sink"


def test_substitute() -> None:
    assert substitute("date +%Y", {}) == "date +%Y"
    assert substitute("echo %(a)s %(b)s", {"a": "1"}) == "echo 1 "
    assert substitute("echo %(a)s 100%", {"a": "1"}) == "echo %(a)s 100%"
    assert substitute("echo %(a)s 100%%", {"a": "1"}) == "echo 1 100%"


def test_condition_polls_until_it_holds(
    master: MasterThread, workers: Workers, hooks: HookRecorder, tmp_path: pathlib.Path
) -> None:
    counter = tmp_path / "checks"
    check = f"echo x >> {counter}; test $(wc -l < {counter}) -ge 4"
    client = master.client()
    start(
        client,
        "cond",
        {
            "ready": shell(check, condition=True, max_attempts=3, retry_delay_sec=0.05),
            "after": shell("true", "ready"),
        },
    )
    workers.start(1)

    assert wait_finished(hooks, "cond") == "FAILURE"
    history = job_of(client, "cond", "ready").history
    # Three checks failed; only the last max_attempts are kept.
    assert len(history) == 3 and all(r.exit_code == 1 for r in history)
    assert job_of(client, "cond", "after").history == []


def test_retry_delay_grows_to_its_cap() -> None:
    job = Job(
        retry_delay_sec=2, retry_backoff=3, max_retry_delay_sec=10, max_attempts=9
    )
    delays = []
    for _ in range(4):
        job.history.append(
            ExecutionRecord(instance="1", start_time=0, end_time=1, exit_code=1)
        )
        delays.append(job.retry_delay("1"))
    assert delays == [2, 6, 10, 10]


def test_exit_for_older_workers_does_not_hold_back_newer_ones(
    master: MasterThread, workers: Workers, hooks: HookRecorder
) -> None:
    client = master.client()
    signals.set_signal(client, EXIT, generation=2)
    start(client, "upgrade", {"a": shell("true"), "b": shell("true", "a")})
    workers.start(1, generation=2)

    assert wait_finished(hooks, "upgrade") == "SUCCESS"


def test_held_job_stays_held_when_its_upstream_ends(
    master: MasterThread, workers: Workers, hooks: HookRecorder
) -> None:
    client = master.client()
    start(client, "held", {"a": shell("true"), "b": shell("true", "a")})
    (waiting,) = client.query(names.job_prefix("held", "1", names.WAITING))
    client.modify(
        [
            Token(
                waiting.name,
                waiting.version,
                "paused by test",
                2.0**53,
                waiting.priority,
                waiting.data,
            )
        ]
    )
    workers.start(1)

    deadline = time.time() + 30
    while not client.query(names.job_prefix("held", "1", names.RUNNABLE) + "b"):
        assert time.time() < deadline, "b was never made runnable"
        time.sleep(0.05)
    time.sleep(1)
    (held,) = client.query(names.job_prefix("held", "1", names.RUNNABLE) + "b")
    assert held.owner == "paused by test"
    assert Job.from_json(held.data).history == []
    assert hooks.named("pinball_instance_finished") == []


def test_timed_out_job_keeps_its_lease_while_it_winds_down(
    master: MasterThread, workers: Workers, hooks: HookRecorder
) -> None:
    client = master.client()
    # The escaped grandchild holds the output open past the kill.
    command = "setsid sh -c 'sleep 8' & sleep 100"
    start(client, "slow", {"a": shell(command, abort_timeout_sec=0.5, max_attempts=2)})
    workers.start(1, lease_sec=1.5)

    deadline = time.time() + 60
    while len(job_of(client, "slow", "a").history) < 2 and time.time() < deadline:
        time.sleep(0.1)
    first = job_of(client, "slow", "a").history[0]
    assert first.reason is not None and "timed out" in first.reason
    assert first.worker == workers.workers[0].name


class _DownClient(MasterClient):
    """A master that cannot be reached."""

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        raise MasterUnavailableError("the master is down")

    def close(self) -> None:
        """Nothing to release."""


def test_looks_put_off_survive_a_master_that_is_down(settings: WorkerSettings) -> None:
    """A job's end that cannot look again now keeps the look for later."""
    worker = Worker(_DownClient(), LocalExecutor(), settings)
    worker._deferred = {("w", "1"): {"sink": 3}}
    change = transitions.Change(recheck={"fan_in": 2})

    with pytest.raises(MasterUnavailableError):
        worker._after_commit("w", "2", change, may_end=True)
    with pytest.raises(MasterUnavailableError):
        worker._look_again()

    assert worker._deferred == {("w", "1"): {"sink": 3}, ("w", "2"): {"fan_in": 2}}
