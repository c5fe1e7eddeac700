"""The store on MySQL or MariaDB: the core's SQL store made to ride out outages.

Every read and write runs through a retry loop. A failure that left nothing
behind (a lost connection before COMMIT, a server restart, a deadlock, a lock
wait timeout) is retried with a growing delay until ``retry_sec`` is spent;
then the caller gets a :class:`~pinball_core.errors.StoreError` and the master
refuses the requests of that batch, which clients send again.

A connection lost while COMMIT was on its way is different: the transaction
may or may not have happened. Each commit also writes its own random id to
a one-row table, so the store reconnects and reads that row to learn which;
it keeps asking through an outage for up to ``doubt_retry_sec``, and the
master's writes wait meanwhile. A commit that happened is reported as done;
one that did not is sent again. Only if the server cannot be asked in all
that time is the commit reported as failed, and the store then refuses
every later commit until it can tell: if that transaction did happen after
all, the master's memory lacks it, and only a restart of the master (which
reloads the store) puts the two back in step.
"""

import functools
import logging
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pymysql
import sqlalchemy as sa
from pinball_core.errors import StoreError
from pinball_core.store import StoreChange
from pinball_core.stores import schema as core_schema
from pinball_core.stores.sql import SqlStore, chunks, row_of
from pinball_core.token import MAX_NAME_LENGTH, Token
from sqlalchemy.dialects import mysql

from pinball_store_mysql import tables
from pinball_store_mysql.failures import (
    Attempts,
    describe,
    is_disconnect,
    is_transient,
)
from pinball_store_mysql.master_lock import MasterLock, lock_name
from pinball_store_mysql.options import MysqlOptions, engine_url

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors of the database layer: SQLAlchemy's, and PyMySQL's own from the
# lock connection, which is used without SQLAlchemy.
_DATABASE_ERRORS = (sa.exc.SQLAlchemyError, pymysql.err.Error)

# PyMySQL sends at most this much in one packet; the server's own
# max_allowed_packet is the limit that matters, checked before sending.
_CLIENT_MAX_PACKET = 1 << 30

# Room in a packet for everything but the largest value: the statement,
# the name and the other columns of its row.
_PACKET_OVERHEAD = 64 * 1024

# Characters PyMySQL sends as two bytes inside a quoted string.
_ESCAPED = ("\\", "'", '"', "\0", "\n", "\r", "\x1a")

# A whole token name in UTF-8, with room to spare.
_MAX_SORT_BYTES = 4 * MAX_NAME_LENGTH + 1024

# How long initialize() waits for another process migrating the same tables.
_MIGRATION_LOCK_SEC = 60


class StoreInDoubtError(StoreError):
    """A commit may have happened that the master was told had failed.

    Raised by every commit once the store learns it; restart the master so
    that it reloads what the database holds.
    """


class _Retry(Exception):
    """A try failed in a way that is safe to try again."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.cause = cause


class _InDoubt(Exception):
    """The connection was lost while COMMIT was on its way."""

    def __init__(self, result: Any, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.result = result
        self.cause = cause


class MysqlStore(SqlStore):
    """Active tokens, archive and applied requests in one master's tables.

    :param url: ``mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE`` (or
        ``mariadb+pymysql://``); query parameters go to PyMySQL.
    :param master_name: names the tables (``pinball_*_<master_name>``);
        the host name if not given, as in the original Pinball.
    :param options: pool, timeouts and retries; see :class:`MysqlOptions`.
    """

    def __init__(
        self,
        url: str,
        *,
        master_name: str | None = None,
        options: MysqlOptions | Mapping[str, Any] | None = None,
    ) -> None:
        parsed, settings = engine_url(url)
        if not isinstance(options, MysqlOptions):
            options = MysqlOptions.parse(options, parsed.get_backend_name())
        self.options = options
        self.master_name = master_name or socket.gethostname()
        self.suffix = tables.table_suffix(self.master_name)

        connect_args: dict[str, Any] = {
            "charset": "utf8mb4",
            "connect_timeout": options.connect_timeout_sec,
            "read_timeout": options.read_timeout_sec,
            "write_timeout": options.write_timeout_sec,
            "max_allowed_packet": _CLIENT_MAX_PACKET,
        }
        engine = sa.create_engine(
            parsed,
            connect_args=connect_args,
            # A pooled connection the server dropped (restart, wait_timeout)
            # is found before use and replaced, not handed out dead.
            pool_pre_ping=True,
            pool_size=options.pool_size,
            max_overflow=options.max_overflow,
            pool_timeout=options.pool_timeout_sec,
            pool_recycle=options.pool_recycle_sec,
            # The master is the only writer; READ COMMITTED spares readers'
            # range deletes the gap locks that would block its inserts.
            isolation_level=settings.get("isolation_level", "READ COMMITTED"),
            # Errors name the statement, never 10 MB of token data.
            hide_parameters=True,
        )
        sa.event.listen(
            engine,
            "connect",
            functools.partial(_tune_session, options.lock_wait_timeout_sec),
        )
        self.tables = tables.build(self.suffix)
        super().__init__(engine, self.tables)
        self.display_url = (
            f"{engine.url.render_as_string(hide_password=True)} "
            f"(tables pinball_*_{self.suffix})"
        )

        insert = mysql.insert(self.tables.active_tokens)
        self._upsert_statement = insert.on_duplicate_key_update(
            {
                column: insert.inserted[column]
                for column in ("version", "owner", "expiration", "priority", "data")
            }
        )
        self._max_packet: int | None = None
        self._master_lock: MasterLock | None = None
        # The id of a commit whose outcome the store could not learn.
        self._doubt: str | None = None
        self._diverged: str | None = None

    # -- Start-up -------------------------------------------------------------

    def initialize(self) -> None:
        """Create or migrate this master's tables, then check them.

        Migrations of the same tables by two processes at once are
        serialised by a named lock; MySQL commits each CREATE TABLE at once,
        so a migration that died half-way runs again from where it stopped.
        """
        self._with_retries(
            "prepare the store", self.options.read_retry_sec, self._initialize
        )

    def _initialize(self) -> None:
        name = lock_name("schema", self._database, self.suffix)
        with self.engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :wait)"),
                {"name": name, "wait": _MIGRATION_LOCK_SEC},
            ).scalar()
            if got != 1:
                raise StoreError(
                    f"cannot prepare the store at {self.display_url}: another "
                    f"process held the lock {name!r} for {_MIGRATION_LOCK_SEC} s "
                    "while migrating these tables"
                )
            try:
                core_schema.migrate(self.engine, self.tables)
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            self._check_tables(conn)
            self._max_packet = _max_packet(conn)

    def _check_tables(self, conn: sa.Connection) -> None:
        """Refuse tables MySQL created without transactions (MyISAM)."""
        names = [t.name for t in self.tables.version.metadata.sorted_tables]
        engines = conn.execute(
            sa.text(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
            ).bindparams(sa.bindparam("names", expanding=True)),
            {"names": names},
        ).all()
        for table, engine in engines:
            if engine != "InnoDB":
                raise StoreError(
                    f"the table {table} of the store at {self.display_url} uses "
                    f"the {engine} engine, which cannot commit or roll back; "
                    f"convert it with ALTER TABLE {table} ENGINE=InnoDB"
                )

    def lock_for_master(self) -> None:
        """Hold a named lock for as long as this store is open.

        Raises StoreError naming the connection (user and host) of the other
        master when the lock is taken.
        """
        if self._master_lock is not None and self._master_lock.held:
            return
        name = lock_name("master", self._database, self.suffix)
        lock = MasterLock(self.engine, name, self.display_url)
        self._with_retries("lock the store", self.options.read_retry_sec, lock.acquire)
        self._master_lock = lock

    @property
    def _database(self) -> str:
        return str(self.engine.url.database)

    # -- Writes ---------------------------------------------------------------

    def commit(self, change: StoreChange) -> None:
        self._check_sizes(change)
        self._settle_doubt()
        work = functools.partial(self._write_change, change=change)
        self._transact("commit to the store", work, marked=True)

    def _upsert(self, conn: sa.Connection, tokens: list[Token]) -> None:
        if tokens:
            rows = [row_of(t) | {"name_key": tables.name_key(t.name)} for t in tokens]
            conn.execute(self._upsert_statement, rows)

    def _delete_active(self, conn: sa.Connection, names: Sequence[str]) -> None:
        active = self.tables.active_tokens
        for chunk in chunks(names):
            keys = [tables.name_key(name) for name in chunk]
            conn.execute(active.delete().where(active.c.name_key.in_(keys)))

    def _run_write(self, what: str, work: Callable[[sa.Connection], T]) -> T:
        # Writes other than commits (deleting archived tokens) are the same
        # when sent twice, so one lost during COMMIT is simply sent again.
        return self._transact(what, work, marked=False)

    def _transact(
        self, what: str, work: Callable[[sa.Connection], T], *, marked: bool
    ) -> T:
        """Run ``work`` in a transaction until it commits or cannot.

        With ``marked``, the transaction records its id in the last-commit
        table, so that a lost COMMIT can be looked up instead of guessed.
        """
        attempts = Attempts(self.options.retry_sec)
        while True:
            commit_id = uuid.uuid4().hex if marked else None
            try:
                return self._transact_once(what, work, commit_id)
            except _Retry as failure:
                self._wait_or_fail(attempts, what, failure)
            except _InDoubt as doubt:
                if commit_id is None:
                    self._wait_or_fail(attempts, what, doubt)
                    continue
                if self._committed(commit_id, what, doubt):
                    log.warning(
                        "the connection to %s was lost during COMMIT, but the "
                        "commit happened",
                        self.display_url,
                    )
                    result: T = doubt.result
                    return result
                log.warning(
                    "the connection to %s was lost during COMMIT and the commit "
                    "did not happen; sending it again",
                    self.display_url,
                )

    def _transact_once(
        self, what: str, work: Callable[[sa.Connection], T], commit_id: str | None
    ) -> T:
        try:
            conn = self.engine.connect()
        except _DATABASE_ERRORS as exc:
            raise self._failure(what, exc) from exc

        with conn:
            transaction = conn.begin()
            try:
                if self._master_lock is not None:
                    self._master_lock.check(conn)
                result = work(conn)
                if commit_id is not None:
                    conn.execute(tables.last_commit_marker(self.tables, commit_id))
            except BaseException as exc:
                _roll_back(transaction)
                if isinstance(exc, _DATABASE_ERRORS):
                    raise self._failure(what, exc) from exc
                raise

            try:
                transaction.commit()
            except Exception as exc:
                if isinstance(exc, _DATABASE_ERRORS) and not is_disconnect(exc):
                    # The server answered: the transaction was rolled back.
                    raise self._failure(what, exc) from exc
                raise _InDoubt(result, exc) from exc
        return result

    def _committed(self, commit_id: str, what: str, doubt: _InDoubt) -> bool:
        """Whether the transaction ``commit_id`` happened, asking until time is up.

        On giving up, remembers ``commit_id`` so later commits ask first.
        """
        query = tables.last_commit_query(self.tables)
        attempts = Attempts(self.options.doubt_retry_sec)
        while True:
            try:
                with self.engine.begin() as conn:
                    return bool(conn.execute(query).scalar() == commit_id)
            except _DATABASE_ERRORS as exc:
                if not is_transient(exc):
                    self._doubt = commit_id
                    raise self._unknown(what, exc) from exc
                failure: BaseException = exc
            if attempts.expired():
                self._doubt = commit_id
                raise self._unknown(what, failure) from doubt.cause
            log.warning(
                "the connection to %s was lost during COMMIT and the server "
                "cannot yet be asked whether it happened (%s); writes wait",
                self.display_url,
                describe(failure),
            )
            attempts.wait()

    def _settle_doubt(self) -> None:
        """Before committing, learn the outcome of a commit left in doubt."""
        if self._diverged is not None:
            raise StoreInDoubtError(self._diverged)
        if self._doubt is None:
            return
        doubt = _InDoubt(None, StoreError("an earlier commit was left in doubt"))
        if self._committed(self._doubt, "commit to the store", doubt):
            self._diverged = (
                f"a commit to the store at {self.display_url} that was reported "
                "as failed did happen, so the master's memory lacks it; restart "
                "the master to reload the store"
            )
            log.critical("%s", self._diverged)
            raise StoreInDoubtError(self._diverged)
        log.info("the commit left in doubt did not happen; committing again")
        self._doubt = None

    def _unknown(self, what: str, cause: BaseException) -> StoreError:
        return StoreError(
            f"cannot {what} at {self.display_url}: the connection was lost during "
            f"COMMIT and the server could not be asked whether it happened "
            f"({describe(cause)}); later commits wait until it can"
        )

    def _check_sizes(self, change: StoreChange) -> None:
        """Refuse values the server would refuse, before sending anything.

        A packet over max_allowed_packet makes the server drop the connection,
        which would look like an outage and be retried in vain.
        """
        limit = self._max_packet
        if limit is None:
            return
        room = limit - _PACKET_OVERHEAD
        for token in change.updates + change.archives:
            size = _wire_size(token.data, room)
            if size > room:
                raise StoreError(
                    f"cannot commit to the store at {self.display_url}: the data "
                    f"of {token.name} is {size} bytes as sent, more than the "
                    f"server's max_allowed_packet ({limit}) allows; raise it "
                    "(SET GLOBAL max_allowed_packet) or store less data"
                )
        for request in change.requests:
            size = _wire_size(request.response, room)
            if size > room:
                raise StoreError(
                    f"cannot commit to the store at {self.display_url}: the "
                    f"answer to request {request.request_id} is {size} bytes as "
                    f"sent, more than the server's max_allowed_packet ({limit}) "
                    "allows; raise it (SET GLOBAL max_allowed_packet)"
                )

    # -- Reads ----------------------------------------------------------------

    def _run_read(self, what: str, work: Callable[[sa.Connection], T]) -> T:
        def read() -> T:
            try:
                with self.engine.connect() as conn:
                    return work(conn)
            except _DATABASE_ERRORS as exc:
                raise self._failure(f"{what} from the store", exc) from exc

        return self._with_retries(
            f"{what} from the store", self.options.read_retry_sec, read
        )

    # -- Shared ---------------------------------------------------------------

    def _with_retries(self, what: str, window: float, work: Callable[[], T]) -> T:
        """Run ``work`` until it succeeds, retrying transient database errors."""
        attempts = Attempts(window)
        while True:
            try:
                return work()
            except _Retry as failure:
                self._wait_or_fail(attempts, what, failure)
            except _DATABASE_ERRORS as exc:
                self._wait_or_fail(attempts, what, self._failure(what, exc))

    def _failure(self, what: str, exc: BaseException) -> _Retry:
        """``exc`` as a retry, or raised as StoreError if retrying is pointless."""
        if is_transient(exc):
            return _Retry(exc)
        raise StoreError(
            f"cannot {what} at {self.display_url}: {describe(exc)}"
        ) from exc

    def _wait_or_fail(
        self, attempts: Attempts, what: str, failure: _Retry | _InDoubt
    ) -> None:
        if attempts.expired():
            raise StoreError(
                f"cannot {what} at {self.display_url}: {failure}; gave up after "
                f"{attempts.count} attempts in {attempts.elapsed():.1f} s"
            ) from failure.cause
        log.warning(
            "cannot %s at %s (%s); trying again in up to %.2f s",
            what,
            self.display_url,
            failure,
            attempts.next_delay(),
        )
        attempts.wait()

    def close(self) -> None:
        if self._master_lock is not None:
            self._master_lock.release()
        super().close()


def _roll_back(transaction: sa.RootTransaction) -> None:
    try:
        transaction.rollback()
    except _DATABASE_ERRORS as exc:
        # A lost connection rolls back on the server by itself.
        log.debug("rollback after a failure failed too: %s", exc)


def _tune_session(lock_wait_sec: int | None, dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cursor:
        # ORDER BY compares only the first max_sort_length bytes (1024 by
        # default); names must sort by all of theirs.
        cursor.execute("SET SESSION max_sort_length = %s", (_MAX_SORT_BYTES,))
        if lock_wait_sec is not None:
            cursor.execute(
                "SET SESSION innodb_lock_wait_timeout = %s", (lock_wait_sec,)
            )


def _max_packet(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar_one())


def _wire_size(text: str | None, room: int) -> int:
    """Bytes ``text`` takes in a statement, counted only when it could matter."""
    if text is None or len(text) * 8 < room:
        return 0
    return len(text.encode("utf-8")) + sum(text.count(c) for c in _ESCAPED)
