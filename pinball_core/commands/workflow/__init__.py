"""``pinball workflow``: operate on workflows, as the original workflow_util did.

``pinball -c CONFIG workflow COMMAND [-w WORKFLOW] [-i INSTANCE] [-j JOBS]
[-e N] [-a DAYS] [-f]``. The options may also come before the command, in
the original's order (``workflow -w W -i I stop``). Commands that change or
remove something ask ``y/N`` first unless ``-f`` is given, and refuse when
there is no terminal to ask on.
"""

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any, Final

from pinball_core.app import Application
from pinball_core.commands.workflow import (
    cleanup,
    definitions,
    jobs,
    lifecycle,
    poison,
    rerun,
    scheduling,
    show,
    signalling,
)
from pinball_core.commands.workflow._shared import Context, WorkflowCommandError
from pinball_core.commands.workflow.store_reads import StoreClient
from pinball_core.errors import MasterUnavailableError, PinballError, StoreError
from pinball_core.workflow import names

__all__ = ["COMMANDS", "Command", "WorkflowCommandError", "register", "run"]


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """One ``pinball workflow`` command and the options it takes."""

    name: str
    run: Callable[[Context], int]
    help: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    #: Whether it asks before it changes anything, unless ``-f`` is given.
    asks: bool = False
    #: Whether it only reads, and so can read the store while the master is
    #: down (see :mod:`~pinball_core.commands.workflow.store_reads`).
    reads_store: bool = False


# Every option: its flags and how argparse reads it.
_OPTIONS: Final[dict[str, tuple[tuple[str, ...], dict[str, Any]]]] = {
    "workflow": (("-w", "--workflow"), {"metavar": "WORKFLOW", "help": "the workflow"}),
    "instance": (
        ("-i", "--instance"),
        {"metavar": "INSTANCE", "help": "the instance id (needs -w)"},
    ),
    "jobs": (
        ("-j", "--jobs"),
        {"metavar": "JOBS", "help": "job names, comma-separated"},
    ),
    "execution": (
        ("-e", "--execution"),
        {
            "metavar": "N",
            "type": int,
            "help": "an execution of the job, counted from 0",
        },
    ),
    "age_days": (
        ("-a", "--age_days"),
        {
            "metavar": "DAYS",
            "type": int,
            "help": f"age in days, at least {cleanup.MIN_AGE_DAYS} "
            f"(default: {cleanup.DEFAULT_AGE_DAYS})",
        },
    ),
    "force": (
        ("-f", "--force"),
        {
            "action": "store_true",
            "help": "do it without asking (needed when stdin is not a terminal)",
        },
    ),
    "json": (("--json",), {"action": "store_true", "help": "print JSON"}),
    "count": (
        ("-n", "--count"),
        {
            "metavar": "N",
            "type": int,
            "help": f"how many run times (default: {scheduling.DEFAULT_COUNT})",
        },
    ),
    "remove_missing": (
        ("--remove-missing",),
        {
            "action": "store_true",
            "help": "also remove schedules the definitions no longer have",
        },
    ),
}

_FLAG: Final = {key: flags[0] for key, (flags, _) in _OPTIONS.items()}

_LEVEL: Final = ("workflow", "instance")
_INSTANCE: Final = ("workflow", "instance")

COMMANDS: Final[tuple[Command, ...]] = (
    Command(
        "start",
        lifecycle.start,
        "start a new instance of a workflow from its definitions",
        required=("workflow",),
    ),
    Command(
        "stop",
        lifecycle.stop,
        "abort an instance and archive its tokens",
        required=_INSTANCE,
        asks=True,
    ),
    Command(
        "pause",
        lifecycle.pause,
        "hold an instance's free tokens so no worker claims its jobs",
        required=_INSTANCE,
        asks=True,
    ),
    Command(
        "resume",
        lifecycle.resume,
        "release the tokens pause holds",
        required=_INSTANCE,
    ),
    Command(
        "retry",
        rerun.retry,
        "run the failed jobs of an instance again (an archived one as a new instance)",
        required=_INSTANCE,
        asks=True,
    ),
    Command(
        "redo",
        rerun.redo,
        "run one execution of a finished job again, with that execution's events",
        required=(*_INSTANCE, "jobs", "execution"),
        asks=True,
    ),
    Command(
        "poison",
        poison.poison,
        "run the given jobs and everything downstream of them",
        required=("workflow", "jobs"),
        optional=("instance",),
        asks=True,
    ),
    Command(
        "drain",
        signalling.drain,
        "let running jobs finish but start no new ones (globally, or in -w/-i)",
        optional=_LEVEL,
    ),
    Command("undrain", signalling.undrain, "remove a DRAIN", optional=_LEVEL),
    Command(
        "abort",
        signalling.abort,
        "kill running jobs and start no new ones (globally, or in -w/-i)",
        optional=_LEVEL,
        asks=True,
    ),
    Command("unabort", signalling.unabort, "remove an ABORT", optional=_LEVEL),
    Command(
        "exit",
        signalling.exit_workers,
        "make workers older than this config's generation leave",
        optional=_LEVEL,
        asks=True,
    ),
    Command("unexit", signalling.unexit, "remove an EXIT", optional=_LEVEL),
    Command(
        "disable",
        jobs.disable,
        "make jobs of an instance succeed without running",
        required=(*_INSTANCE, "jobs"),
        asks=True,
    ),
    Command(
        "enable",
        jobs.enable,
        "make disabled jobs of an instance run again",
        required=(*_INSTANCE, "jobs"),
    ),
    Command(
        "reload",
        jobs.reload,
        "update an instance's jobs from the current definitions",
        required=_INSTANCE,
        optional=("jobs",),
        asks=True,
    ),
    Command(
        "cleanup",
        cleanup.cleanup,
        "remove archived instances older than -a days, and their logs",
        optional=("age_days",),
        asks=True,
    ),
    Command(
        "status",
        show.status,
        "show a workflow's instances, or an instance's jobs",
        required=("workflow",),
        optional=("instance", "json"),
        reads_store=True,
    ),
    Command(
        "list",
        show.list_workflows,
        "show every workflow with its instances",
        optional=("json",),
        reads_store=True,
    ),
    Command(
        "reschedule",
        scheduling.reschedule,
        "write schedules from the definitions (all workflows, or -w)",
        optional=("workflow", "remove_missing"),
    ),
    Command(
        "unschedule",
        scheduling.unschedule,
        "remove a workflow's schedule; its running instances go on",
        required=("workflow",),
        asks=True,
    ),
    Command(
        "next",
        scheduling.next_runs,
        "show a workflow's next run times in its time zone and in UTC",
        required=("workflow",),
        optional=("count", "json"),
    ),
)


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "workflow",
        help="start, stop, retry, drain and inspect workflows",
        description="Operate on workflows and their instances through the "
        "master, as the original workflow_util did. Options may come before "
        "or after the command.",
    )
    # Accepted here too, for the original's `-w W -i I COMMAND` order.
    _add_options(parser, list(_OPTIONS), suppress=False)
    commands = parser.add_subparsers(
        title="commands", dest="workflow_command", metavar="COMMAND", required=True
    )
    for command in COMMANDS:
        # Every command takes -f, as the original's did, so scripts and the
        # UI can pass it regardless; it matters only to those that ask.
        options = [*command.required, *command.optional, "force"]
        description = command.help[0].upper() + command.help[1:] + "."
        if command.asks:
            description += " Asks y/N first, unless -f is given."
        sub = commands.add_parser(
            command.name, help=command.help, description=description
        )
        _add_options(sub, options, suppress=True)
        sub.set_defaults(handler=functools.partial(run, command))
    # validate and graph read definitions in this process, without a master.
    definitions.register(commands)


def run(command: Command, args: argparse.Namespace, app: Application) -> int:
    """Check the options ``command`` was given, then run it on the master.

    A command that only reads is run on the store instead when the master
    cannot be reached, with a warning saying so.
    """
    _check_options(command, args)
    with app.master_client(interactive=True) as client:
        try:
            return command.run(Context(args=args, app=app, client=client))
        except MasterUnavailableError as exc:
            if not command.reads_store:
                raise
            unreachable = exc
    return _run_on_store(command, args, app, unreachable)


def _run_on_store(
    command: Command,
    args: argparse.Namespace,
    app: Application,
    unreachable: MasterUnavailableError,
) -> int:
    # Everything the command printed came after its reads, so nothing of the
    # failed run was shown; it starts again on the store.
    try:
        store = app.open_store(read_only=True)
    except PinballError as exc:
        raise MasterUnavailableError(
            f"{unreachable}; the store cannot be read instead either: {exc}"
        ) from exc
    print(
        f"pinball: warning: {unreachable}; showing what the store holds instead, "
        "as the UI does: active instances as the master last stored them",
        file=sys.stderr,
    )
    with StoreClient(store) as client:
        try:
            return command.run(Context(args=args, app=app, client=client))
        except StoreError as exc:
            raise MasterUnavailableError(
                f"{unreachable}; the store cannot be read instead either: {exc}"
            ) from exc


def _add_options(
    parser: argparse.ArgumentParser, options: list[str], *, suppress: bool
) -> None:
    for key in options:
        flags, settings = _OPTIONS[key]
        settings = dict(settings, dest=key)
        if suppress:
            # Not given after the command: keep what was given before it.
            settings["default"] = argparse.SUPPRESS
        parser.add_argument(*flags, **settings)


def _check_options(command: Command, args: argparse.Namespace) -> None:
    allowed = {*command.required, *command.optional, "force"}
    # Compared by identity: -e 0 is given, though 0 == False.
    given = {
        key
        for key in _OPTIONS
        if getattr(args, key, None) is not None and getattr(args, key) is not False
    }
    extra = sorted(given - allowed)
    if extra:
        raise WorkflowCommandError(
            f"{command.name} does not take {', '.join(_FLAG[key] for key in extra)}"
        )
    missing = [key for key in command.required if key not in given]
    if missing:
        wanted = " and ".join(
            f"{_FLAG[key]} {_OPTIONS[key][1]['metavar']}" for key in missing
        )
        raise WorkflowCommandError(f"{command.name} needs {wanted}")
    if args.instance is not None and args.workflow is None:
        raise WorkflowCommandError(f"-i {args.instance} needs its workflow: give -w")

    for key, kind in (("workflow", "workflow"), ("instance", "instance")):
        value = getattr(args, key)
        if value is not None:
            _check_word(kind, value)
    for name in (args.jobs or "").split(","):
        if name.strip():
            _check_word("job", name.strip())


def _check_word(kind: str, value: str) -> None:
    try:
        names.check_word(kind, value)
    except ValueError as exc:
        raise WorkflowCommandError(str(exc)) from None
