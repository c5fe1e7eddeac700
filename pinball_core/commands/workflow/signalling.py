"""``drain``, ``abort``, ``exit`` and their undoing, at one level each.

A signal is set or removed at exactly the level the options name: globally
with neither ``-w`` nor ``-i``, for a workflow with ``-w``, for an instance
with both. Since a signal at a wider level still applies below it, removing
one tells the operator when the same signal remains in force from above.
An archived instance takes no signals: its own went to the archive with it,
and an instance id that neither the master nor the archive holds takes none.
Nor does a workflow that nothing knows (a typo): one the parser does not
define and of which neither the master nor the archive holds anything.
"""

import logging
import sys
from typing import Final

from pinball_core.commands.workflow._shared import (
    Context,
    WorkflowCommandError,
    archived_instance,
    instance_tokens,
    level_options,
    listing,
    require_defined,
    say,
)
from pinball_core.errors import PinballError
from pinball_core.workflow import names, signals
from pinball_core.workflow.model import ABORT, DRAIN, EXIT
from pinball_core.workflow.status import read_instances

log = logging.getLogger(__name__)

#: How many active instances a refused instance id's error names.
SHOWN_INSTANCES: Final = 5

# What each action does, for the confirmation prompts.
_EFFECT = {
    ABORT: "kill the running jobs and start no more",
    EXIT: "make workers older than generation {generation} leave after their "
    "current job",
}


def drain(ctx: Context) -> int:
    """Let running jobs finish but start no new ones at this level."""
    return _set(ctx, DRAIN)


def undrain(ctx: Context) -> int:
    return _remove(ctx, DRAIN)


def abort(ctx: Context) -> int:
    """Kill running jobs and start no new ones at this level."""
    return _set(ctx, ABORT)


def unabort(ctx: Context) -> int:
    return _remove(ctx, ABORT)


def exit_workers(ctx: Context) -> int:
    """Make workers of older generations leave, for an upgrade.

    The EXIT carries this config's ``generation``. An EXIT already set at
    this level for another generation is moved to this one.
    """
    return _set(ctx, EXIT)


def unexit(ctx: Context) -> int:
    return _remove(ctx, EXIT)


def _level(ctx: Context) -> tuple[str | None, str | None]:
    return ctx.args.workflow, ctx.args.instance


def _set(ctx: Context, action: str) -> int:
    workflow, instance = _level(ctx)
    where = signals.level_name(workflow, instance)
    _refuse_unknown(ctx, f"setting {action}")
    _refuse_archived(ctx, f"a new {action} would apply to nothing")
    generation = ctx.app.config.generation if action == EXIT else None
    if generation:
        _warn_exit_spares(generation)

    if action in _EFFECT:
        effect = _EFFECT[action].format(generation=generation)
        if not ctx.confirm(f"set {action} at {where} level: {effect}?"):
            say("nothing changed")
            return 0

    token = signals.set_signal(
        ctx.client,
        action,
        workflow,
        instance,
        generation=generation,
        replace=action == EXIT,
    )
    if token is None:
        say(f"{action} is already set at {where} level")
        return 0
    detail = f" for workers older than generation {generation}" if generation else ""
    say(f"set {action} at {where} level{detail}: {token.name}")
    return 0


def _remove(ctx: Context, action: str) -> int:
    workflow, instance = _level(ctx)
    where = signals.level_name(workflow, instance)
    _refuse_unknown(ctx, f"removing {action}")
    _refuse_archived(ctx, f"no {action} can be removed from it")

    if signals.remove_signal(ctx.client, action, workflow, instance):
        say(f"removed {action} at {where} level")
    else:
        say(f"{action} is not set at {where} level")

    # A wider level's signal still reaches this one; say so, and how to lift it.
    still = signals.read_signals(ctx.client, workflow, instance).get(action)
    if still is not None:
        token = still[0]
        wider = signals.level_name(*signals.level_of(token.name))
        say(
            f"note: {action} is still set at {wider} level ({token.name}), so it "
            f"still applies to {where}; remove it there with "
            f"`pinball workflow un{action.lower()}{level_options(token.name)}`"
        )
    return 0


def _warn_exit_spares(generation: int) -> None:
    """Say that an EXIT spares workers of this config's own generation.

    An EXIT set with the generation the running workers already have makes
    none of them leave, and nothing else would tell the operator: nobody
    records which generations are running, so this is said every time.
    """
    print(
        f"pinball: warning: EXIT for generation {generation} applies to workers "
        f"of generations below {generation}; workers of generation {generation} "
        "(this config's) stay. If the workers to replace are of generation "
        f"{generation}, raise `generation` in the new workers' config first, "
        "start them, and run `exit` with that config",
        file=sys.stderr,
    )


def _refuse_archived(ctx: Context, what: str) -> None:
    """Refuse a signal for an instance that is archived rather than active.

    Its signals went to the archive with it and apply to nothing any more;
    a new one would apply to nothing either. Its status still shows the
    ABORT it ended with, so an ``unabort`` that said only "not set" would
    contradict ``workflow status``.
    """
    if ctx.args.instance is None:
        return
    tokens = instance_tokens(ctx)
    if any(names.parse_job_name(t.name) for t in tokens):
        return
    try:
        archived = archived_instance(ctx)
    except PinballError as exc:
        # Only to explain a refusal: a store that cannot be read must not
        # stop a signal the master can take.
        log.debug("could not tell whether %s is archived: %s", ctx.where(), exc)
        return
    if archived is None:
        # Signals left without their instance can still be removed.
        if not tokens:
            _refuse_absent(ctx)
        return
    raise WorkflowCommandError(
        f"{ctx.where()} is archived ({archived[1].status}): it no longer runs and "
        f"its signals were archived with it, so {what}; signals apply to active "
        "instances only. To run its unfinished jobs again, retry it, which "
        "copies it into a new instance without its signals: `pinball workflow "
        f"retry -w {ctx.workflow} -i {ctx.instance}`"
    )


def _refuse_absent(ctx: Context) -> None:
    """Refuse an instance id that neither the master nor the archive holds.

    A signal for it would apply to nothing, most likely a misspelt id, so
    the newest active instances are named for the operator to pick from.
    """
    active = sorted(
        (
            summary.instance
            for summary in read_instances(ctx.client, ctx.workflow, ctx.now)
        ),
        key=lambda instance: (len(instance), instance),
        reverse=True,
    )
    if active:
        shown = listing(active[:SHOWN_INSTANCES])
        more = len(active) - SHOWN_INSTANCES
        known = f"its active instances, newest first: {shown}"
        if more > 0:
            known += f" and {more} more"
    else:
        known = f"workflow {ctx.workflow} has no active instance"
    raise WorkflowCommandError(
        f"{ctx.where()} is neither active nor archived, so a signal would apply "
        f"to nothing; {known}. Check the names with "
        f"`pinball workflow status -w {ctx.workflow}`"
    )


def _refuse_unknown(ctx: Context, doing: str) -> None:
    """Refuse a signal for a workflow that nothing knows of.

    Known means defined by the parser, or with any token in the master (an
    instance, a schedule, a signal) or in the archive: a workflow removed
    from the definitions may still have instances to drain or abort. A
    signal for a workflow nothing knows would apply to nothing, and would
    make a misspelt name show in ``workflow list``. Only when the parser
    or the store cannot be read to tell, the signal goes ahead with a
    warning: neither must stop a signal in an emergency. ``doing`` says
    what goes ahead, for that warning.
    """
    workflow = ctx.args.workflow
    if workflow is None or _in_master(ctx, workflow):
        return
    try:
        parser = ctx.make_parser()
        if workflow in parser.workflow_names():
            return
    except Exception as exc:
        _warn(f"cannot tell whether workflow {workflow} is defined ({exc}); {doing}")
        return
    try:
        store = ctx.app.open_store(read_only=True)
        try:
            archived = store.count_tokens(
                names.workflow_prefix(workflow), archived=True
            )
        finally:
            store.close()
    except PinballError as exc:
        _warn(f"cannot read the archive of workflow {workflow} ({exc}); {doing}")
        return
    if archived:
        return
    require_defined(
        ctx.app,
        parser,
        workflow,
        instead="the master and the store hold nothing of it (no instance, "
        "schedule or signal, active or archived), so a signal would apply to "
        "nothing",
    )


def _in_master(ctx: Context, workflow: str) -> bool:
    """Whether the master holds an instance, signal or schedule of ``workflow``."""
    [count] = ctx.client.count([names.workflow_prefix(workflow)])
    if count:
        return True
    schedule = names.schedule_name(workflow)
    return any(token.name == schedule for token in ctx.client.query(schedule))


def _warn(message: str) -> None:
    print(f"pinball: warning: {message} anyway", file=sys.stderr)
