"""Fixtures shared by the core's tests."""

import pathlib
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
