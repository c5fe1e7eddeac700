"""Checking a workflow's schedule and writing it as schedule-token data.

A schedule fires either every ``recurrence`` (``<n><unit>``, units ``M``
minutes, ``H`` hours, ``d`` days, ``w`` weeks) from ``start``, or on a
``cron`` expression; times are read in ``timezone``. The scheduler, not the
parser, works out the next run from these values.
"""

import dataclasses
import datetime
import re
import zoneinfo
from typing import Any, Final

from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

#: Seconds in each recurrence unit.
UNITS: Final = {"M": 60, "H": 3600, "d": 86400, "w": 7 * 86400}

#: What a schedule may do when it fires while earlier instances still run.
OVERRUN_POLICIES: Final = (
    "SKIP",
    "ABORT_RUNNING",
    "DELAY",
    "DELAY_UNTIL_SUCCESS",
    "START_NEW",
)

DEFAULT_TIMEZONE: Final = "UTC"
DEFAULT_OVERRUN_POLICY: Final = "SKIP"

_RECURRENCE = re.compile(r"([1-9][0-9]*)([MHdw])")


@dataclasses.dataclass(slots=True)
class Schedule:
    """A checked schedule, as the schedule token carries it."""

    recurrence_sec: int | None = None
    cron: str | None = None
    start: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    overrun_policy: str = DEFAULT_OVERRUN_POLICY
    max_running_instances: int | None = None

    def token_data(self, workflow: str, emails: list[str]) -> dict[str, Any]:
        """The schedule token's JSON body for ``workflow``."""
        when: dict[str, Any] = (
            {"recurrence_sec": self.recurrence_sec}
            if self.cron is None
            else {"cron": self.cron}
        )
        return {
            "workflow": workflow,
            **when,
            "start": self.start,
            "timezone": self.timezone,
            "overrun_policy": self.overrun_policy,
            "max_running_instances": self.max_running_instances,
            "emails": list(emails),
        }


def recurrence_seconds(text: str) -> int:
    """Seconds in a recurrence like ``30M`` or ``1d``; ValueError if malformed."""
    match = _RECURRENCE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"recurrence {text!r} must be a positive whole number and a unit, "
            "M (minutes), H (hours), d (days) or w (weeks), e.g. '30M' or '1d'"
        )
    return int(match[1]) * UNITS[match[2]]


def check_cron(text: str) -> None:
    """Raise ValueError naming the fix if ``text`` is not a five-field cron
    expression with every field in range."""
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"cron {text!r} is not a cron expression of five fields (minute hour "
            "day-of-month month day-of-week), e.g. '30 0 * * *'"
        )


def check_start(text: str) -> str:
    """``text`` as an ISO date and time; ValueError if it is not one."""
    try:
        return datetime.datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(
            f"start {text!r} must be an ISO date and time, e.g. '2026-01-01T00:30:00'"
        ) from None


def check_timezone(name: str) -> str:
    """``name`` if the time-zone database knows it; ValueError if not."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone {name!r} is unknown; use a name like 'UTC' or 'Europe/Berlin'"
        ) from None
    return name
