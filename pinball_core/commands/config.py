"""``pinball config check``: validate the config and show the effective values."""

import argparse
import json
from typing import Any

import yaml

from pinball_core.app import Application
from pinball_core.config import default_config_path


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
        "value, defaults included and secrets masked. Exits 2, naming the "
        "file and the key, if the config is invalid.",
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace, app: Application) -> int:
    config = app.config
    values = config.for_display()
    if args.json:
        print(json.dumps(values, indent=2))
        return 0

    if config.source is not None:
        print(f"# {config.source}: valid")
    else:
        print(f"# no config file at {default_config_path()}; the defaults apply")
    print(yaml.safe_dump(values, sort_keys=False), end="")
    return 0
