"""The status of jobs, instances and workflows, worked out from their tokens.

Every part of Pinball that shows or acts on a status (the command line, the
UI, the cap on running instances) calls these functions, so they all agree.
They take tokens rather than a client, so that archived tokens read from the
store give the same answers as active ones read from the master.

A job's status comes from its token alone: which folder it is in (waiting
or runnable), whether it is leased, and its execution records. An
instance's status comes from its job, event and signal tokens. A workflow's
comes from its instances.
"""

import dataclasses
import enum
import json
import logging
from collections.abc import Iterable, Mapping

from pinball_core.client import MasterClient
from pinball_core.protocol import Query
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import (
    ABORT,
    ARCHIVE,
    ExecutionRecord,
    Job,
    PayloadError,
    Signal,
)
from pinball_core.workflow.signals import parse_signals

log = logging.getLogger(__name__)

#: How ``ExecutionRecord.reason`` begins when an ABORT (or a stopping
#: worker) ended the run, rather than the job's own exit or a timeout.
ABORTED_REASON_PREFIX = "aborted"

#: How owners of tokens leased by ``workflow pause`` begin: such a lease
#: holds a job back, it does not run it.
PAUSE_OWNER_PREFIX = "paused by "


class Status(enum.StrEnum):
    """The status of a job, an instance or a workflow."""

    #: Never ran, and is not ready to: it waits for its upstream jobs.
    NEVER_RUN = "NEVER_RUN"
    #: Ready to run, waiting for a worker to claim it.
    QUEUED = "QUEUED"
    #: A worker is running it (or has claimed it and is starting it).
    RUNNING = "RUNNING"
    #: Its last attempt failed and it will be tried again, maybe after a delay.
    RETRY_PENDING = "RETRY_PENDING"
    #: A condition job whose check did not hold yet; it is checked again.
    CONDITION_PENDING = "CONDITION_PENDING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    #: Set to be skipped: it runs as an instant success.
    DISABLED = "DISABLED"
    #: Stopped by an ABORT signal.
    ABORTED = "ABORTED"


@dataclasses.dataclass(frozen=True, slots=True)
class JobSummary:
    """One job of an instance, as shown to people."""

    name: str
    status: Status
    #: ``waiting`` or ``runnable``: where its token is.
    state: str
    job: Job
    priority: float
    owner: str | None
    #: Executions recorded, including those of earlier instances it was
    #: copied from.
    attempts: int
    last_exit_code: int | None
    #: Start of its first execution and end of its last, if any.
    start: float | None
    end: float | None

    @property
    def last(self) -> ExecutionRecord | None:
        return self.job.last


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceSummary:
    """One instance of a workflow and the status of each of its jobs."""

    workflow: str
    instance: str
    status: Status
    #: When its first job started in it; None if none has. Runs its jobs
    #: were copied with, from the archived instance it retries, do not count.
    start: float | None
    #: When it finished; None while it runs.
    end: float | None
    jobs: tuple[JobSummary, ...]
    #: Whether its tokens are in the store's archive rather than the master.
    archived: bool = False

    @property
    def failed_jobs(self) -> list[str]:
        return [j.name for j in self.jobs if j.status in _FAILED]

    @property
    def running_jobs(self) -> list[str]:
        return [j.name for j in self.jobs if j.status is Status.RUNNING]

    @property
    def is_running(self) -> bool:
        return self.status is Status.RUNNING


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """A workflow as shown in lists: the status of its most telling instance.

    While any instance runs, that is the running instance that started last;
    otherwise the one that finished last.
    """

    workflow: str
    status: Status
    last_instance: str | None
    start: float | None
    end: float | None
    running_instances: int
    #: Newest first, by start; those that have not started come first.
    instances: tuple[InstanceSummary, ...]


_FAILED = frozenset({Status.FAILURE, Status.ABORTED})


def job_status(
    token: Token,
    job: Job,
    now: float,
    *,
    abort_time: float | None = None,
    archived: bool = False,
) -> Status:
    """The status of the job held by ``token``.

    ``job`` is the token's payload, already parsed; ``now`` tells whether
    the lease of a running job is still in force. ``abort_time`` is when
    an ABORT signal that applies to the job's instance was set, if one was:
    a job that was stopped by it, or that is still queued and so will never
    run, is then ABORTED. In an ``archived`` instance nothing runs any more,
    so only the job's last execution counts, wherever its token was.
    """
    parsed = names.parse_job_name(token.name)
    runnable = parsed is not None and parsed.state == names.RUNNABLE and not archived
    instance = parsed.instance if parsed is not None else ""
    last = job.last

    if runnable:
        if last is not None and not last.finished:
            # An open run whose lease has lapsed lost its worker: the next
            # worker to claim the job records it as failed and goes on.
            return Status.RUNNING if token.is_owned(now) else Status.QUEUED
        if abort_time is not None:
            return Status.ABORTED
        # A failed job made runnable again by hand (``workflow retry``) has
        # used up its attempts: it is queued, not pending a retry. One whose
        # worker was lost (or stopped with it) did not fail: it runs again
        # as soon as a worker claims it, with no delay, so it is queued too.
        if (
            last is not None
            and not last.succeeded
            and not last.lost
            and job.can_retry(instance)
        ):
            return Status.CONDITION_PENDING if job.condition else Status.RETRY_PENDING
        # A lease without an open execution is not a run: a worker parks a
        # drained job that way, and pause holds jobs so. A worker that has
        # just claimed the job shows it RUNNING once it records the start.
        return Status.DISABLED if job.disabled else Status.QUEUED

    if last is None:
        return Status.DISABLED if job.disabled else Status.NEVER_RUN
    if job.disabled:
        return Status.DISABLED
    if last.succeeded:
        return Status.SUCCESS
    if _was_aborted(last, abort_time):
        return Status.ABORTED
    return Status.FAILURE


def instance_status(
    tokens: Iterable[Token],
    now: float,
    *,
    archived: bool = False,
    signals: Mapping[str, tuple[Token, Signal]] | None = None,
) -> InstanceSummary | None:
    """The status of the instance whose tokens (jobs, events, signals) are given.

    ``signals`` are those that apply to it from every level, as
    :func:`~pinball_core.workflow.signals.read_signals` returns them; without
    them only the instance's own signal tokens among ``tokens`` count.
    ``archived`` tells that the tokens come from the store's archive, so the
    instance has finished whatever its tokens say. Returns None if there is
    no job token among ``tokens``.

    An instance is finished when no job is running and either it was
    archived, the worker stamped its ARCHIVE signal with a due time, or
    nothing is runnable and no waiting job has an event on every input. A
    finished instance failed if any job's last execution failed.
    """
    jobs, events, own_signals = _sort(tokens)
    if not jobs:
        return None
    if signals is None:
        signals = own_signals
    workflow = jobs[0][0].workflow
    instance = jobs[0][0].instance

    abort = signals.get(ABORT)
    abort_time = None
    if abort is not None:
        # An ABORT without a time (written by hand) still aborts.
        abort_time = abort[1].timestamp if abort[1].timestamp is not None else 0.0

    summaries = []
    for parsed, token, job in sorted(jobs, key=lambda j: j[0].job):
        status = job_status(token, job, now, abort_time=abort_time, archived=archived)
        summaries.append(_summary(parsed, token, job, status))

    running = any(s.status is Status.RUNNING for s in summaries)
    archive = signals.get(ARCHIVE)
    stamped = archive is not None and archive[1].timestamp is not None
    finished = not running and (
        archived or stamped or not _has_work(jobs, events, abort_time)
    )

    # Jobs copied from an archived instance (``workflow retry``) bring its
    # runs along; this instance started with the first run of its own.
    start = _earliest(
        record.start_time
        for _, _, job in jobs
        for record in job.history
        if record.instance == instance
    )
    if abort_time is not None:
        status = Status.ABORTED
    elif not finished:
        status = Status.RUNNING
    elif any(s.status in _FAILED for s in summaries):
        status = Status.FAILURE
    else:
        status = Status.SUCCESS

    end = None
    if status is not Status.RUNNING and not running:
        end = _latest([*(s.end for s in summaries), abort_time or None, start])
    if start is None and status is Status.ABORTED:
        start = end
    return InstanceSummary(
        workflow=workflow,
        instance=instance,
        status=status,
        start=start,
        end=end,
        jobs=tuple(summaries),
        archived=archived,
    )


def workflow_summary(
    workflow: str, instances: Iterable[InstanceSummary]
) -> WorkflowSummary:
    """The status of ``workflow`` from its instances; NEVER_RUN if none.

    The instances are kept newest first (see :func:`_newest_first`), so that
    a long list shows the recent ones, which the header names, at the top.
    """
    ordered = sorted(instances, key=lambda i: (i.start or 0.0, i.instance))
    running = [i for i in ordered if i.is_running]
    if running:
        last = running[-1]
    elif ordered:
        # An instance that never ran to an end counts by its start.
        last = max(ordered, key=lambda i: (i.end or i.start or 0.0, i.instance))
    else:
        return WorkflowSummary(workflow, Status.NEVER_RUN, None, None, None, 0, ())
    return WorkflowSummary(
        workflow=workflow,
        status=last.status,
        last_instance=last.instance,
        start=last.start,
        end=last.end,
        running_instances=len(running),
        instances=tuple(sorted(ordered, key=_newest_first, reverse=True)),
    )


def _newest_first(summary: InstanceSummary) -> tuple[bool, float, int, str]:
    """A sort key, to be reversed, that puts the newest instance first.

    By start; one that has not started yet (just started, held back by a
    DRAIN, or a retry's copy) counts as newer than any that has. Instance
    ids are the time they were made, so a longer id is the newer one.
    """
    not_started = summary.start is None
    return not_started, summary.start or 0.0, len(summary.instance), summary.instance


def instances_of(
    tokens: Iterable[Token],
    now: float,
    *,
    archived: bool = False,
    signals: Mapping[str, tuple[Token, Signal]] | None = None,
) -> list[InstanceSummary]:
    """The status of every instance among ``tokens``, which may span workflows.

    ``signals`` are the global and workflow-level ones; each instance's own
    signal tokens among ``tokens`` are added to them.
    """
    by_instance: dict[tuple[str, str], list[Token]] = {}
    for token in tokens:
        key = _instance_of(token.name)
        if key is not None:
            by_instance.setdefault(key, []).append(token)

    found = []
    for group in by_instance.values():
        applying = dict(signals or {})
        applying.update(_sort(group)[2])
        summary = instance_status(group, now, archived=archived, signals=applying)
        if summary is not None:
            found.append(summary)
    return found


# -- Reading from the master ----------------------------------------------------


def read_instance(
    client: MasterClient, workflow: str, instance: str, now: float
) -> InstanceSummary | None:
    """The status of an active instance, or None if the master has no job of it.

    Its tokens and the signals of every level are read in one request.
    """
    global_signals, workflow_signals, tokens = client.query_many(
        [
            Query(names.signal_prefix()),
            Query(names.signal_prefix(workflow)),
            Query(names.instance_prefix(workflow, instance)),
        ]
    )
    own = [
        t for t in tokens if t.name.startswith(names.signal_prefix(workflow, instance))
    ]
    applying = parse_signals([*global_signals, *workflow_signals, *own])
    return instance_status(tokens, now, signals=applying)


def read_instances(
    client: MasterClient, workflow: str, now: float
) -> list[InstanceSummary]:
    """The status of every active instance of ``workflow``, in one request."""
    global_signals, tokens = client.query_many(
        [Query(names.signal_prefix()), Query(names.workflow_prefix(workflow))]
    )
    workflow_level = names.signal_prefix(workflow)
    wider = [*global_signals, *(t for t in tokens if t.name.startswith(workflow_level))]
    return instances_of(tokens, now, signals=parse_signals(wider))


def running_cap(client: MasterClient, workflow: str, default: int) -> tuple[int, str]:
    """How many instances of ``workflow`` may run at once, and where that is set.

    The workflow's schedule token decides when it has a
    ``max_running_instances``; otherwise ``default`` (the config's
    ``default_max_workflow_running_instances``). A workflow with no schedule
    is not an error: it is started by hand and takes the default.
    """
    name = names.schedule_name(workflow)
    for token in client.query(name):
        if token.name != name:
            continue
        try:
            cap = json.loads(token.data or "{}").get("max_running_instances")
        except (ValueError, AttributeError):
            log.warning("schedule %s has data that is not a JSON object", name)
            break
        if cap is None:
            break
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            return cap, f"its schedule {name}"
        log.warning(
            "schedule %s: max_running_instances must be a positive integer, got %r",
            name,
            cap,
        )
        break
    return default, "default_max_workflow_running_instances"


def may_start(running: int, cap: int) -> bool:
    """Whether another instance may start with ``running`` already running.

    The one rule for every starter (the scheduler, ``workflow start`` and
    ``workflow retry``): the cap is the most that may run, so a workflow at
    its cap starts nothing more.
    """
    return running < cap


def is_paused(token: Token) -> bool:
    """Whether ``token`` is held by ``workflow pause`` rather than a worker."""
    return bool(token.owner) and str(token.owner).startswith(PAUSE_OWNER_PREFIX)


# -- Helpers ------------------------------------------------------------------


def _was_aborted(record: ExecutionRecord, abort_time: float | None) -> bool:
    if record.reason is not None and record.reason.startswith(ABORTED_REASON_PREFIX):
        return True
    ended = record.end_time
    return abort_time is not None and (ended is None or ended >= abort_time)


def _summary(
    parsed: names.JobTokenName, token: Token, job: Job, status: Status
) -> JobSummary:
    first = job.history[0] if job.history else None
    last = job.last
    return JobSummary(
        name=parsed.job,
        status=status,
        state=parsed.state,
        job=job,
        priority=token.priority,
        owner=token.owner,
        attempts=len(job.history),
        last_exit_code=last.exit_code if last is not None else None,
        start=first.start_time if first is not None else None,
        end=last.end_time if last is not None else None,
    )


_Jobs = list[tuple[names.JobTokenName, Token, Job]]
_Events = dict[tuple[str, str], int]


def _sort(
    tokens: Iterable[Token],
) -> tuple[_Jobs, _Events, dict[str, tuple[Token, Signal]]]:
    """Job tokens (parsed), event counts by (job, upstream), signals by action."""
    jobs: _Jobs = []
    events: _Events = {}
    signal_tokens: list[Token] = []
    for token in tokens:
        parsed_job = names.parse_job_name(token.name)
        if parsed_job is not None:
            try:
                jobs.append((parsed_job, token, Job.from_json(token.data)))
            except PayloadError as exc:
                log.warning("ignoring job token %s: %s", token.name, exc)
            continue
        parsed_event = names.parse_event_name(token.name)
        if parsed_event is not None:
            key = (parsed_event.job, parsed_event.upstream)
            events[key] = events.get(key, 0) + 1
            continue
        if f"/{names.SIGNAL}/" in token.name:
            signal_tokens.append(token)
    return jobs, events, parse_signals(signal_tokens)


def _has_work(jobs: _Jobs, events: _Events, abort_time: float | None) -> bool:
    """Whether a job is runnable, or waiting with an event on every input."""
    if abort_time is not None:
        # Workers start nothing more in an aborted instance.
        return False
    for parsed, _, job in jobs:
        if parsed.state == names.RUNNABLE:
            return True
        inputs = job.inputs or [names.WORKFLOW_START]
        if all(events.get((parsed.job, upstream)) for upstream in inputs):
            return True
    return False


def _instance_of(name: str) -> tuple[str, str] | None:
    """The (workflow, instance) a token name belongs to, if any."""
    parts = name.split("/")
    # '', 'workflow', wf, instance, ...
    if len(parts) < 5 or parts[1] != "workflow":
        return None
    if names.SIGNAL in (parts[2], parts[3]):
        return None
    return parts[2], parts[3]


def _earliest(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _latest(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
