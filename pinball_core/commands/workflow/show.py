"""``status`` and ``list``: what runs, what ran, and how it went.

Active instances are read from the master, archived ones from the store;
both go through :mod:`pinball_core.workflow.status`, so they are judged the
same way. When the store cannot be read, active instances are still shown;
when the master cannot be reached, both commands run again on the store
alone (:mod:`~pinball_core.commands.workflow.store_reads`).
"""

import json
import logging
from collections.abc import Iterable
from typing import Any

from pinball_core.commands.workflow._shared import (
    Context,
    WorkflowCommandError,
    archived_instance,
    format_time,
    listing,
    plural,
    say,
)
from pinball_core.errors import PinballError
from pinball_core.scheduler.history import (
    ScheduledRun,
    read_scheduled_run,
    slot_token_name,
)
from pinball_core.workflow import names
from pinball_core.workflow.signals import level_name, level_of, read_signals
from pinball_core.workflow.status import (
    InstanceSummary,
    JobSummary,
    WorkflowSummary,
    instances_of,
    read_instance,
    read_instances,
    workflow_summary,
)

log = logging.getLogger(__name__)


def status(ctx: Context) -> int:
    """Show one instance and its jobs, or one workflow and its instances."""
    if ctx.args.instance is not None:
        return _instance_status(ctx)

    summary = _workflow(ctx, ctx.workflow)
    if not summary.instances and not _scheduled(ctx, ctx.workflow):
        raise WorkflowCommandError(
            f"no workflow {ctx.workflow}: it has no instance, active or archived, "
            "and no schedule; `pinball workflow list` shows the workflows"
        )
    if ctx.args.json:
        print(json.dumps(_workflow_json(summary), indent=2))
        return 0
    _print_workflow(summary)
    return 0


def list_workflows(ctx: Context) -> int:
    """Show every workflow the master or the store knows, with its instances."""
    workflows = _workflow_names(ctx)
    summaries = [_workflow(ctx, workflow) for workflow in workflows]
    if ctx.args.json:
        print(json.dumps([_workflow_json(s) for s in summaries], indent=2))
        return 0
    if not summaries:
        say("no workflows")
        return 0
    for summary in summaries:
        _print_workflow(summary)
    return 0


def _instance_status(ctx: Context) -> int:
    summary = read_instance(ctx.client, ctx.workflow, ctx.instance, ctx.now)
    applying: list[str] = []
    slot: ScheduledRun | None = None
    if summary is not None:
        slot = read_scheduled_run(
            ctx.client.query(slot_token_name(ctx.workflow, ctx.instance))
        )
        found = read_signals(ctx.client, ctx.workflow, ctx.instance)
        applying = [
            f"{action} ({level_name(*level_of(token.name))})"
            for action, (token, _) in sorted(found.items())
        ]
    else:
        archived = archived_instance(ctx)
        if archived is None:
            raise WorkflowCommandError(
                f"{ctx.where()} is neither active nor archived; "
                f"`pinball workflow status -w {ctx.workflow}` lists its instances"
            )
        summary = archived[1]
        slot = read_scheduled_run(archived[0])

    if ctx.args.json:
        body = _instance_json(summary)
        body["signals"] = applying
        body["scheduled_for"] = None if slot is None else slot.scheduled_time
        body["jobs"] = [_job_json(job) for job in summary.jobs]
        print(json.dumps(body, indent=2))
        return 0

    archived_note = " (archived)" if summary.archived else ""
    say(f"{ctx.where()}: {summary.status}{archived_note}")
    say(f"  started {format_time(summary.start)}, ended {format_time(summary.end)}")
    if slot is not None:
        say(
            f"  scheduled for {format_time(slot.scheduled_time)} "
            f"({slot.local_time} {slot.timezone})"
        )
    if applying:
        say(f"  signals: {listing(applying)}")
    rows: list[tuple[str, ...]] = [
        ("JOB", "STATUS", "ATTEMPTS", "LAST EXIT", "LAST END")
    ]
    for job in summary.jobs:
        exit_code = "-" if job.last_exit_code is None else str(job.last_exit_code)
        rows.append(
            (job.name, job.status, str(job.attempts), exit_code, format_time(job.end))
        )
    _print_table(rows, indent="  ")
    return 0


def _workflow(ctx: Context, workflow: str) -> WorkflowSummary:
    active = read_instances(ctx.client, workflow, ctx.now)
    seen = {summary.instance for summary in active}
    archived = [s for s in _archived(ctx, workflow) if s.instance not in seen]
    return workflow_summary(workflow, [*active, *archived])


def _archived(ctx: Context, workflow: str) -> list[InstanceSummary]:
    try:
        store = ctx.app.open_store(read_only=True)
    except PinballError as exc:
        log.warning("archived instances not shown: %s", exc)
        return []
    try:
        tokens = store.read_tokens(names.workflow_prefix(workflow), archived=True)
    except PinballError as exc:
        log.warning("archived instances not shown: %s", exc)
        return []
    finally:
        store.close()
    return instances_of(tokens, ctx.now, archived=True)


def _workflow_names(ctx: Context) -> list[str]:
    found: set[str] = set()
    prefixes = [names.WORKFLOW_PREFIX, names.SCHEDULE_PREFIX]
    for prefix in prefixes:
        found.update(_children(ctx.client.group(prefix, "/"), prefix))
    try:
        store = ctx.app.open_store(read_only=True)
        try:
            groups = store.group_token_names(names.WORKFLOW_PREFIX, archived=True)
        finally:
            store.close()
    except PinballError as exc:
        log.warning("archived workflows not shown: %s", exc)
    else:
        found.update(_children(groups, names.WORKFLOW_PREFIX))
    found.discard(names.SIGNAL)
    return sorted(found)


def _children(groups: dict[str, int], prefix: str) -> Iterable[str]:
    return (key[len(prefix) :] for key in groups if key.startswith(prefix))


def _scheduled(ctx: Context, workflow: str) -> bool:
    name = names.schedule_name(workflow)
    return any(token.name == name for token in ctx.client.query(name))


def _print_workflow(summary: WorkflowSummary) -> None:
    running = plural(summary.running_instances, "running instance")
    last = summary.last_instance or "-"
    say(f"workflow {summary.workflow}: {summary.status}, {running}, last {last}")
    rows: list[tuple[str, ...]] = [
        ("INSTANCE", "STATUS", "START", "END", "FAILED JOBS")
    ]
    for instance in summary.instances:
        rows.append(
            (
                instance.instance,
                instance.status + (" (archived)" if instance.archived else ""),
                format_time(instance.start),
                format_time(instance.end),
                ",".join(instance.failed_jobs) or "-",
            )
        )
    if summary.instances:
        _print_table(rows, indent="  ")


def _print_table(rows: list[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        say(indent + "  ".join(cells).rstrip())


def _workflow_json(summary: WorkflowSummary) -> dict[str, Any]:
    return {
        "workflow": summary.workflow,
        "status": str(summary.status),
        "last_instance": summary.last_instance,
        "start": summary.start,
        "end": summary.end,
        "running_instances": summary.running_instances,
        "instances": [_instance_json(i) for i in summary.instances],
    }


def _instance_json(summary: InstanceSummary) -> dict[str, Any]:
    return {
        "workflow": summary.workflow,
        "instance": summary.instance,
        "status": str(summary.status),
        "start": summary.start,
        "end": summary.end,
        "archived": summary.archived,
        "failed_jobs": summary.failed_jobs,
        "running_jobs": summary.running_jobs,
    }


def _job_json(job: JobSummary) -> dict[str, Any]:
    return {
        "name": job.name,
        "status": str(job.status),
        "state": job.state,
        "attempts": job.attempts,
        "last_exit_code": job.last_exit_code,
        "start": job.start,
        "end": job.end,
        "owner": job.owner,
        "priority": job.priority,
        "disabled": job.job.disabled,
    }
