"""Writing schedule tokens from the definitions, and removing them.

``pinball workflow reschedule`` and ``unschedule`` call these; anything that
embeds Pinball may too. A schedule whose cadence (recurrence, start, time
zone) is unchanged keeps its place: its next run and its state stay, and
only the other settings are rewritten, so rescheduling never makes a run
happen twice or fall out.
"""

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Final

from pinball_core.client import MasterClient
from pinball_core.components import Parser
from pinball_core.errors import NotFoundError, PinballError, VersionConflictError
from pinball_core.scheduler.scheduler import PARKED_OWNER, anchor_at
from pinball_core.scheduler.spec import (
    Schedule,
    ScheduleError,
    ScheduleSpec,
    ScheduleState,
)
from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names

log = logging.getLogger(__name__)

#: Tries when other writers change schedule tokens meanwhile.
ATTEMPTS: Final = 10


class RescheduleError(PinballError):
    """Schedules could not be written; nothing was changed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What happens to one workflow's schedule token."""

    workflow: str
    #: ``added``, ``replaced`` (new cadence), ``updated`` (same cadence,
    #: other settings), ``unchanged``, ``stale`` (kept; no definition),
    #: ``removed`` (stale, and removed as asked).
    action: str
    #: When its next run is, for added, replaced, updated and unchanged ones.
    next_run: float | None = None
    timezone: str = "UTC"
    detail: str = ""


@dataclasses.dataclass(slots=True)
class RescheduleResult:
    """Every workflow looked at, and the problems that stopped some."""

    changes: list[Change] = dataclasses.field(default_factory=list)
    #: One line per workflow whose schedule could not be read or used.
    problems: list[str] = dataclasses.field(default_factory=list)

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]


def reschedule(
    client: MasterClient,
    parser: Parser,
    now: float,
    *,
    workflow: str | None = None,
    remove_missing: bool = False,
    check_policy: Callable[[str], object] | None = None,
) -> RescheduleResult:
    """Bring the schedule tokens in line with the parser's definitions.

    With ``workflow``, only that one. Tokens of workflows the definitions no
    longer schedule are reported as ``stale``, and removed with
    ``remove_missing``. ``check_policy`` is called with each schedule's
    overrun policy name and raises if no such policy is installed. All
    changes go to the master in one request.

    :raises RescheduleError: if the workflow named is neither defined nor
        scheduled, or the master's tokens kept changing.
    """
    for _ in range(ATTEMPTS):
        result, updates, deletes = _plan(
            client, parser, now, workflow, remove_missing, check_policy
        )
        if not (updates or deletes):
            return result
        try:
            client.modify(updates=updates, deletes=deletes)
        except (VersionConflictError, NotFoundError):
            log.debug("schedule tokens changed while rescheduling; reading again")
            continue
        return result
    raise RescheduleError(
        f"schedule tokens changed under every one of {ATTEMPTS} tries; nothing "
        "was changed, run the command again"
    )


def unschedule(client: MasterClient, workflow: str) -> bool:
    """Remove ``workflow``'s schedule token; False if it has none.

    Running instances are not touched.
    """
    name = names.schedule_name(workflow)
    for _ in range(ATTEMPTS):
        current = [t for t in client.query(name) if t.name == name]
        if not current:
            return False
        try:
            client.modify(deletes=current)
        except (VersionConflictError, NotFoundError):
            continue
        return True
    raise RescheduleError(f"{name} changed under every one of {ATTEMPTS} tries")


def read_schedule(client: MasterClient, workflow: str) -> tuple[Token, Schedule] | None:
    """The schedule token of ``workflow`` and its content; None if it has none.

    :raises ScheduleError: if the token's data is not a valid schedule.
    """
    name = names.schedule_name(workflow)
    for token in client.query(name):
        if token.name == name:
            return token, Schedule.from_token(token)
    return None


def new_schedule(spec: ScheduleSpec, now: float) -> Schedule:
    """A schedule that starts now: its first run is its first slot after ``now``."""
    anchor = None
    if spec.needs_anchor and spec.start is None:
        anchor = anchor_at(now, spec.timezone)
    schedule = Schedule(spec, ScheduleState(anchor=anchor))
    return schedule.with_state(next_run=schedule.recurrence().next_after(now))


def parked_token(schedule: Schedule, version: int | None = None) -> Token:
    """The token of ``schedule``, held until its next run."""
    next_run = schedule.state.next_run
    return Token(
        names.schedule_name(schedule.workflow),
        version=version,
        owner=PARKED_OWNER,
        expiration=FOREVER if next_run is None else next_run,
        data=schedule.to_json(),
    )


def _plan(
    client: MasterClient,
    parser: Parser,
    now: float,
    workflow: str | None,
    remove_missing: bool,
    check_policy: Callable[[str], object] | None,
) -> tuple[RescheduleResult, list[Token], list[Token]]:
    result = RescheduleResult()
    defined = set(parser.workflow_names())
    if workflow is not None:
        existing = client.query(names.schedule_name(workflow))
        existing = [t for t in existing if t.name == names.schedule_name(workflow)]
        if workflow not in defined and not existing:
            known = ", ".join(sorted(defined)) or "none"
            raise RescheduleError(
                f"workflow {workflow} is not defined by the parser and has no "
                f"schedule; it knows: {known}"
            )
        wanted = [workflow] if workflow in defined else []
    else:
        existing = client.query(names.SCHEDULE_PREFIX)
        wanted = sorted(defined)
    current = {t.name: t for t in existing}

    updates: list[Token] = []
    deletes: list[Token] = []
    scheduled: set[str] = set()
    for name in wanted:
        usable, spec = _spec_of(parser, name, result, check_policy)
        if not usable:
            # Its token, if it has one, is left as it is, not reported stale.
            scheduled.add(name)
            continue
        if spec is None:
            continue
        scheduled.add(name)
        token_name = names.schedule_name(name)
        change, token = _compare(spec, current.get(token_name), now)
        result.changes.append(change)
        if token is not None:
            updates.append(token)

    for token in existing:
        stale = token.name[len(names.SCHEDULE_PREFIX) :]
        if stale in scheduled:
            continue
        why = (
            "its definition has no schedule"
            if stale in defined
            else "the parser no longer defines it"
        )
        if remove_missing:
            deletes.append(token)
            result.changes.append(Change(stale, "removed", detail=why))
        else:
            result.changes.append(Change(stale, "stale", detail=why))
    result.changes.sort(key=lambda c: c.workflow)
    return result, updates, deletes


def _spec_of(
    parser: Parser,
    workflow: str,
    result: RescheduleResult,
    check_policy: Callable[[str], object] | None,
) -> tuple[bool, ScheduleSpec | None]:
    """Whether the parser's schedule of ``workflow`` can be used (a problem
    is noted if not), and the schedule; None if the workflow has none."""
    try:
        token = parser.schedule_token(workflow)
        if token is None:
            return True, None
        if token.name != names.schedule_name(workflow):
            raise ScheduleError(
                f"the parser named its schedule token {token.name}, not "
                f"{names.schedule_name(workflow)}"
            )
        spec = ScheduleSpec.from_data(json.loads(token.data or ""))
        if spec.workflow != workflow:
            raise ScheduleError(f"its schedule names workflow {spec.workflow}")
        if check_policy is not None:
            check_policy(spec.overrun_policy)
    except (PinballError, ValueError) as exc:
        result.problems.append(f"workflow {workflow}: {exc}")
        return False, None
    return True, spec


def _compare(
    spec: ScheduleSpec, old: Token | None, now: float
) -> tuple[Change, Token | None]:
    """What to write for ``spec`` given the stored token ``old``."""
    if old is not None:
        try:
            stored = Schedule.from_token(old)
        except ScheduleError as exc:
            fresh = new_schedule(spec, now)
            change = Change(
                spec.workflow,
                "replaced",
                fresh.state.next_run,
                spec.timezone,
                f"the stored schedule was unusable: {exc}",
            )
            return change, parked_token(fresh, old.version)

        if stored.spec.cadence == spec.cadence:
            next_run = stored.state.next_run
            if stored.spec == spec:
                return Change(spec.workflow, "unchanged", next_run, spec.timezone), None
            # Same times: keep the state and the lease, rewrite the settings.
            kept = dataclasses.replace(stored, spec=spec)
            token = dataclasses.replace(old, data=kept.to_json())
            return Change(spec.workflow, "updated", next_run, spec.timezone), token

        fresh = new_schedule(spec, now)
        change = Change(
            spec.workflow,
            "replaced",
            fresh.state.next_run,
            spec.timezone,
            f"was {stored.spec.describe()}",
        )
        return change, parked_token(fresh, old.version)

    fresh = new_schedule(spec, now)
    return (
        Change(spec.workflow, "added", fresh.state.next_run, spec.timezone),
        parked_token(fresh),
    )
