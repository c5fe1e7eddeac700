"""``pinball tokens``: list, show, remove and edit the master's tokens by hand.

The original's ``pinball_util``. ``ls`` counts tokens by name, ``cat`` shows
them, ``rm`` deletes them and ``update`` inserts or replaces one. It works on
raw tokens and knows nothing of what workflow tokens mean, so it is a tool for
looking into the master and repairing it, not for running workflows.
"""

import argparse
import datetime
import json
import logging
import math
import sys
from typing import Any, Final

from pinball_core.app import Application
from pinball_core.client import MasterClient
from pinball_core.commands.master import port_number
from pinball_core.errors import PinballError
from pinball_core.token import (
    DELIMITER,
    FOREVER,
    VERSION_TOKEN_NAME,
    Token,
    validate_name,
)

log = logging.getLogger(__name__)

#: Words that ``-t`` takes for a lease that never ends, in any case.
FOREVER_WORDS: Final = frozenset({"inf", "forever"})

#: How expiration times are shown: always UTC, whatever the local zone.
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S UTC"


class TokensUsageError(PinballError):
    """Options of ``pinball tokens`` that do not go together.

    A usage error rather than a master error: nothing was sent to the master.
    """


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "tokens",
        help="list, show, remove and edit the master's tokens",
        description="Work on the master's raw tokens, as the original "
        "pinball_util did. The tokens' meaning is not checked: changing a "
        "workflow's tokens by hand can break it.",
    )
    actions = parser.add_subparsers(
        title="actions", dest="tokens_action", metavar="ACTION", required=True
    )

    # Every action talks to the master, so each takes the address options.
    master = argparse.ArgumentParser(add_help=False)
    master.add_argument(
        "-s",
        "--host",
        help="the master's host (default: master_host from the config)",
    )
    master.add_argument(
        "-p",
        "--port",
        type=port_number,
        help="the master's port (default: master_port from the config)",
    )

    cat = actions.add_parser(
        "cat",
        parents=[master],
        help="show tokens",
        description="Show the token named PREFIX, or with -r every token whose "
        "name starts with PREFIX: a count, then one line per token.",
    )
    _add_selection(cat)
    cat.add_argument(
        "--json", action="store_true", help="print a JSON list of token objects"
    )
    cat.set_defaults(handler=cat_tokens)

    ls = actions.add_parser(
        "ls",
        parents=[master],
        help="count tokens by name",
        description="Count the tokens under PREFIX by their name up to the "
        "next '/', like a directory listing; with -r list full names.",
    )
    ls.add_argument("prefix", metavar="PREFIX", help="a token name prefix")
    ls.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="list every full token name instead of grouping by '/'",
    )
    ls.add_argument(
        "--json", action="store_true", help="print a JSON object of name to count"
    )
    ls.set_defaults(handler=ls_tokens)

    rm = actions.add_parser(
        "rm",
        parents=[master],
        help="remove tokens",
        description="Remove the token named PREFIX, or with -r every token "
        "whose name starts with PREFIX, all in one change. Lists them and asks "
        f"first unless -f is given. The master's {VERSION_TOKEN_NAME} is "
        "never removed.",
    )
    _add_selection(rm)
    rm.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="remove without asking (needed when stdin is not a terminal)",
    )
    rm.set_defaults(handler=rm_tokens)

    update = actions.add_parser(
        "update",
        parents=[master],
        help="insert or replace one token",
        description="Insert a token (without -v) or replace the stored one "
        "(with -v, its current version). The token is written exactly as "
        "given: on a replace, a field left out is cleared, not kept.",
    )
    update.add_argument("-n", "--name", required=True, help="the token's name")
    update.add_argument(
        "-v",
        "--version",
        type=int,
        help="the stored token's current version; omit it to insert",
    )
    update.add_argument("-o", "--owner", help="the lease owner (needs -t)")
    update.add_argument(
        "-t",
        "--expiration_time",
        type=_expiration,
        metavar="TIME",
        help="when the lease ends, in seconds since the epoch, or 'inf' "
        "(also 'forever') for never (needs -o)",
    )
    update.add_argument("-d", "--data", help="the token's data, as text")
    update.add_argument(
        "-i",
        "--priority",
        type=_finite,
        default=0.0,
        help="the token's priority (default: 0)",
    )
    update.set_defaults(handler=update_token)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prefix", metavar="PREFIX", help="a token name, or a name prefix with -r"
    )
    parser.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="every token whose name starts with PREFIX, not only the one named PREFIX",
    )


def cat_tokens(args: argparse.Namespace, app: Application) -> int:
    """Print the selected tokens, as lines or as JSON."""
    with _connect(args, app) as client:
        tokens = _select(client, args.prefix, args.recursive)

    if args.json:
        print(json.dumps([token.to_dict() for token in tokens], indent=2))
        return 0
    print(f"total {len(tokens)}")
    for token in tokens:
        print(format_token(token))
    return 0


def ls_tokens(args: argparse.Namespace, app: Application) -> int:
    """Print the token counts by name group, sorted by name."""
    suffix = None if args.recursive else DELIMITER
    _check_prefix(args.prefix)
    with _connect(args, app) as client:
        counts = dict(sorted(client.group(args.prefix, suffix).items()))

    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    print(f"total {len(counts)}")
    for name, count in counts.items():
        print(f"{name} [{_tokens(count)}]")
    return 0


def rm_tokens(args: argparse.Namespace, app: Application) -> int:
    """Delete the selected tokens in one change, after confirmation."""
    with _connect(args, app) as client:
        tokens = _select(client, args.prefix, args.recursive)

    if not tokens:
        print("no tokens found")
    removable = [token for token in tokens if token.name != VERSION_TOKEN_NAME]
    if len(removable) < len(tokens):
        # The master refuses it too, but that would fail the whole change.
        print(f"skipping {VERSION_TOKEN_NAME}: the master's version counter")
    if not removable:
        print("removed 0 tokens")
        return 0

    for token in removable:
        print(token.name)
    if not args.force and not _confirm(len(removable)):
        print("nothing removed")
        return 0

    # A new connection, since the master may drop an idle one while the
    # prompt waits. Each delete carries the version read above, so a token
    # changed in the meantime fails the change instead of going unseen.
    with _connect(args, app) as client:
        client.modify(deletes=removable)
    log.debug("removed %d tokens under %s", len(removable), args.prefix)
    print(f"removed {_tokens(len(removable))}")
    return 0


def update_token(args: argparse.Namespace, app: Application) -> int:
    """Insert or replace one token and print it as stored."""
    if (args.owner is None) != (args.expiration_time is None):
        raise TokensUsageError(
            "give the owner (-o) and the expiration time (-t) together: a lease "
            "needs both, and a token with neither is not owned"
        )
    validate_name(args.name)
    token = Token(
        name=args.name,
        version=args.version,
        owner=args.owner,
        expiration=args.expiration_time,
        priority=args.priority,
        data=args.data,
    )

    with _connect(args, app) as client:
        [stored] = client.modify(updates=[token])

    print("inserted" if args.version is None else "updated")
    print(format_token(stored))
    return 0


def format_token(token: Token) -> str:
    """``token`` on one line, every field shown, in the original's layout.

    Line breaks in the data are shown as ``\\n`` so that each token stays on
    one line; ``--json`` gives the data exactly.
    """
    data = token.data
    if data is not None:
        data = data.replace("\r", "\\r").replace("\n", "\\n")
    return (
        f"Token(version={token.version}, owner={token.owner}, "
        f"expiration={format_expiration(token.expiration)}, "
        f"priority={token.priority:.6f}, name={token.name}, data={data})"
    )


def format_expiration(expiration: float | None) -> str:
    """``expiration`` as a UTC time; ``inf`` for never, ``none`` if not set."""
    if expiration is None:
        return "none"
    if expiration >= FOREVER:
        return "inf"
    try:
        moment = datetime.datetime.fromtimestamp(expiration, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        # Beyond the years a datetime can hold: the number says it all.
        return f"{expiration:g}"
    return moment.strftime(TIME_FORMAT)


def _connect(args: argparse.Namespace, app: Application) -> MasterClient:
    """A client of the master at ``-s``/``-p``, else at the config's address."""
    if args.host is not None or args.port is not None:
        log.debug("using the master at %s:%s", args.host, args.port)
    return app.master_client(args.host, args.port, interactive=True)


def _check_prefix(prefix: str) -> None:
    """Refuse a prefix no token name can start with, rather than find nothing."""
    if prefix and not prefix.startswith(DELIMITER):
        raise TokensUsageError(
            f"{prefix!r} cannot start a token name: every name starts with "
            f"{DELIMITER!r} (did you mean {DELIMITER + prefix!r}?)"
        )


def _select(client: MasterClient, prefix: str, recursive: bool) -> list[Token]:
    """The tokens under ``prefix``, or only the one named ``prefix``."""
    _check_prefix(prefix)
    tokens = client.query(prefix)
    if recursive:
        return tokens
    # The master has no lookup by exact name; its prefix query also returns
    # longer names, which are dropped here.
    return [token for token in tokens if token.name == prefix]


def _confirm(count: int) -> bool:
    """Whether the operator agrees to remove ``count`` tokens."""
    if not sys.stdin.isatty():
        raise TokensUsageError(
            "not removing anything: stdin is not a terminal, so there is no one "
            "to confirm; pass -f to remove without asking"
        )
    try:
        answer = input(f"remove {_tokens(count)}? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _tokens(count: int) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"


def _finite(text: str) -> float:
    """A finite number from the command line, for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _expiration(text: str) -> float:
    """Seconds since the epoch, or :data:`FOREVER` for ``inf``/``forever``."""
    if text.strip().lower() in FOREVER_WORDS:
        return FOREVER
    return _finite(text)
