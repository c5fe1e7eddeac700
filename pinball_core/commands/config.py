"""``pinball config check``: validate the config and show the effective values."""

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import yaml

from pinball_core.app import Application
from pinball_core.config import (
    Config,
    default_config_path,
    load_config_without_bad_keys,
)
from pinball_core.errors import ConfigError, PluginLoadError
from pinball_core.plugins import PARSER_ALIASES, PluginManager, store_scheme


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
    try:
        config = app.config
    except ConfigError as exc:
        if app.debug:
            traceback.print_exc()
        return _report_bad_keys(exc, app)
    values = config.for_display()
    problems = _plugin_problems(config, app)
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        verdict = "has problems, listed on stderr" if problems else "valid"
        if config.source is not None:
            print(f"# {config.source}: {verdict}")
        else:
            print(f"# no config file at {default_config_path()}; the defaults apply")
        print(yaml.safe_dump(values, sort_keys=False), end="")

    _print_problems(problems)
    return 2 if problems else 0


def _report_bad_keys(error: ConfigError, app: Application) -> int:
    """Print each problem of a config that failed to load; exit status 2.

    When the file is a mapping, the plugins still check their keys in the
    rest of it, so one run lists every problem. Nothing goes to stdout: the
    effective values are not known.
    """
    problems = list(error.problems)
    rest = load_config_without_bad_keys(app.config_path)
    if rest is not None:
        config, left_out = rest
        # A parser that failed its own check cannot check parser_params.
        check_parser = "parser" not in left_out
        problems += _plugin_problems(config, None, check_parser=check_parser)
    _print_problems(problems)
    return 2


def _print_problems(problems: list[str]) -> None:
    for problem in problems:
        print(f"pinball: error: {problem}", file=sys.stderr)


def _plugin_problems(
    config: Config, app: Application | None, *, check_parser: bool = True
) -> list[str]:
    """What the plugins refuse in the config, one message each.

    Every message names the config file and the key, as the plugin manager
    words them once it is configured. Plugins are only loaded and asked to
    check, not used: no store is opened and no workflow file read, so a
    check has no side effects (``workflow validate`` reads the definitions).

    :param app: the application whose plugins to use, if ``config`` is its.
    :param check_parser: whether to make the parser the config names.
    """
    plugins, problems = _configured_plugins(config, app)

    def check_parser_params() -> object:
        if _sets_the_parser(config):
            # Making it checks parser_params; parsers read their files lazily.
            return plugins.make_parser(config.parser, config.parser_params)
        name = PARSER_ALIASES.get(config.parser, config.parser)
        return plugins.load_component("parser", name)

    checks: list[Callable[[], object]] = [
        lambda: plugins.load_component("store", store_scheme(config.store_url)),
        lambda: plugins.load_component("executor", config.executor),
    ]
    if check_parser:
        checks.insert(1, check_parser_params)
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems += exc.problems
        except PluginLoadError as exc:
            problems.append(str(exc))
    return problems


def _configured_plugins(
    config: Config, app: Application | None
) -> tuple[PluginManager, list[str]]:
    """The plugins configured with ``config``, and what they refused then.

    A plugin refusing its keys (``ui_users``) stops the configuring, and
    ``app.plugins`` with it; a manager of our own is then used, as
    :attr:`Application.plugins` builds one. The plugins the checks load
    afterwards (parser, store, executor) are still configured when they are
    registered, as the configure hook is historic, so the checks go on.
    """
    if app is not None:
        try:
            return app.plugins, []
        except ConfigError:
            pass  # reported below, from a manager of our own
    plugins = PluginManager(blocked=config.disabled_plugins)
    plugins.load_optional()
    try:
        plugins.configure(config)
    except ConfigError as exc:
        return plugins, list(exc.problems)
    return plugins, []


def _sets_the_parser(config: Config) -> bool:
    """Whether the file chooses a parser; a config without one (a master's,
    say) leaves ``parser_params`` unchecked, since nothing there reads it."""
    return bool({"parser", "parser_params"} & config.model_fields_set)
