"""``pinball config check``: validate the config and show the effective values."""

import argparse
import json
import sys
from typing import Any

import yaml

from pinball_core.app import Application
from pinball_core.config import default_config_path
from pinball_core.errors import PluginLoadError
from pinball_core.plugins import PARSER_ALIASES, store_scheme


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "config",
        help="check the config file",
        description="Work with the Pinball config file (-c, default "
        "$PINBALL_HOME/pinball.yaml).",
    )
    actions = parser.add_subparsers(
        title="actions", dest="config_action", metavar="ACTION", required=True
    )
    check = actions.add_parser(
        "check",
        help="validate the config and print the effective values",
        description="Validate the config and print every key's effective "
        "value, defaults included and secrets masked, then load the store, "
        "parser and executor plugins it names. Exits 2, naming the file and "
        "the key, if the config is invalid or names a plugin that cannot load.",
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace, app: Application) -> int:
    config = app.config
    values = config.for_display()
    problems = _load_named_plugins(app)
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        verdict = "names plugins that cannot load" if problems else "valid"
        if config.source is not None:
            print(f"# {config.source}: {verdict}")
        else:
            print(f"# no config file at {default_config_path()}; the defaults apply")
        print(yaml.safe_dump(values, sort_keys=False), end="")

    if problems:
        where = config.source or default_config_path()
        for key, problem in problems:
            print(f"pinball: error: {where}: {key}: {problem}", file=sys.stderr)
        return 2
    return 0


def _load_named_plugins(app: Application) -> list[tuple[str, str]]:
    """Load the plugins the config names; ``(key, reason)`` for each that fails.

    Only loaded, not used: no store is opened and no workflow file read, so a
    check has no side effects (``workflow validate`` reads the definitions).
    """
    config = app.config
    named = [
        ("store", "store", store_scheme(config.store_url)),
        ("parser", "parser", PARSER_ALIASES.get(config.parser, config.parser)),
        ("executor", "executor", config.executor),
    ]
    problems = []
    for key, kind, name in named:
        try:
            app.plugins.load_component(kind, name)
        except PluginLoadError as exc:
            problems.append((key, str(exc)))
    return problems
