"""Actions: the ``pinball workflow`` commands, run for the UI through the master.

Each action is the command line's own command (its checks, its retries on
concurrent writers, its messages), run with ``-f`` since the page asked for
the confirmation already. What the command prints is the answer shown to
the user. Commands print to stdout, so actions run one at a time on one
thread with stdout redirected; they are short, and the master serialises
their writes anyway.
"""

import argparse
import concurrent.futures
import contextlib
import dataclasses
import io
import logging
import threading
from typing import Any, Final

from pinball_core.app import Application
from pinball_core.commands import workflow as workflow_commands
from pinball_core.errors import MasterError, MasterUnavailableError, PinballError

from pinball_ui_tornado.access import Role

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """One action the UI offers."""

    #: The ``pinball workflow`` command it runs.
    command: str
    #: Levels it works at: ``global``, ``workflow``, ``instance``.
    levels: tuple[str, ...]
    #: The least role that may run it, per level.
    roles: dict[str, Role]
    #: Whether it takes job names, one execution number.
    jobs: bool = False
    execution: bool = False


def _op(*levels: str, jobs: bool = False, execution: bool = False) -> dict[str, Any]:
    roles = {
        level: Role.ADMIN if level == "global" else Role.OPERATOR for level in levels
    }
    return {"levels": levels, "roles": roles, "jobs": jobs, "execution": execution}


_ALL: Final = ("global", "workflow", "instance")

#: Every action by name. Signals at the global level touch every workflow,
#: and EXIT stops workers, so those need an admin.
ACTIONS: Final[dict[str, Action]] = {
    "drain": Action("drain", **_op(*_ALL)),
    "undrain": Action("undrain", **_op(*_ALL)),
    "abort": Action("abort", **_op(*_ALL)),
    "unabort": Action("unabort", **_op(*_ALL)),
    "exit": Action("exit", _ALL, {level: Role.ADMIN for level in _ALL}),
    "unexit": Action("unexit", _ALL, {level: Role.ADMIN for level in _ALL}),
    "retry": Action("retry", **_op("instance")),
    "poison": Action("poison", **_op("workflow", "instance", jobs=True)),
    "disable": Action("disable", **_op("instance", jobs=True)),
    "enable": Action("enable", **_op("instance", jobs=True)),
    "redo": Action("redo", **_op("instance", jobs=True, execution=True)),
    "start": Action("start", **_op("workflow")),
    "unschedule": Action("unschedule", **_op("workflow")),
}


class ActionError(PinballError):
    """An action that cannot run: unknown, not offered, or a bad request."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What the command said, and whether it did all it was asked."""

    action: str
    level: str
    ok: bool
    exit_code: int
    output: str
    #: Set when the command refused or failed; the output then says why.
    error: str | None = None
    master_unreachable: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def level_of(workflow: str | None, instance: str | None) -> str:
    if instance is not None:
        return "instance"
    return "workflow" if workflow is not None else "global"


class Runner:
    """Runs actions on one thread, for one application."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pinball-ui-action"
        )
        self._lock = threading.Lock()

    def available(self, name: str) -> bool:
        """Whether this Pinball has the command behind action ``name``."""
        action = ACTIONS.get(name)
        return action is not None and _command(action.command) is not None

    def submit(
        self,
        name: str,
        *,
        workflow: str | None = None,
        instance: str | None = None,
        jobs: list[str] | None = None,
        execution: int | None = None,
    ) -> "concurrent.futures.Future[Outcome]":
        """Start the action; the future's result is its :class:`Outcome`."""
        return self._pool.submit(
            self.run,
            name,
            workflow=workflow,
            instance=instance,
            jobs=jobs,
            execution=execution,
        )

    def run(
        self,
        name: str,
        *,
        workflow: str | None = None,
        instance: str | None = None,
        jobs: list[str] | None = None,
        execution: int | None = None,
    ) -> Outcome:
        """Run the action now, in this thread."""
        action = ACTIONS[name]
        command = _command(action.command)
        level = level_of(workflow, instance)
        if command is None:
            raise ActionError(
                f"this Pinball has no `pinball workflow {action.command}` command, "
                "which the action needs"
            )
        args = argparse.Namespace(
            workflow=workflow,
            instance=instance,
            jobs=",".join(jobs) if jobs else None,
            execution=execution,
            age_days=None,
            force=True,
            json=False,
        )
        output = io.StringIO()
        with self._lock, contextlib.redirect_stdout(output):
            try:
                code = workflow_commands.run(command, args, self._app)
            except MasterError as exc:
                return Outcome(
                    name,
                    level,
                    False,
                    1,
                    output.getvalue(),
                    str(exc),
                    master_unreachable=isinstance(exc, MasterUnavailableError),
                )
            except PinballError as exc:
                return Outcome(name, level, False, 2, output.getvalue(), str(exc))
        log.info("action %s at %s level done: exit code %s", name, level, code)
        return Outcome(name, level, code == 0, code, output.getvalue())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _command(name: str) -> workflow_commands.Command | None:
    for command in workflow_commands.COMMANDS:
        if command.name == name:
            return command
    return None
