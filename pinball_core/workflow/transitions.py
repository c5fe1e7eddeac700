"""How a job's end changes the instance's tokens, in one atomic modify.

When a job ends, its own token moves back to waiting (or stays runnable for
a retry), the events for its downstream jobs are posted, and each downstream
job that now has an event on every input is made runnable, consuming one
event per input. Doing all of it in one modify means no worker ever has to
scan for jobs that became ready, and no instance is seen half-moved.
"""

import dataclasses
import time
import uuid
from collections.abc import Mapping

from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Event, ExecutionRecord, Job


@dataclasses.dataclass
class InstanceView:
    """What a completion needs to know about the rest of its instance.

    ``jobs`` holds the job tokens of the downstream jobs (and the finishing
    job's own, for its re-trigger), by job name; ``events`` the event tokens
    under each of their input folders, by job name then upstream name.
    """

    jobs: dict[str, Token]
    events: dict[str, dict[str, list[Token]]]


@dataclasses.dataclass
class Change:
    """The modify a completion sends, and what it made runnable."""

    updates: list[Token] = dataclasses.field(default_factory=list)
    deletes: list[Token] = dataclasses.field(default_factory=list)
    #: Names of the runnable tokens inserted, for the worker to pick from.
    made_runnable: list[Token] = dataclasses.field(default_factory=list)
    #: Waiting jobs that got an event but still lacked others when read, with
    #: how many inputs each has: an upstream job ending at the same moment may
    #: have supplied the rest, so the worker looks again once its change is in
    #: (see :func:`ready_move`), if the job holds at least that many events.
    recheck: dict[str, int] = dataclasses.field(default_factory=dict)


def prefixes_to_read(
    workflow: str, instance: str, job: Job, job_name: str
) -> list[str]:
    """The prefixes :func:`complete` needs first: the job tokens of the job and
    its outputs, and the job's own queued events.

    The outputs' queued events are read only for outputs that may be ready
    (see :func:`inputs_worth_reading`): a job fed by hundreds of upstream
    jobs would otherwise have all its events read at every one's end.
    """
    prefixes = [names.input_prefix(workflow, instance, job_name)]
    for name in [*job.outputs, job_name]:
        prefixes.append(names.job_name(workflow, instance, names.WAITING, name))
        prefixes.append(names.job_name(workflow, instance, names.RUNNABLE, name))
    return prefixes


def outputs_waiting_on_others(
    workflow: str, instance: str, upstream: str, view: InstanceView
) -> dict[str, int]:
    """Waiting outputs of ``upstream`` that also need events from other jobs,
    with how many other inputs each has."""
    waiting = {}
    for job_name, token in view.jobs.items():
        parsed = names.parse_job_name(token.name)
        if job_name == upstream or parsed is None or parsed.state != names.WAITING:
            continue
        job = Job.from_json(token.data)
        others = [name for name in job.inputs if name != upstream]
        if others and upstream in job.inputs:
            waiting[job_name] = len(others)
    return waiting


def view_of(workflow: str, instance: str, tokens: list[Token]) -> InstanceView:
    """Sort the tokens read for a completion into an :class:`InstanceView`."""
    view = InstanceView(jobs={}, events={})
    for token in tokens:
        parsed_job = names.parse_job_name(token.name)
        if parsed_job is not None:
            view.jobs[parsed_job.job] = token
            continue
        parsed_event = names.parse_event_name(token.name)
        if parsed_event is not None:
            per_job = view.events.setdefault(parsed_event.job, {})
            per_job.setdefault(parsed_event.upstream, []).append(token)
    return view


def complete(
    *,
    workflow: str,
    instance: str,
    job_name: str,
    token: Token,
    job: Job,
    succeeded: bool,
    retry_until: float | None,
    view: InstanceView,
    creator: str,
    read_at_start: bool = False,
) -> Change:
    """The change that records the end of ``job``'s last execution.

    ``token`` is the job's runnable token as the worker holds it.
    ``retry_until`` is None when the job is not retried; otherwise the job
    stays runnable, leased as a timer until that time (or free if it is now).

    ``read_at_start`` says ``view`` was read when the job started, not now.
    Whatever changed since is still safe: a token the change deletes or
    consumes carries the version read, so a change made on a view gone
    stale is refused. What it cannot see are events that arrived since, for
    the job itself or for an output that was running then; those jobs go
    into :attr:`Change.recheck`, for the worker to look at once its change
    is in, as it does for an output whose other inputs may have been
    supplied meanwhile.
    """
    change = Change(deletes=[token])
    record = job.history[-1]

    if retry_until is not None:
        change.deletes = []
        change.updates.append(
            dataclasses.replace(
                token,
                owner=creator if retry_until else None,
                expiration=retry_until or None,
                data=job.to_json(),
            )
        )
        return change

    # Surplus events that queued while the job ran may trigger it again.
    own_events = view.events.get(job_name, {})
    move(change, workflow, instance, job_name, token.priority, job, own_events, None)
    again = [t for t in change.made_runnable if t.name == token.name]
    if read_at_start and not again and job.inputs:
        change.recheck[job_name] = len(job.inputs)
    if again:
        # Runnable once more: the same token, rewritten in place (a delete and
        # an insert of one name cannot share a request).
        change.deletes.remove(token)
        index = change.updates.index(again[0])
        change.updates[index] = dataclasses.replace(again[0], version=token.version)
        change.made_runnable[change.made_runnable.index(again[0])] = change.updates[
            index
        ]

    if succeeded:
        event = Event(creator=creator, attributes=dict(record.event_attributes))
        for output in job.outputs:
            _post(change, workflow, instance, job_name, output, event, view)
            target = view.jobs.get(output)
            if read_at_start and target is not None and _is_runnable(target):
                # It may have ended since and be waiting for this very event.
                change.recheck[output] = len(Job.from_json(target.data).inputs)
    return change


def _is_runnable(token: Token) -> bool:
    parsed = names.parse_job_name(token.name)
    return parsed is not None and parsed.state == names.RUNNABLE


def _post(
    change: Change,
    workflow: str,
    instance: str,
    upstream: str,
    output: str,
    event: Event,
    view: InstanceView,
) -> None:
    """Give ``output`` an event from ``upstream``, making it runnable if ready."""
    target = view.jobs.get(output)
    queued = view.events.get(output, {})
    parsed = names.parse_job_name(target.name) if target is not None else None
    if target is not None and parsed is not None and parsed.state == names.WAITING:
        target_job = Job.from_json(target.data)
        others = [name for name in target_job.inputs if name != upstream]
        if all(queued.get(name) for name in others):
            supplied = {upstream: [_event_token_of(event, upstream)]}
            move(
                change,
                workflow,
                instance,
                output,
                target.priority,
                target_job,
                {**queued, **supplied},
                target,
            )
            return

    if target is not None and parsed is not None and parsed.state == names.WAITING:
        change.recheck[output] = len(Job.from_json(target.data).inputs)
    event_id = f"{upstream}_{uuid.uuid4().hex}"
    change.updates.append(
        Token(
            names.event_name(workflow, instance, output, upstream, event_id),
            priority=target.priority if target is not None else 0.0,
            data=event.to_json(),
        )
    )


def _event_token_of(event: Event, upstream: str) -> Token:
    # An event handed straight to its job never becomes a token of its own.
    return Token(f"/{upstream}", data=event.to_json())


def move(
    change: Change,
    workflow: str,
    instance: str,
    job_name: str,
    priority: float,
    job: Job,
    events: Mapping[str, list[Token]],
    old: Token | None,
) -> None:
    """Put ``job`` back to waiting, or straight to runnable if it is ready.

    Ready means an event on every input; one event per input is consumed,
    the first by name, and surplus events stay queued for later runs.
    """
    if old is not None:
        change.deletes.append(old)
    chosen: list[Token] = []
    for upstream in job.inputs:
        queued = sorted(events.get(upstream, []), key=lambda t: t.name)
        if not queued:
            chosen = []
            break
        chosen.append(queued[0])

    if not chosen:
        change.updates.append(
            Token(
                names.job_name(workflow, instance, names.WAITING, job_name),
                priority=priority,
                data=job.to_json(),
            )
        )
        return

    job.events = []
    for event_token in chosen:
        event = Event.from_json(event_token.data)
        job.events.append(
            {
                "name": event_token.name.rsplit("/", 1)[-1],
                "creator": event.creator,
                "attributes": event.attributes,
            }
        )
        if event_token.version is not None:
            change.deletes.append(event_token)
    # A waiting job held by a tool (a pause) stays held once runnable.
    held = old is not None and old.is_owned(time.time())
    runnable = Token(
        names.job_name(workflow, instance, names.RUNNABLE, job_name),
        priority=priority,
        data=job.to_json(),
        owner=old.owner if held and old is not None else None,
        expiration=old.expiration if held and old is not None else None,
    )
    change.updates.append(runnable)
    change.made_runnable.append(runnable)


def ready_move(
    workflow: str, instance: str, job_name: str, tokens: list[Token]
) -> Change | None:
    """The change that starts a waiting job, if it has an event on every input.

    ``tokens`` are what the master holds under the job's waiting name and its
    input folder. Of two upstream jobs ending at once, each posts its event
    and then calls this: the later look sees both events, and the job's
    version check lets only one of them start it.
    """
    view = view_of(workflow, instance, tokens)
    waiting = view.jobs.get(job_name)
    if waiting is None or names.RUNNABLE_INFIX in waiting.name:
        return None
    job = Job.from_json(waiting.data)
    queued = view.events.get(job_name, {})
    if not all(queued.get(name) for name in job.inputs):
        return None
    change = Change()
    move(change, workflow, instance, job_name, waiting.priority, job, queued, waiting)
    return change


def start_record(job: Job, instance: str, worker: str, now: float) -> ExecutionRecord:
    """A new execution record, consuming the events that made the job runnable.

    A retry reuses the events of the attempt before it, so event attributes
    survive retries.
    """
    events = job.events
    if not events and job.history and job.history[-1].instance == instance:
        events = job.history[-1].events
    record = ExecutionRecord(
        instance=instance, start_time=now, worker=worker, events=list(events)
    )
    job.history.append(record)
    job.events = []
    if job.condition:
        # A condition polls: its attempts are checks, not history worth
        # keeping; the last max_attempts of them tell the story.
        del job.history[: -job.max_attempts]
    return record
