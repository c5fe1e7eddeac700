"""When a schedule's runs fall: recurrences in a time zone, daylight saving included.

A recurrence turns a schedule's cadence into *slots*, the instants (seconds
since the epoch) at which runs are due. There are three kinds:

- :class:`Interval`: every so many seconds of elapsed time from an anchor
  (``30M``, ``6H``, ``PT90M``); daylight saving does not move it.
- :class:`Calendar`: every so many months and days of the calendar from an
  anchor, at the anchor's wall-clock time (``1d``, ``1w``, ``P1M``, ``P1Y``).
- :class:`Cron`: the wall-clock times a cron expression names.

Wall-clock times become instants by three rules, the same for calendar and
cron schedules (:func:`wall_to_instant`):

- a time the zone skips (the spring gap) runs at the first valid time after
  it, which is the end of the gap; several such times make one run;
- a time the zone repeats (the autumn overlap) runs once, at its first
  occurrence;
- a calendar run keeps its wall-clock time across a change: a daily 02:30
  run stays at 02:30 local time, 23 or 25 hours after the previous one.

Months keep the anchor's day of the month where they have it and take their
last day where they do not: a monthly run anchored on the 31st runs on 30
April and 28 (or 29) February, and on 31 May again. A yearly run anchored on
29 February runs on 28 February in common years.
"""

import calendar
import copy
import dataclasses
import datetime
import functools
import math
import re
import zoneinfo
from typing import Final, Protocol

from croniter import (  # type: ignore[import-untyped,unused-ignore]
    CroniterBadDateError,
    croniter,
)

#: Times compared as "at or after" are nudged by this much; slots are whole
#: seconds, so it never merges two of them.
EPSILON: Final = 1e-3

#: Cron candidates examined for one answer before giving up; an overlap or a
#: gap costs at most a few hundred of them for an every-minute expression.
_MAX_CRON_STEPS: Final = 100_000

#: The shortcuts croniter accepts besides five fields.
CRON_ALIASES: Final = (
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
)

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?"
    r"(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?",
    re.ASCII,
)


class Recurrence(Protocol):
    """The slots of a schedule, asked for around an instant."""

    def next_after(self, moment: float) -> float | None:
        """The first slot strictly after ``moment``; None if there is none."""
        ...

    def latest_at_or_before(self, moment: float) -> float | None:
        """The last slot at or before ``moment``; None if there is none."""
        ...

    def describe(self) -> str:
        """The cadence in words, for people."""
        ...


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; ValueError naming it if it is unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"time zone {name!r} is unknown; use an IANA name such as 'UTC', "
            "'Europe/Berlin' or 'America/New_York'"
        ) from None


def local_time(moment: float, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The wall-clock time at ``moment`` in ``zone``, without a time zone."""
    return datetime.datetime.fromtimestamp(moment, zone).replace(tzinfo=None)


def aware_time(moment: float, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """``moment`` as an aware time in ``zone``, for display."""
    return datetime.datetime.fromtimestamp(moment, zone)


def wall_to_instant(local: datetime.datetime, zone: zoneinfo.ZoneInfo) -> float:
    """The instant a run due at wall-clock time ``local`` in ``zone`` happens.

    A time that exists once is that instant; one that exists twice (the
    autumn overlap) is its first occurrence; one that does not exist (the
    spring gap) is the end of the gap, the first valid time after it.
    """
    return _wall_to_instant(local.replace(tzinfo=None), zone.key)


@functools.lru_cache(maxsize=4096)
def _wall_to_instant(local: datetime.datetime, zone_name: str) -> float:
    zone = zoneinfo.ZoneInfo(zone_name)
    # fold=0 is the earlier offset: the first occurrence of a repeated time.
    first = local.replace(tzinfo=zone, fold=0).timestamp()
    if local_time(first, zone) == local:
        return first
    # In a gap, fold=0 reads the time with the offset from before the gap and
    # fold=1 with the one after it; the change lies between the two readings.
    later = local.replace(tzinfo=zone, fold=1).timestamp()
    low, high = math.floor(min(first, later)), math.ceil(max(first, later))
    return float(_first_change(low, high, zone))


def _first_change(low: int, high: int, zone: zoneinfo.ZoneInfo) -> int:
    """The first whole second in ``(low, high]`` whose UTC offset differs
    from ``low``'s: the moment a gap begins, which is the wall-clock time
    right after it."""
    before = datetime.datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.datetime.fromtimestamp(middle, zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def add_months(moment: datetime.datetime, months: int) -> datetime.datetime:
    """``moment`` moved by whole ``months``, on the same day or the month's last.

    :raises OverflowError: past year 9999.
    """
    years, month0 = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    if not datetime.MINYEAR <= year <= datetime.MAXYEAR:
        raise OverflowError(f"year {year} is out of range")
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, last_day))


# -- The three kinds ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Interval:
    """Every ``seconds`` of elapsed time from ``anchor`` (an instant) on."""

    seconds: float
    anchor: float

    def next_after(self, moment: float) -> float | None:
        return self._slot(self._index_after(moment))

    def latest_at_or_before(self, moment: float) -> float | None:
        k = self._index_after(moment)
        return self._slot(k - 1) if k > 0 else None

    def describe(self) -> str:
        return f"every {_seconds_in_words(self.seconds)}"

    def _slot(self, k: int) -> float:
        return self.anchor + k * self.seconds

    def _index_after(self, moment: float) -> int:
        """The number of the first slot strictly after ``moment``."""
        if moment < self.anchor:
            return 0
        k = math.floor((moment - self.anchor) / self.seconds) + 1
        # Rounding can put k one step off; the slot must be strictly after.
        while self._slot(k) <= moment:
            k += 1
        while k > 0 and self._slot(k - 1) > moment:
            k -= 1
        return k


@dataclasses.dataclass(frozen=True, slots=True)
class Calendar:
    """Every ``months`` months and ``days`` days of the calendar in ``zone``,
    at the wall-clock time of ``anchor`` (a time without a zone)."""

    months: int
    days: int
    anchor: datetime.datetime
    zone: zoneinfo.ZoneInfo

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or not (self.months or self.days):
            raise ValueError("a calendar recurrence needs a positive step")

    def next_after(self, moment: float) -> float | None:
        try:
            return self._slot(self._index_after(moment))
        except OverflowError:
            return None

    def latest_at_or_before(self, moment: float) -> float | None:
        try:
            k = self._index_after(moment)
            return self._slot(k - 1) if k > 0 else None
        except OverflowError:
            return None

    def describe(self) -> str:
        parts = []
        if self.months:
            years, months = divmod(self.months, 12)
            if years:
                parts.append(_plural(years, "year"))
            if months:
                parts.append(_plural(months, "month"))
        if self.days:
            weeks, days = divmod(self.days, 7)
            if weeks and not days:
                parts.append(_plural(weeks, "week"))
            else:
                parts.append(_plural(self.days, "day"))
        wall = self.anchor.strftime("%H:%M:%S")
        return f"every {' '.join(parts)} at {wall} {self.zone.key}"

    def _local(self, k: int) -> datetime.datetime:
        # Always from the anchor, so a day clipped in a short month comes back.
        moved = add_months(self.anchor, k * self.months) if self.months else self.anchor
        try:
            return moved + datetime.timedelta(days=k * self.days)
        except ValueError as exc:  # no such date (past year 9999)
            raise OverflowError(str(exc)) from None

    def _slot(self, k: int) -> float:
        return wall_to_instant(self._local(k), self.zone)

    def _index_after(self, moment: float) -> int:
        """The number of the first slot strictly after ``moment``."""
        k = max(0, self._estimate(moment) - 1)
        while self._slot(k) <= moment:
            k += 1
        while k > 0 and self._slot(k - 1) > moment:
            k -= 1
        return k

    def _estimate(self, moment: float) -> int:
        """A step number close to, and usually just below, ``moment``'s."""
        local = local_time(moment, self.zone)
        if self.months and not self.days:
            elapsed = (local.year - self.anchor.year) * 12 + (
                local.month - self.anchor.month
            )
            return max(0, elapsed // self.months)
        step_days = self.months * 30.436875 + self.days
        elapsed_days = (local - self.anchor).total_seconds() / 86400
        return max(0, math.floor(elapsed_days / step_days))


@dataclasses.dataclass(frozen=True, slots=True)
class Cron:
    """The wall-clock times ``expression`` names in ``zone``, from
    ``not_before`` (an instant) on, if given."""

    expression: str
    zone: zoneinfo.ZoneInfo
    not_before: float | None = None

    def next_after(self, moment: float) -> float | None:
        if self.not_before is not None:
            moment = max(moment, self.not_before - EPSILON)
        aware = aware_time(moment, self.zone)
        # croniter walks wall-clock times without a zone, one after another;
        # each is then placed by the daylight-saving rules. In the second
        # pass of an overlap the first candidates fall back before ``moment``
        # and are passed over.
        steps = _steps(self.expression, aware.replace(tzinfo=None))
        for _ in range(_MAX_CRON_STEPS):
            try:
                candidate = steps.get_next(datetime.datetime)
            except (CroniterBadDateError, OverflowError, ValueError):
                return None
            instant = wall_to_instant(candidate, self.zone)
            if instant > moment:
                return instant
        raise RuntimeError(
            f"cron {self.expression!r}: no run found after {aware.isoformat()} "
            f"within {_MAX_CRON_STEPS} candidates"
        )

    def latest_at_or_before(self, moment: float) -> float | None:
        aware = aware_time(moment, self.zone)
        start = aware.replace(tzinfo=None)
        if aware.fold:
            # In the second pass of an overlap, times later on the wall clock
            # in the same overlap ran in its first pass, before ``moment``.
            first = aware.replace(fold=0).utcoffset()
            second = aware.utcoffset()
            assert first is not None and second is not None
            start += first - second
        # croniter's get_prev is strictly before its start; one second more
        # makes a slot exactly at ``moment`` count.
        steps = _steps(self.expression, start + datetime.timedelta(seconds=1))
        for _ in range(_MAX_CRON_STEPS):
            try:
                candidate = steps.get_prev(datetime.datetime)
            except (CroniterBadDateError, OverflowError, ValueError):
                return None
            instant = wall_to_instant(candidate, self.zone)
            if self.not_before is not None and instant < self.not_before - EPSILON:
                return None
            if instant <= moment:
                return instant
        raise RuntimeError(
            f"cron {self.expression!r}: no run found before {aware.isoformat()} "
            f"within {_MAX_CRON_STEPS} candidates"
        )

    def describe(self) -> str:
        return f"cron {self.expression!r} in {self.zone.key}"


# -- Reading cadences -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration split into calendar months, days and seconds."""

    months: int
    days: int
    seconds: int

    @property
    def is_calendar(self) -> bool:
        return bool(self.months or self.days)


def parse_duration(text: str) -> Duration:
    """An ISO 8601 duration such as ``P1M``, ``P1Y``, ``P2W`` or ``PT30M``.

    A duration steps either by the calendar (years, months, weeks, days) or
    by elapsed time (hours, minutes, seconds), not both, since the two
    disagree across a daylight-saving change.

    :raises ValueError: naming the text and how to write it.
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration; write e.g. 'P1M' (a month), "
            "'P1Y' (a year), 'P1W' (a week), 'P1D' (a day) or 'PT30M' (30 minutes)"
        )
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    duration = Duration(
        months=parts["years"] * 12 + parts["months"],
        days=parts["weeks"] * 7 + parts["days"],
        seconds=parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"],
    )
    if duration.is_calendar and duration.seconds:
        raise ValueError(
            f"duration {text!r} mixes calendar parts (Y, M, W, D) with a time "
            "part (T...); use one kind, e.g. 'P1D' or 'PT36H'"
        )
    if not (duration.is_calendar or duration.seconds):
        raise ValueError(f"duration {text!r} is zero; a schedule needs a step")
    return duration


def _steps(expression: str, start: datetime.datetime) -> croniter:
    """A croniter walking ``expression`` from ``start``.

    Each walk gets its own copy of one parsed prototype: parsing an
    expression costs more than the walk, and a walk changes its croniter.
    """
    steps = copy.copy(_prototype(expression))
    steps.set_current(start, force=True)
    return steps


@functools.lru_cache(maxsize=1024)
def _prototype(expression: str) -> croniter:
    return croniter(expression, datetime.datetime(2000, 1, 1))


# Each field of a cron expression, with the values it takes.
_CRON_FIELDS: Final = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT"),
)


def _invalid_cron_fields(fields: list[str]) -> list[str]:
    """Which of five cron fields croniter refuses on its own, with their
    ranges: its own message names none of them."""
    wrong = []
    for index, (name, values) in enumerate(_CRON_FIELDS):
        alone = ["*"] * 5
        alone[index] = fields[index]
        if not croniter.is_valid(" ".join(alone)):
            wrong.append(f"the {name} field {fields[index]!r} is not in {values}")
    return wrong


@functools.lru_cache(maxsize=1024)
def check_cron(expression: str) -> str:
    """``expression`` if it is a cron expression that fires; ValueError if not.

    Five fields (minute, hour, day of month, month, day of week) or one of
    the shortcuts ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``,
    ``@yearly``.
    """
    text = expression.strip() if isinstance(expression, str) else ""
    fields = text.split()
    shortcut = len(fields) == 1 and text.lower() in CRON_ALIASES
    if len(fields) == 5 and not croniter.is_valid(text):
        wrong = _invalid_cron_fields(fields)
        if wrong:
            raise ValueError(f"cron {expression!r}: {'; '.join(wrong)}")
    if not (len(fields) == 5 or shortcut) or not croniter.is_valid(text):
        raise ValueError(
            f"cron {expression!r} is not a cron expression of five fields (minute "
            "hour day-of-month month day-of-week), e.g. '30 2 * * *', or one of "
            f"{', '.join(CRON_ALIASES)}"
        )
    probe = croniter(text, datetime.datetime(2000, 1, 1))
    try:
        probe.get_next(datetime.datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"cron {expression!r} names no date that exists (such as 30 February)"
        ) from None
    return text


def calendar_days(seconds: float) -> int | None:
    """Whole days in an interval of ``seconds``, or None if it is not whole days.

    An interval of whole days (``1d``, ``1w``, ``timedelta(days=1)``) is a
    calendar interval: it keeps its wall-clock time across daylight saving.
    """
    if seconds >= 86400 and float(seconds).is_integer() and seconds % 86400 == 0:
        return int(seconds // 86400)
    return None


def _seconds_in_words(seconds: float) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return _plural(int(seconds // size), unit)
    return _plural(seconds, "second")


def _plural(count: float, word: str) -> str:
    shown = f"{count:g}"
    return f"{shown} {word}" if count == 1 else f"{shown} {word}s"
