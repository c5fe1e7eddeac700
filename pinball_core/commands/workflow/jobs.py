"""``disable``, ``enable`` and ``reload``: change the jobs of an active instance.

A job token that a worker leases belongs to that worker until it lets go:
writing it would make the worker's next lease renewal fail and kill the
job. So these commands leave such jobs alone and say which they skipped;
run them again once the jobs have ended.
"""

import logging

from pinball_core.commands.workflow._shared import (
    Context,
    JobToken,
    WorkflowCommandError,
    definition_tokens,
    instance_tokens,
    jobs_of,
    listing,
    modify_with_retries,
    operator,
    plural,
    require_active,
    require_defined,
    say,
    unknown_jobs,
)
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Job
from pinball_core.workflow.status import is_paused

log = logging.getLogger(__name__)

#: What ``reload`` takes from the definitions; history, events, edges and
#: ``disabled`` stay as the instance has them.
RELOADED_FIELDS = (
    "kind",
    "command",
    "emails",
    "max_attempts",
    "retry_delay_sec",
    "retry_backoff",
    "max_retry_delay_sec",
    "warn_timeout_sec",
    "abort_timeout_sec",
)

# How long reload holds the job tokens it is rewriting.
_RELOAD_LEASE_SEC = 60.0


def disable(ctx: Context) -> int:
    """Make the ``-j`` jobs run as instant successes."""
    return _set_disabled(ctx, True)


def enable(ctx: Context) -> int:
    """Make the ``-j`` jobs run their commands again."""
    return _set_disabled(ctx, False)


def reload(ctx: Context) -> int:
    """Update the instance's jobs from the parser's current definitions.

    The job tokens are claimed with one ``query_and_own`` of the instance's
    job folder, which takes only tokens no worker leases, so a running job
    is never rewritten under its worker. Claimed tokens are written back
    released, with the new definitions for the jobs asked for.
    """
    tokens = instance_tokens(ctx)
    require_active(ctx, tokens)
    jobs = jobs_of(tokens)
    wanted = ctx.jobs or sorted(jobs)
    unknown_jobs(ctx, wanted, jobs)

    parser = ctx.make_parser()
    require_defined(ctx.app, parser, ctx.workflow, "nothing to reload from")
    defined = jobs_of(definition_tokens(parser, ctx.workflow, ctx.instance))
    gone = [name for name in wanted if name not in defined]
    if not ctx.confirm(
        f"reload {plural(len(wanted), 'job')} of {ctx.where()} from the "
        f"definitions: {listing(wanted)}?"
    ):
        say("nothing changed")
        return 0

    claimed = ctx.client.query_and_own(
        f"pinball workflow reload by {operator()}",
        names.job_prefix(ctx.workflow, ctx.instance),
        lease_sec=_RELOAD_LEASE_SEC,
    )
    held = {found.name: found for found in jobs_of(claimed).values()}
    # Paused tokens are held by the operator, not a worker: safe to rewrite.
    for name, found in jobs_of(instance_tokens(ctx)).items():
        if name not in held and is_paused(found.token):
            held[name] = found

    reloaded: list[str] = []
    updates: list[Token] = []
    for name, found in held.items():
        token = found.token
        if name in wanted and name in defined:
            _apply(found.job, defined[name].job)
            token.data = found.job.to_json()
            token.priority = defined[name].token.priority
            reloaded.append(name)
        if not is_paused(token):
            token.owner = None
            token.expiration = None
        updates.append(token)
    if updates:
        ctx.client.modify(updates=updates)

    running = sorted(set(wanted) - set(held))
    say(
        f"reloaded {plural(len(reloaded), 'job')} of {ctx.where()}: "
        f"{listing(sorted(reloaded))}"
    )
    if gone:
        say(f"not in the definitions any more, left as they were: {listing(gone)}")
    if running:
        say(f"skipped, leased by a worker: {listing(running)}; reload them once done")
    return 1 if running else 0


def _apply(job: Job, definition: Job) -> None:
    for field in RELOADED_FIELDS:
        setattr(job, field, getattr(definition, field))


def _set_disabled(ctx: Context, disabled: bool) -> int:
    verb = "disable" if disabled else "enable"
    wanted = ctx.jobs
    if not wanted:
        raise WorkflowCommandError(f"{verb} needs the jobs: give -j JOBS")
    tokens = instance_tokens(ctx)
    require_active(ctx, tokens)
    unknown_jobs(ctx, wanted, jobs_of(tokens))
    if disabled and not ctx.confirm(
        f"disable {listing(wanted)} in {ctx.where()}: they will succeed without "
        "running?"
    ):
        say("nothing changed")
        return 0

    changed: list[str] = []
    unchanged: list[str] = []
    leased: list[str] = []

    def plan() -> tuple[list[Token], list[Token]] | None:
        jobs = jobs_of(instance_tokens(ctx))
        changed.clear()
        unchanged.clear()
        leased.clear()
        updates = []
        for name in wanted:
            found = jobs.get(name)
            if found is None:
                continue  # it was removed meanwhile: nothing to change
            if found.job.disabled == disabled:
                unchanged.append(name)
            elif _leased(found, ctx.now):
                leased.append(name)
            else:
                found.job.disabled = disabled
                found.token.data = found.job.to_json()
                updates.append(found.token)
                changed.append(name)
        return (updates, []) if updates else None

    modify_with_retries(ctx, plan, f"{verb} jobs of {ctx.where()}")
    say(f"{verb}d {plural(len(changed), 'job')} of {ctx.where()}: {listing(changed)}")
    if unchanged:
        say(f"already {verb}d: {listing(unchanged)}")
    if leased:
        say(f"skipped, leased by a worker: {listing(leased)}; {verb} them once done")
    return 1 if leased else 0


def _leased(found: JobToken, now: float) -> bool:
    return found.token.is_owned(now) and not is_paused(found.token)
