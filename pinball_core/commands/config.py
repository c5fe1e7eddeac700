"""``pinball config check``: validate the config and show the effective values."""

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import yaml

from pinball_core.app import Application
from pinball_core.config import Config, default_config_path
from pinball_core.errors import ConfigError, PluginLoadError
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
        "value, defaults included and secrets masked. Then check what the "
        "plugins read: load the store, parser and executor plugins the config "
        "names, let every plugin check its own keys (ui_users, say), and, if "
        "the config sets parser or parser_params, let the parser check "
        "parser_params, without reading any workflow. Exits 2, naming the "
        "file and the key, for each problem found.",
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace, app: Application) -> int:
    config = app.config
    values = config.for_display()
    problems = _plugin_problems(app)
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        verdict = "has problems, listed on stderr" if problems else "valid"
        if config.source is not None:
            print(f"# {config.source}: {verdict}")
        else:
            print(f"# no config file at {default_config_path()}; the defaults apply")
        print(yaml.safe_dump(values, sort_keys=False), end="")

    for problem in problems:
        print(f"pinball: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def _plugin_problems(app: Application) -> list[str]:
    """What the plugins refuse in the config, one message each.

    Every message names the config file and the key, as the plugin manager
    words them once it is configured. Plugins are only loaded and asked to
    check, not used: no store is opened and no workflow file read, so a
    check has no side effects (``workflow validate`` reads the definitions).
    """
    config = app.config
    try:
        plugins = app.plugins
    except ConfigError as exc:
        # A plugin refused its own keys while being configured (ui_users).
        return [str(exc)]

    def check_parser() -> object:
        if _sets_the_parser(config):
            # Making it checks parser_params; parsers read their files lazily.
            return plugins.make_parser(config.parser, config.parser_params)
        name = PARSER_ALIASES.get(config.parser, config.parser)
        return plugins.load_component("parser", name)

    checks: list[Callable[[], object]] = [
        lambda: plugins.load_component("store", store_scheme(config.store_url)),
        check_parser,
        lambda: plugins.load_component("executor", config.executor),
    ]
    problems = []
    for check in checks:
        try:
            check()
        except (ConfigError, PluginLoadError) as exc:
            problems.append(str(exc))
    return problems


def _sets_the_parser(config: Config) -> bool:
    """Whether the file chooses a parser; a config without one (a master's,
    say) leaves ``parser_params`` unchecked, since nothing there reads it."""
    return bool({"parser", "parser_params"} & config.model_fields_set)
