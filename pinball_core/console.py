"""The ``pinball`` executable's entry point, kept apart from the command line.

Importing the command line loads SQLAlchemy, pydantic and every command,
which takes a noticeable part of a second. A Ctrl-C in that time would
otherwise end in a Python traceback, before :func:`pinball_core.cli.main`
could catch it; here the import itself is inside the catch, so an early
Ctrl-C exits 130 quietly like a later one.
"""

from collections.abc import Sequence

# What a shell reports for a command that SIGINT ended: 128 + 2.
_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pinball`` with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    try:
        from pinball_core import cli

        return cli.main(argv)
    except KeyboardInterrupt:
        return _INTERRUPTED
