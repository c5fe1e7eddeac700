"""The ``pinball`` command line: ``pinball [-c CONFIG] [--debug] COMMAND ...``.

Sub-commands come from the modules in :mod:`pinball_core.commands` and from
plugins (the ``pinball_add_commands`` hook). The original's
``run_pinball -c CONFIG -m MODE`` form still works: ``pinball -c CONFIG -m
workers`` is ``pinball -c CONFIG workers``.

Errors Pinball raises on purpose print one line, ``pinball: error: ...``,
and exit 2 (1 for a master error); ``--debug`` adds the traceback. Commands
that run until stopped exit 0 when a signal stopped them as asked; Ctrl-C
that interrupts any other command exits 130.
"""

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Final

from pinball_core import __version__
from pinball_core.app import Application
from pinball_core.commands import config as config_command
from pinball_core.commands import init as init_command
from pinball_core.commands import master as master_command
from pinball_core.commands import plugins as plugins_command
from pinball_core.commands import run as run_command
from pinball_core.commands import scheduler as scheduler_command
from pinball_core.commands import tokens as tokens_command
from pinball_core.commands import workers as workers_command
from pinball_core.commands import workflow as workflow_command
from pinball_core.errors import MasterError, PinballError
from pinball_core.supervisor import follow_supervisor

log = logging.getLogger(__name__)

#: The original's ``run_pinball -m`` modes, each now a command of its own.
MODES: Final = ("master", "workers", "scheduler", "ui")

#: Modules whose ``register(subparsers)`` adds the built-in commands.
BUILTIN_COMMANDS: Final[tuple[ModuleType, ...]] = (
    config_command,
    init_command,
    master_command,
    plugins_command,
    run_command,
    scheduler_command,
    tokens_command,
    workers_command,
    workflow_command,
)

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Exit codes.
_USAGE_OR_CONFIG: Final = 2
_MASTER_FAILED: Final = 1
_INTERRUPTED: Final = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pinball`` with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return _INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`pinball ... | head`); the rest is unwanted.
        # Point stdout at nothing so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


@dataclasses.dataclass
class _Parser:
    """The full parser, and what is known about its commands."""

    parser: argparse.ArgumentParser
    # Every command name registered, built-in or from a plugin.
    commands: set[str]
    # Why the plugins could not be loaded to add their commands, if so.
    failure: PinballError | None


def _build_parser(app: Application) -> _Parser:
    """The full parser with built-in and plugin commands.

    Plugin commands need the plugins, and so the config. If either fails the
    built-in commands still work (``pinball config check`` then reports the
    config error); the failure is kept, to be raised when the command asked
    for is not one that was registered. A plugin whose hook raises is logged
    and its commands are missing.
    """
    parser = argparse.ArgumentParser(
        prog="pinball",
        description="Pinball, a workflow manager: run its master, workers, "
        "scheduler and UI, and operate on workflows.",
        allow_abbrev=False,
    )
    _add_global_options(parser)
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for module in BUILTIN_COMMANDS:
        module.register(subparsers)

    failure: PinballError | None = None
    try:
        app.plugins.hook.pinball_add_commands(subparsers=subparsers)
    except PinballError as exc:
        log.debug("no plugin commands: %s", exc)
        failure = exc
    except Exception as exc:
        # A plugin's bug must not make every pinball command unusable.
        log.warning(
            "a plugin failed to add its commands: %s: %s",
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
    return _Parser(parser, set(subparsers.choices), failure)


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="CONFIG",
        help="the YAML config file (default: $PINBALL_HOME/pinball.yaml, "
        "else ~/.pinball/pinball.yaml; all defaults if it does not exist)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log at DEBUG level and show tracebacks of errors",
    )
    parser.add_argument(
        "-m",
        "--mode",
        choices=MODES,
        help="the original run_pinball's mode; the same as giving it as the command",
    )
    parser.add_argument("--version", action="version", version=__version__)


@dataclasses.dataclass
class _Globals:
    """The global options in front of the command, read before the parser exists."""

    config: str | None = None
    debug: bool = False
    mode: str | None = None
    # -c and --debug as given, to put back in front of a -m mode's command.
    given: list[str] = dataclasses.field(default_factory=list)
    # Everything from the first argument that is not a global option on.
    rest: list[str] = dataclasses.field(default_factory=list)


def _scan_globals(argv: list[str]) -> _Globals:
    """Read ``-c``, ``--debug`` and ``-m`` up to the first other argument.

    Only what precedes the command belongs to ``pinball``; a command's own
    ``-c`` must not be taken for the config. The full parser checks it all
    again, so anything odd here is left for it to report.
    """
    found = _Globals()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--debug":
            found.debug = True
            found.given.append(arg)
            i += 1
            continue
        option, value, used = _option_value(argv, i)
        if option is None:
            break
        if option == "-m":
            found.mode = value
        else:
            found.config = value
            found.given += ["-c", value]
        i += used
    found.rest = argv[i:]
    return found


def _option_value(argv: list[str], i: int) -> tuple[str | None, str, int]:
    """``(option, value, arguments used)`` for ``-c``/``-m`` at ``argv[i]``."""
    arg = argv[i]
    for short, long in (("-c", "--config"), ("-m", "--mode")):
        if arg in (short, long):
            if i + 1 < len(argv):
                return short, argv[i + 1], 2
            return None, "", 0  # no value: the parser says so
        if arg.startswith(long + "="):
            return short, arg[len(long) + 1 :], 1
        if arg.startswith(short) and not arg.startswith("--"):
            return short, arg[len(short) :], 1
    return None, "", 0


def _run(argv: list[str]) -> int:
    found = _scan_globals(argv)
    _setup_logging(found.debug)
    if not follow_supervisor():
        return 0
    app = Application(found.config, debug=found.debug)

    try:
        built = _build_parser(app)
        parser = built.parser
        app.commands = frozenset(built.commands)

        # The scan stops at the command, unless an option (-h) comes first.
        command = found.rest[0] if found.rest else None
        if command is not None and command.startswith("-"):
            command = None
        if found.mode in MODES:
            if command is not None:
                parser.error(
                    f"give either -m {found.mode} or the command {command!r}, not both"
                )
            if found.mode not in built.commands:
                parser.error(
                    f"-m {found.mode}: this Pinball has no {found.mode} yet "
                    f"(available: {', '.join(sorted(built.commands))})"
                )
            command = found.mode
            argv = [*found.given, found.mode, *found.rest]

        if built.failure is not None and command not in built.commands | {None}:
            # It may be a command the failed plugins would have added.
            raise built.failure

        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.error(f"the command {args.command!r} cannot be run on its own")
        code = handler(args, app)
        return 0 if code is None else int(code)
    except PinballError as exc:
        return _report(exc, app.debug)


def _report(error: PinballError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"pinball: error: {error}", file=sys.stderr)
    return _MASTER_FAILED if isinstance(error, MasterError) else _USAGE_OR_CONFIG


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
