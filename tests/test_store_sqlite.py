"""The built-in SQLite store against the store contract, plus its own traits."""

import pathlib
import sqlite3
import subprocess
import sys

import pytest

from pinball_core.errors import StoreError, StoreMissingError
from pinball_core.store import StoreChange
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.testing.store_contract import StoreContract, StoreFactory
from pinball_core.token import Token


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: pathlib.Path) -> StoreFactory:
        return lambda: SqliteStore(f"sqlite:///{tmp_path / 'sub' / 'pinball.db'}")


def test_file_is_durable_wal(tmp_path: pathlib.Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'p.db'}")
    store.initialize()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # 2 is FULL: the log is synced on every commit.
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    store.close()


def test_newer_schema_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.db"
    store = SqliteStore(f"sqlite:///{path}")
    store.initialize()
    store.commit(StoreChange(updates=[Token("/kept", 1)]))
    store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE pinball_schema_version SET version = 99")

    newer = SqliteStore(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="schema version 99"):
        newer.initialize()
    assert [t.name for t in newer.load_active_tokens()] == ["/kept"]


def test_unwritable_folder_is_named(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = SqliteStore(f"sqlite:///{blocker / 'p.db'}")
    with pytest.raises(StoreError, match=str(blocker)):
        store.initialize()


def test_a_reader_of_a_missing_store_creates_nothing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "misspelt" / "dir" / "p.db"
    store = SqliteStore(f"sqlite:///{path}")
    with pytest.raises(StoreMissingError, match=f"no Pinball store at {path}$"):
        store.require_existing()
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_the_tables_is_no_store(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.db"
    sqlite3.connect(path).close()
    store = SqliteStore(f"sqlite:///{path}")
    with pytest.raises(StoreMissingError, match="no Pinball store at sqlite:///"):
        store.require_existing()
    store.close()


def test_the_master_creates_the_folder(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "new" / "p.db"
    store = SqliteStore(f"sqlite:///{path}")
    store.lock_for_master()
    store.initialize()
    store.require_existing()
    store.close()
    assert path.is_file()


def test_checking_the_master_lock_creates_nothing(tmp_path: pathlib.Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'new' / 'p.db'}")
    store.check_master_lock()
    store.close()

    assert list(tmp_path.iterdir()) == []


def test_checking_the_master_lock_refuses_a_held_store(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    master = SqliteStore(url)
    master.lock_for_master()
    try:
        check = SqliteStore(url)
        with pytest.raises(StoreError, match="another master is using the store"):
            check.check_master_lock()
        check.close()
    finally:
        master.close()

    free = SqliteStore(url)
    free.check_master_lock()
    free.close()


def test_corrupt_file_is_a_store_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not a database" * 100)
    store = SqliteStore(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="cannot prepare the store"):
        store.initialize()
    assert path.read_bytes().startswith(b"this is not a database")


def test_processes_racing_to_create_a_new_store_all_succeed(
    tmp_path: pathlib.Path,
) -> None:
    # `pinball run` starts the master and the UI together on a new store.
    script = (
        "import sys\n"
        "from pinball_core.stores.sqlite import SqliteStore\n"
        "store = SqliteStore(sys.argv[1])\n"
        "store.initialize()\n"
        "store.close()\n"
    )
    url = f"sqlite:///{tmp_path / 'new.db'}"
    racers = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]

    failures = [r.stderr.read() for r in racers if r.wait(timeout=60) != 0]
    for racer in racers:
        racer.stderr.close()

    assert failures == []


@pytest.mark.skipif(not pathlib.Path("/proc/self").exists(), reason="needs /proc")
def test_a_folder_where_no_file_can_be_made_is_named() -> None:
    # Even root cannot create files in /proc: the lock file cannot be made.
    store = SqliteStore("sqlite:////proc/pinball-test.db")
    with pytest.raises(StoreError, match="/proc/pinball-test.db.master-lock"):
        store.lock_for_master()
