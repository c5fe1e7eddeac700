"""The scheduler over days of runs: time zones, missed runs, catch-up, two
schedulers at once, and a scheduler killed in the middle of a decision.

Everything runs on a real master with a manual clock, so weeks pass in a
second; the slots each started instance records are checked against the
wall-clock times the schedule names.
"""

import dataclasses
import datetime
import threading
import time
from typing import Any

import pytest

from pinball_core.client import HttpClient, MasterClient
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.scheduler.history import read_scheduled_run
from pinball_core.scheduler.loop import SchedulerLoop
from pinball_core.scheduler.reschedule import new_schedule, parked_token
from pinball_core.scheduler.scheduler import (
    Outcome,
    Scheduler,
    SchedulerSettings,
)
from pinball_core.scheduler.spec import Schedule, ScheduleSpec, schedule_token
from pinball_core.scheduler.testing import DictParser, ManualClock, SchedulerRig
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.status import instances_of

HOUR = 3600.0
DAY = 86400.0


@pytest.fixture
def plugins() -> PluginManager:
    return PluginManager()


@pytest.fixture
def client(master: MasterThread) -> MasterClient:
    return master.client()


def make_rig(
    client: MasterClient,
    plugins: PluginManager,
    start: datetime.datetime,
    **settings: Any,
) -> SchedulerRig:
    return SchedulerRig(
        client,
        ManualClock(start),
        DictParser({}),
        plugins.make_overrun_policy,
        settings=SchedulerSettings(**settings),
    )


def local_runs(rig: SchedulerRig, workflow: str) -> list[str]:
    return [r.local_time for r in rig.runs(workflow)]


def drive(rig: SchedulerRig, until: datetime.datetime, step: float) -> None:
    """Run passes every ``step`` up to ``until``, ending each instance at once."""
    while rig.clock() < until.timestamp():
        rig.clock.advance(step)
        rig.run_pass()
        for workflow in list(rig.parser.workflows):
            rig.finish_all(workflow)


# -- Weeks of runs, daylight saving included -----------------------------------------


def test_a_daily_run_across_the_spring_change_in_berlin(
    client: MasterClient, plugins: PluginManager
) -> None:
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    rig = make_rig(client, plugins, datetime.datetime(2026, 3, 25, tzinfo=berlin))
    rig.add(
        ScheduleSpec(
            workflow="nightly",
            recurrence_sec=DAY,
            start="2026-03-01T02:30:00",
            timezone="Europe/Berlin",
        )
    )

    drive(rig, datetime.datetime(2026, 4, 1, 12, tzinfo=berlin), step=HOUR / 4)

    assert local_runs(rig, "nightly") == [
        "2026-03-25T02:30:00+01:00",
        "2026-03-26T02:30:00+01:00",
        "2026-03-27T02:30:00+01:00",
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
        "2026-04-01T02:30:00+02:00",
    ]
    assert rig.calls("pinball_schedule_skipped") == []


def test_a_cron_run_across_the_autumn_change_in_new_york(
    client: MasterClient, plugins: PluginManager
) -> None:
    new_york = datetime.timezone(datetime.timedelta(hours=-4))
    rig = make_rig(client, plugins, datetime.datetime(2026, 10, 30, tzinfo=new_york))
    rig.add(
        ScheduleSpec(workflow="report", cron="30 1 * * *", timezone="America/New_York")
    )

    drive(rig, datetime.datetime(2026, 11, 3, 12, tzinfo=new_york), step=HOUR / 4)

    assert local_runs(rig, "report") == [
        "2026-10-30T01:30:00-04:00",
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",  # once, the first time 01:30 comes
        "2026-11-02T01:30:00-05:00",
        "2026-11-03T01:30:00-05:00",
    ]


def test_months_of_monthly_runs_on_the_31st(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig = make_rig(client, plugins, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    rig.add(
        ScheduleSpec(
            workflow="month_end", recurrence="P1M", start="2026-01-31T23:00:00"
        )
    )

    drive(rig, datetime.datetime(2026, 7, 1, tzinfo=datetime.UTC), step=6 * HOUR)

    assert [run[:10] for run in local_runs(rig, "month_end")] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
    ]


def test_each_instance_records_its_slot_through_the_archive(
    client: MasterClient, plugins: PluginManager, store: Any
) -> None:
    rig = make_rig(client, plugins, datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    schedule = rig.add(ScheduleSpec(workflow="w", recurrence_sec=HOUR))
    slot = schedule.state.next_run
    assert slot is not None

    rig.clock.set(slot + 90)
    rig.run_pass()

    [instance] = rig.running("w")
    tokens = client.query(names.instance_prefix("w", instance))
    run = read_scheduled_run(tokens)
    assert run is not None
    assert (run.instance, run.scheduled_time, run.timezone) == (instance, slot, "UTC")
    assert run.started == slot + 90
    # The status code still sees one running instance, the record aside.
    [summary] = instances_of(tokens, rig.clock())
    assert summary.is_running
    # Archived with its instance, the record is kept.
    client.archive(tokens)
    archived = store.read_tokens(names.instance_prefix("w", instance), archived=True)
    archived_run = read_scheduled_run(archived)
    assert archived_run is not None and archived_run.scheduled_time == slot


# -- Missed runs ----------------------------------------------------------------------


def downtime_rig(
    client: MasterClient, plugins: PluginManager, **spec: Any
) -> tuple[SchedulerRig, float]:
    rig = make_rig(client, plugins, datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    values = {
        "workflow": "hourly",
        "cron": "0 * * * *",
        "overrun_policy": "START_NEW",
        "max_running_instances": 10,
        **spec,
    }
    schedule = rig.add(ScheduleSpec(**values))
    first = schedule.state.next_run
    assert first == datetime.datetime(2026, 5, 1, 1, tzinfo=datetime.UTC).timestamp()
    return rig, first


def test_after_downtime_one_run_for_the_latest_slot_by_default(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig, first = downtime_rig(client, plugins)

    # Down from before the first run until 5 h 10 min after it.
    rig.clock.set(first + 5 * HOUR + 600)
    while rig.run_pass().due:
        pass

    assert [r.scheduled_time for r in rig.runs("hourly")] == [first + 5 * HOUR]
    [skipped] = rig.calls("pinball_schedule_skipped")
    assert skipped["scheduled_time"] == first
    assert (
        "5 run(s) from 2026-05-01 01:00:00 UTC to 2026-05-01 05:00:00 UTC"
        in (skipped["reason"])
    )
    assert "catchup is off" in skipped["reason"]
    assert rig.schedule("hourly")[1].state.next_run == first + 6 * HOUR


def test_after_downtime_catchup_runs_every_missed_slot_oldest_first(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig, first = downtime_rig(client, plugins, catchup=True)

    rig.clock.set(first + 5 * HOUR + 600)
    passes = 0
    while rig.run_pass().due:
        passes += 1

    runs = rig.runs("hourly")
    assert [r.scheduled_time for r in runs] == [first + h * HOUR for h in range(6)]
    # Started oldest first, one look each.
    assert [c["scheduled_time"] for c in rig.calls("pinball_schedule_fired")] == [
        first + h * HOUR for h in range(6)
    ]
    assert rig.calls("pinball_schedule_skipped") == []
    assert rig.schedule("hourly")[1].state.next_run == first + 6 * HOUR


def test_catchup_with_delay_runs_the_missed_slots_one_after_another(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig, first = downtime_rig(client, plugins, catchup=True, overrun_policy="DELAY")

    rig.clock.set(first + 3 * HOUR + 600)
    order = []
    for _ in range(20):
        rig.clock.advance(60)
        rig.run_pass()
        assert len(rig.running("hourly")) <= 1
        for instance in rig.finish_all("hourly"):
            order.append(instance)

    assert [r.scheduled_time for r in rig.runs("hourly")] == [
        first + h * HOUR for h in range(4)
    ]
    assert len(order) == 4


def test_catchup_keeps_only_the_latest_max_catchup_slots(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig, first = downtime_rig(client, plugins, catchup=True, max_catchup=2)

    rig.clock.set(first + 5 * HOUR + 600)
    while rig.run_pass().due:
        pass

    assert [r.scheduled_time for r in rig.runs("hourly")] == [
        first + 4 * HOUR,
        first + 5 * HOUR,
    ]
    [skipped] = rig.calls("pinball_schedule_skipped")
    assert skipped["scheduled_time"] == first
    assert "4 run(s)" in skipped["reason"]
    assert "catchup keeps the latest 2" in skipped["reason"]


def test_a_new_schedule_starts_at_its_next_slot_not_with_a_backlog(
    client: MasterClient, plugins: PluginManager
) -> None:
    now = datetime.datetime(2026, 5, 10, 12, 20, tzinfo=datetime.UTC)
    rig = make_rig(client, plugins, now)

    schedule = rig.add(
        ScheduleSpec(
            workflow="w",
            recurrence_sec=HOUR,
            start="2026-01-01T00:00:00",
            catchup=True,
        )
    )

    assert schedule.state.next_run == now.timestamp() + 40 * 60
    assert rig.run_pass().due == 0


def test_a_schedule_written_without_state_starts_counting(
    client: MasterClient, plugins: PluginManager
) -> None:
    now = datetime.datetime(2026, 5, 10, 12, 20, 30, tzinfo=datetime.UTC)
    rig = make_rig(client, plugins, now)
    spec = ScheduleSpec(workflow="w", recurrence_sec=HOUR)
    rig.parser.workflows["w"] = spec
    # As a parser returns it, inserted by hand: no owner, no state.
    client.modify(updates=[schedule_token(spec)])

    assert rig.run_pass().outcomes == {Outcome.SCHEDULED: 1}

    token, schedule = rig.schedule("w")
    assert schedule.state.anchor == "2026-05-10T12:20:00"
    assert schedule.state.next_run == now.timestamp() - 30 + HOUR
    assert token.expiration == schedule.state.next_run


# -- Two schedulers ----------------------------------------------------------------


def test_two_schedulers_never_start_the_same_slot_twice(
    master: MasterThread, plugins: PluginManager
) -> None:
    clock = ManualClock(datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    parser = DictParser({})
    assert master.port is not None
    http = HttpClient("127.0.0.1", master.port, connect_attempts=2)
    rigs = [
        SchedulerRig(
            client, clock, parser, plugins.make_overrun_policy, name=f"scheduler_{i}"
        )
        for i, client in enumerate([master.client(), http])
    ]
    workflows = [f"w{i}" for i in range(4)]
    for workflow in workflows:
        rigs[0].add(
            ScheduleSpec(
                workflow=workflow,
                recurrence_sec=60,
                overrun_policy="START_NEW",
                max_running_instances=1000,
            )
        )

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def one_pass(rig: SchedulerRig) -> None:
        try:
            barrier.wait()
            rig.run_pass()
        except BaseException as exc:
            errors.append(exc)

    for _ in range(30):
        clock.advance(60)
        threads = [threading.Thread(target=one_pass, args=(r,)) for r in rigs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    http.close()

    assert errors == []
    for workflow in workflows:
        slots = [r.scheduled_time for r in rigs[0].runs(workflow)]
        assert len(slots) == len(set(slots)) == 30
    fired = rigs[0].calls("pinball_schedule_fired") + rigs[1].calls(
        "pinball_schedule_fired"
    )
    assert len(fired) == 4 * 30


class Interleaving(MasterClient):
    """Runs ``meanwhile`` just before the first modify that ``when`` picks,
    as another scheduler working at that moment would."""

    def __init__(self, inner: MasterClient, when: Any, meanwhile: Any) -> None:
        self.inner = inner
        self.when = when
        self.meanwhile = meanwhile

    def modify(self, updates: Any = (), deletes: Any = ()) -> list[Token]:
        updates = list(updates)
        if self.meanwhile is not None and self.when(updates):
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return self.inner.modify(updates, list(deletes))

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.inner._send(operation, body)

    def close(self) -> None:
        self.inner.close()


def test_a_scheduler_that_loses_the_claim_leaves_the_schedule(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig = make_rig(client, plugins, datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    slot = rig.add(ScheduleSpec(workflow="w", recurrence_sec=HOUR)).state.next_run
    assert slot is not None
    rig.clock.set(slot + 1)
    other = SchedulerRig(
        client, rig.clock, rig.parser, plugins.make_overrun_policy, name="other"
    )
    # The other one has read the due schedule; this one claims and starts it
    # before the other's claim arrives.
    other.scheduler.client = Interleaving(client, lambda _: True, rig.run_pass)

    report = other.run_pass()

    assert (report.due, report.claimed) == (1, 0)
    assert [r.scheduled_time for r in rig.runs("w")] == [slot]
    assert other.calls("pinball_schedule_fired") == []


def test_a_decision_outliving_its_claim_is_not_stored(
    client: MasterClient, plugins: PluginManager
) -> None:
    rig = make_rig(client, plugins, datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    slot = rig.add(ScheduleSpec(workflow="w", recurrence_sec=HOUR)).state.next_run
    assert slot is not None
    rig.clock.set(slot + 1)
    other = SchedulerRig(
        client, rig.clock, rig.parser, plugins.make_overrun_policy, name="other"
    )

    def claim_runs_out_and_other_takes_over() -> None:
        rig.clock.advance(rig.scheduler.settings.lease_sec + 1)
        other.run_pass()

    def starts(updates: list[Token]) -> bool:
        return any(names.parse_job_name(t.name) for t in updates)

    rig.scheduler.client = Interleaving(
        client, starts, claim_runs_out_and_other_takes_over
    )

    report = rig.run_pass()

    assert report.outcomes == {Outcome.LOST: 1}
    assert [r.scheduled_time for r in rig.runs("w")] == [slot]
    assert len(other.calls("pinball_schedule_fired")) == 1
    assert rig.calls("pinball_schedule_fired") == []


# -- A scheduler killed in the middle ------------------------------------------------


class Killed(BaseException):
    """The process died here (nothing catches it)."""


class DyingClient(MasterClient):
    """A client that dies at the modify that starts an instance: before
    sending it, or after the master applied it but before the answer."""

    def __init__(self, inner: MasterClient, *, after_sending: bool) -> None:
        self.inner = inner
        self.after_sending = after_sending
        self.starts: list[list[str]] = []

    def modify(self, updates: Any = (), deletes: Any = ()) -> list[Token]:
        updates = list(updates)
        if any(names.parse_job_name(t.name) for t in updates):
            self.starts.append([t.name for t in updates])
            if not self.after_sending:
                raise Killed
            self.inner.modify(updates, deletes)
            raise Killed
        return self.inner.modify(updates, list(deletes))

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.inner._send(operation, body)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("after_sending", [False, True])
def test_a_scheduler_killed_mid_decision_leaves_all_or_nothing(
    client: MasterClient, plugins: PluginManager, after_sending: bool
) -> None:
    rig = make_rig(client, plugins, datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    schedule = rig.add(ScheduleSpec(workflow="w", recurrence_sec=HOUR))
    slot = schedule.state.next_run
    assert slot is not None
    dying = DyingClient(client, after_sending=after_sending)
    rig.scheduler.client = dying
    rig.clock.set(slot + 1)

    with pytest.raises(Killed):
        rig.run_pass()

    # The start is one change: the job, the slot record and the schedule.
    [start] = dying.starts
    assert names.schedule_name("w") in start
    assert any(name.endswith("/__SCHEDULE__") for name in start)
    token, stored = rig.schedule("w")
    if after_sending:
        assert len(rig.runs("w")) == 1
        assert stored.state.next_run == slot + HOUR
    else:
        assert rig.runs("w") == []
        assert stored.state.next_run == slot
        assert token.owner == rig.scheduler.name  # its claim, until the lease ends

    # Another scheduler takes over once the dead one's claim runs out.
    other = dataclasses.replace(rig.scheduler.settings)
    survivor = Scheduler(
        client,
        make_parser=lambda: rig.parser,
        make_policy=plugins.make_overrun_policy,
        settings=other,
        clock=rig.clock,
        name="survivor",
    )
    assert survivor.run_pass().claimed == 0
    rig.clock.advance(other.lease_sec)
    survivor.run_pass()

    assert [r.scheduled_time for r in rig.runs("w")] == [slot]
    assert rig.schedule("w")[1].state.next_run == slot + HOUR


# -- The loop, on the real clock -------------------------------------------------------


def test_the_loop_starts_a_run_when_it_comes_due_and_stops_when_told(
    client: MasterClient, plugins: PluginManager
) -> None:
    parser = DictParser({})
    scheduler = Scheduler(
        client,
        make_parser=lambda: parser,
        make_policy=plugins.make_overrun_policy,
    )
    spec = ScheduleSpec(workflow="soon", recurrence_sec=3600)
    parser.workflows["soon"] = spec
    # Due in a second; the loop polls every 60 s, so only its wake-up for
    # the next due run can start it in time.
    due = time.time() + 1.0
    schedule = dataclasses.replace(new_schedule(spec, time.time()))
    schedule = Schedule(spec, dataclasses.replace(schedule.state, next_run=due))
    client.modify(updates=[parked_token(schedule)])

    loop = SchedulerLoop(scheduler, poll_sec=60.0)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        started: list[Token] = []
        while not started and time.monotonic() < deadline:
            started = client.query(names.workflow_prefix("soon"))
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)

    assert started, "the due run was not started"
    assert not thread.is_alive()
    run = read_scheduled_run(started)
    assert run is not None and run.scheduled_time == due
    assert loop.passes >= 2
