"""The README stays true: every config key and every command is documented."""

import pathlib
import re

from pinball_core.app import Application
from pinball_core.cli import _build_parser
from pinball_core.config import IGNORED_KEYS, Config

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def test_every_config_key_has_a_row_in_the_key_table() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", README, re.MULTILINE))
    keys = {field.alias or name for name, field in Config.model_fields.items()}

    missing = sorted(keys - documented - set(IGNORED_KEYS))

    assert not missing, f"config keys missing from the README's key table: {missing}"


def test_every_command_is_in_the_command_table(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "pinball.yaml"
    config.write_text(f"home: {tmp_path}\n")
    commands = _build_parser(Application(config)).commands

    missing = sorted(c for c in commands if f"| `pinball {c}" not in README)

    assert not missing, f"commands missing from the README's command table: {missing}"
