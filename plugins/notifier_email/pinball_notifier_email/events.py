"""What the hooks hand over to the mail thread: one small record per event.

A hook runs in a worker or the scheduler and must return at once, so it
only copies what it was given into one of these and queues it. Everything
slow (reading the master, reading logs, rendering, SMTP) happens later on
the notifier's own thread.
"""

import dataclasses

from pinball_core.components import Notification
from pinball_core.workflow.model import Job
from pinball_core.workflow.status import InstanceSummary


@dataclasses.dataclass(frozen=True, slots=True)
class JobFailed:
    """An execution failed; ``final`` when the job has no attempt left."""

    workflow: str
    instance: str
    job: str
    execution: int
    exit_code: int | None
    reason: str
    final: bool
    #: A copy of the job as recorded, or None from an older caller.
    payload: Job | None


@dataclasses.dataclass(frozen=True, slots=True)
class WarnTimeout:
    """A running execution passed its ``warn_timeout_sec``."""

    workflow: str
    instance: str
    job: str
    execution: int
    timeout: float
    payload: Job | None


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceFinished:
    """An instance ended with ``status`` (SUCCESS, FAILURE, ABORTED)."""

    workflow: str
    instance: str
    status: str
    summary: InstanceSummary | None


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleRefused:
    """A schedule was due at ``scheduled_time`` but started nothing."""

    workflow: str
    scheduled_time: float
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A :class:`~pinball_core.components.Notification` to send as it is."""

    notification: Notification


Event = JobFailed | WarnTimeout | InstanceFinished | ScheduleRefused | Message
