"""``reschedule``, ``unschedule`` and ``next``: a workflow's schedule by hand."""

import datetime
import json
import sys
from typing import Any, Final

from pinball_core.commands.workflow._shared import (
    Context,
    WorkflowCommandError,
    plural,
    require_defined,
    say,
)
from pinball_core.errors import PinballError
from pinball_core.scheduler import reschedule as schedules
from pinball_core.scheduler.history import format_slot
from pinball_core.scheduler.recurrence import aware_time, zone_of
from pinball_core.scheduler.spec import Schedule, ScheduleError
from pinball_core.scheduler.timeline import upcoming
from pinball_core.workflow import names

#: Run times ``next`` shows without ``-n``.
DEFAULT_COUNT: Final = 5

#: The most run times ``next`` shows.
MAX_COUNT: Final = 1000


def reschedule(ctx: Context) -> int:
    """Write schedule tokens from the definitions, keeping each one's place
    when its cadence is unchanged; report (and with ``--remove-missing``
    remove) schedules the definitions no longer have.

    The parser's problems are errors, exit code 1: the schedules they
    concern are left as they are, and nothing is removed while there are
    any, since a workflow a problem hides would look deleted.
    """
    parser = ctx.make_parser()
    if ctx.args.workflow is not None and not _has_schedule(ctx):
        # Neither defined nor scheduled is refused; say why it may be hidden.
        require_defined(ctx.app, parser, ctx.workflow)
    try:
        result = schedules.reschedule(
            ctx.client,
            parser,
            ctx.now,
            workflow=ctx.args.workflow,
            remove_missing=bool(ctx.args.remove_missing),
            check_policy=ctx.app.plugins.make_overrun_policy,
        )
    except schedules.RescheduleError as exc:
        raise WorkflowCommandError(str(exc)) from None

    for change in result.changes:
        say(_describe_change(change))
    stale = result.of("stale")
    problems = [*result.definition_problems, *result.problems]
    if stale and not result.not_removed:
        kept = f"{plural(len(stale), 'schedule')} kept for workflows the definitions"
        if result.definition_problems:
            say(
                f"{kept} do not schedule now; fix the problems in the definitions "
                "first, then `pinball workflow reschedule --remove-missing` "
                "removes those still left"
            )
        else:
            say(
                f"{kept} no longer schedule; `pinball workflow reschedule "
                "--remove-missing` removes them"
            )
    for problem in problems:
        print(f"pinball: error: {problem}", file=sys.stderr)
    if result.not_removed:
        print(f"pinball: error: {_not_removed(result.not_removed)}", file=sys.stderr)
    if not result.changes and not problems:
        if ctx.args.workflow is not None:
            # Asked for one workflow, which is defined (or it would have
            # been refused) but has nothing to write.
            raise WorkflowCommandError(
                f"workflow {ctx.workflow} has no schedule in its definition, so "
                "there is nothing to write; add a schedule to its definition first"
            )
        say("no workflow in the definitions has a schedule")
    return 1 if problems else 0


def _has_schedule(ctx: Context) -> bool:
    name = names.schedule_name(ctx.workflow)
    return any(token.name == name for token in ctx.client.query(name))


def _not_removed(workflows: list[str]) -> str:
    """Why ``--remove-missing`` kept these stale schedules, and what to do."""
    if len(workflows) == 1:
        what, whose = f"the schedule of {workflows[0]}", "its workflow"
    else:
        what, whose = f"the schedules of {', '.join(workflows)}", "their workflows"
    return (
        f"not removing {what}: the definitions have problems that may hide "
        f"{whose}; fix them (`pinball workflow validate` lists them) and run "
        "`pinball workflow reschedule --remove-missing` again, or remove a "
        "schedule by hand with `pinball workflow unschedule -w WORKFLOW`"
    )


def unschedule(ctx: Context) -> int:
    """Remove the workflow's schedule token; running instances go on."""
    schedule = _read(ctx)
    next_run = schedule.state.next_run
    when = "" if next_run is None else f", next run {_slot(schedule, next_run)}"
    if not ctx.confirm(
        f"unschedule workflow {ctx.workflow} ({schedule.spec.describe()}{when})?"
    ):
        say("nothing changed")
        return 0
    try:
        removed = schedules.unschedule(ctx.client, ctx.workflow)
    except schedules.RescheduleError as exc:
        raise WorkflowCommandError(str(exc)) from None
    if not removed:
        raise WorkflowCommandError(f"workflow {ctx.workflow} has no schedule any more")
    say(
        f"removed the schedule of workflow {ctx.workflow} "
        f"({names.schedule_name(ctx.workflow)}); running instances go on"
    )
    return 0


def next_runs(ctx: Context) -> int:
    """Show the workflow's next run times in its time zone and in UTC, as the
    scheduler will compute them."""
    count = DEFAULT_COUNT if ctx.args.count is None else ctx.args.count
    if not 1 <= count <= MAX_COUNT:
        raise WorkflowCommandError(f"-n must be from 1 to {MAX_COUNT}, got {count}")
    schedule = _read(ctx)
    spec, state = schedule.spec, schedule.state
    runs = upcoming(schedule, ctx.now, count)
    zone = zone_of(spec.timezone)
    cap = spec.max_running_instances

    if ctx.args.json:
        body: dict[str, Any] = {
            "workflow": ctx.workflow,
            "schedule": spec.to_data(),
            "cadence": schedule.recurrence().describe(),
            "delayed_since": state.delayed_since,
            "runs": [
                {
                    "time": run,
                    "local": aware_time(run, zone).isoformat(),
                    "utc": aware_time(run, zone).astimezone(datetime.UTC).isoformat(),
                    "due": run <= ctx.now,
                }
                for run in runs
            ],
        }
        print(json.dumps(body, indent=2))
        return 0

    default = ctx.app.config.default_max_workflow_running_instances
    limit = f"at most {cap} running" if cap else f"at most {default} running (default)"
    say(
        f"workflow {ctx.workflow}: {schedule.recurrence().describe()}, overrun policy "
        f"{spec.overrun_policy}, {limit}" + (", catch-up on" if spec.catchup else "")
    )
    if state.delayed_since is not None:
        say(f"  its due run has waited since {_slot(schedule, state.delayed_since)}")
    if not runs:
        say("  no further runs")
        return 0
    rows = [(f"LOCAL ({spec.timezone})", "UTC", "")]
    for run in runs:
        local = aware_time(run, zone)
        utc = local.astimezone(datetime.UTC)
        rows.append(
            (
                local.strftime("%Y-%m-%d %H:%M:%S %Z (%z)"),
                utc.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "due now" if run <= ctx.now else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        say("  " + "  ".join(cells).rstrip())
    return 0


def _read(ctx: Context) -> Schedule:
    try:
        found = schedules.read_schedule(ctx.client, ctx.workflow)
    except ScheduleError as exc:
        raise WorkflowCommandError(
            f"{exc}; rewrite it with `pinball workflow reschedule -w {ctx.workflow}`"
        ) from None
    if found is None:
        raise WorkflowCommandError(_why_unscheduled(ctx))
    return found[1]


def _why_unscheduled(ctx: Context) -> str:
    """Why the workflow has no schedule token, from what its definition says."""
    try:
        parser = ctx.make_parser()
    except PinballError as exc:
        return (
            f"workflow {ctx.workflow} has no schedule, and its definition cannot "
            f"be read to say why: {exc}"
        )
    require_defined(ctx.app, parser, ctx.workflow)
    try:
        defined = parser.schedule_token(ctx.workflow)
    except ValueError as exc:
        return (
            f"workflow {ctx.workflow} has no schedule, and the one in its "
            f"definition cannot be written: {exc}"
        )
    if defined is None:
        return (
            f"workflow {ctx.workflow} has no schedule: its definition has none; "
            "add one there, then write it with `pinball workflow reschedule "
            f"-w {ctx.workflow}`"
        )
    return (
        f"workflow {ctx.workflow} has no schedule in the master; `pinball workflow "
        f"reschedule -w {ctx.workflow}` writes the one its definition has"
    )


def _slot(schedule: Schedule, moment: float) -> str:
    return format_slot(moment, schedule.spec.timezone)


def _describe_change(change: schedules.Change) -> str:
    when = (
        "none"
        if change.next_run is None
        else format_slot(change.next_run, change.timezone)
    )
    if change.action == "added":
        return f"{change.workflow}: scheduled, first run {when}"
    if change.action == "replaced":
        return f"{change.workflow}: rescheduled ({change.detail}), next run {when}"
    if change.action == "updated":
        return f"{change.workflow}: settings updated, next run kept: {when}"
    if change.action == "unchanged":
        return f"{change.workflow}: unchanged, next run {when}"
    if change.action == "removed":
        return f"{change.workflow}: schedule removed ({change.detail})"
    if change.action == "held":
        return f"{change.workflow}: {change.detail}"
    return f"{change.workflow}: has a schedule, but {change.detail}; kept"
