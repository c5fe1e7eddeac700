"""The ``pinball`` command line, run as a real process and in-process."""

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml
from pinball_processes import free_port

from pinball_core import cli, hookimpl
from pinball_core.app import Application
from pinball_core.commands import config as config_command
from pinball_core.errors import ConfigError, MasterError, UnauthorizedError
from pinball_core.plugins import PluginManager

GOOD_CONFIG = """\
master_port: 9191
master_secret: s3cret
workers: 2
"""


def pinball(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pinball_core ARGS`` in the current folder and env."""
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )


# -- As a process


@pytest.fixture
def no_master(home: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A config whose master is not running, with many slow retries."""
    (tmp_path / "workflows.yaml").write_text(
        "workflows:\n  hello:\n    jobs:\n      a: {command: 'true'}\n"
    )
    config = tmp_path / "pinball.yaml"
    config.write_text(
        f"master_port: {free_port()}\n"
        "parser: yaml\n"
        "parser_params: {path: workflows.yaml}\n"
        "client_connect_attempts: 20\n"
    )
    return config


class Background:
    """A ``pinball`` command in the background, its output in a file."""

    def __init__(self, config: pathlib.Path, *command: str) -> None:
        self.log = config.parent / "output.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pinball_core", "-c", str(config), *command],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + 60
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {text!r}:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, signum: int) -> int:
        """Send ``signum``; the exit code, or fail if it does not exit soon."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 30 s after signal {signum}:\n{self.output()}")
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@pytest.mark.parametrize(
    ("command", "signame"),
    [
        ("workers", "SIGINT"),
        ("workers", "SIGHUP"),
        ("scheduler", "SIGINT"),
        ("scheduler", "SIGTERM"),
    ],
)
def test_a_service_stops_as_asked_while_the_master_is_down(
    no_master: pathlib.Path, command: str, signame: str
) -> None:
    service = Background(no_master, command)
    # Its requests to the master are in their retries.
    service.wait_for("failed (attempt 2 of 20)")

    code = service.stop(getattr(signal, signame))

    # Stopped as asked, Ctrl-C included: 0, the code of a clean stop.
    assert code == 0, service.output()
    assert "gave up after 20 attempts" not in service.output()


def test_ctrl_c_interrupts_a_command_with_130(no_master: pathlib.Path) -> None:
    # One pass only: interrupting it is not the way it ends as asked.
    service = Background(no_master, "scheduler", "--once")
    service.wait_for("failed (attempt 2 of 20)")

    assert service.stop(signal.SIGINT) == 130


def test_config_check_without_a_config_file(home: pathlib.Path) -> None:
    result = pinball("config", "check")

    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["store_url"] == f"sqlite:///{home}/pinball.db"
    assert shown["workers"] == 5
    assert result.stdout.startswith("# no config file at ")
    assert not home.exists()


def test_config_check_prints_effective_values_masked(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pinball.yaml").write_text(GOOD_CONFIG)

    result = pinball("-c", "pinball.yaml", "config", "check")

    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout
    shown = yaml.safe_load(result.stdout)
    assert shown["master_port"] == 9191
    assert shown["workers"] == 2
    assert shown["master_secret"] == "***"
    assert shown["master_host"] == "localhost"


def test_config_check_as_json(home: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (tmp_path / "pinball.yaml").write_text(GOOD_CONFIG)

    result = pinball("-c", "pinball.yaml", "config", "check", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["master_secret"] == "***"


def test_a_bad_config_is_one_line_and_exit_2(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pinball.yaml").write_text("workers: five\n")

    result = pinball("-c", "pinball.yaml", "config", "check")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "pinball: error: pinball.yaml: workers: must be a positive integer, got 'five'"
    ]


def test_config_check_loads_the_plugins_the_config_names(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pinball.yaml").write_text("parser: yamll\nexecutor: remote\n")

    result = pinball("-c", "pinball.yaml", "config", "check")

    assert result.returncode == 2
    assert result.stdout.startswith("# pinball.yaml: has problems, listed on stderr")
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("pinball: error: pinball.yaml: parser: cannot load")
    assert "'yamll'" in errors[0] and "installed: " in errors[0]
    assert errors[1].startswith("pinball: error: pinball.yaml: executor: ")
    assert "'remote'" in errors[1]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            "{pth: workflows, path: workflows}",
            "parser_params.pth: unknown key for the yaml parser; did you mean 'path'?",
        ),
        (
            "{path: nowhere}",
            "parser_params.path: {folder}/nowhere does not exist; "
            "set it to a YAML file or a folder of them",
        ),
    ],
)
def test_config_check_has_the_parser_check_parser_params(
    home: pathlib.Path, tmp_path: pathlib.Path, params: str, error: str
) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "pinball.yaml").write_text(f"parser: yaml\nparser_params: {params}\n")

    checked = pinball("-c", "pinball.yaml", "config", "check")
    validated = pinball("-c", "pinball.yaml", "workflow", "validate")

    expected = f"pinball: error: pinball.yaml: {error.format(folder=tmp_path)}"
    assert checked.returncode == 2
    assert checked.stderr.splitlines() == [expected]
    # Every command that makes the parser reports it the same way.
    assert validated.returncode == 2
    assert validated.stderr.splitlines() == [expected]


def test_config_check_leaves_parser_params_alone_when_no_parser_is_chosen(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # A master's config: the default parser has no parser_params, and
    # nothing on this host reads them.
    (tmp_path / "pinball.yaml").write_text(GOOD_CONFIG)

    result = pinball("-c", "pinball.yaml", "config", "check")

    assert result.returncode == 0, result.stderr


def test_a_parser_that_cannot_load_names_the_file_and_key(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pinball.yaml").write_text("parser: yamll\n")

    result = pinball("-c", "pinball.yaml", "workflow", "validate")

    assert result.returncode == 2
    assert result.stderr.startswith(
        "pinball: error: pinball.yaml: parser: cannot load parser plugin 'yamll'"
    )


def test_debug_adds_the_traceback(home: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (tmp_path / "pinball.yaml").write_text("workers: five\n")

    result = pinball("-c", "pinball.yaml", "--debug", "config", "check")

    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("pinball: error: pinball.yaml:")


def test_mode_option_is_the_command(home: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (tmp_path / "pinball.yaml").write_text(GOOD_CONFIG)

    as_mode = pinball("-c", "pinball.yaml", "-m", "master", "--help")
    as_command = pinball("-c", "pinball.yaml", "master", "--help")

    assert as_mode.returncode == 0, as_mode.stderr
    assert as_mode.stdout == as_command.stdout
    assert as_mode.stdout.startswith("usage: pinball master")


def test_mode_and_command_together_are_refused(home: pathlib.Path) -> None:
    result = pinball("-m", "master", "config", "check")

    assert result.returncode == 2
    assert "either -m master or the command 'config'" in result.stderr


def test_an_unknown_mode_is_refused(home: pathlib.Path) -> None:
    result = pinball("-m", "dashboard")

    assert result.returncode == 2
    assert "invalid choice: 'dashboard'" in result.stderr


def test_plugins_needs_no_config_file(home: pathlib.Path) -> None:
    result = pinball("plugins")

    assert result.returncode == 0, result.stderr
    assert "sqlite" in result.stdout


def test_an_unknown_command_is_a_usage_error(home: pathlib.Path) -> None:
    result = pinball("frobnicate")

    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


# -- In-process


class HelloPlugin:
    """Adds ``pinball hello``."""

    @hookimpl
    def pinball_add_commands(
        self, subparsers: "argparse._SubParsersAction[Any]"
    ) -> None:
        parser = subparsers.add_parser("hello", help="say hello")
        parser.set_defaults(handler=self.run)

    def run(self, args: argparse.Namespace, app: Application) -> int:
        print(f"hello, {app.config.workers} workers")
        return 3


class BrokenPlugin:
    @hookimpl
    def pinball_add_commands(
        self, subparsers: "argparse._SubParsersAction[Any]"
    ) -> None:
        raise RuntimeError("boom")


def with_plugin(monkeypatch: pytest.MonkeyPatch, plugin: object) -> None:
    """Make the CLI's plugin manager load ``plugin`` instead of installed ones."""

    def load_optional(manager: PluginManager) -> None:
        manager.register(plugin, "plugin.test")

    monkeypatch.setattr(PluginManager, "load_optional", load_optional)


def test_plugins_add_commands(
    home: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with_plugin(monkeypatch, HelloPlugin())

    assert cli.main(["hello"]) == 3
    assert capsys.readouterr().out == "hello, 5 workers\n"


def test_a_broken_plugin_leaves_the_builtin_commands(
    home: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with_plugin(monkeypatch, BrokenPlugin())

    assert cli.main(["config", "check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == 5
    assert "a plugin failed to add its commands: RuntimeError: boom" in caplog.text


def test_a_broken_plugin_makes_its_command_unknown(
    home: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with_plugin(monkeypatch, BrokenPlugin())

    with pytest.raises(SystemExit) as exited:
        cli.main(["hello"])

    assert exited.value.code == 2
    assert "invalid choice: 'hello'" in capsys.readouterr().err


def test_a_bad_config_is_reported_for_plugin_commands(
    home: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    (tmp_path / "pinball.yaml").write_text("workers: 0\n")

    assert cli.main(["-c", "pinball.yaml", "some-plugin-command"]) == 2
    assert capsys.readouterr().err == (
        "pinball: error: pinball.yaml: workers: must be a positive integer, got 0\n"
    )


class UsersPlugin:
    """Refuses its config key as the UI plugin does, naming only the key."""

    @hookimpl
    def pinball_configure(self, config: Any) -> None:
        raise ConfigError("ui_users.bob.role: must be one of viewer, operator, admin")


@pytest.mark.parametrize("command", [["config", "check"], ["some-plugin-command"]])
def test_a_key_a_plugin_refuses_names_the_file(
    home: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    command: list[str],
) -> None:
    with_plugin(monkeypatch, UsersPlugin())
    (tmp_path / "pinball.yaml").write_text("workers: 2\n")

    assert cli.main(["-c", "pinball.yaml", *command]) == 2
    assert capsys.readouterr().err == (
        "pinball: error: pinball.yaml: ui_users.bob.role: must be one of viewer, "
        "operator, admin\n"
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("x.yaml: workers: bad"), 2),
        (MasterError("the master is gone"), 1),
        (UnauthorizedError("wrong secret"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes(
    home: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    error: BaseException,
    code: int,
) -> None:
    def fail(args: argparse.Namespace, app: Application) -> int:
        raise error

    monkeypatch.setattr(config_command, "check_config", fail)

    assert cli.main(["config", "check"]) == code
    err = capsys.readouterr().err
    if isinstance(error, KeyboardInterrupt):
        assert err == ""
    else:
        assert err == f"pinball: error: {error}\n"
