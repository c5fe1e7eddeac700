"""Discovery through the installed ``pinball.parsers`` entry point."""

import json
import pathlib
import types

import pytest
from pinball_core.components import Parser
from pinball_core.errors import ConfigError, PluginLoadError
from pinball_core.plugins import PluginManager

from pinball_parser_yaml import YamlParser
from pinball_parser_yaml.plugin import YamlParserPlugin


def test_entry_point_makes_the_parser(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text('workflows: {w: {jobs: {a: {command: "true"}}}}\n')

    parser = PluginManager().make_parser("yaml", {"path": str(path)})

    assert isinstance(parser, YamlParser)
    assert isinstance(parser, Parser)
    assert parser.workflow_names() == ["w"]


def test_missing_path_is_a_config_error() -> None:
    with pytest.raises((ConfigError, PluginLoadError), match="parser_params.path"):
        PluginManager().make_parser("yaml", {})


def test_unknown_param_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as refused:
        YamlParserPlugin().pinball_make_parser(params={"pth": "y", "nonsense": 1})

    # Every problem, each on its own for config check, joined for the others.
    assert refused.value.problems == [
        "parser_params.pth: unknown key for the yaml parser; did you mean 'path'?",
        "parser_params.nonsense: unknown key for the yaml parser; it takes path, "
        "base_dir, python_path",
        "parser_params.path: is required: a YAML file or a folder of them",
    ]
    assert str(refused.value) == "; ".join(refused.value.problems)


def test_every_bad_param_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        YamlParserPlugin().pinball_make_parser(params={"path": 3, "python_path": [""]})

    assert refused.value.problems == [
        "parser_params.path: must be a YAML file or a folder of them, got 3",
        "parser_params.python_path: must be a folder or a list of folders, got ['']",
    ]


def test_a_path_that_does_not_exist_is_a_config_error(tmp_path: pathlib.Path) -> None:
    plugin = YamlParserPlugin()
    plugin.pinball_configure(
        config=types.SimpleNamespace(source=tmp_path / "pinball.yaml")
    )

    with pytest.raises(ConfigError) as refused:
        plugin.pinball_make_parser(params={"path": "flows"})

    assert str(refused.value) == (
        f"parser_params.path: {tmp_path / 'flows'} does not exist; "
        "set it to a YAML file or a folder of them"
    )


def test_relative_path_starts_at_the_config_folder(tmp_path: pathlib.Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "w.yaml").write_text(
        'workflows: {w: {jobs: {a: {command: "true"}}}}\n'
    )
    plugin = YamlParserPlugin()
    plugin.pinball_configure(
        config=types.SimpleNamespace(source=tmp_path / "pinball.yaml")
    )

    parser = plugin.pinball_make_parser(params={"path": "flows"})

    assert parser.workflow_names() == ["w"]


def test_python_path_is_recorded_on_every_job(tmp_path: pathlib.Path) -> None:
    (tmp_path / "w.yaml").write_text('workflows: {w: {jobs: {a: {command: "true"}}}}\n')
    parser = YamlParserPlugin().pinball_make_parser(
        params={"path": "w.yaml", "base_dir": str(tmp_path), "python_path": "lib"}
    )

    (token,) = parser.instance_tokens("w", "1")

    assert json.loads(token.data or "")["python_path"] == [
        str(tmp_path.resolve()),
        str((tmp_path / "lib").resolve()),
    ]


def test_python_path_must_name_folders() -> None:
    with pytest.raises(
        ConfigError, match="parser_params.python_path: must be a folder"
    ):
        YamlParserPlugin().pinball_make_parser(params={"path": "x", "python_path": 3})
