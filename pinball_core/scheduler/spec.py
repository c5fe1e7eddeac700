"""The schedule token: what a parser defines, and where the scheduler is in it.

One token per scheduled workflow, ``/schedule/workflow/<workflow>``, holds a
JSON object. Parsers write the definition's keys; every parser builds them
with :meth:`ScheduleSpec.to_data` (or :func:`schedule_token`) so the format
stays one::

    {"workflow": "daily_report",
     "recurrence_sec": 86400,          # or "recurrence": "P1M", or "cron": "..."
     "start": "2026-01-01T00:30:00",   # ISO; without an offset, in "timezone"
     "timezone": "Europe/Berlin",
     "overrun_policy": "SKIP",
     "max_running_instances": 1,       # null: the config's default
     "emails": ["owner@example.com"],
     "catchup": true,                  # written only when true
     "max_catchup": 5}                 # written only when set

The scheduler adds its own progress under ``"state"`` (:class:`ScheduleState`),
which parsers never write. Keys this version does not know are kept as they
are when the token is rewritten, so an older scheduler does not drop what a
newer parser added.
"""

import dataclasses
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from pinball_core.errors import PinballError
from pinball_core.scheduler import recurrence as recurrences
from pinball_core.scheduler.recurrence import Recurrence
from pinball_core.token import Token
from pinball_core.workflow import names

#: The built-in overrun policies; plugins may add more by name.
SKIP: Final = "SKIP"
ABORT_RUNNING: Final = "ABORT_RUNNING"
DELAY: Final = "DELAY"
DELAY_UNTIL_SUCCESS: Final = "DELAY_UNTIL_SUCCESS"
START_NEW: Final = "START_NEW"
BUILTIN_POLICIES: Final = (SKIP, ABORT_RUNNING, DELAY, DELAY_UNTIL_SUCCESS, START_NEW)

DEFAULT_POLICY: Final = SKIP
DEFAULT_TIMEZONE: Final = "UTC"

#: The original Pinball's policy numbers, accepted for configs that kept them.
_ORIGINAL_POLICY_NUMBERS: Final = {
    0: SKIP,
    1: ABORT_RUNNING,
    2: DELAY,
    3: DELAY_UNTIL_SUCCESS,
    4: START_NEW,
}

#: Shortest fixed interval: a shorter one would keep a scheduler busy.
MIN_INTERVAL_SEC: Final = 1.0

#: The original's ``<n><unit>`` recurrences: minutes, hours, days, weeks.
ORIGINAL_UNITS: Final = {"M": 60, "H": 3600, "d": 86400, "w": 7 * 86400}

_ORIGINAL_RECURRENCE = re.compile(r"([1-9][0-9]*)([MHdw])", re.ASCII)
_POLICY_NAME = re.compile(r"[A-Za-z_][\w.:-]*", re.ASCII)

# Keys of the definition, in the order they are written.
_SPEC_KEYS: Final = (
    "workflow",
    "recurrence_sec",
    "recurrence",
    "cron",
    "start",
    "timezone",
    "overrun_policy",
    "max_running_instances",
    "emails",
    "catchup",
    "max_catchup",
)
_STATE_KEY: Final = "state"


class ScheduleError(PinballError, ValueError):
    """A schedule that cannot be used; the message names the workflow, the
    key and what to write instead."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A workflow's schedule as its definition gives it.

    Exactly one of ``recurrence_sec`` (seconds; a whole number of days steps
    by the calendar), ``recurrence`` (an ISO 8601 duration) or ``cron`` is
    set. ``start`` is an ISO date and time, read in ``timezone`` when it has
    no offset; None lets the scheduler start counting when the schedule is
    first written.
    """

    workflow: str
    recurrence_sec: float | None = None
    recurrence: str | None = None
    cron: str | None = None
    start: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    overrun_policy: str = DEFAULT_POLICY
    max_running_instances: int | None = None
    emails: tuple[str, ...] = ()
    catchup: bool = False
    max_catchup: int | None = None

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def cadence(self) -> tuple[Any, ...]:
        """What decides when runs fall; schedules with equal cadences run at
        the same times, so rewriting one keeps its place."""
        return (
            self.recurrence_sec,
            self.recurrence,
            self.cron,
            _normal_start(self.start),
            self.timezone,
        )

    @property
    def needs_anchor(self) -> bool:
        """Whether runs count from a start: all but cron schedules do."""
        return self.cron is None

    def to_data(self) -> dict[str, Any]:
        """The definition as the token's JSON object.

        The keys the first parsers wrote are always present, the later ones
        (``recurrence``, ``catchup``, ``max_catchup``) only when they are set,
        so a schedule that does not use them is written as before.
        """
        when: dict[str, Any]
        if self.cron is not None:
            when = {"cron": self.cron}
        elif self.recurrence is not None:
            when = {"recurrence": self.recurrence}
        else:
            seconds = float(self.recurrence_sec or 0)
            when = {"recurrence_sec": int(seconds) if seconds.is_integer() else seconds}
        data: dict[str, Any] = {
            "workflow": self.workflow,
            **when,
            "start": self.start,
            "timezone": self.timezone,
            "overrun_policy": self.overrun_policy,
            "max_running_instances": self.max_running_instances,
            "emails": list(self.emails),
        }
        if self.catchup:
            data["catchup"] = True
        if self.max_catchup is not None:
            data["max_catchup"] = self.max_catchup
        return data

    @classmethod
    def from_data(cls, data: Any, *, where: str = "") -> "ScheduleSpec":
        """The definition in a token's JSON object; unknown keys are ignored.

        :raises ScheduleError: naming ``where`` (the token or file), the
            workflow and the key that is wrong.
        """
        context = where or "schedule"
        if not isinstance(data, Mapping):
            raise ScheduleError(
                f"{context}: must be a JSON object, got {type(data).__name__}"
            )
        workflow = data.get("workflow")
        if not isinstance(workflow, str):
            raise ScheduleError(f"{context}: 'workflow' must name the workflow")
        where = f"{context}, workflow {workflow}"
        values: dict[str, Any] = {"workflow": workflow}
        for key in _SPEC_KEYS[1:]:
            if key in data and data[key] is not None:
                values[key] = data[key]
        policy = values.get("overrun_policy")
        if isinstance(policy, int) and not isinstance(policy, bool):
            values["overrun_policy"] = _ORIGINAL_POLICY_NUMBERS.get(policy, policy)
        if "emails" in values:
            emails = values["emails"]
            if not isinstance(emails, list | tuple) or not all(
                isinstance(e, str) for e in emails
            ):
                raise ScheduleError(f"{where}: 'emails' must be a list of addresses")
            values["emails"] = tuple(emails)
        try:
            return cls(**values)
        except ScheduleError as exc:
            raise ScheduleError(f"{context}: {exc}") from None

    def recurrence_of(self, anchor: str | None = None) -> Recurrence:
        """The slots of this schedule.

        ``anchor`` is where counting starts when ``start`` is not given (the
        scheduler keeps it in the state); without either, counting starts at
        the Unix epoch, which only a schedule written by hand lacks.
        """
        zone = recurrences.zone_of(self.timezone)
        if self.cron is not None:
            not_before = None
            if self.start is not None:
                not_before = recurrences.wall_to_instant(
                    parse_local(self.start, self.timezone), zone
                )
            return recurrences.Cron(self.cron, zone, not_before)

        text = self.start or anchor or "1970-01-01T00:00:00+00:00"
        local = parse_local(text, self.timezone)
        if self.recurrence is not None:
            duration = recurrences.parse_duration(self.recurrence)
            if duration.is_calendar:
                return recurrences.Calendar(duration.months, duration.days, local, zone)
            seconds = float(duration.seconds)
        else:
            assert self.recurrence_sec is not None
            seconds = float(self.recurrence_sec)
            days = recurrences.calendar_days(seconds)
            if days is not None:
                return recurrences.Calendar(0, days, local, zone)
        return recurrences.Interval(seconds, recurrences.wall_to_instant(local, zone))

    def describe(self) -> str:
        """The cadence and the main settings in words, for people."""
        if self.cron is not None:
            when = f"cron {self.cron!r}"
        elif self.recurrence is not None:
            when = f"every {self.recurrence}"
        else:
            assert self.recurrence_sec is not None
            when = f"every {self.recurrence_sec:g} s"
        start = f" from {self.start}" if self.start else ""
        catchup = ""
        if self.catchup:
            cap = self.max_catchup
            catchup = ", catch-up" + (f" of at most {cap}" if cap else "")
        return f"{when}{start} in {self.timezone}, {self.overrun_policy}{catchup}"


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleState:
    """Where the scheduler is in a schedule; kept under ``"state"``.

    ``next_run`` is the slot to run next (seconds since the epoch); while it
    is in the past the run is due, waiting for its policy. ``anchor`` is the
    local time counting started from when the definition has no ``start``.
    ``notified_slot`` is the slot whose refusal was already reported, so
    each slot is reported once; ``delayed_since`` is when its run was first
    put off. ``aborted`` lists the instances ABORT_RUNNING stopped for it,
    which must have stopped before it starts.
    """

    next_run: float | None = None
    anchor: str | None = None
    notified_slot: float | None = None
    delayed_since: float | None = None
    aborted: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"next_run": self.next_run}
        if self.anchor is not None:
            data["anchor"] = self.anchor
        if self.notified_slot is not None:
            data["notified_slot"] = self.notified_slot
        if self.delayed_since is not None:
            data["delayed_since"] = self.delayed_since
        if self.aborted:
            data["aborted"] = list(self.aborted)
        return data

    @classmethod
    def from_data(cls, data: Any, *, where: str) -> "ScheduleState":
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ScheduleError(f"{where}: 'state' must be a JSON object")
        values: dict[str, Any] = {}
        for key in ("next_run", "notified_slot", "delayed_since"):
            value = data.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ScheduleError(f"{where}: state.{key} must be a time")
                values[key] = float(value)
        anchor = data.get("anchor")
        if anchor is not None:
            if not isinstance(anchor, str):
                raise ScheduleError(f"{where}: state.anchor must be an ISO time")
            values["anchor"] = anchor
        aborted = data.get("aborted") or []
        if not isinstance(aborted, list) or not all(
            isinstance(a, str) for a in aborted
        ):
            raise ScheduleError(f"{where}: state.aborted must list instance ids")
        values["aborted"] = tuple(aborted)
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule token's content: the definition and the scheduler's state.

    ``extra`` keeps keys this version does not know, written back unchanged.
    """

    spec: ScheduleSpec
    state: ScheduleState = ScheduleState()
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def workflow(self) -> str:
        return self.spec.workflow

    def recurrence(self) -> Recurrence:
        return self.spec.recurrence_of(self.state.anchor)

    def with_state(self, **changes: Any) -> "Schedule":
        return dataclasses.replace(
            self, state=dataclasses.replace(self.state, **changes)
        )

    def to_json(self) -> str:
        data = dict(self.extra)
        data.update(self.spec.to_data())
        data[_STATE_KEY] = self.state.to_data()
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None, *, where: str) -> "Schedule":
        """Read a schedule token's data; ``where`` names the token in errors.

        :raises ScheduleError: if the data is not JSON or not a valid schedule.
        """
        try:
            data = json.loads(text or "")
        except ValueError as exc:
            raise ScheduleError(f"{where}: data is not JSON ({exc})") from None
        spec = ScheduleSpec.from_data(data, where=where)
        state = ScheduleState.from_data(data.get(_STATE_KEY), where=where)
        extra = {k: v for k, v in data.items() if k not in (*_SPEC_KEYS, _STATE_KEY)}
        return cls(spec, state, extra)

    @classmethod
    def from_token(cls, token: Token) -> "Schedule":
        """Read ``token``, checking that its name and workflow agree."""
        schedule = cls.from_json(token.data, where=f"schedule token {token.name}")
        if token.name != names.schedule_name(schedule.workflow):
            raise ScheduleError(
                f"schedule token {token.name} names workflow {schedule.workflow}; "
                f"its name should be {names.schedule_name(schedule.workflow)}"
            )
        return schedule


def schedule_token(spec: ScheduleSpec) -> Token:
    """The unowned schedule token a parser returns for ``spec``.

    ``pinball workflow reschedule`` stores it, adding the scheduler's state.
    """
    data = json.dumps(spec.to_data(), sort_keys=True)
    return Token(names.schedule_name(spec.workflow), data=data)


def parse_recurrence(text: str) -> dict[str, Any]:
    """A recurrence as written by people, as token keys.

    The original's ``<n><unit>`` (``30M`` minutes, ``2H`` hours, ``1d`` days,
    ``1w`` weeks) gives ``recurrence_sec``; an ISO 8601 duration (``P1M``,
    ``P1Y``, ``PT30M``) gives ``recurrence``.

    :raises ValueError: saying how to write it.
    """
    if not isinstance(text, str):
        raise ValueError(f"recurrence must be text such as '1d' or 'P1M', got {text!r}")
    match = _ORIGINAL_RECURRENCE.fullmatch(text)
    if match is not None:
        return {"recurrence_sec": int(match[1]) * ORIGINAL_UNITS[match[2]]}
    if text.startswith("P"):
        recurrences.parse_duration(text)
        return {"recurrence": text}
    raise ValueError(
        f"recurrence {text!r} must be a positive whole number and a unit, "
        "M (minutes), H (hours), d (days) or w (weeks), e.g. '30M' or '1d', or "
        "an ISO 8601 duration such as 'P1M' (a month) or 'P1Y' (a year)"
    )


def parse_local(text: str, timezone: str) -> datetime.datetime:
    """An ISO time as a wall-clock time in ``timezone``, without a zone.

    A time with an offset is converted into the zone; one without is taken
    as written.

    :raises ValueError: if ``text`` is not an ISO date and time.
    """
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"{text!r} is not an ISO date and time; write e.g. '2026-01-01T00:30:00'"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(recurrences.zone_of(timezone))
    return moment.replace(tzinfo=None)


def _normal_start(start: str | None) -> str | None:
    if start is None:
        return None
    try:
        return datetime.datetime.fromisoformat(start).isoformat()
    except ValueError:
        return start


def _check_spec(spec: ScheduleSpec) -> None:
    """Raise ScheduleError for the first wrong key of ``spec``."""

    def fail(key: str, reason: str) -> NoReturn:
        raise ScheduleError(f"workflow {spec.workflow}: {key} {reason}")

    if not isinstance(spec.workflow, str):
        raise ScheduleError(f"workflow must be a workflow name, got {spec.workflow!r}")
    try:
        names.check_word("workflow", spec.workflow)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None

    given = [
        key
        for key in ("recurrence_sec", "recurrence", "cron")
        if getattr(spec, key) is not None
    ]
    if len(given) != 1:
        found = " and ".join(given) or "none"
        raise ScheduleError(
            f"workflow {spec.workflow}: a schedule needs exactly one of "
            f"recurrence_sec, recurrence or cron; found {found}"
        )
    if spec.recurrence_sec is not None:
        seconds = spec.recurrence_sec
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            fail("recurrence_sec", f"must be a number of seconds, got {seconds!r}")
        if not seconds >= MIN_INTERVAL_SEC:
            fail(
                "recurrence_sec",
                f"must be at least {MIN_INTERVAL_SEC:g}, got {seconds!r}",
            )
    if spec.recurrence is not None:
        if not isinstance(spec.recurrence, str):
            fail("recurrence", f"must be an ISO 8601 duration, got {spec.recurrence!r}")
        try:
            duration = recurrences.parse_duration(spec.recurrence)
        except ValueError as exc:
            fail("recurrence", str(exc))
        else:
            if not duration.is_calendar and duration.seconds < MIN_INTERVAL_SEC:
                fail("recurrence", f"must be at least {MIN_INTERVAL_SEC:g} second")
    if spec.cron is not None:
        if not isinstance(spec.cron, str):
            fail("cron", f"must be a cron expression, got {spec.cron!r}")
        try:
            recurrences.check_cron(spec.cron)
        except ValueError as exc:
            raise ScheduleError(f"workflow {spec.workflow}: {exc}") from None

    if not isinstance(spec.timezone, str):
        fail("timezone", f"must be an IANA time zone name, got {spec.timezone!r}")
    try:
        recurrences.zone_of(spec.timezone)
    except ValueError as exc:
        raise ScheduleError(f"workflow {spec.workflow}: {exc}") from None
    if spec.start is not None:
        try:
            parse_local(spec.start, spec.timezone)
        except ValueError as exc:
            fail("start", str(exc))

    policy = spec.overrun_policy
    if not isinstance(policy, str) or not _POLICY_NAME.fullmatch(policy):
        fail(
            "overrun_policy",
            f"must name an overrun policy ({', '.join(BUILTIN_POLICIES)} or a "
            f"plugin's), got {policy!r}",
        )
    for key in ("max_running_instances", "max_catchup"):
        value = getattr(spec, key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            fail(key, f"must be a whole number of at least 1, got {value!r}")
    if not isinstance(spec.catchup, bool):
        fail("catchup", f"must be true or false, got {spec.catchup!r}")
    if not all(isinstance(e, str) for e in spec.emails):
        fail("emails", "must be a list of addresses")
