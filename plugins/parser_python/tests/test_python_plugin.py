"""Discovery through the ``pinball.parsers`` entry point, and the original's
dotted parser names."""

import pathlib
import types

import pytest
from pinball_core.components import Parser
from pinball_core.config import load_config
from pinball_core.errors import ConfigError
from pinball_core.plugins import PluginManager

from pinball_parser_python import PythonParser
from pinball_parser_python.plugin import PythonParserPlugin

MODULE = (
    "from pinball_parser_python import Workflow\nw = Workflow('w')\nw.shell('a', 'x')\n"
)


@pytest.fixture
def module_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "flows.py"
    path.write_text(MODULE)
    return path


@pytest.mark.parametrize(
    "name",
    [
        "python",
        # The original's class path, and the one its README printed.
        "pinball_ext.workflow.parser.PyWorkflowParser",
        "pinball_ext.workflows.parser.PyWorkflowParser",
    ],
)
def test_names_make_the_python_parser(name: str, module_file: pathlib.Path) -> None:
    parser = PluginManager().make_parser(name, {"path": str(module_file)})

    assert isinstance(parser, PythonParser)
    assert isinstance(parser, Parser)
    assert parser.workflow_names() == ["w"]


def test_it_is_the_default_parser(tmp_path: pathlib.Path) -> None:
    config_file = tmp_path / "pinball.yaml"
    config_file.write_text("parser_params: {path: flows.py}\n")
    (tmp_path / "flows.py").write_text(MODULE)
    config = load_config(config_file)
    plugins = PluginManager()
    plugins.configure(config)

    parser = plugins.make_parser(config.parser, config.parser_params)

    assert isinstance(parser, PythonParser)
    assert parser.workflow_names() == ["w"]


def test_bad_params_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="^parser_params: .* exactly one of module"):
        PythonParserPlugin().pinball_make_parser(params={})


def test_every_bad_param_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        PythonParserPlugin().pinball_make_parser(params={"modul": "m", "pth": "p"})

    problems = refused.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("parser_params: the python parser needs exactly one")
    assert problems[1].startswith("parser_params.modul: unknown key")
    assert problems[2].startswith("parser_params.pth: unknown key")


def test_a_path_that_does_not_exist_is_a_config_error(tmp_path: pathlib.Path) -> None:
    plugin = PythonParserPlugin()
    plugin.pinball_configure(
        config=types.SimpleNamespace(source=tmp_path / "pinball.yaml")
    )

    with pytest.raises(ConfigError) as refused:
        plugin.pinball_make_parser(params={"path": "flows.py"})

    assert str(refused.value) == (
        f"parser_params.path: {tmp_path.resolve() / 'flows.py'} does not exist; "
        "set it to a Python file or a folder of them"
    )


def test_relative_path_starts_at_the_config_folder(
    tmp_path: pathlib.Path, module_file: pathlib.Path
) -> None:
    plugin = PythonParserPlugin()
    plugin.pinball_configure(
        config=types.SimpleNamespace(source=tmp_path / "pinball.yaml")
    )

    parser = plugin.pinball_make_parser(params={"path": module_file.name})

    assert parser.workflow_names() == ["w"]
