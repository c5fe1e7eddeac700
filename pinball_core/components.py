"""What the component hooks return: parsers, executors, overrun policies.

These protocols are the contract the hooks in :mod:`pinball_core.hookspecs`
promise today. They are deliberately small: the workflow engine and the
scheduler refine them as they are written, and a plugin written against this
version should expect methods to be added, not changed. The store contract is
:class:`pinball_core.store.Store`.
"""

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

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
        """The job tokens that start a new ``instance`` of ``workflow``."""
        ...

    def schedule_token(self, workflow: str) -> Token | None:
        """The schedule token of ``workflow``, or None if it is not scheduled."""
        ...

    def validate(self) -> list[str]:
        """Problems in the definitions, one readable line each; empty if none."""
        ...


@runtime_checkable
class ExecutionHandle(Protocol):
    """One running execution of a job, as returned by :meth:`Executor.start`."""

    def poll(self) -> int | None:
        """The exit code once the execution has ended, None while it runs."""
        ...

    def abort(self) -> None:
        """Stop the execution; :meth:`poll` then returns its exit code."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs a job's command somewhere: a local process, a cluster, a container."""

    def start(self, job_spec: Mapping[str, Any]) -> ExecutionHandle:
        """Start one execution of the job described by ``job_spec``.

        ``job_spec`` holds at least ``workflow``, ``instance``, ``job`` and
        ``command``; the workflow engine fixes the rest.
        """
        ...


class OverrunDecision(enum.StrEnum):
    """What to do when a schedule fires while earlier instances still run."""

    #: Start the new instance next to the running ones.
    START = "START"
    #: Drop this run; the schedule fires again at its next time.
    SKIP = "SKIP"
    #: Keep this run pending and ask again later.
    DELAY = "DELAY"
    #: Abort the running instances, then start the new one.
    ABORT_RUNNING = "ABORT_RUNNING"


@runtime_checkable
class OverrunPolicy(Protocol):
    """Decides whether a schedule that fires may start a new instance."""

    def decide(
        self, running_instances: int, *, last_instance_failed: bool = False
    ) -> OverrunDecision:
        """The decision for a run, given how many instances are running now.

        ``last_instance_failed`` tells whether the most recent finished
        instance of the workflow failed, for policies that wait for success.
        """
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
