"""Schedules: when workflows start by themselves.

- :mod:`~pinball_core.scheduler.spec`: the schedule token's content, which
  every parser builds with :class:`ScheduleSpec` and :func:`schedule_token`;
- :mod:`~pinball_core.scheduler.recurrence`: slots in a time zone, daylight
  saving included;
- :mod:`~pinball_core.scheduler.timeline`: which slot runs now (missed runs,
  catch-up) and which come next;
- :mod:`~pinball_core.scheduler.scheduler`: the passes that start instances,
  through the overrun policies;
- :mod:`~pinball_core.scheduler.reschedule`: writing schedule tokens from the
  definitions;
- :mod:`~pinball_core.scheduler.loop`: the long-running ``pinball scheduler``.
"""

from pinball_core.scheduler.spec import (
    BUILTIN_POLICIES,
    Schedule,
    ScheduleError,
    ScheduleSpec,
    ScheduleState,
    parse_recurrence,
    schedule_token,
)

__all__ = [
    "BUILTIN_POLICIES",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "ScheduleState",
    "parse_recurrence",
    "schedule_token",
]
