"""What the workflow layer stores in token data: jobs, events and signals.

Every payload is a JSON object with a ``type`` and a format ``schema``, never
a pickle, so any tool can read it and no stored token can run code. Fields a
newer Pinball adds are ignored by an older one; fields an older one lacks
take their defaults.
"""

import dataclasses
import json
from typing import Any, ClassVar, Self

SCHEMA = 1

#: Job kinds: a shell command, or a Python callable ``module:function``.
SHELL = "shell"
PYTHON = "python"
KINDS = (SHELL, PYTHON)

#: Signal actions, with the original's names.
DRAIN = "DRAIN"
ABORT = "ABORT"
ARCHIVE = "ARCHIVE"
EXIT = "EXIT"
ACTIONS = (DRAIN, ABORT, ARCHIVE, EXIT)

#: How an execution's ``reason`` starts when its worker died under it.
LOST = "lost"

#: Attempts lost with their worker (a crash or a kill, not the job's own
#: failure) are run again without using up ``max_attempts``. A job that keeps
#: taking its worker down with it (say, by exhausting the host's memory)
#: fails for good after this many lost attempts in a row.
MAX_LOST_ATTEMPTS = 3

#: The ``reason`` of an attempt its worker stopped because the worker itself
#: was told to stop at once (a second Ctrl-C or SIGTERM, ``pinball run
#: --abort-running``). Lost, not failed: it runs again when workers are back.
#: An operator's stop says nothing about the job, so it does not count
#: towards :data:`MAX_LOST_ATTEMPTS` either.
STOPPED_WITH_WORKER = f"{LOST}: stopped with its worker"


class PayloadError(ValueError):
    """Token data that is not the payload it should be."""


@dataclasses.dataclass
class _Payload:
    TYPE: ClassVar[str] = ""

    def to_json(self) -> str:
        body = {"type": self.TYPE, "schema": SCHEMA} | _plain(self)
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Self:
        try:
            raw = json.loads(text or "")
        except ValueError as exc:
            raise PayloadError(f"not JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("type") != cls.TYPE:
            raise PayloadError(f"not a {cls.TYPE} payload: {str(text)[:80]!r}")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as exc:
            raise PayloadError(f"bad {cls.TYPE} payload: {exc}") from exc


def _plain(payload: Any) -> dict[str, Any]:
    return dataclasses.asdict(payload)


@dataclasses.dataclass
class Event(_Payload):
    """A token telling a job that one of its inputs is satisfied.

    ``attributes`` carry values from the upstream job's output lines
    (``PINBALL:EVENT_ATTR:key=value``) to the downstream command.
    """

    TYPE: ClassVar[str] = "event"

    creator: str = ""
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ExecutionRecord:
    """One run (attempt) of a job."""

    instance: str
    start_time: float
    end_time: float | None = None
    exit_code: int | None = None
    #: The command as run, after event attributes were substituted.
    info: str = ""
    worker: str = ""
    #: Why it ended, when not by the job's own exit: disabled, lost, aborted,
    #: timed out, could not start.
    reason: str | None = None
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Values set by ``PINBALL:EVENT_ATTR:key=value`` lines.
    event_attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Other ``PINBALL:key=value`` lines (links, kill ids), values in order.
    properties: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    #: Log kind (stdout, stderr) to file path.
    logs: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.end_time is not None and self.exit_code == 0

    @property
    def finished(self) -> bool:
        return self.end_time is not None

    @property
    def lost(self) -> bool:
        """Whether it ended because its worker died, not by its own exit."""
        return self.reason is not None and self.reason.startswith(LOST)


@dataclasses.dataclass
class Job(_Payload):
    """A job's definition and history, stored in its job token.

    ``inputs`` name upstream jobs (``__WORKFLOW_START__`` for a top-level job)
    and ``outputs`` the downstream ones; the edge is kept on both ends. The
    token's priority, not a field here, orders runnable jobs.
    """

    TYPE: ClassVar[str] = "job"

    name: str = ""
    kind: str = SHELL
    command: str = ""
    condition: bool = False
    inputs: list[str] = dataclasses.field(default_factory=list)
    outputs: list[str] = dataclasses.field(default_factory=list)
    emails: list[str] = dataclasses.field(default_factory=list)
    max_attempts: int = 1
    retry_delay_sec: float = 0.0
    #: Each further retry waits this many times longer, up to the cap.
    retry_backoff: float = 1.0
    max_retry_delay_sec: float | None = None
    warn_timeout_sec: float | None = None
    abort_timeout_sec: float | None = None
    disabled: bool = False
    #: Folders put in front of ``PYTHONPATH`` for the job's processes, so a
    #: Python callable (or a script) imports modules kept beside its workflow
    #: definitions without installing them on every worker.
    python_path: list[str] = dataclasses.field(default_factory=list)
    history: list[ExecutionRecord] = dataclasses.field(default_factory=list)
    #: Events consumed to make the job runnable, for its next execution.
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.history = [
            h if isinstance(h, ExecutionRecord) else ExecutionRecord(**_known(h))
            for h in self.history
        ]
        if self.kind not in KINDS:
            raise PayloadError(f"job {self.name}: kind must be one of {KINDS}")
        if self.max_attempts < 1:
            raise PayloadError(f"job {self.name}: max_attempts must be at least 1")

    @property
    def last(self) -> ExecutionRecord | None:
        return self.history[-1] if self.history else None

    def failures_in_a_row(self, instance: str) -> int:
        """Failed attempts since the last success in ``instance``.

        Attempts lost with their worker do not count: the job did not fail,
        its worker died (see :data:`MAX_LOST_ATTEMPTS`).
        """
        count = 0
        for record in reversed(self.history):
            if record.instance != instance or record.succeeded:
                break
            count += not record.lost
        return count

    def lost_in_a_row(self, instance: str) -> int:
        """Attempts lost with their worker since the last success or failure.

        Attempts stopped with their worker (:data:`STOPPED_WITH_WORKER`) are
        passed over: they neither count nor end the run of lost ones.
        """
        count = 0
        for record in reversed(self.history):
            if record.instance != instance or record.succeeded or not record.lost:
                break
            count += record.reason != STOPPED_WITH_WORKER
        return count

    def can_retry(self, instance: str) -> bool:
        """Whether the last, failed attempt leaves another one."""
        return (
            self.failures_in_a_row(instance) < self.max_attempts
            and self.lost_in_a_row(instance) <= MAX_LOST_ATTEMPTS
        )

    def retry_delay(self, instance: str) -> float:
        """How long to wait before the next attempt, with backoff and cap."""
        failures = max(1, self.failures_in_a_row(instance))
        delay = self.retry_delay_sec * self.retry_backoff ** (failures - 1)
        if self.max_retry_delay_sec is not None:
            delay = min(delay, self.max_retry_delay_sec)
        return delay

    def event_attributes(self) -> dict[str, str]:
        """Attributes of the events feeding the next execution, merged."""
        return merge_attributes(self.events)


def merge_attributes(events: list[dict[str, Any]]) -> dict[str, str]:
    """The attributes of several events as one mapping.

    One key from several upstream events is joined with commas, in event
    order, as the original documented.
    """
    merged: dict[str, list[str]] = {}
    for event in events:
        for key, value in (event.get("attributes") or {}).items():
            merged.setdefault(key, []).append(str(value))
    return {key: ",".join(values) for key, values in merged.items()}


def _known(raw: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(ExecutionRecord)}
    return {k: v for k, v in raw.items() if k in names}


@dataclasses.dataclass
class Signal(_Payload):
    """A DRAIN, ABORT, ARCHIVE or EXIT flag on the system, a workflow or an
    instance.

    ``generation`` applies to EXIT (workers older than it leave);
    ``timestamp`` is when ABORT was set, or when an ARCHIVE is due.
    """

    TYPE: ClassVar[str] = "signal"

    action: str = ""
    generation: int | None = None
    timestamp: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise PayloadError(f"signal action must be one of {ACTIONS}")
