"""How long one scheduler pass takes over 10,000 schedules, 100 of them due.

Starts a master on a fresh SQLite file (WAL, synchronous FULL) serving HTTP,
writes 10,000 schedule tokens (hourly, daily and cron, in several time
zones), of which 100 are due now and the rest later, then times, over the
in-process client and over HTTP:

- a pass that finds the due schedules among the 10,000 and starts an
  instance for each of the 100 (claim, status read, start and advance in
  one change each);
- a pass right after, that finds nothing due (the cost of looking).

Each case runs ``--repeat`` times on a fresh set of tokens; the best and the
median are printed. The clock is a manual one set to the due time, so what
is measured is the scheduler and the master, not waiting.

Usage: python bench/scheduler_pass.py [--schedules 10000] [--due 100] [--repeat 3]
"""

import argparse
import contextlib
import datetime
import statistics
import tempfile
import time
from collections.abc import Iterator

from pinball_core.client import HttpClient, MasterClient
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.scheduler.reschedule import new_schedule, parked_token
from pinball_core.scheduler.scheduler import Outcome, Scheduler
from pinball_core.scheduler.spec import ScheduleSpec
from pinball_core.scheduler.testing import DictParser, ManualClock
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.workflow import names

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
START = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC).timestamp()


def specs(count: int, run: int) -> list[ScheduleSpec]:
    made = []
    for i in range(count):
        workflow = f"wf_{run}_{i:05d}"
        zone = ZONES[i % len(ZONES)]
        kind = i % 3
        if kind == 0:
            made.append(
                ScheduleSpec(workflow=workflow, recurrence_sec=3600, timezone=zone)
            )
        elif kind == 1:
            made.append(
                ScheduleSpec(
                    workflow=workflow,
                    recurrence_sec=86400,
                    start="2026-01-01T02:30:00",
                    timezone=zone,
                )
            )
        else:
            made.append(
                ScheduleSpec(workflow=workflow, cron="*/20 * * * *", timezone=zone)
            )
    return made


def load(client: MasterClient, all_specs: list[ScheduleSpec], due: int) -> None:
    """Store the schedules: the first ``due`` with a run due now."""
    tokens = []
    for i, spec in enumerate(all_specs):
        schedule = new_schedule(spec, START)
        if i < due:
            # Its latest run came due at START or just before.
            latest = schedule.recurrence().latest_at_or_before(START)
            schedule = schedule.with_state(next_run=latest)
        tokens.append(parked_token(schedule))
    for begin in range(0, len(tokens), 1000):
        client.modify(updates=tokens[begin : begin + 1000])


def clear(client: MasterClient) -> None:
    for prefix in (names.SCHEDULE_PREFIX, names.WORKFLOW_PREFIX):
        tokens = client.query(prefix)
        for begin in range(0, len(tokens), 1000):
            client.modify(deletes=tokens[begin : begin + 1000])


def measure(
    client: MasterClient, count: int, due: int, run: int
) -> tuple[float, float, int]:
    clear(client)
    all_specs = specs(count, run)
    load(client, all_specs, due)
    parser = DictParser({s.workflow: s for s in all_specs})
    policies = PluginManager()
    scheduler = Scheduler(
        client,
        make_parser=lambda: parser,
        make_policy=policies.make_overrun_policy,
        clock=ManualClock(START),
        name="bench",
    )
    begin = time.perf_counter()
    report = scheduler.run_pass()
    busy = time.perf_counter() - begin
    begin = time.perf_counter()
    idle_report = scheduler.run_pass()
    idle = time.perf_counter() - begin
    assert idle_report.due == 0, idle_report.describe()
    return busy, idle, report.outcomes.get(Outcome.STARTED, 0)


@contextlib.contextmanager
def master() -> Iterator[MasterThread]:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(f"sqlite:///{folder}/pinball.db")
        store.initialize()
        with MasterThread(store, port=0) as running:
            yield running
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with master() as running:
        assert running.port is not None
        clients: dict[str, MasterClient] = {
            "in-process": running.client(),
            "http": HttpClient("127.0.0.1", running.port),
        }
        print(
            f"{args.schedules} schedules, {args.due} due; "
            f"best and median of {args.repeat} runs"
        )
        for label, client in clients.items():
            busy, idle, started = [], [], set()
            for run in range(args.repeat):
                b, i, s = measure(client, args.schedules, args.due, run)
                busy.append(b)
                idle.append(i)
                started.add(s)
            print(
                f"{label:>10}: pass starting {'/'.join(map(str, sorted(started)))} "
                f"instances {min(busy) * 1000:7.1f} ms best, "
                f"{statistics.median(busy) * 1000:7.1f} ms median; "
                f"pass with nothing due {min(idle) * 1000:6.1f} ms best, "
                f"{statistics.median(idle) * 1000:6.1f} ms median"
            )
            client.close()


if __name__ == "__main__":
    main()
