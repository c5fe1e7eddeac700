"""What the component hooks return: parsers, executors, overrun policies.

These protocols are the contract the hooks in :mod:`pinball_core.hookspecs`
promise today. They are deliberately small: the workflow engine and the
scheduler refine them as they are written, and a plugin written against this
version should expect methods to be added, not changed. The store contract is
:class:`pinball_core.store.Store`.
"""

import dataclasses
import enum
import functools
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from pinball_core.token import Token


@runtime_checkable
class Parser(Protocol):
    """Turns workflow definitions into the tokens the workers and scheduler run.

    A parser is made once per application from the config's ``parser`` and
    ``parser_params``; it may read its definitions lazily.
    """

    def workflow_names(self) -> list[str]:
        """The names of every workflow the definitions describe."""
        ...

    def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
        """The job tokens that start a new ``instance`` of ``workflow``.

        :raises pinball_core.errors.DefinitionError: if the workflow's
            definition has problems; it lists them, and callers show it as
            it is, so it names the file, place and reason of each.
        :raises ValueError: if the parser does not define ``workflow``, or
            for any other reason it cannot build the tokens; the message is
            shown to the operator as it is. (DefinitionError is a ValueError
            too, so catching ValueError catches both.)
        """
        ...

    def schedule_token(self, workflow: str) -> Token | None:
        """The schedule token of ``workflow``, or None if it is not scheduled."""
        ...

    def validate(self) -> list[str]:
        """Problems in the definitions, one readable line each; empty if none."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionSpec:
    """One execution of a job, as the worker hands it to an executor.

    ``command`` is final: event attributes are already substituted. For
    ``kind`` ``shell`` it is run by ``/bin/sh -c``; for ``python`` it is a
    ``module:function`` called with no arguments in a child Python process.
    ``env`` is added to the worker's environment (it holds the
    ``PINBALL_*`` variables); logs go to files under ``log_dir``.
    """

    workflow: str
    instance: str
    job: str
    execution: int
    kind: str
    command: str
    env: Mapping[str, str]
    log_dir: str


@runtime_checkable
class ExecutionHandle(Protocol):
    """One running execution of a job, as returned by :meth:`Executor.start`.

    While it runs, the executor reads its output line by line into the log
    files and collects ``PINBALL:`` lines: ``PINBALL:EVENT_ATTR:key=value``
    into :attr:`event_attributes`, any other ``PINBALL:key=value`` into
    :attr:`properties`.
    """

    #: Log kind (``stdout``, ``stderr``) to the path of its file.
    logs: dict[str, str]
    #: Values from ``PINBALL:EVENT_ATTR:key=value`` lines; the last one wins.
    event_attributes: dict[str, str]
    #: Values from other ``PINBALL:key=value`` lines, in order, no repeats.
    properties: dict[str, list[str]]

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds; the exit code if it has ended.

        A process killed by a signal ends with the negative signal number.
        """
        ...

    def abort(self, grace_sec: float = 10.0) -> None:
        """Stop the execution and everything it started.

        Asks politely first (SIGTERM for a process group) and forces it
        (SIGKILL) after ``grace_sec``; returns at once.
        """
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs a job's command somewhere: a local process, a cluster, a container."""

    def start(self, spec: ExecutionSpec) -> ExecutionHandle:
        """Start one execution; raises OSError if it cannot be started."""
        ...


class OverrunDecision(enum.StrEnum):
    """What to do with a schedule's run that is due."""

    #: Start the new instance, next to any running ones.
    START = "START"
    #: Drop this run; the schedule fires again at its next time.
    SKIP = "SKIP"
    #: Keep this run pending and ask again later.
    DELAY = "DELAY"
    #: Abort the running instances, then start the new one once they stopped.
    ABORT_RUNNING = "ABORT_RUNNING"


@dataclasses.dataclass(frozen=True, slots=True)
class FinishedInstance:
    """An instance that ended: its id, ``SUCCESS``, ``FAILURE`` or
    ``ABORTED``, and when it ended (seconds since the epoch)."""

    instance: str
    status: str
    end: float | None


def _nothing_finished() -> FinishedInstance | None:
    return None


@dataclasses.dataclass(frozen=True)
class OverrunContext:
    """What an overrun policy is told about a run that is due.

    ``running`` are the workflow's running instances as the status code
    sees them at ``now``, read from the master for this decision, never from
    a cache. ``scheduled_time`` is the slot the run is for.
    """

    workflow: str
    scheduled_time: float
    now: float
    running: tuple[str, ...] = ()
    max_running_instances: int = 1
    #: Reads the last finished instance; called at most once, on first use
    #: of :attr:`last_finished`, since it may read the store's archive.
    find_last_finished: Callable[[], FinishedInstance | None] = dataclasses.field(
        default=_nothing_finished, repr=False, compare=False
    )

    @functools.cached_property
    def last_finished(self) -> FinishedInstance | None:
        """The instance of the workflow that ended last, or None if none has."""
        return self.find_last_finished()

    @property
    def limit_reached(self) -> bool:
        """Whether ``max_running_instances`` are running: no start is allowed."""
        return len(self.running) >= self.max_running_instances


@runtime_checkable
class OverrunPolicy(Protocol):
    """Decides what a schedule does with a run that is due.

    The scheduler asks :meth:`decide` each time it looks at the run, so a
    DELAY is asked again later with fresh facts. Whatever the decision, the
    scheduler never starts more than ``max_running_instances``: when a START
    would exceed it, it calls the policy's optional ``at_limit(context)``,
    which returns DELAY (the default when a policy lacks it) or SKIP, and
    reports the refusal (``pinball_schedule_refused``) once for that run.
    """

    def decide(self, context: OverrunContext) -> OverrunDecision:
        """The decision for the run ``context`` describes."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """A message for people, handed to every notifier plugin.

    ``kind`` says what happened, e.g. ``job_failed`` or ``instance_finished``,
    so a notifier can route or filter; ``html`` is an optional rich body that
    a notifier may send instead of ``text``.
    """

    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    kind: str = "message"
