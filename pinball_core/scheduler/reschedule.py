"""Writing schedule tokens from the definitions, and removing them.

``pinball workflow reschedule`` and ``unschedule`` call these; anything that
embeds Pinball may too. A schedule whose cadence (recurrence, start, time
zone) is unchanged keeps its place: its next run and its state stay, and
only the other settings are rewritten, so rescheduling never makes a run
happen twice or fall out.

Definitions with problems change nothing they might be wrong about: the
schedule of a workflow whose definition has problems is left as it is, and
no schedule is removed while a problem might hide its workflow, since a file
that does not parse looks, to the parser, like workflows that were deleted.
"""

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Final

from pinball_core.client import MasterClient
from pinball_core.components import Parser
from pinball_core.errors import (
    DefinitionError,
    NotFoundError,
    PinballError,
    VersionConflictError,
)
from pinball_core.scheduler.scheduler import PARKED_OWNER, anchor_at
from pinball_core.scheduler.spec import (
    Schedule,
    ScheduleError,
    ScheduleSpec,
    ScheduleState,
)
from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names
from pinball_core.workflow.definition import names_workflow, problems_outside

log = logging.getLogger(__name__)

#: Tries when other writers change schedule tokens meanwhile.
ATTEMPTS: Final = 10

#: The instance id a workflow is built under to check its definition;
#: nothing built is sent to the master.
_DRAFT_INSTANCE: Final = "definition"


class RescheduleError(PinballError):
    """Schedules could not be written; nothing was changed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What happens to one workflow's schedule token."""

    workflow: str
    #: ``added``, ``replaced`` (new cadence), ``updated`` (same cadence,
    #: other settings), ``unchanged``, ``stale`` (kept; no definition),
    #: ``removed`` (stale, and removed as asked), ``held`` (its definition
    #: or schedule has problems, so its token, if any, is left as it is).
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
    #: The parser's problems with the definitions, as it words them (with
    #: file and line where it knows them): every one, or with ``workflow``
    #: those of that workflow and those that may hide it.
    definition_problems: list[str] = dataclasses.field(default_factory=list)
    #: Stale schedules that ``remove_missing`` kept, because the definitions
    #: have problems that may hide their workflows or their schedules.
    not_removed: list[str] = dataclasses.field(default_factory=list)

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
    ``remove_missing``, unless the definitions have problems (then they are
    listed in ``not_removed``). A workflow whose definition has problems is
    ``held``: its token, if any, is left as it is. ``check_policy`` is
    called with each schedule's overrun policy name and raises if no such
    policy is installed. All changes go to the master in one request.

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

    problems = _definition_problems(parser)
    hiding = problems_outside(problems, defined)
    if workflow is not None:
        problems = [p for p in problems if p in hiding or names_workflow(p, workflow)]
    result.definition_problems.extend(problems)

    updates: list[Token] = []
    deletes: list[Token] = []
    scheduled: set[str] = set()
    for name in wanted:
        token_name = names.schedule_name(name)
        has_token = token_name in current
        own = _own_problems(parser, name, problems)
        if own:
            # Its token, if it has one, is left as it is, not reported stale.
            scheduled.add(name)
            _note(result.definition_problems, own)
            if has_token or _may_be_scheduled(parser, name):
                result.changes.append(_held(name, "its definition has", has_token))
            continue
        usable, spec = _spec_of(parser, name, result, check_policy)
        if not usable:
            scheduled.add(name)
            result.changes.append(_held(name, "its schedule has", has_token))
            continue
        if spec is None:
            continue
        scheduled.add(name)
        change, token = _compare(spec, current.get(token_name), now)
        result.changes.append(change)
        if token is not None:
            updates.append(token)

    for token in existing:
        stale = token.name[len(names.SCHEDULE_PREFIX) :]
        if stale in scheduled:
            continue
        if stale in defined:
            why = "its definition has no schedule"
        elif hiding:
            why = (
                "the parser does not define it now, perhaps because of the "
                "problems in the definitions"
            )
        else:
            why = "the parser no longer defines it"
        if remove_missing and not result.definition_problems:
            deletes.append(token)
            result.changes.append(Change(stale, "removed", detail=why))
        else:
            result.changes.append(Change(stale, "stale", detail=why))
            if remove_missing:
                result.not_removed.append(stale)
    result.changes.sort(key=lambda c: c.workflow)
    return result, updates, deletes


def _definition_problems(parser: Parser) -> list[str]:
    """The parser's problems with the definitions; one that cannot tell
    them has the problem that it cannot."""
    try:
        return [str(problem) for problem in parser.validate()]
    except Exception as exc:
        # Nothing it reads can be trusted to be whole, so this problem, which
        # names no workflow, keeps every schedule in place.
        log.debug("the parser's validate failed", exc_info=True)
        return [f"the parser failed to validate: {type(exc).__name__}: {exc}"]


def _own_problems(parser: Parser, workflow: str, problems: list[str]) -> list[str]:
    """The problems that stop ``workflow`` from being built.

    Those that name it, and those its parser gives when asked to build it:
    a parser may refuse a workflow for a problem elsewhere in its file.
    Other refusals are left to the scheduler, which reports them at the run.
    """
    own = [p for p in problems if names_workflow(p, workflow)]
    try:
        parser.instance_tokens(workflow, _DRAFT_INSTANCE)
    except DefinitionError as exc:
        own.extend(p for p in exc.problems if p not in own)
    except Exception:
        log.debug("could not build workflow %s to check it", workflow, exc_info=True)
    return own


def _held(workflow: str, what: str, has_token: bool) -> Change:
    detail = (
        f"{what} problems, so its schedule is left as it was"
        if has_token
        else f"{what} problems, so it is not scheduled"
    )
    return Change(workflow, "held", detail=detail)


def _may_be_scheduled(parser: Parser, workflow: str) -> bool:
    """Whether the definition of ``workflow`` may have a schedule."""
    try:
        return parser.schedule_token(workflow) is not None
    except Exception:
        return True


def _note(problems: list[str], more: list[str]) -> None:
    problems.extend(p for p in more if p not in problems)


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
