"""Helpers for testing schedules and overrun policies without waiting.

:class:`ManualClock` is a clock that moves only when told, for the
scheduler's ``clock``; :class:`DictParser` is a parser of one-job workflows
with the schedules given; :func:`run_instance` and :func:`finish_instance`
record what a worker would; :class:`SchedulerRig` puts a scheduler on a
master with all of these and records its hook calls. Policy plugins can
test themselves with them.
"""

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from pinball_core.client import MasterClient
from pinball_core.components import OverrunPolicy
from pinball_core.scheduler.history import (
    ArchiveReader,
    ScheduledRun,
    read_scheduled_run,
)
from pinball_core.scheduler.reschedule import new_schedule, parked_token
from pinball_core.scheduler.scheduler import PassReport, Scheduler, SchedulerSettings
from pinball_core.scheduler.spec import Schedule, ScheduleSpec, schedule_token
from pinball_core.testing.hooks import HookRecorder
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import ExecutionRecord, Job
from pinball_core.workflow.status import InstanceSummary, read_instances


class ManualClock:
    """A clock for the scheduler that moves only when told to.

    :param start: The time it shows first: seconds since the epoch, or an
        aware :class:`datetime.datetime`.
    """

    def __init__(self, start: float | datetime.datetime) -> None:
        self.now = _seconds(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds``; the new time."""
        self.now += seconds
        return self.now

    def set(self, moment: float | datetime.datetime) -> float:
        """Move to ``moment`` (forward or back); the new time."""
        self.now = _seconds(moment)
        return self.now


class DictParser:
    """A parser of one-job workflows, each with the schedule given (or none).

    ``workflows`` maps a name to its :class:`ScheduleSpec`, or to None for a
    workflow without a schedule. Assign to it to change the definitions.
    """

    def __init__(self, workflows: Mapping[str, ScheduleSpec | None]) -> None:
        self.workflows = dict(workflows)

    def workflow_names(self) -> list[str]:
        return sorted(self.workflows)

    def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
        if workflow not in self.workflows:
            raise ValueError(f"no workflow {workflow!r}")
        job = Job(name="work", command="true")
        return instance_tokens(workflow, instance, {"work": job})

    def schedule_token(self, workflow: str) -> Token | None:
        spec = self.workflows[workflow]
        return None if spec is None else schedule_token(spec)

    def validate(self) -> list[str]:
        return []


def finish_instance(
    client: MasterClient,
    workflow: str,
    instance: str,
    *,
    exit_code: int = 0,
    start: float,
    end: float,
) -> None:
    """End every runnable job of an instance with ``exit_code``, as a worker
    would record a run from ``start`` to ``end``; the instance is then
    finished (SUCCESS for 0, FAILURE otherwise)."""
    runnable = client.query(names.job_prefix(workflow, instance, names.RUNNABLE))
    updates, deletes = [], []
    for token in runnable:
        job = Job.from_json(token.data)
        job.history.append(
            ExecutionRecord(
                instance=instance,
                start_time=start,
                end_time=end,
                exit_code=exit_code,
            )
        )
        job.events = []
        parsed = names.parse_job_name(token.name)
        assert parsed is not None
        waiting = names.job_name(workflow, instance, names.WAITING, parsed.job)
        updates.append(Token(waiting, priority=token.priority, data=job.to_json()))
        deletes.append(token)
    if not runnable:
        raise ValueError(f"instance {workflow}/{instance} has no runnable job")
    client.modify(updates=updates, deletes=deletes)


def run_instance(
    client: MasterClient,
    workflow: str,
    instance: str,
    *,
    worker: str,
    start: float,
    lease_until: float,
) -> None:
    """Make the runnable jobs of an instance run, as a worker that claimed
    them and recorded their start would: leased, with an open execution."""
    runnable = client.query(names.job_prefix(workflow, instance, names.RUNNABLE))
    updates = []
    for token in runnable:
        job = Job.from_json(token.data)
        job.history.append(ExecutionRecord(instance=instance, start_time=start))
        updates.append(
            dataclasses.replace(
                token, owner=worker, expiration=lease_until, data=job.to_json()
            )
        )
    client.modify(updates=updates)


def _seconds(moment: float | datetime.datetime) -> float:
    if isinstance(moment, datetime.datetime):
        if moment.tzinfo is None:
            raise ValueError("give the clock an aware datetime, not a naive one")
        return moment.timestamp()
    return float(moment)


class SchedulerRig:
    """A scheduler on ``client`` with a manual clock and recorded hooks.

    :param make_policy: Makes overrun policies by name, usually a plugin
        manager's ``make_overrun_policy``.
    """

    def __init__(
        self,
        client: MasterClient,
        clock: ManualClock,
        parser: DictParser,
        make_policy: Callable[[str], OverrunPolicy],
        *,
        settings: SchedulerSettings | None = None,
        archive: ArchiveReader | None = None,
        name: str = "scheduler_under_test",
    ) -> None:
        self.client = client
        self.clock = clock
        self.parser = parser
        self.hooks = HookRecorder()
        self.scheduler = Scheduler(
            client,
            make_parser=lambda: self.parser,
            make_policy=make_policy,
            settings=settings or SchedulerSettings(),
            clock=clock,
            hook=self.hooks,
            archive=archive,
            name=name,
        )

    def add(self, spec: ScheduleSpec) -> Schedule:
        """Define ``spec``'s workflow and store its schedule as of now, as
        ``pinball workflow reschedule`` would."""
        self.parser.workflows[spec.workflow] = spec
        schedule = new_schedule(spec, self.clock())
        self.client.modify(updates=[parked_token(schedule)])
        return schedule

    def run_pass(self) -> PassReport:
        return self.scheduler.run_pass()

    def run_until(self, moment: float, *, step: float) -> list[PassReport]:
        """Run a pass every ``step`` seconds of the clock up to ``moment``."""
        reports = []
        while self.clock() < moment:
            self.clock.advance(min(step, moment - self.clock()))
            reports.append(self.run_pass())
        return reports

    def schedule(self, workflow: str) -> tuple[Token, Schedule]:
        name = names.schedule_name(workflow)
        [token] = [t for t in self.client.query(name) if t.name == name]
        return token, Schedule.from_token(token)

    def instances(self, workflow: str) -> list[InstanceSummary]:
        return read_instances(self.client, workflow, self.clock())

    def running(self, workflow: str) -> list[str]:
        return sorted(i.instance for i in self.instances(workflow) if i.is_running)

    def runs(self, workflow: str) -> list[ScheduledRun]:
        """The slot records of the workflow's active instances, by slot."""
        tokens = self.client.query(names.workflow_prefix(workflow))
        by_instance: dict[str, list[Token]] = {}
        for token in tokens:
            parts = token.name.split("/")
            by_instance.setdefault(parts[3], []).append(token)
        found = [read_scheduled_run(group) for group in by_instance.values()]
        return sorted(
            (r for r in found if r is not None), key=lambda r: r.scheduled_time
        )

    def finish_all(self, workflow: str, exit_code: int = 0) -> list[str]:
        """End every running instance of ``workflow``; their ids."""
        ended = self.running(workflow)
        for instance in ended:
            finish_instance(
                self.client,
                workflow,
                instance,
                exit_code=exit_code,
                start=self.clock(),
                end=self.clock(),
            )
        return ended

    def calls(self, hook: str) -> list[dict[str, Any]]:
        return self.hooks.named(hook)
