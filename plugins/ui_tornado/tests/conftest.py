"""Fixtures for the UI's tests; the pieces they build on are in ui_fixtures."""

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from ui_fixtures import Env, ServedUi

from pinball_ui_tornado.access import access_from_config
from pinball_ui_tornado.base import Ui
from pinball_ui_tornado.server import build_ui, close_ui


@pytest.fixture
def env_config() -> dict[str, Any]:
    """Extra config keys for the environment; tests override it."""
    return {}


@pytest.fixture
def env(tmp_path: pathlib.Path, env_config: dict[str, Any]) -> Iterator[Env]:
    environment = Env(tmp_path, env_config)
    try:
        yield environment
    finally:
        environment.close()


@pytest.fixture
def ui(env: Env) -> Iterator[Ui]:
    built = build_ui(
        env.app,
        env.ui_store,
        access=access_from_config(env.app.config),
        listen="127.0.0.1",
    )
    yield built
    close_ui(built)


@pytest.fixture
def served(ui: Ui) -> Iterator[ServedUi]:
    server = ServedUi(ui)
    yield server
    server.stop()
