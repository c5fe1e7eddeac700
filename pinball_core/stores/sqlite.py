"""The embedded default store: one SQLite file under the Pinball home folder.

Durable by default: write-ahead logging with ``synchronous=FULL`` syncs the log
on every commit, so a change the master acknowledged survives a crash of the
process or of the machine. The master's group commit keeps that affordable.
"""

import fcntl
import logging
import pathlib
import sqlite3
from collections.abc import Mapping
from typing import IO, Any

import sqlalchemy as sa
import sqlalchemy.dialects.sqlite

from pinball_core import hookimpl
from pinball_core.errors import StoreError, StoreMissingError
from pinball_core.store import Store
from pinball_core.stores import schema
from pinball_core.stores.sql import SqlStore, row_of
from pinball_core.token import Token

log = logging.getLogger(__name__)

# How long a reader or a second writer waits for a lock before failing.
_BUSY_TIMEOUT_MS = 30_000


class SqliteStore(SqlStore):
    """A :class:`SqlStore` on a SQLite file, tuned for one writer and readers."""

    _lock_file: IO[bytes] | None = None

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() != "sqlite":
            raise StoreError(f"not a SQLite URL: {url!r}; use sqlite:///PATH")
        database = parsed.database
        self.path: pathlib.Path | None = None
        if database and database != ":memory:":
            # The folder is made only by the master (lock_for_master and
            # initialize), so a reader given a misspelt path creates nothing.
            path = pathlib.Path(database).expanduser()
            parsed = parsed.set(database=str(path))
            self.path = path

        # The master calls the store from one thread, readers from their own
        # processes; a small pool is plenty (an in-memory database has none).
        pool = {"pool_size": 2, "max_overflow": 4} if self.path else {}
        engine = sa.create_engine(
            parsed, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000}, **pool
        )
        sa.event.listen(engine, "connect", _tune_connection)
        super().__init__(engine)
        self._replace = sa.dialects.sqlite.insert(schema.active_tokens).prefix_with(
            "OR REPLACE"
        )

    def lock_for_master(self) -> None:
        """Hold an exclusive lock on ``<file>.master-lock`` while open."""
        if self.path is None or self._lock_file is not None:
            return
        self._make_folder()
        lock_path = self._lock_path(self.path)
        try:
            handle = open(lock_path, "ab")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise StoreError(
                f"cannot create the master's lock file {lock_path} beside the "
                f"SQLite store: {exc.strerror or exc}; set store (or home) to a "
                "folder this user can write"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(
                f"another master is using the store {self.path} (it holds "
                f"{lock_path}); stop it first, or give this one another home"
            ) from None
        self._lock_file = handle

    def check_master_lock(self) -> None:
        """Lock the master's lock file only if it is there.

        A lock file that is not there is held by nobody, so neither it nor
        the store's folder is created just to find that out.
        """
        if self.path is None or not self._lock_path(self.path).exists():
            return
        self.lock_for_master()

    @staticmethod
    def _lock_path(path: pathlib.Path) -> pathlib.Path:
        return path.with_name(path.name + ".master-lock")

    def close(self) -> None:
        super().close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def require_existing(self) -> None:
        # SQLite creates a missing file on connect, so look before connecting.
        if self.path is not None and not self.path.is_file():
            raise StoreMissingError(str(self.path))
        super().require_existing()

    def initialize(self) -> None:
        self._make_folder()
        super().initialize()
        if self.path is None:
            return
        # A damaged file is refused at start, not found out by a later commit.
        with self.engine.connect() as conn:
            verdict = conn.exec_driver_sql("PRAGMA quick_check").scalar()
        if verdict != "ok":
            raise StoreError(
                f"the SQLite store {self.path} is damaged ({verdict}); restore "
                "it from a backup, or move it away to start empty"
            )

    def _make_folder(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the SQLite store {self.path}: {exc}"
            ) from exc

    def _upsert(self, conn: sa.Connection, tokens: list[Token]) -> None:
        if tokens:
            conn.execute(self._replace, [row_of(t) for t in tokens])


def _tune_connection(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class SqliteStorePlugin:
    """Provides the ``sqlite`` store to the plugin manager."""

    @hookimpl
    def pinball_make_store(self, url: str, options: Mapping[str, Any]) -> Store:
        store = SqliteStore(url)
        log.debug("opened SQLite store %s", store.display_url)
        return store
