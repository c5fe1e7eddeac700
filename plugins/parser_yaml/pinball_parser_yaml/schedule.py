"""Checking a workflow's schedule and writing it as schedule-token data.

A schedule fires either every ``recurrence`` from ``start`` or on a
``cron`` expression; times are read in ``timezone``. A recurrence is the
original's ``<n><unit>`` (units ``M`` minutes, ``H`` hours, ``d`` days, ``w``
weeks) or an ISO 8601 duration (``P1M`` a month, ``P1Y`` a year). The token
data is built by the core's schedule model
(:class:`pinball_core.scheduler.ScheduleSpec`), the same for every parser;
the scheduler, not the parser, works out the runs from it.
"""

import dataclasses
import datetime
from typing import Any, Final

from pinball_core.scheduler import spec as specs
from pinball_core.scheduler.recurrence import check_cron as core_check_cron
from pinball_core.scheduler.recurrence import zone_of

#: Seconds in each of the original's recurrence units.
UNITS: Final = specs.ORIGINAL_UNITS

#: What a schedule may do when it fires while earlier instances still run.
OVERRUN_POLICIES: Final = (
    specs.SKIP,
    specs.ABORT_RUNNING,
    specs.DELAY,
    specs.DELAY_UNTIL_SUCCESS,
    specs.START_NEW,
)

DEFAULT_TIMEZONE: Final = specs.DEFAULT_TIMEZONE
DEFAULT_OVERRUN_POLICY: Final = specs.DEFAULT_POLICY


@dataclasses.dataclass(slots=True)
class Schedule:
    """A checked schedule, as the schedule token carries it.

    One of ``recurrence_sec`` (the original's units), ``recurrence`` (an ISO
    8601 duration) or ``cron`` is set in a valid schedule.
    """

    recurrence_sec: int | None = None
    cron: str | None = None
    start: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    overrun_policy: str = DEFAULT_OVERRUN_POLICY
    max_running_instances: int | None = None
    recurrence: str | None = None
    catchup: bool = False
    max_catchup: int | None = None

    def token_data(self, workflow: str, emails: list[str]) -> dict[str, Any]:
        """The schedule token's JSON body for ``workflow``.

        :raises ValueError: if the schedule is incomplete (its definition has
            problems, which ``validate`` lists).
        """
        spec = specs.ScheduleSpec(
            workflow=workflow,
            recurrence_sec=self.recurrence_sec,
            recurrence=self.recurrence,
            cron=self.cron,
            start=self.start,
            timezone=self.timezone,
            overrun_policy=self.overrun_policy,
            max_running_instances=self.max_running_instances,
            emails=tuple(emails),
            catchup=self.catchup,
            max_catchup=self.max_catchup,
        )
        return spec.to_data()

    def set_recurrence(self, when: dict[str, Any]) -> None:
        """Take what :func:`check_recurrence` returned."""
        self.recurrence_sec = when.get("recurrence_sec")
        self.recurrence = when.get("recurrence")


def check_recurrence(text: str) -> dict[str, Any]:
    """``{"recurrence_sec": n}`` for ``30M`` or ``1d``, ``{"recurrence": text}``
    for an ISO 8601 duration such as ``P1M``; ValueError naming the fix."""
    return specs.parse_recurrence(text)


def recurrence_seconds(text: str) -> int:
    """Seconds in a recurrence like ``30M`` or ``1d``; ValueError if malformed."""
    when = check_recurrence(text)
    if "recurrence_sec" not in when:
        raise ValueError(f"recurrence {text!r} is a calendar period, not seconds")
    seconds: int = when["recurrence_sec"]
    return seconds


def check_cron(text: str) -> None:
    """Raise ValueError naming the fix if ``text`` is not a five-field cron
    expression (or a shortcut such as ``@daily``) that names real dates."""
    core_check_cron(text)


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
        zone_of(name)
    except ValueError:
        raise ValueError(
            f"timezone {name!r} is unknown; use a name like 'UTC' or 'Europe/Berlin'"
        ) from None
    return name
