"""``cleanup``: forget archived instances that ended long ago, and their logs.

Every archived instance, whatever its status (aborted ones included), whose
end is more than ``-a DAYS`` ago loses its archived tokens and its log
folder ``<logs_dir>/<workflow>/<instance>``. Active instances are never
touched.
"""

import dataclasses
import logging
import pathlib
import shutil
from typing import Final

from pinball_core.commands.workflow._shared import (
    Context,
    WorkflowCommandError,
    format_time,
    plural,
    say,
)
from pinball_core.store import Store
from pinball_core.workflow import names
from pinball_core.workflow.status import instance_status

log = logging.getLogger(__name__)

#: The least history ``cleanup`` keeps, in days, so a slip of the finger
#: cannot wipe last week's runs.
MIN_AGE_DAYS: Final = 7

#: What ``-a`` means when it is not given.
DEFAULT_AGE_DAYS: Final = 28

_DAY_SEC: Final = 86400


@dataclasses.dataclass(frozen=True, slots=True)
class _Old:
    workflow: str
    instance: str
    status: str
    end: float


def cleanup(ctx: Context) -> int:
    """Remove archived instances older than ``-a`` days, and their logs."""
    days = DEFAULT_AGE_DAYS if ctx.args.age_days is None else ctx.args.age_days
    if days < MIN_AGE_DAYS:
        raise WorkflowCommandError(
            f"cleanup keeps at least {MIN_AGE_DAYS} days of history; "
            f"-a must be {MIN_AGE_DAYS} or more, got {days}"
        )
    cutoff = ctx.now - days * _DAY_SEC
    logs_dir = pathlib.Path(ctx.app.config.logs_dir)

    # It only removes what the archive holds, so a missing store is an
    # error to report, not one to create.
    store = ctx.app.open_store(read_only=True)
    try:
        old = _old_instances(ctx, store, cutoff)
        if not old:
            say(f"nothing to clean: no archived instance ended over {days} days ago")
            return 0
        for found in old:
            say(
                f"{found.workflow}/{found.instance}: {found.status}, ended "
                f"{format_time(found.end)}"
            )
        if not ctx.confirm(
            f"remove these {plural(len(old), 'archived instance')} and their logs?"
        ):
            say("nothing removed")
            return 0

        tokens = folders = 0
        for found in old:
            prefix = names.instance_prefix(found.workflow, found.instance)
            tokens += store.delete_archived_tokens(prefix)
            folder = logs_dir / found.workflow / found.instance
            if folder.is_dir():
                shutil.rmtree(folder)
                folders += 1
    finally:
        store.close()

    say(
        f"removed {plural(tokens, 'archived token')} of "
        f"{plural(len(old), 'instance')} and {plural(folders, 'log folder')}"
    )
    return 0


def _old_instances(ctx: Context, store: Store, cutoff: float) -> list[_Old]:
    """Archived instances that ended before ``cutoff`` and are not active."""
    found = []
    workflows = store.group_token_names(names.WORKFLOW_PREFIX, archived=True)
    for workflow_key in sorted(workflows):
        workflow = workflow_key[len(names.WORKFLOW_PREFIX) :]
        if workflow == names.SIGNAL:
            continue
        instances = store.group_token_names(
            names.workflow_prefix(workflow), archived=True
        )
        for instance_key in sorted(instances):
            instance = instance_key.rsplit("/", 1)[-1]
            if instance == names.SIGNAL:
                continue
            prefix = names.instance_prefix(workflow, instance)
            if _is_active(ctx, prefix):
                # The id was used again; its logs belong to the active one.
                continue
            tokens = store.read_tokens(prefix, archived=True)
            summary = instance_status(tokens, ctx.now, archived=True)
            if summary is None or summary.end is None:
                log.debug("%s has no end time; not cleaned", prefix)
                continue
            if summary.end < cutoff:
                found.append(_Old(workflow, instance, summary.status, summary.end))
    return found


def _is_active(ctx: Context, prefix: str) -> bool:
    return bool(ctx.client.group(prefix, None))
