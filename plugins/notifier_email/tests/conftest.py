"""Fixtures for the email notifier's tests: a real SMTP server, a real master
on SQLite, and the plugin loaded through its entry point with worker threads
calling its hooks."""

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from email_harness import (
    Finished,
    Inbox,
    MakeConfig,
    MakePinball,
    Pinball,
    free_port,
)
from pinball_core.config import Config, load_config
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.stores.sqlite import SqliteStore

from pinball_notifier_email import EmailNotifier


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    server = Inbox(free_port())
    server.start()
    yield server
    server.stop()
    server.close_black_hole()


@pytest.fixture
def master(tmp_path: pathlib.Path) -> Iterator[MasterThread]:
    store = SqliteStore(f"sqlite:///{tmp_path / 'pinball.db'}")
    store.initialize()
    with MasterThread(store, port=0) as running:
        yield running
    store.close()


@pytest.fixture
def spool_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """The mail spool of :func:`make_config`'s home, by default."""
    return tmp_path / "home" / "mail-spool"


@pytest.fixture
def make_config(
    tmp_path: pathlib.Path, master: MasterThread, inbox: Inbox
) -> MakeConfig:
    """A config file for this master and SMTP server, loaded as Pinball does.

    Keyword arguments are top-level keys; ``email`` holds the plugin's own
    options. Retries are fast, so that a test waits seconds, not minutes.
    """

    def make(email: dict[str, Any] | None = None, **keys: Any) -> Config:
        options = {
            "retry_delay_sec": 0.1,
            "max_retry_delay_sec": 0.5,
            "timeout_sec": 5,
            "exit_flush_sec": 5,
        }
        data = {
            "home": str(tmp_path / "home"),
            "logs_dir": str(tmp_path / "logs"),
            "master_host": "127.0.0.1",
            "master_port": master.port,
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox.port,
            "default_email": "pinball@example.com",
            "ui_host": "pinball.example.com",
            "ui_port": 8080,
            "plugins": {"email": options | (email or {})},
        } | keys
        path = tmp_path / "pinball.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return load_config(path)

    return make


@pytest.fixture
def make_pinball(
    master: MasterThread, make_config: MakeConfig, tmp_path: pathlib.Path
) -> Iterator[MakePinball]:
    """Makes the plugin from its entry point, configured by :func:`make_config`;
    stops its workers and its mail thread at the end."""
    made: list[Pinball] = []

    def make(email: dict[str, Any] | None = None, **keys: Any) -> Pinball:
        config = make_config(email, **keys)
        plugins = PluginManager(blocked=config.disabled_plugins)
        notifier = plugins.load_component("notifier", "email")
        assert isinstance(notifier, EmailNotifier)
        finished = Finished()
        plugins.register(finished, "finished")
        plugins.configure(config)
        pinball = Pinball(plugins, notifier, finished, master, config.logs_dir)
        made.append(pinball)
        return pinball

    yield make
    for pinball in made:
        pinball.stop_workers()
        pinball.notifier.close(timeout=5)
