"""``retry`` and ``redo``: run finished jobs again.

A job runs again with the events its earlier execution consumed, so the
values its upstream jobs passed on (event attributes) are the same the
second time. Running an instance again removes its ARCHIVE signal, since
it is no longer finished.
"""

import time

from pinball_core.commands.workflow._shared import (
    Context,
    JobToken,
    WorkflowCommandError,
    archived_instance,
    archived_instances,
    check_cap,
    insert_new_instance,
    instance_tokens,
    jobs_of,
    listing,
    modify_with_retries,
    own_signal_tokens,
    plural,
    refuse_if_aborted,
    renamed,
    require_active,
    runnable_token,
    say,
    unknown_jobs,
)
from pinball_core.errors import NotFoundError, VersionConflictError
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import ARCHIVE, Job
from pinball_core.workflow.status import InstanceSummary, read_instances


def retry(ctx: Context) -> int:
    """Run the failed jobs of an instance again.

    In an active instance the failed jobs move back to runnable. An
    archived instance is copied into a new one in which the failed jobs (and
    those that never got to run) are runnable and the rest wait as they were.
    An archived instance is copied once: retrying it again is refused,
    naming its copy, which is the one to retry from then on.
    """
    tokens = instance_tokens(ctx)
    if jobs_of(tokens):
        return _retry_active(ctx)
    archived = archived_instance(ctx)
    if archived is None:
        raise WorkflowCommandError(
            f"{ctx.where()} is neither active nor archived; check the names with "
            f"`pinball workflow status -w {ctx.workflow}`"
        )
    return _retry_archived(ctx, archived[0])


def redo(ctx: Context) -> int:
    """Run execution ``-e N`` (counted from 0) of one finished job again."""
    if len(ctx.jobs) != 1:
        raise WorkflowCommandError(
            f"redo runs one job again; give one job name with -j, got {ctx.args.jobs!r}"
        )
    [name] = ctx.jobs
    execution: int = ctx.args.execution
    tokens = instance_tokens(ctx)
    if not jobs_of(tokens) and archived_instance(ctx) is not None:
        raise WorkflowCommandError(
            f"{ctx.where()} is archived; redo needs an active instance. Copy it "
            "into a new one with `pinball workflow retry` first"
        )
    require_active(ctx, tokens)
    jobs = jobs_of(tokens)
    unknown_jobs(ctx, [name], jobs)
    refuse_if_aborted(ctx)

    found = jobs[name]
    if found.state != names.WAITING:
        raise WorkflowCommandError(
            f"job {name} of {ctx.where()} is queued or running; redo runs a "
            "finished job again, so wait for it to end"
        )
    if found.token.owner:
        raise WorkflowCommandError(
            f"job {name} of {ctx.where()} is held by {found.token.owner!r}; "
            "resume the instance first"
        )
    history = found.job.history
    if not 0 <= execution < len(history):
        have = f"executions 0 to {len(history) - 1}" if history else "never run"
        raise WorkflowCommandError(
            f"job {name} of {ctx.where()} has no execution {execution}: it has {have}"
        )
    if not ctx.confirm(f"run execution {execution} of job {name} again?"):
        say("nothing changed")
        return 0

    job = found.job
    job.events = list(history[execution].events)
    update = runnable_token(ctx.workflow, ctx.instance, name, job, found.token.priority)
    deletes = [found.token, *own_signal_tokens(ctx, tokens, ARCHIVE)]
    try:
        ctx.client.modify(updates=[update], deletes=deletes)
    except (VersionConflictError, NotFoundError) as exc:
        raise WorkflowCommandError(
            f"job {name} of {ctx.where()} changed while it was being redone; "
            "nothing was changed, run the command again"
        ) from exc
    say(f"redoing execution {execution} of job {name} in {ctx.where()}")
    return 0


def _retry_active(ctx: Context) -> int:
    refuse_if_aborted(ctx)
    failed = sorted(_failed(jobs_of(instance_tokens(ctx))))
    if not failed:
        say(f"nothing to retry in {ctx.where()}: no finished job has failed")
        return 0
    check_cap(ctx, adding_to=ctx.instance)
    if not ctx.confirm(
        f"retry {plural(len(failed), 'failed job')}: {listing(failed)}?"
    ):
        say("nothing changed")
        return 0

    retried: list[str] = []

    def plan() -> tuple[list[Token], list[Token]] | None:
        # Read again: only jobs that are still failed and waiting are moved.
        tokens = instance_tokens(ctx)
        current = _failed(jobs_of(tokens))
        chosen = [current[name] for name in failed if name in current]
        retried[:] = [found.name for found in chosen]
        if not chosen:
            return None
        updates = [_again(ctx.workflow, ctx.instance, found) for found in chosen]
        deletes = [found.token for found in chosen]
        # Counted again with each try: an instance that finished meanwhile
        # runs again as one more, and the guard keeps that within the cap.
        ctx.now = time.time()
        guard = check_cap(ctx, adding_to=ctx.instance)
        return updates + guard, deletes + own_signal_tokens(ctx, tokens, ARCHIVE)

    if not modify_with_retries(ctx, plan, f"retry the failed jobs of {ctx.where()}"):
        say(f"nothing to retry in {ctx.where()}: its failed jobs changed meanwhile")
        return 0
    say(f"retried {plural(len(retried), 'job')} of {ctx.where()}: {listing(retried)}")
    return 0


def _retry_archived(ctx: Context, tokens: list[Token]) -> int:
    _refuse_if_copied(ctx)
    jobs = jobs_of(tokens)
    rerun = sorted(name for name, found in jobs.items() if _unfinished(found))
    if not rerun:
        say(f"nothing to retry in archived {ctx.where()}: every job succeeded")
        return 0
    check_cap(ctx)
    if not ctx.confirm(
        f"copy archived {ctx.where()} into a new instance that runs "
        f"{listing(rerun)} again?"
    ):
        say("nothing changed")
        return 0

    old_prefix = names.instance_prefix(ctx.workflow, ctx.instance)

    def build(instance: str) -> list[Token]:
        new_prefix = names.instance_prefix(ctx.workflow, instance)
        copied = []
        for name, found in jobs.items():
            if name in rerun:
                copied.append(_again(ctx.workflow, instance, found))
            else:
                waiting = names.job_name(ctx.workflow, instance, names.WAITING, name)
                copied.append(
                    Token(waiting, priority=found.token.priority, data=found.token.data)
                )
        # Queued events come along; signals (ARCHIVE, ABORT) stay behind.
        for token in tokens:
            if names.parse_event_name(token.name) is not None:
                copied.append(renamed(token, old_prefix, new_prefix))
        return copied

    instance, _ = insert_new_instance(ctx, build)
    say(
        f"retried archived {ctx.where()} as instance {instance} "
        f"({names.instance_prefix(ctx.workflow, instance)}): running "
        f"{listing(rerun)} again"
    )
    return 0


def _refuse_if_copied(ctx: Context) -> None:
    """Refuse to copy an archived instance that a retry has copied before.

    A second copy would run the same jobs again beside the first. A copy is
    known by the runs of this instance its jobs carry in their history; if
    there are several (a copy retried in turn), the newest is named, an
    active one first. An instance in which no job ever ran leaves no runs
    to know its copies by, so it is the one kind this cannot tell; nor can
    it stop two retries made at the same moment.
    """
    candidates = [
        *read_instances(ctx.client, ctx.workflow, ctx.now),
        *archived_instances(ctx),
    ]
    copies = [
        summary
        for summary in candidates
        if summary.instance != ctx.instance and _ran_in(summary, ctx.instance)
    ]
    if not copies:
        return
    copy = max(copies, key=lambda s: (not s.archived, _id_order(s.instance)))
    state = f"archived, {copy.status}" if copy.archived else str(copy.status)
    raise WorkflowCommandError(
        f"{ctx.where()} was already retried as instance {copy.instance} ({state}), "
        "which carries its jobs on; retry that one instead: `pinball workflow "
        f"retry -w {ctx.workflow} -i {copy.instance}`"
    )


def _ran_in(summary: InstanceSummary, instance: str) -> bool:
    """Whether a job of ``summary`` has a run recorded in ``instance``."""
    return any(
        record.instance == instance
        for job in summary.jobs
        for record in job.job.history
    )


def _id_order(instance: str) -> tuple[int, str]:
    # Ids made here are times in milliseconds: a longer one is a later one.
    return len(instance), instance


def _failed(jobs: dict[str, JobToken]) -> dict[str, JobToken]:
    """Waiting jobs whose last execution failed, by name."""
    return {
        name: found
        for name, found in jobs.items()
        if found.state == names.WAITING
        and not found.job.disabled
        and found.job.last is not None
        and not found.job.last.succeeded
    }


def _unfinished(found: JobToken) -> bool:
    """Whether a job of an archived instance has to run in its copy.

    That is one that failed, or was stopped while running or queued.
    """
    if found.state == names.RUNNABLE:
        return True
    last = found.job.last
    return last is not None and not last.succeeded and not found.job.disabled


def _again(workflow: str, instance: str, found: JobToken) -> Token:
    """A runnable token that runs ``found`` again with its last events."""
    job: Job = found.job
    if not job.events and job.last is not None:
        job.events = list(job.last.events)
    return runnable_token(workflow, instance, found.name, job, found.token.priority)
