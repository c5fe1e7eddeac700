"""``pinball plugins``: list the installed plugins and whether they load."""

import argparse
import dataclasses
import json
import logging
from typing import Any

from pinball_core.errors import ConfigError
from pinball_core.plugins import PluginInfo, PluginManager

log = logging.getLogger(__name__)

_COLUMNS = ("name", "kind", "distribution", "version", "status")


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list installed plugins",
        description="List every plugin found through entry points or registered "
        "in-process, with its kind, distribution, version and status: loaded, "
        "blocked (by disabled_plugins or PINBALL_DISABLE_PLUGINS) or the error "
        "that stops it from loading.",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of objects instead of a table",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: Any) -> int:
    try:
        plugins = app.plugins
    except ConfigError as exc:
        # Listing what is installed must work while the config is broken:
        # it is often how one finds out why.
        log.warning("%s; listing plugins without the config", exc)
        plugins = PluginManager()
    infos = plugins.list_plugins()
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
    else:
        print(format_table(infos))
    return 0


def format_table(infos: list[PluginInfo]) -> str:
    """The plugins as a plain-text table, one row each, columns aligned."""
    rows = [[column.upper() for column in _COLUMNS]]
    for info in infos:
        rows.append([getattr(info, column) or "-" for column in _COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )
