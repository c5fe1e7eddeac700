"""The long-running scheduler: passes driven by the ``schedule`` package.

A pass runs every ``scheduler_poll_sec``, to see schedules that were added
or changed, and once more at the moment the next known run comes due, so
runs start on time rather than at the next poll. A summary is logged every
ten minutes. ``schedule`` reads the local wall clock, which moves back an
hour when daylight saving ends; the loop notices such jumps and plans its
jobs again, so a pass is never put off by a clock change.
"""

import datetime
import logging
import threading
import time
from typing import Final, cast

import schedule

from pinball_core.errors import MasterError
from pinball_core.scheduler.scheduler import Outcome, PassReport, Scheduler

log = logging.getLogger(__name__)

#: The loop never sleeps longer than this, so it notices clock jumps.
MAX_NAP_SEC: Final = 5.0

#: A difference between the wall clock and the monotonic clock over one nap
#: above this is a jump of the wall clock.
JUMP_SEC: Final = 2.0

#: The soonest a pass follows the one before, even with runs due at once.
MIN_GAP_SEC: Final = 0.05

#: How often the summary is logged.
SUMMARY_SEC: Final = 600.0

_PASS = "pass"
_WAKE = "wake"
_SUMMARY = "summary"


class SchedulerLoop:
    """Runs ``scheduler``'s passes until stopped.

    :param scheduler: Does the passes; its clock is the time the passes see.
    :param poll_sec: How often a pass runs when no run is due sooner.
    """

    def __init__(self, scheduler: Scheduler, poll_sec: float) -> None:
        self.scheduler = scheduler
        self.poll_sec = poll_sec
        self.passes = 0
        self.last_report: PassReport | None = None
        self._jobs = schedule.Scheduler()
        self._started = 0
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Run passes until ``stop`` is set; the pass under way finishes."""
        self._stop = stop
        log.info(
            "scheduler %s running: a pass every %.0f s and whenever a run is due",
            self.scheduler.name,
            self.poll_sec,
        )
        self._plan()
        self._pass()
        wall, steady = datetime.datetime.now(), time.monotonic()
        while not stop.is_set():
            self._jobs.run_pending()
            idle = self._jobs.idle_seconds
            nap = MAX_NAP_SEC if idle is None else min(max(idle, 0.0), MAX_NAP_SEC)
            if stop.wait(nap):
                break
            wall_now, steady_now = datetime.datetime.now(), time.monotonic()
            drift = (wall_now - wall).total_seconds() - (steady_now - steady)
            wall, steady = wall_now, steady_now
            if abs(drift) > JUMP_SEC:
                log.info("the wall clock jumped by %+.0f s; planning again", drift)
                self._plan()
                self._pass()
        log.info(
            "scheduler %s stopped after %d passes", self.scheduler.name, self.passes
        )

    def _plan(self) -> None:
        self._jobs.clear()
        self._every(self.poll_sec).seconds.do(self._pass).tag(_PASS)
        self._every(SUMMARY_SEC).seconds.do(self._summary).tag(_SUMMARY)

    def _pass(self) -> None:
        self.passes += 1
        try:
            report = self.scheduler.run_pass()
        except MasterError as exc:
            if self._stop.is_set():
                # The stop ended the pass's retries; there is no next pass.
                log.info("scheduler pass cut short by the stop: %s", exc)
                return
            log.error(
                "scheduler pass failed: %s; trying again in %.0f s", exc, self.poll_sec
            )
            return
        except Exception:
            log.exception(
                "scheduler pass failed; trying again in %.0f s", self.poll_sec
            )
            return
        self.last_report = report
        self._started += report.outcomes.get(Outcome.STARTED, 0)
        self._wake_for(report.next_wake)

    def _wake_for(self, moment: float | None) -> None:
        """Plan one extra pass when the next run comes due before the next poll."""
        self._jobs.clear(_WAKE)
        if moment is None:
            return
        delay = max(moment - self.scheduler.clock(), MIN_GAP_SEC)
        if delay >= self.poll_sec:
            return

        def wake() -> type[schedule.CancelJob]:
            self._pass()
            return schedule.CancelJob

        self._every(delay).seconds.do(wake).tag(_WAKE)

    def _every(self, seconds: float) -> schedule.Job:
        # Typed as int, but the interval only becomes a timedelta, so
        # fractions of a second work, and a run due in 0.3 s is not a second
        # late.
        return self._jobs.every(cast(int, seconds))

    def _summary(self) -> None:
        report = self.last_report
        if report is None:
            return
        log.info(
            "scheduler %s: %d passes, %d instances started; last pass: %s",
            self.scheduler.name,
            self.passes,
            self._started,
            report.describe(),
        )
