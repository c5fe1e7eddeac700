"""Which slot a due schedule runs now, and which runs come after it.

The scheduler and ``pinball workflow next`` both call these, so what the
command shows is what the scheduler will do.

Runs missed while no scheduler ran (or while a run was held back past the
next slot) are handled by the schedule's ``catchup``:

- off (the default, as the original did): one run, for the latest slot that
  has passed; the ones before it are dropped;
- on: every missed slot runs, oldest first, each through the overrun policy
  like any run; ``max_catchup`` keeps only that many of the latest.
"""

import dataclasses
from typing import Final

from pinball_core.scheduler.recurrence import EPSILON, Recurrence
from pinball_core.scheduler.spec import Schedule, ScheduleSpec

#: Missed slots counted one by one at most; beyond, "more than" is said.
MAX_COUNTED: Final = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Missed:
    """Slots passed over without a run: from ``first`` to ``last``.

    ``count`` is exact unless ``more`` says counting stopped there.
    """

    first: float
    last: float
    count: int
    more: bool = False

    def describe(self) -> str:
        count = f"more than {self.count}" if self.more else str(self.count)
        return f"{count} run(s)"


@dataclasses.dataclass(frozen=True, slots=True)
class Due:
    """The slot to run now, and what was passed over to get to it."""

    slot: float
    missed: Missed | None = None


def due_slot(
    spec: ScheduleSpec, recurrence: Recurrence, pending: float, now: float
) -> Due:
    """The slot to run at ``now`` for a schedule whose next run, ``pending``,
    has come.

    Without catch-up that is the latest slot at or before ``now``; with it,
    ``pending`` itself, unless more than ``max_catchup`` slots are due, when
    it is the oldest of the ``max_catchup`` latest ones.
    """
    if not spec.catchup:
        keep = 1
    elif spec.max_catchup is not None:
        keep = spec.max_catchup
    else:
        return Due(pending)

    slot = recurrence.latest_at_or_before(now)
    if slot is None or slot <= pending:
        return Due(pending)
    for _ in range(keep - 1):
        earlier = recurrence.latest_at_or_before(slot - EPSILON)
        if earlier is None or earlier <= pending:
            return Due(pending)
        slot = earlier
    return Due(slot, count_slots(recurrence, pending, slot))


def count_slots(recurrence: Recurrence, first: float, before: float) -> Missed:
    """The slots from ``first`` up to, not including, ``before``."""
    count = 0
    last = current = first
    while current < before and count < MAX_COUNTED:
        count += 1
        last = current
        following = recurrence.next_after(current)
        if following is None:
            break
        current = following
    return Missed(first, last, count, more=current < before and count >= MAX_COUNTED)


def upcoming(schedule: Schedule, now: float, count: int) -> list[float]:
    """The next ``count`` runs of ``schedule`` as the scheduler will make them.

    The first may be in the past: a run that is due and not started yet (a
    delayed one, or a missed one the scheduler has not seen).
    """
    recurrence = schedule.recurrence()
    pending = schedule.state.next_run
    if pending is None:
        first = recurrence.next_after(now)
    elif pending <= now:
        first = due_slot(schedule.spec, recurrence, pending, now).slot
    else:
        first = pending
    runs: list[float] = []
    current = first
    while current is not None and len(runs) < count:
        runs.append(current)
        current = recurrence.next_after(current)
    return runs
