"""The five overrun policies of the original Pinball.

Each answers what to do with a due run from what runs now; the cap on
running instances is the scheduler's, applied to whatever they decide.

============================  =========================  ==========================
Policy                        Instances running          None running
============================  =========================  ==========================
``START_NEW``                 start another one          start
``SKIP``                      drop this run              start
``ABORT_RUNNING``             abort them, then start     start
``DELAY``                     ask again later            start
``DELAY_UNTIL_SUCCESS``       ask again later            start if the last finished
                                                         instance succeeded (or none
                                                         finished yet), else wait
============================  =========================  ==========================

At the cap every policy waits (DELAY), except ``SKIP``, which has already
dropped the run by then.
"""

from pinball_core import hookimpl
from pinball_core.components import OverrunContext, OverrunDecision, OverrunPolicy

#: The status of a finished instance that lets DELAY_UNTIL_SUCCESS go on.
SUCCESS = "SUCCESS"


class StartNew:
    """Start a new instance whatever runs, up to the cap; wait at the cap."""

    name = "START_NEW"

    def decide(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.START

    def at_limit(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.DELAY


class Skip:
    """Drop a run that comes while an instance runs."""

    name = "SKIP"

    def decide(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.SKIP if context.running else OverrunDecision.START

    def at_limit(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.SKIP


class AbortRunning:
    """Abort the running instances; the new one starts once they stopped."""

    name = "ABORT_RUNNING"

    def decide(self, context: OverrunContext) -> OverrunDecision:
        if context.running:
            return OverrunDecision.ABORT_RUNNING
        return OverrunDecision.START

    def at_limit(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.DELAY


class Delay:
    """Hold a run back while an instance runs; start it when none does."""

    name = "DELAY"

    def decide(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.DELAY if context.running else OverrunDecision.START

    def at_limit(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.DELAY


class DelayUntilSuccess:
    """Like DELAY, and also hold the run while the last finished instance
    failed or was aborted, until one succeeds (after a retry by hand)."""

    name = "DELAY_UNTIL_SUCCESS"

    def decide(self, context: OverrunContext) -> OverrunDecision:
        if context.running:
            return OverrunDecision.DELAY
        last = context.last_finished
        if last is not None and last.status != SUCCESS:
            return OverrunDecision.DELAY
        return OverrunDecision.START

    def at_limit(self, context: OverrunContext) -> OverrunDecision:
        return OverrunDecision.DELAY


class _Provider:
    """Makes one policy for the plugin manager; subclasses name it."""

    policy: type

    @hookimpl
    def pinball_make_overrun_policy(self) -> OverrunPolicy:
        made: OverrunPolicy = self.policy()
        return made


class StartNewPlugin(_Provider):
    policy = StartNew


class SkipPlugin(_Provider):
    policy = Skip


class AbortRunningPlugin(_Provider):
    policy = AbortRunning


class DelayPlugin(_Provider):
    policy = Delay


class DelayUntilSuccessPlugin(_Provider):
    policy = DelayUntilSuccess
