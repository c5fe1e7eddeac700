"""``poison``: run a part of a workflow, from chosen jobs down.

The roots and every job downstream of them form the poisoned set. Each
input of a job in the set that no job of the set feeds gets a new event
(``poison_<k>``, created by ``analyzer``), so the roots can run at once and
the rest of the set runs as its upstream jobs in the set finish; no job
outside the set runs. A job of the set that has an event on every input is
made runnable right away, consuming one event per input, as a finishing
job would do it.

The jobs come from the active instance named with ``-i``, from an archived
one (copied into a new instance with fresh histories), or, without ``-i``,
from the parser's current definitions (a new instance).
"""

import dataclasses
from collections.abc import Iterable, Mapping

from pinball_core.commands.workflow._shared import (
    Context,
    JobToken,
    WorkflowCommandError,
    archived_instance,
    check_cap,
    definition_tokens,
    insert_new_instance,
    instance_tokens,
    jobs_of,
    listing,
    modify_with_retries,
    own_signal_tokens,
    plural,
    refuse_if_aborted,
    require_defined,
    say,
)
from pinball_core.token import Token
from pinball_core.workflow import names, transitions
from pinball_core.workflow.model import ARCHIVE, Event, Job

#: The creator recorded on poison events, as the original named it.
CREATOR = "analyzer"

EVENT_PREFIX = "poison_"


@dataclasses.dataclass
class Poisoning:
    """What poisoning an instance changes."""

    #: Jobs that will run: the roots and everything downstream of them.
    jobs: list[str]
    updates: list[Token] = dataclasses.field(default_factory=list)
    deletes: list[Token] = dataclasses.field(default_factory=list)
    #: Jobs made runnable at once.
    runnable: list[str] = dataclasses.field(default_factory=list)
    new_events: int = 0


def downstream(jobs: Mapping[str, Job], roots: Iterable[str]) -> list[str]:
    """The roots and every job reachable from them by outputs, sorted."""
    found: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found or name not in jobs:
            continue
        found.add(name)
        pending.extend(jobs[name].outputs)
    return sorted(found)


def poison(ctx: Context) -> int:
    """Run the ``-j`` jobs and everything downstream of them."""
    roots = ctx.jobs
    if not roots:
        raise WorkflowCommandError("poison needs the root jobs to run: give -j JOBS")
    if ctx.args.instance is None:
        return _poison_new(ctx, roots, _from_parser(ctx), "the parser's definitions")

    tokens = instance_tokens(ctx)
    if jobs_of(tokens):
        return _poison_active(ctx, roots)
    archived = archived_instance(ctx)
    if archived is None:
        raise WorkflowCommandError(
            f"{ctx.where()} is neither active nor archived; check the names with "
            f"`pinball workflow status -w {ctx.workflow}`, or leave out -i to "
            "poison a new instance from the definitions"
        )
    jobs = {name: _fresh(found) for name, found in jobs_of(archived[0]).items()}
    return _poison_new(ctx, roots, jobs, f"archived instance {ctx.instance}")


def plan(
    workflow: str,
    instance: str,
    jobs: Mapping[str, JobToken],
    events: Iterable[Token],
    roots: Iterable[str],
) -> Poisoning:
    """The change that poisons ``roots`` among ``jobs`` of one instance.

    ``events`` are the instance's queued event tokens. Jobs that are
    runnable already are in the set but get no events: they are about to
    run anyway.
    """
    definitions = {name: found.job for name, found in jobs.items()}
    chosen = downstream(definitions, roots)
    result = Poisoning(jobs=chosen)

    queued: dict[tuple[str, str], list[Token]] = {}
    for token in events:
        parsed = names.parse_event_name(token.name)
        if parsed is not None:
            queued.setdefault((parsed.job, parsed.upstream), []).append(token)
    taken = {token.name for tokens in queued.values() for token in tokens}
    counter = 0

    for name in chosen:
        found = jobs[name]
        if found.state != names.WAITING:
            continue
        inputs = found.job.inputs or [names.WORKFLOW_START]
        fresh: dict[str, Token] = {}
        for upstream in inputs:
            if upstream in chosen:
                continue
            while True:
                event_name = names.event_name(
                    workflow, instance, name, upstream, f"{EVENT_PREFIX}{counter}"
                )
                counter += 1
                if event_name not in taken:
                    break
            fresh[upstream] = Token(
                event_name,
                priority=found.token.priority,
                data=Event(creator=CREATOR).to_json(),
            )
        result.new_events += len(fresh)
        _ready_or_queue(workflow, instance, found, inputs, queued, fresh, result)
    return result


def _ready_or_queue(
    workflow: str,
    instance: str,
    found: JobToken,
    inputs: list[str],
    queued: Mapping[tuple[str, str], list[Token]],
    fresh: Mapping[str, Token],
    result: Poisoning,
) -> None:
    """Make ``found`` runnable if every input has an event, else queue the new ones."""
    events: dict[str, list[Token]] = {}
    for upstream in inputs:
        if upstream in fresh:
            events[upstream] = [fresh[upstream]]
        elif queued.get((found.name, upstream)):
            events[upstream] = list(queued[(found.name, upstream)])
        else:
            result.updates.extend(fresh.values())
            return

    old = found.token if found.token.version is not None else None
    change = transitions.Change()
    transitions.move(
        change,
        workflow,
        instance,
        found.name,
        found.token.priority,
        found.job,
        events,
        old,
    )
    result.updates.extend(change.updates)
    result.deletes.extend(change.deletes)
    result.runnable.append(found.name)


def _poison_active(ctx: Context, roots: list[str]) -> int:
    refuse_if_aborted(ctx)
    _check_roots(ctx, roots, jobs_of(instance_tokens(ctx)))
    preview = _plan_active(ctx, roots)
    if not ctx.confirm(
        f"poison {ctx.where()} from {listing(roots)}: run {listing(preview.jobs)}?"
    ):
        say("nothing changed")
        return 0

    done: list[Poisoning] = []

    def change() -> tuple[list[Token], list[Token]]:
        planned = _plan_active(ctx, roots)
        done[:] = [planned]
        return planned.updates, planned.deletes

    modify_with_retries(ctx, change, f"poison {ctx.where()}")
    [result] = done
    say(
        f"poisoned {ctx.where()} from roots {listing(roots)}: "
        f"{listing(result.jobs)} will run "
        f"({plural(result.new_events, 'new event')})"
    )
    return 0


def _plan_active(ctx: Context, roots: list[str]) -> Poisoning:
    # Only this instance's tokens: other instances' jobs must not mix in.
    tokens = instance_tokens(ctx)
    result = plan(ctx.workflow, ctx.instance, jobs_of(tokens), tokens, roots)
    result.deletes.extend(own_signal_tokens(ctx, tokens, ARCHIVE))
    return result


def _poison_new(
    ctx: Context, roots: list[str], jobs: Mapping[str, JobToken], source: str
) -> int:
    _check_roots(ctx, roots, jobs, source)
    will_run = downstream({n: f.job for n, f in jobs.items()}, roots)
    check_cap(ctx)
    if not ctx.confirm(
        f"start a new instance of workflow {ctx.workflow} from {source} that "
        f"runs only {listing(will_run)}?"
    ):
        say("nothing changed")
        return 0

    def build(instance: str) -> list[Token]:
        moved = {
            name: _in_instance(ctx.workflow, instance, f) for name, f in jobs.items()
        }
        result = plan(ctx.workflow, instance, moved, [], roots)
        waiting = [f.token for n, f in moved.items() if n not in result.runnable]
        return [*waiting, *result.updates]

    instance, _ = insert_new_instance(ctx, build)
    say(
        f"poisoned workflow {ctx.workflow} from roots {listing(roots)} as new "
        f"instance {instance} ({names.instance_prefix(ctx.workflow, instance)}): "
        f"{listing(will_run)} will run"
    )
    return 0


def _from_parser(ctx: Context) -> dict[str, JobToken]:
    parser = ctx.make_parser()
    require_defined(
        ctx.app, parser, ctx.workflow, "give -i to poison an existing instance"
    )
    # The instance id is a placeholder: the jobs move to the new id later.
    tokens = definition_tokens(parser, ctx.workflow, "0")
    return {name: _fresh(found) for name, found in jobs_of(tokens).items()}


def _fresh(found: JobToken) -> JobToken:
    """``found`` as a waiting job that never ran and has no pending events."""
    job = found.job
    job.history = []
    job.events = []
    token = Token(found.token.name, priority=found.token.priority)
    return JobToken(found.name, names.WAITING, token, job)


def _in_instance(workflow: str, instance: str, found: JobToken) -> JobToken:
    """``found``, a fresh waiting job, as a new token of ``instance``."""
    name = names.job_name(workflow, instance, names.WAITING, found.name)
    token = Token(name, priority=found.token.priority, data=found.job.to_json())
    job = Job.from_json(token.data)
    return JobToken(found.name, names.WAITING, token, job)


def _check_roots(
    ctx: Context,
    roots: list[str],
    jobs: Mapping[str, JobToken],
    source: str | None = None,
) -> None:
    missing = [name for name in roots if name not in jobs]
    if missing:
        where = source or ctx.where()
        raise WorkflowCommandError(
            f"no job {listing(missing)} in {where}; its jobs are: "
            f"{listing(sorted(jobs))}"
        )
