"""When a Python-defined workflow runs by itself, checked and as token data.

A schedule fires ``every`` period from ``start``, or on a ``cron``
expression, with times read in ``timezone``. The token data is built by the
core's schedule model (:class:`pinball_core.scheduler.ScheduleSpec`), as
every parser's is, so a workflow moved from YAML to Python keeps its
schedule; the scheduler, not the parser, works out the runs from it.
"""

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from typing import Any, Final

from pinball_core.scheduler import spec as specs
from pinball_core.scheduler.recurrence import check_cron, zone_of
from pinball_core.workflow.definition import did_you_mean

#: What a schedule may do when it fires while earlier instances still run.
OVERRUN_POLICIES: Final = specs.BUILTIN_POLICIES

DEFAULT_TIMEZONE: Final = specs.DEFAULT_TIMEZONE
DEFAULT_OVERRUN_POLICY: Final = specs.DEFAULT_POLICY

# A name the schedule model accepts while checking, whatever the workflow's.
_CHECKING: Final = "checking"


@dataclasses.dataclass(slots=True)
class Schedule:
    """When a workflow starts by itself.

    :param every: the period: a :class:`~datetime.timedelta`, seconds, the
        original's ``"<n><unit>"`` (``"30M"``, ``"2H"``, ``"1d"``, ``"1w"``)
        or an ISO 8601 duration for calendar periods (``"P1M"``, ``"P1Y"``).
        Give this or ``cron``.
    :param cron: a cron expression, e.g. ``"30 0 * * *"``.
    :param start: the first run, a :class:`~datetime.datetime` or an ISO
        string; a naive time is read in ``timezone``. Without it the
        scheduler starts counting when the schedule is written.
    :param timezone: an IANA time-zone name.
    :param overrun_policy: what to do when it fires while earlier instances
        still run: ``SKIP``, ``ABORT_RUNNING``, ``DELAY``,
        ``DELAY_UNTIL_SUCCESS`` or ``START_NEW``.
    :param max_running_instances: how many instances may run at once;
        without it the config's default applies.
    :param emails: addresses told about the schedule's runs, after the
        workflow's own.
    :param catchup: run the slots missed while no scheduler ran, oldest
        first, rather than only the latest.
    :param max_catchup: at most this many missed slots are run.
    """

    every: datetime.timedelta | int | float | str | None = None
    cron: str | None = None
    start: datetime.datetime | str | None = None
    timezone: str = DEFAULT_TIMEZONE
    overrun_policy: str = DEFAULT_OVERRUN_POLICY
    max_running_instances: int | None = None
    emails: Sequence[str] = ()
    catchup: bool = False
    max_catchup: int | None = None

    def check(self) -> list[str]:
        """Every problem of this schedule, one reason each; empty if none."""
        problems = []
        if (self.every is None) == (self.cron is None):
            problems.append("a schedule needs exactly one of every or cron")
        for check in _CHECKS:
            try:
                check(self)
            except ValueError as exc:
                problems.append(str(exc))
        if not problems:
            # Whatever the model refuses that the checks above missed.
            try:
                self.spec(_CHECKING, ())
            except ValueError as exc:
                problems.append(str(exc).replace(f"workflow {_CHECKING}: ", ""))
        return problems

    def spec(self, workflow: str, emails: Sequence[str]) -> specs.ScheduleSpec:
        """The core's schedule model of this schedule for ``workflow``.

        ``emails`` are the workflow's addresses; the schedule's own follow,
        each once.

        :raises ValueError: if the schedule has problems (see :meth:`check`).
        """
        when = {} if self.every is None else recurrence_keys(self.every)
        return specs.ScheduleSpec(
            workflow=workflow,
            recurrence_sec=when.get("recurrence_sec"),
            recurrence=when.get("recurrence"),
            cron=self.cron,
            start=None if self.start is None else _start_text(self.start),
            timezone=self.timezone,
            overrun_policy=self.overrun_policy,
            max_running_instances=self.max_running_instances,
            emails=tuple(dict.fromkeys([*emails, *self.emails])),
            catchup=self.catchup,
            max_catchup=self.max_catchup,
        )

    def token_data(self, workflow: str, emails: Sequence[str]) -> dict[str, Any]:
        """The schedule token's JSON body for ``workflow``; see :meth:`spec`."""
        return self.spec(workflow, emails).to_data()


def recurrence_keys(every: object) -> dict[str, Any]:
    """``every`` as the token's ``recurrence_sec`` or ``recurrence`` key.

    :raises ValueError: naming the fix if it is no period.
    """
    if isinstance(every, str):
        return specs.parse_recurrence(every)
    if isinstance(every, datetime.timedelta):
        seconds = every.total_seconds()
    elif isinstance(every, int | float) and not isinstance(every, bool):
        seconds = float(every)
    else:
        raise ValueError(
            "every must be a datetime.timedelta, a number of seconds or text "
            f"such as '1d' or 'P1M', got {every!r}"
        )
    if not seconds >= specs.MIN_INTERVAL_SEC:
        raise ValueError(
            f"every must be at least {specs.MIN_INTERVAL_SEC:g} second, "
            f"got {seconds:g} s"
        )
    return {"recurrence_sec": int(seconds) if seconds.is_integer() else seconds}


def _check_every(schedule: Schedule) -> None:
    if schedule.every is not None:
        recurrence_keys(schedule.every)


def _check_cron(schedule: Schedule) -> None:
    if schedule.cron is not None:
        if not isinstance(schedule.cron, str):
            raise ValueError(f"cron must be text, got {schedule.cron!r}")
        check_cron(schedule.cron)


def _start_text(start: datetime.datetime | str) -> str:
    if isinstance(start, datetime.datetime):
        return start.isoformat()
    return datetime.datetime.fromisoformat(start).isoformat()


def _check_start(schedule: Schedule) -> None:
    if schedule.start is None:
        return
    try:
        if not isinstance(schedule.start, datetime.datetime | str):
            raise TypeError
        _start_text(schedule.start)
    except (TypeError, ValueError):
        raise ValueError(
            f"start {schedule.start!r} must be a datetime or an ISO date and "
            "time, e.g. '2026-01-01T00:30:00'"
        ) from None


def _check_timezone(schedule: Schedule) -> None:
    try:
        if not isinstance(schedule.timezone, str):
            raise TypeError
        zone_of(schedule.timezone)
    except (TypeError, ValueError):
        raise ValueError(
            f"timezone {schedule.timezone!r} is unknown; use a name like 'UTC' "
            "or 'Europe/Berlin'"
        ) from None


def _check_policy(schedule: Schedule) -> None:
    policy = schedule.overrun_policy
    if policy not in OVERRUN_POLICIES:
        hint = did_you_mean(str(policy), OVERRUN_POLICIES)
        raise ValueError(
            f"overrun_policy {policy!r} is not one of "
            f"{', '.join(OVERRUN_POLICIES)}{hint}"
        )


def _whole(value: Any, key: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a whole number of at least 1, got {value!r}")


def _check_counts(schedule: Schedule) -> None:
    _whole(schedule.max_running_instances, "max_running_instances")
    _whole(schedule.max_catchup, "max_catchup")
    if not isinstance(schedule.catchup, bool):
        raise ValueError(f"catchup must be True or False, got {schedule.catchup!r}")


def _check_emails(schedule: Schedule) -> None:
    if isinstance(schedule.emails, str) or not all(
        isinstance(e, str) for e in schedule.emails
    ):
        raise ValueError(
            f"schedule emails must be a list of addresses, got {schedule.emails!r}"
        )


_CHECKS: Final[tuple[Callable[[Schedule], None], ...]] = (
    _check_every,
    _check_cron,
    _check_start,
    _check_timezone,
    _check_policy,
    _check_counts,
    _check_emails,
)
