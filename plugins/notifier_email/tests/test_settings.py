"""The notifier's options: defaults, the config keys it shares, and errors
that name the file, the option and the fix."""

import pathlib
from typing import Any

import pytest
import yaml
from pinball_core.config import load_config
from pinball_core.errors import ConfigError
from pinball_core.plugins import PluginManager

from pinball_notifier_email import EmailNotifier, settings_from_config
from pinball_notifier_email.settings import DEFAULT_EVENTS


def _config(tmp_path: pathlib.Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "pinball.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def test_defaults(tmp_path: pathlib.Path) -> None:
    settings = settings_from_config(_config(tmp_path, {}))

    assert settings.sender == "pinball@localhost"
    assert (settings.smtp_host, settings.smtp_port) == ("localhost", 25)
    assert not settings.smtp_ssl and not settings.starttls
    assert settings.ui_url == "http://localhost:8080"
    assert settings.events == DEFAULT_EVENTS
    assert settings.sends("job_failed") and settings.sends("instance_failed")
    assert not settings.sends("instance_succeeded") and not settings.sends(
        "job_retried"
    )
    assert settings.sends("some_kind_a_plugin_made_up")


def test_shared_keys_and_options(tmp_path: pathlib.Path) -> None:
    config = _config(
        tmp_path,
        {
            "default_email": "workflows@example.com",
            "smtp_host": "mail.example.com",
            "smtp_port": 587,
            "smtp_user": "pinball",
            "smtp_pass": "s3cret",
            "ui_host": "pinball.example.com",
            "ui_port": 8888,
            "plugins": {
                "email": {
                    "starttls": True,
                    "timeout_sec": 10,
                    "events": {"instance_succeeded": True, "warn_timeout": False},
                    "subject_prefix": "",
                }
            },
        },
    )
    settings = settings_from_config(config)

    assert settings.sender == "workflows@example.com"
    assert (settings.smtp_host, settings.smtp_port) == ("mail.example.com", 587)
    assert (settings.smtp_user, settings.smtp_pass) == ("pinball", "s3cret")
    assert settings.starttls and settings.timeout_sec == 10.0
    assert settings.ui_url == "http://pinball.example.com:8888"
    assert settings.sends("instance_succeeded") and not settings.sends("warn_timeout")
    assert settings.subject_prefix == ""


def test_spool_folder(tmp_path: pathlib.Path) -> None:
    """Under the home by default; a relative spool_dir is taken from the
    config file's folder, as every path in the config is; off with spool."""
    home = tmp_path / "home"

    default = settings_from_config(_config(tmp_path, {"home": str(home)}))
    relative = settings_from_config(
        _config(tmp_path, {"plugins": {"email": {"spool_dir": "spool"}}})
    )
    off = settings_from_config(
        _config(tmp_path, {"plugins": {"email": {"spool": False}}})
    )

    assert default.spool_dir == str(home / "mail-spool")
    assert relative.spool_dir == str(tmp_path / "spool")
    assert off.spool_dir is None


def test_ui_url_overrides_host_and_port(tmp_path: pathlib.Path) -> None:
    config = _config(
        tmp_path,
        {"ui_host": "internal", "plugins": {"email": {"ui_url": "https://p.example/"}}},
    )

    assert settings_from_config(config).ui_url == "https://p.example"


def test_empty_options_are_the_defaults(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pinball.yaml"
    path.write_text("plugins:\n  email:\n", encoding="utf-8")

    assert settings_from_config(load_config(path)).timeout_sec == 30.0


@pytest.mark.parametrize(
    ("options", "smtp_ssl", "message"),
    [
        (
            {"timout_sec": 5},
            False,
            "plugins.email.timout_sec: unknown option; did you mean 'timeout_sec'?",
        ),
        (
            {"timeout_sec": "soon"},
            False,
            "plugins.email.timeout_sec: must be a positive number of seconds, "
            "got 'soon'",
        ),
        (
            {"timeout_sec": 0},
            False,
            "plugins.email.timeout_sec: must be a positive number of seconds, got 0",
        ),
        (
            {"starttls": "yes"},
            False,
            "plugins.email.starttls: must be true or false, got 'yes'",
        ),
        (
            {"events": {"job_fail": True}},
            False,
            "plugins.email.events.job_fail: unknown event; did you mean 'job_failed'?",
        ),
        (
            {"events": {"job_failed": "off"}},
            False,
            "plugins.email.events.job_failed: must be true or false, got 'off'",
        ),
        (
            {"events": ["job_failed"]},
            False,
            "plugins.email.events: must be a mapping of event names to true or "
            "false, got ['job_failed']",
        ),
        (
            {"starttls": True},
            True,
            "plugins.email.starttls: cannot be true with smtp_ssl",
        ),
        (
            {"ui_url": "pinball.example.com"},
            False,
            "plugins.email.ui_url: must start with http:// or https://",
        ),
        (
            {"spool": "no"},
            False,
            "plugins.email.spool: must be true or false, got 'no'",
        ),
        (
            {"log_lines": -1},
            False,
            "plugins.email.log_lines: must be a whole number from 0 to 1000, got -1",
        ),
    ],
)
def test_bad_options_name_the_file_and_the_option(
    tmp_path: pathlib.Path, options: dict[str, Any], smtp_ssl: bool, message: str
) -> None:
    config = _config(tmp_path, {"smtp_ssl": smtp_ssl, "plugins": {"email": options}})

    with pytest.raises(ConfigError) as caught:
        settings_from_config(config)

    assert str(caught.value).startswith(f"{tmp_path / 'pinball.yaml'}: ")
    assert message in str(caught.value)


def test_a_bad_option_stops_configuration(tmp_path: pathlib.Path) -> None:
    """Pinball configures its plugins at start-up; a bad option stops it."""
    config = _config(tmp_path, {"plugins": {"email": {"queue_size": 0}}})
    plugins = PluginManager()
    notifier = plugins.load_component("notifier", "email")
    assert isinstance(notifier, EmailNotifier)

    with pytest.raises(ConfigError, match="plugins.email.queue_size: must be a "):
        plugins.configure(config)


def test_blocked_by_disabled_plugins(tmp_path: pathlib.Path) -> None:
    config = _config(tmp_path, {"disabled_plugins": ["notifier.email"]})
    plugins = PluginManager(blocked=config.disabled_plugins)
    plugins.load_optional()

    listed = {(p.kind, p.name): p.status for p in plugins.list_plugins()}
    assert listed["notifier", "email"] == "blocked"
