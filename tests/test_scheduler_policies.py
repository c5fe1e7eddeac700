"""The overrun policies and the running-instance cap, on a real master.

The policies are the built-in plugins, loaded through their entry points
as a schedule names them; "running" and "last finished" come from the
instances' tokens at each decision. Time is a manual clock.
"""

import datetime
import random
from typing import Any

import pytest

from pinball_core import hookimpl
from pinball_core.client import MasterClient
from pinball_core.components import OverrunContext, OverrunDecision, OverrunPolicy
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.scheduler.history import ArchiveReader
from pinball_core.scheduler.scheduler import (
    INVALID_OWNER_PREFIX,
    PARKED_OWNER,
    Outcome,
    SchedulerSettings,
)
from pinball_core.scheduler.spec import (
    BUILTIN_POLICIES,
    Schedule,
    ScheduleSpec,
    ScheduleState,
)
from pinball_core.scheduler.testing import (
    DictParser,
    ManualClock,
    SchedulerRig,
    finish_instance,
    run_instance,
)
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import ABORT, Job, Signal
from pinball_core.workflow.signals import read_signals

WF = "workflow_0"
START = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
PERIOD = 600.0
SETTINGS = SchedulerSettings(delay_sec=30.0, abort_poll_sec=5.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def plugins() -> PluginManager:
    return PluginManager()


@pytest.fixture
def client(master: MasterThread) -> MasterClient:
    return master.client()


@pytest.fixture
def rig(
    client: MasterClient, clock: ManualClock, plugins: PluginManager
) -> SchedulerRig:
    return SchedulerRig(
        client, clock, DictParser({}), plugins.make_overrun_policy, settings=SETTINGS
    )


def due_schedule(
    rig: SchedulerRig,
    policy: str = "SKIP",
    *,
    due_ago: float = 10.0,
    cap: int | None = 5,
    owner: str = "someone",
) -> float:
    """The original's fixture: a schedule of ``WF`` whose next run was
    ``due_ago`` seconds ago, owned by someone whose lease ran out then.
    Returns that run's slot."""
    slot = rig.clock() - due_ago
    start = datetime.datetime.fromtimestamp(slot, datetime.UTC).isoformat()
    spec = ScheduleSpec(
        workflow=WF,
        recurrence_sec=PERIOD,
        start=start,
        overrun_policy=policy,
        max_running_instances=cap,
    )
    rig.parser.workflows[WF] = spec
    schedule = Schedule(spec, ScheduleState(next_run=slot))
    token = Token(
        names.schedule_name(WF), owner=owner, expiration=slot, data=schedule.to_json()
    )
    rig.client.modify(updates=[token])
    return slot


def start_by_hand(rig: SchedulerRig, instance: str) -> str:
    job = Job(name="work", command="true")
    rig.client.modify(updates=instance_tokens(WF, instance, {"work": job}))
    return instance


def make_state(rig: SchedulerRig, state: str) -> list[str]:
    """Give ``WF`` a running, finished-ok or finished-failed instance."""
    if state == "none":
        return []
    instance = start_by_hand(rig, "100")
    if state == "running":
        return [instance]
    exit_code = 0 if state == "ok" else 1
    finish_instance(
        rig.client,
        WF,
        instance,
        exit_code=exit_code,
        start=rig.clock() - 100,
        end=rig.clock() - 50,
    )
    return []


# -- The original's scheduler tests ------------------------------------------


def test_the_due_schedule_is_claimed_and_moved_to_its_next_run(
    rig: SchedulerRig,
) -> None:
    slot = due_schedule(rig)

    report = rig.run_pass()

    assert (report.due, report.claimed) == (1, 1)
    assert report.outcomes == {Outcome.STARTED: 1}
    token, schedule = rig.schedule(WF)
    assert schedule.state.next_run == slot + PERIOD
    assert token.expiration == slot + PERIOD
    assert token.owner == PARKED_OWNER
    assert report.next_wake == slot + PERIOD


def test_a_claimable_schedule_with_a_future_run_is_parked_not_a_crash(
    rig: SchedulerRig,
) -> None:
    # Inserted by hand without an owner, its run 1000 s away.
    slot = due_schedule(rig, due_ago=-1000.0, owner="")

    report = rig.run_pass()

    assert report.outcomes == {Outcome.WAITING: 1}
    token, schedule = rig.schedule(WF)
    assert schedule.state.next_run == slot
    assert (token.owner, token.expiration) == (PARKED_OWNER, slot)
    assert rig.instances(WF) == []
    assert rig.run_pass().due == 0


# -- Every policy in every situation ------------------------------------------

# What each policy does when a run comes due, by what the workflow is doing.
EXPECTED = {
    ("START_NEW", "running"): Outcome.STARTED,
    ("START_NEW", "ok"): Outcome.STARTED,
    ("START_NEW", "failed"): Outcome.STARTED,
    ("START_NEW", "none"): Outcome.STARTED,
    ("SKIP", "running"): Outcome.SKIPPED,
    ("SKIP", "ok"): Outcome.STARTED,
    ("SKIP", "failed"): Outcome.STARTED,
    ("SKIP", "none"): Outcome.STARTED,
    ("ABORT_RUNNING", "running"): Outcome.ABORTING,
    ("ABORT_RUNNING", "ok"): Outcome.STARTED,
    ("ABORT_RUNNING", "failed"): Outcome.STARTED,
    ("ABORT_RUNNING", "none"): Outcome.STARTED,
    ("DELAY", "running"): Outcome.DELAYED,
    ("DELAY", "ok"): Outcome.STARTED,
    ("DELAY", "failed"): Outcome.STARTED,
    ("DELAY", "none"): Outcome.STARTED,
    ("DELAY_UNTIL_SUCCESS", "running"): Outcome.DELAYED,
    ("DELAY_UNTIL_SUCCESS", "ok"): Outcome.STARTED,
    ("DELAY_UNTIL_SUCCESS", "failed"): Outcome.REFUSED,
    ("DELAY_UNTIL_SUCCESS", "none"): Outcome.STARTED,
}


@pytest.mark.parametrize(("policy", "state"), sorted(EXPECTED))
def test_policy_decisions(rig: SchedulerRig, policy: str, state: str) -> None:
    running_before = make_state(rig, state)
    slot = due_schedule(rig, policy)

    report = rig.run_pass()

    outcome = EXPECTED[policy, state]
    assert report.outcomes == {outcome: 1}
    token, schedule = rig.schedule(WF)
    started = [r.instance for r in rig.runs(WF)]
    if outcome is Outcome.STARTED:
        assert len(started) == 1
        assert schedule.state.next_run == slot + PERIOD
        assert [c["scheduled_time"] for c in rig.calls("pinball_schedule_fired")] == [
            slot
        ]
    else:
        assert started == []
    if outcome is Outcome.SKIPPED:
        assert schedule.state.next_run == slot + PERIOD
        [skipped] = rig.calls("pinball_schedule_skipped")
        assert skipped["scheduled_time"] == slot
        assert "1 instance running (100)" in skipped["reason"]
    if outcome in (Outcome.DELAYED, Outcome.REFUSED, Outcome.ABORTING):
        # Not advanced: the same run waits, and is asked about again later.
        assert schedule.state.next_run == slot
        assert token.expiration is not None and token.expiration > slot
    if outcome is Outcome.ABORTING:
        assert ABORT in read_signals(rig.client, WF, running_before[0])


def test_every_builtin_policy_is_an_installed_plugin(plugins: PluginManager) -> None:
    for name in BUILTIN_POLICIES:
        assert isinstance(plugins.make_overrun_policy(name), OverrunPolicy)
    listed = {(p.kind, p.name, p.distribution) for p in plugins.list_plugins()}
    for name in BUILTIN_POLICIES:
        assert ("overrun_policy", name, "pinball-core") in listed


# -- The policies over time ----------------------------------------------------


def test_skip_drops_runs_while_an_instance_runs(rig: SchedulerRig) -> None:
    slot = due_schedule(rig, "SKIP")
    rig.run_pass()
    [first] = rig.running(WF)

    rig.run_until(slot + 3 * PERIOD, step=PERIOD)

    assert [r.instance for r in rig.runs(WF)] == [first]
    skipped = [c["scheduled_time"] for c in rig.calls("pinball_schedule_skipped")]
    assert skipped == [slot + PERIOD, slot + 2 * PERIOD, slot + 3 * PERIOD]

    rig.finish_all(WF)
    rig.run_until(slot + 4 * PERIOD, step=PERIOD)
    assert [r.scheduled_time for r in rig.runs(WF)] == [slot, slot + 4 * PERIOD]


def test_delay_starts_the_held_run_once_the_instance_ends(rig: SchedulerRig) -> None:
    make_state(rig, "running")
    slot = due_schedule(rig, "DELAY")

    rig.run_pass()
    token, schedule = rig.schedule(WF)
    assert token.expiration == rig.clock() + SETTINGS.delay_sec
    assert schedule.state.delayed_since == rig.clock()
    # Asked again at the same time, it is not due: nothing spins.
    assert rig.run_pass().due == 0

    rig.finish_all(WF)
    rig.clock.advance(SETTINGS.delay_sec)
    assert rig.run_pass().outcomes == {Outcome.STARTED: 1}

    [run] = rig.runs(WF)
    assert run.scheduled_time == slot
    assert rig.calls("pinball_schedule_refused") == []
    assert rig.schedule(WF)[1].state.delayed_since is None


def test_a_run_delayed_past_the_next_slot_gives_way_to_it(rig: SchedulerRig) -> None:
    make_state(rig, "running")
    slot = due_schedule(rig, "DELAY")

    rig.run_until(slot + PERIOD + 5, step=SETTINGS.delay_sec)
    rig.finish_all(WF)
    rig.run_until(rig.clock() + SETTINGS.delay_sec, step=SETTINGS.delay_sec)

    # Catch-up is off: one run, for the latest slot; the older one is dropped.
    assert [r.scheduled_time for r in rig.runs(WF)] == [slot + PERIOD]
    [skipped] = rig.calls("pinball_schedule_skipped")
    assert skipped["scheduled_time"] == slot
    assert "catchup is off" in skipped["reason"]


def test_delay_until_success_waits_for_a_success_and_says_so_once(
    rig: SchedulerRig,
) -> None:
    make_state(rig, "failed")
    slot = due_schedule(rig, "DELAY_UNTIL_SUCCESS")

    # Within its period, asked again and again: one report.
    rig.run_pass()
    rig.run_until(slot + PERIOD / 2, step=10)

    [refused] = rig.calls("pinball_schedule_refused")
    assert refused["scheduled_time"] == slot
    assert "the last finished instance, 100, ended FAILURE" in refused["reason"]
    assert "pinball workflow retry -w workflow_0 -i 100" in refused["reason"]
    assert rig.runs(WF) == []

    # A good run by hand unblocks it.
    start_by_hand(rig, "200")
    rig.finish_all(WF, exit_code=0)
    rig.clock.advance(SETTINGS.delay_sec)
    assert rig.run_pass().outcomes == {Outcome.STARTED: 1}
    assert [r.scheduled_time for r in rig.runs(WF)] == [slot]


def test_delay_until_success_reads_the_archive_for_the_last_instance(
    client: MasterClient, clock: ManualClock, plugins: PluginManager, sqlite_url: str
) -> None:
    reader_store = SqliteStore(sqlite_url)
    archive = ArchiveReader(lambda: reader_store)
    rig = SchedulerRig(
        client,
        clock,
        DictParser({}),
        plugins.make_overrun_policy,
        settings=SETTINGS,
        archive=archive,
    )
    # An older success stays active; the failure after it was archived
    # (as an aborted instance is at once).
    start_by_hand(rig, "100")
    finish_instance(
        client, WF, "100", exit_code=0, start=clock() - 900, end=clock() - 800
    )
    start_by_hand(rig, "200")
    finish_instance(
        client, WF, "200", exit_code=1, start=clock() - 300, end=clock() - 200
    )
    client.archive(client.query(names.instance_prefix(WF, "200")))
    due_schedule(rig, "DELAY_UNTIL_SUCCESS")

    try:
        report = rig.run_pass()
    finally:
        archive.close()

    assert report.outcomes == {Outcome.REFUSED: 1}
    assert "200, ended FAILURE" in rig.calls("pinball_schedule_refused")[0]["reason"]


def test_abort_running_aborts_only_running_instances_and_waits_for_them(
    rig: SchedulerRig,
) -> None:
    # 123 failed, 12345 runs a job on a worker.
    start_by_hand(rig, "123")
    finish_instance(
        rig.client, WF, "123", exit_code=1, start=rig.clock() - 99, end=rig.clock() - 90
    )
    start_by_hand(rig, "12345")
    run_instance(
        rig.client,
        WF,
        "12345",
        worker="w1",
        start=rig.clock() - 5,
        lease_until=rig.clock() + 600,
    )
    slot = due_schedule(rig, "ABORT_RUNNING")

    assert rig.run_pass().outcomes == {Outcome.ABORTING: 1}
    assert ABORT in read_signals(rig.client, WF, "12345")
    assert ABORT not in read_signals(rig.client, WF, "123")
    assert rig.running(WF) == []  # aborted counts as not running at once ...

    # ... but its job has not stopped: the new run waits, without spinning.
    rig.clock.advance(SETTINGS.abort_poll_sec)
    assert rig.run_pass().outcomes == {Outcome.ABORTING: 1}
    assert rig.runs(WF) == []

    # The worker kills the job and records it; then the run starts.
    finish_instance(
        rig.client, WF, "12345", exit_code=-15, start=rig.clock() - 5, end=rig.clock()
    )
    rig.clock.advance(SETTINGS.abort_poll_sec)
    assert rig.run_pass().outcomes == {Outcome.STARTED: 1}
    [run] = rig.runs(WF)
    assert run.scheduled_time == slot
    assert rig.schedule(WF)[1].state.aborted == ()


def test_the_abort_and_the_held_schedule_are_one_change(
    rig: SchedulerRig, client: MasterClient
) -> None:
    start_by_hand(rig, "12345")
    due_schedule(rig, "ABORT_RUNNING")
    recording = RecordingClient(client)
    rig.scheduler.client = recording

    rig.run_pass()

    changes = [names_of(updates) for updates, _ in recording.modifies]
    abort_name = f"{names.signal_prefix(WF, '12345')}{ABORT}"
    assert [abort_name, names.schedule_name(WF)] in changes


# -- The cap on running instances ------------------------------------------------


def test_the_cap_holds_back_start_new_and_says_so_once_per_run(
    rig: SchedulerRig,
) -> None:
    slot = due_schedule(rig, "START_NEW", cap=2)

    rig.run_pass()
    rig.run_until(rig.clock() + 2 * PERIOD, step=PERIOD)
    assert len(rig.running(WF)) == 2
    first_refused = rig.clock()
    # The third run is due and refused; asked again and again, it says so once.
    for _ in range(4):
        rig.clock.advance(SETTINGS.delay_sec / 2)
        rig.run_pass()
    assert len(rig.running(WF)) == 2
    [refused] = rig.calls("pinball_schedule_refused")
    assert refused["scheduled_time"] == slot + 2 * PERIOD
    assert "as many as max_running_instances=2 allows" in refused["reason"]
    token, schedule = rig.schedule(WF)
    assert schedule.state.notified_slot == slot + 2 * PERIOD
    assert token.expiration is not None and token.expiration > first_refused

    # One ends; the held run starts at its next look, for its own slot.
    finish_instance(rig.client, WF, rig.running(WF)[0], start=slot, end=rig.clock())
    rig.clock.advance(SETTINGS.delay_sec)
    rig.run_pass()
    assert slot + 2 * PERIOD in [r.scheduled_time for r in rig.runs(WF)]


def test_a_refused_run_is_not_looked_at_again_before_the_delay(
    rig: SchedulerRig,
) -> None:
    due_schedule(rig, "START_NEW", cap=1)
    start_by_hand(rig, "100")

    first = rig.run_pass()
    again = [rig.run_pass() for _ in range(3)]

    assert first.outcomes == {Outcome.REFUSED: 1}
    assert [r.due for r in again] == [0, 0, 0]
    assert first.next_wake == rig.clock() + SETTINGS.delay_sec


@pytest.mark.parametrize("policy", BUILTIN_POLICIES)
def test_no_policy_ever_exceeds_the_cap(rig: SchedulerRig, policy: str) -> None:
    cap = 2
    slot = due_schedule(rig, policy, cap=cap)
    rng = random.Random(policy)
    most = 0
    for _ in range(120):
        rig.clock.advance(rng.choice([5.0, 20.0, PERIOD]))
        rig.run_pass()
        running = rig.running(WF)
        most = max(most, len(running))
        assert len(running) <= cap
        for instance in running:
            if rng.random() < 0.2:
                code = rng.choice([0, 0, 1])
                finish_instance(
                    rig.client,
                    WF,
                    instance,
                    exit_code=code,
                    start=slot,
                    end=rig.clock(),
                )
    assert rig.runs(WF), f"{policy} never started anything"
    if policy in ("START_NEW",):
        assert most == cap


# -- Policies from other plugins ---------------------------------------------------


class AlwaysStart:
    """A third party's policy: start whatever runs, but drop runs at the cap."""

    def decide(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.START

    def at_limit(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.SKIP


class AlwaysStartPlugin:
    @hookimpl
    def pinball_make_overrun_policy(self) -> OverrunPolicy:
        return AlwaysStart()


def test_a_third_party_policy_is_used_by_name(
    rig: SchedulerRig, plugins: PluginManager
) -> None:
    plugins.register(AlwaysStartPlugin(), "overrun_policy.ALWAYS_START")
    slot = due_schedule(rig, "ALWAYS_START", cap=1)

    rig.run_pass()
    rig.clock.advance(PERIOD)
    report = rig.run_pass()

    assert report.outcomes == {Outcome.REFUSED: 1}
    assert [r.scheduled_time for r in rig.runs(WF)] == [slot]
    # Its at_limit said SKIP: refused, then dropped, and the schedule went on.
    assert [c["scheduled_time"] for c in rig.calls("pinball_schedule_skipped")] == [
        slot + PERIOD
    ]
    assert rig.schedule(WF)[1].state.next_run == slot + 2 * PERIOD


def test_a_missing_policy_holds_runs_back_until_it_is_installed(
    rig: SchedulerRig, plugins: PluginManager
) -> None:
    slot = due_schedule(rig, "NOT_INSTALLED")

    rig.run_pass()
    rig.clock.advance(SETTINGS.delay_sec)
    rig.run_pass()

    [refused] = rig.calls("pinball_schedule_refused")
    assert "overrun policy 'NOT_INSTALLED' could not decide" in refused["reason"]
    assert "NOT_INSTALLED" in refused["reason"]
    assert rig.runs(WF) == []

    plugins.register(AlwaysStartPlugin(), "overrun_policy.NOT_INSTALLED")
    rig.scheduler._policies.clear()
    rig.clock.advance(SETTINGS.delay_sec)
    rig.run_pass()
    assert [r.scheduled_time for r in rig.runs(WF)] == [slot]


# -- Schedules that cannot run ---------------------------------------------------


def test_a_workflow_gone_from_the_definitions_is_refused_once_per_run(
    rig: SchedulerRig,
) -> None:
    slot = due_schedule(rig, "SKIP")
    del rig.parser.workflows[WF]

    for _ in range(3):
        rig.run_pass()
        rig.clock.advance(SETTINGS.delay_sec)
    rig.clock.set(slot + PERIOD + 1)
    rig.run_pass()

    refused = rig.calls("pinball_schedule_refused")
    assert [c["scheduled_time"] for c in refused] == [slot, slot + PERIOD]
    assert "no longer defined by the parser" in refused[0]["reason"]
    assert "--remove-missing" in refused[0]["reason"]


def test_an_unusable_schedule_token_is_held_with_the_reason_and_left_intact(
    rig: SchedulerRig,
) -> None:
    data = '{"workflow": "workflow_0", "cron": "0 0 30 2 *"}'
    rig.client.modify(updates=[Token(names.schedule_name(WF), data=data)])

    report = rig.run_pass()
    rig.clock.advance(2 * 3600)
    rig.run_pass()

    assert report.outcomes == {Outcome.INVALID: 1}
    [token] = rig.client.query(names.schedule_name(WF))
    assert token.data == data
    assert token.owner is not None and token.owner.startswith(INVALID_OWNER_PREFIX)
    assert "names no date that exists" in token.owner
    [refused] = rig.calls("pinball_schedule_refused")
    assert refused["workflow"] == WF


def test_a_parser_that_cannot_build_the_workflow_is_refused(rig: SchedulerRig) -> None:
    class Broken(DictParser):
        def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
            raise ValueError(
                "workflow workflow_0 cannot start; fix its definition:\n  x"
            )

    due_schedule(rig, "SKIP")
    rig.parser = Broken(rig.parser.workflows)

    assert rig.run_pass().outcomes == {Outcome.REFUSED: 1}
    [refused] = rig.calls("pinball_schedule_refused")
    assert "cannot start; fix its definition: x" in refused["reason"]
    assert rig.client.query(names.workflow_prefix(WF)) == []


# -- Helpers ----------------------------------------------------------------------


class RecordingClient(MasterClient):
    """Passes requests to ``inner`` and keeps every modify's tokens."""

    def __init__(self, inner: MasterClient) -> None:
        self.inner = inner
        self.modifies: list[tuple[list[Token], list[Token]]] = []

    def modify(self, updates: Any = (), deletes: Any = ()) -> list[Token]:
        updates, deletes = list(updates), list(deletes)
        self.modifies.append((updates, deletes))
        return self.inner.modify(updates, deletes)

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.inner._send(operation, body)

    def close(self) -> None:
        self.inner.close()


def names_of(tokens: list[Token]) -> list[str]:
    return [t.name for t in tokens]


def test_signal_payload_of_the_abort_is_stamped(rig: SchedulerRig) -> None:
    start_by_hand(rig, "12345")
    due_schedule(rig, "ABORT_RUNNING")

    rig.run_pass()

    [token] = rig.client.query(f"{names.signal_prefix(WF, '12345')}{ABORT}")
    assert Signal.from_json(token.data).timestamp == rig.clock()
