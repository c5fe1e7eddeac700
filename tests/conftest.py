"""Fixtures shared by the core's tests."""

import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pinball_core.client import HttpClient, MasterClient
from pinball_core.local import MasterThread
from pinball_core.stores.sqlite import SqliteStore


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite:///{tmp_path / 'pinball.db'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SqliteStore]:
    store = SqliteStore(sqlite_url)
    store.initialize()
    yield store
    store.close()


@pytest.fixture
def master(store: SqliteStore) -> Iterator[MasterThread]:
    """A master on a SQLite store, serving HTTP on a free loopback port."""
    with MasterThread(store, port=0) as running:
        yield running


@pytest.fixture(params=["local", "http"])
def client(
    request: pytest.FixtureRequest, master: MasterThread
) -> Iterator[MasterClient]:
    """A client of ``master``: in process, and over HTTP."""
    if request.param == "local":
        yield master.client()
        return
    assert master.port is not None
    with HttpClient("127.0.0.1", master.port, connect_attempts=2) as http:
        yield http


@pytest.fixture(scope="session")
def test_plugins_path(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A folder where the test-only plugin distribution is really installed.

    Put it on ``PYTHONPATH`` of a child process to make the entry points of
    ``tests/fixtures/pinball_test_plugins`` discoverable there.
    """
    # Build from a copy: setuptools writes build/ and *.egg-info into the source.
    source = tmp_path_factory.mktemp("plugin-source") / "pinball_test_plugins"
    shutil.copytree(
        pathlib.Path(__file__).parent / "fixtures/pinball_test_plugins", source
    )
    target = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(
            "could not install tests/fixtures/pinball_test_plugins; building it "
            "without isolation needs setuptools>=70.1 in this environment (the "
            f"test extra):\n{result.stdout}{result.stderr}"
        )
    return target


@pytest.fixture
def home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A private Pinball home, the test's folder as the current one, and no
    Pinball variables from the caller's environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("PINBALL_HOME", str(home))
    monkeypatch.delenv("PINBALL_MASTER_SECRET", raising=False)
    monkeypatch.delenv("PINBALL_DISABLE_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    return home
