"""``start``, ``stop``, ``pause`` and ``resume``: an instance's life by hand."""

import logging
import sys

from pinball_core.commands.workflow._shared import (
    ATTEMPTS,
    Context,
    WorkflowCommandError,
    check_cap,
    definition_tokens,
    format_time,
    insert_new_instance,
    instance_tokens,
    level_options,
    listing,
    modify_with_retries,
    operator,
    plural,
    require_active,
    require_defined,
    say,
)
from pinball_core.errors import NotFoundError, VersionConflictError
from pinball_core.protocol import Query
from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names, signals
from pinball_core.workflow.model import ABORT, DRAIN
from pinball_core.workflow.status import PAUSE_OWNER_PREFIX, is_paused

log = logging.getLogger(__name__)


def start(ctx: Context) -> int:
    """Start a new instance of the workflow from the parser's definitions."""
    parser = ctx.make_parser()
    require_defined(ctx.app, parser, ctx.workflow)
    check_cap(ctx)

    def build(instance: str) -> list[Token]:
        return definition_tokens(parser, ctx.workflow, instance)

    instance, stored = insert_new_instance(ctx, build)
    say(
        f"started workflow {ctx.workflow} instance {instance}: "
        f"{plural(len(stored), 'token')} under "
        f"{names.instance_prefix(ctx.workflow, instance)}"
    )
    _warn_of_signals(ctx)
    return 0


def _warn_of_signals(ctx: Context) -> None:
    """Warn of a DRAIN or ABORT that keeps the new instance's jobs from running.

    The instance is started all the same, as asked; but "started" alone
    would suggest that its jobs run, while a signal set days ago, at a
    level the operator may not think of, holds them back. Each level is
    named, since removing the signal at one leaves the other in force.
    """
    levels = [names.signal_prefix(), names.signal_prefix(ctx.workflow)]
    answers = ctx.client.query_many([Query(prefix) for prefix in levels])
    for tokens in answers:
        found = signals.parse_signals(tokens)
        for action, effect in _HELD_BACK.items():
            if action not in found:
                continue
            name = found[action][0].name
            where = signals.level_name(*signals.level_of(name))
            print(
                f"pinball: warning: {action} is set at {where} level ({name}), so "
                f"{effect} `pinball workflow un{action.lower()}"
                f"{level_options(name)}`",
                file=sys.stderr,
            )


# What a signal set before the start does to the new instance, for warnings.
_HELD_BACK = {
    DRAIN: "no job of the new instance starts until it is removed with",
    ABORT: "the new instance shows ABORTED and none of its jobs runs while it is "
    "set; remove it with",
}


def stop(ctx: Context) -> int:
    """Abort the instance and archive its tokens, so its history is kept.

    The ABORT signal goes first, so no worker starts anything more in it;
    then all its tokens are archived in one request. A job still leased by
    a worker is killed by that worker when it fails to renew the lease on
    its token, which is no longer in the master.
    """
    tokens = instance_tokens(ctx)
    require_active(ctx, tokens)
    if not ctx.confirm(
        f"stop {ctx.where()}: abort it and archive its {plural(len(tokens), 'token')}?"
    ):
        say("nothing changed")
        return 0

    signals.set_signal(ctx.client, ABORT, ctx.workflow, ctx.instance)

    for attempt in range(1, ATTEMPTS + 1):
        tokens = instance_tokens(ctx)
        leased = _leased_jobs(tokens, ctx.now)
        try:
            ctx.client.archive(tokens)
        except (VersionConflictError, NotFoundError):
            # A worker wrote meanwhile (a job ended); read the instance again.
            log.debug("%s changed while archiving it", ctx.where())
            continue
        say(
            f"stopped {ctx.where()}: set ABORT and archived "
            f"{plural(len(tokens), 'token')} ({plural(attempt, 'try')})"
        )
        if leased:
            verb = "was" if len(leased) == 1 else "were"
            say(
                f"note: {listing(leased)} {verb} running; the workers kill what "
                "they run when they next fail to renew their lease, and those "
                "runs stay open in the archived history"
            )
        return 0
    raise WorkflowCommandError(
        f"{ctx.where()} is aborted but could not be archived: its tokens changed "
        f"under every one of {ATTEMPTS} tries; run `pinball workflow stop` again"
    )


def pause(ctx: Context) -> int:
    """Hold every free token of the instance, so no worker claims its jobs.

    Only tokens no one leases are taken, in one claim, so running jobs go on
    undisturbed; jobs that they make runnable when they end are not held.
    """
    tokens = instance_tokens(ctx)
    require_active(ctx, tokens)
    if not ctx.confirm(f"pause {ctx.where()}: hold its jobs until resumed?"):
        say("nothing changed")
        return 0

    owner = f"{PAUSE_OWNER_PREFIX}{operator()} at {format_time(ctx.now)}"
    claimed = ctx.client.query_and_own(
        owner,
        names.instance_prefix(ctx.workflow, ctx.instance),
        expiration=FOREVER,
    )
    say(f"paused {ctx.where()}: holding {plural(len(claimed), 'token')}")

    leased = _leased_jobs(instance_tokens(ctx), ctx.now)
    if leased:
        say(
            f"note: {listing(leased)} kept running; jobs they make runnable are "
            "not held, so pause again when they end, or drain the instance"
        )
    return 0


def resume(ctx: Context) -> int:
    """Release the tokens ``pause`` holds; workers' own leases are left alone."""
    tokens = instance_tokens(ctx)
    require_active(ctx, tokens)
    released: list[Token] = []

    def plan() -> tuple[list[Token], list[Token]] | None:
        held = [t for t in instance_tokens(ctx) if is_paused(t)]
        released[:] = held
        if not held:
            return None
        return [_released(t) for t in held], []

    if not modify_with_retries(ctx, plan, f"resume {ctx.where()}"):
        say(f"{ctx.where()} is not paused: no token is held by pause")
        return 0
    say(f"resumed {ctx.where()}: released {plural(len(released), 'token')}")
    return 0


def _released(token: Token) -> Token:
    return Token(
        name=token.name,
        version=token.version,
        priority=token.priority,
        data=token.data,
    )


def _leased_jobs(tokens: list[Token], now: float) -> list[str]:
    """Jobs whose tokens a worker leases: running, or waiting to retry."""
    found = []
    for token in tokens:
        parsed = names.parse_job_name(token.name)
        if parsed is not None and token.is_owned(now) and not is_paused(token):
            found.append(parsed.job)
    return found
