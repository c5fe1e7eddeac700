"""A store on any SQL database SQLAlchemy reaches, through SQLAlchemy Core.

Core rather than the ORM: the master writes whole batches of plain rows and
reads them back in bulk, where ORM identity tracking would only cost time.
Dialect-specific set-up (SQLite pragmas, MySQL drivers) belongs to the plugin
that subclasses :class:`SqlStore`.
"""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from pinball_core.errors import StoreError, StoreMissingError
from pinball_core.store import AppliedRequest, Store, StoreChange
from pinball_core.stores import schema
from pinball_core.token import Token, prefix_upper_bound

log = logging.getLogger(__name__)

# Tries at preparing the schema, for processes racing to create it.
_INITIALIZE_ATTEMPTS = 5

# Large IN lists are split so that no database hits its bound-parameter limit.
_CHUNK = 500

T = TypeVar("T")


class SqlStore(Store):
    """Tokens in three tables: active, archived, and applied request ids.

    Subclasses adapt it to one database: they may pass their own
    :class:`~pinball_core.stores.schema.Schema`, override :meth:`_upsert`
    and :meth:`_delete_active` with faster statements, and override
    :meth:`_run_read` and :meth:`_run_write` to reconnect and retry.
    """

    def __init__(self, engine: sa.Engine, tables: schema.Schema = schema.DEFAULT):
        self._engine = engine
        self.schema = tables
        self.display_url = engine.url.render_as_string(hide_password=True)

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def initialize(self) -> None:
        # Several processes may open a new store at once (`pinball run`
        # starts the master and the UI together). The loser of the race to
        # create the tables fails; once the winner has committed, a second
        # try finds the schema current and does nothing.
        for attempt in range(1, _INITIALIZE_ATTEMPTS + 1):
            try:
                schema.migrate(self._engine, self.schema)
                return
            except sa.exc.SQLAlchemyError as exc:
                if attempt == _INITIALIZE_ATTEMPTS:
                    raise StoreError(
                        f"cannot prepare the store at {self.display_url}: {reason(exc)}"
                    ) from exc
                log.debug("preparing the store failed (%s); trying again", exc)
                time.sleep(0.2 * attempt)

    def require_existing(self) -> None:
        def has_tables(conn: sa.Connection) -> bool:
            inspector = sa.inspect(conn)
            return all(
                inspector.has_table(table.name, schema=table.schema)
                for table in (self.schema.active_tokens, self.schema.archived_tokens)
            )

        if not self._run_read("look for the tables", has_tables):
            raise StoreMissingError(self.display_url)

    def load_active_tokens(self) -> list[Token]:
        table = self.schema.active_tokens
        query = sa.select(*[table.c[c] for c in _COLUMNS]).order_by(table.c.name)
        return self._read_tokens(query, "load tokens")

    def load_applied_requests(self, since: float) -> list[AppliedRequest]:
        table = self.schema.applied_requests
        query = (
            sa.select(table.c.request_id, table.c.applied_at, table.c.response)
            .where(table.c.applied_at >= since)
            .order_by(table.c.applied_at)
        )
        return self._run_read(
            "load applied requests",
            lambda conn: [AppliedRequest(*row) for row in conn.execute(query)],
        )

    def commit(self, change: StoreChange) -> None:
        self._run_write(
            "commit to the store", lambda conn: self._write_change(conn, change)
        )

    def _write_change(self, conn: sa.Connection, change: StoreChange) -> None:
        """Send every statement of ``change`` inside the caller's transaction."""
        self._upsert(conn, change.updates)
        self._delete_active(conn, change.deletes)

        if change.archives:
            now = time.time()
            rows = [row_of(t) | {"archived_at": now} for t in change.archives]
            conn.execute(self.schema.archived_tokens.insert(), rows)
            self._delete_active(conn, [t.name for t in change.archives])

        self._write_requests(conn, change)

    def _upsert(self, conn: sa.Connection, tokens: list[Token]) -> None:
        """Insert or replace active tokens by name.

        Delete-then-insert works the same on every dialect; stores override it
        with their database's own upsert, which is one statement instead of two.
        """
        self._delete_active(conn, [t.name for t in tokens])
        if tokens:
            conn.execute(
                self.schema.active_tokens.insert(), [row_of(t) for t in tokens]
            )

    def _delete_active(self, conn: sa.Connection, names: Sequence[str]) -> None:
        """Remove the active tokens called ``names``; absent names are no error."""
        active = self.schema.active_tokens
        for chunk in chunks(names):
            conn.execute(active.delete().where(active.c.name.in_(chunk)))

    def _write_requests(self, conn: sa.Connection, change: StoreChange) -> None:
        table = self.schema.applied_requests
        if change.forget_requests_before is not None:
            conn.execute(
                table.delete().where(table.c.applied_at < change.forget_requests_before)
            )
        if change.requests:
            rows = [
                {
                    "request_id": r.request_id,
                    "applied_at": r.applied_at,
                    "response": r.response,
                }
                for r in change.requests
            ]
            conn.execute(table.insert(), rows)

    def read_tokens(
        self,
        prefix: str = "",
        *,
        archived: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Token]:
        table = self._table(archived)
        query = sa.select(*[table.c[c] for c in _COLUMNS])
        query = _where_prefix(query, table, prefix)
        order = [table.c.name, table.c.version] if archived else [table.c.name]
        query = query.order_by(*order).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return self._read_tokens(query, "read tokens")

    def count_tokens(self, prefix: str = "", *, archived: bool = False) -> int:
        table = self._table(archived)
        query = _where_prefix(
            sa.select(sa.func.count()).select_from(table), table, prefix
        )
        return self._run_read(
            "count tokens", lambda conn: int(conn.execute(query).scalar_one())
        )

    def group_token_names(
        self, prefix: str = "", delimiter: str = "/", *, archived: bool = False
    ) -> dict[str, int]:
        table = self._table(archived)
        query = _where_prefix(sa.select(table.c.name), table, prefix)

        def group(conn: sa.Connection) -> dict[str, int]:
            groups: dict[str, int] = {}
            # Streamed so that a large archive is never held in memory whole.
            result = conn.execution_options(yield_per=5000).execute(query)
            for (name,) in result:
                key = group_key(name, prefix, delimiter)
                groups[key] = groups.get(key, 0) + 1
            return groups

        return self._run_read("group token names", group)

    def delete_archived_tokens(self, prefix: str) -> int:
        table = self.schema.archived_tokens
        statement = _where_prefix(table.delete(), table, prefix)
        return self._run_write(
            f"delete archived tokens under {prefix!r} in the store",
            lambda conn: int(conn.execute(statement).rowcount),
        )

    def close(self) -> None:
        self._engine.dispose()

    def _table(self, archived: bool) -> sa.Table:
        return self.schema.archived_tokens if archived else self.schema.active_tokens

    def _read_tokens(self, query: sa.Select[Any], what: str) -> list[Token]:
        return self._run_read(
            what, lambda conn: [_token(row) for row in conn.execute(query)]
        )

    def _run_read(self, what: str, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` on a connection; database errors become StoreError.

        ``what`` completes "cannot ... from the store" in the error message.
        ``work`` may run more than once in stores that retry, so it must
        start from scratch each time.
        """
        try:
            with self._engine.connect() as conn:
                return work(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot {what} from the store at {self.display_url}: {reason(exc)}"
            ) from exc

    def _run_write(self, what: str, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in one transaction; database errors become StoreError.

        ``what`` completes "cannot ... at <url>" in the error message. The
        transaction commits only if ``work`` returns; any error rolls it back.
        """
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot {what} at {self.display_url}: {reason(exc)}"
            ) from exc


_COLUMNS = ("name", "version", "owner", "expiration", "priority", "data")


def group_key(name: str, prefix: str, delimiter: str) -> str:
    """The group of ``name``: its part up to the first delimiter after ``prefix``."""
    if not delimiter:
        return name
    cut = name.find(delimiter, len(prefix))
    return name if cut < 0 else name[:cut]


def _where_prefix(query: Any, table: sa.Table, prefix: str) -> Any:
    if not prefix:
        return query
    return query.where(
        table.c.name >= prefix, table.c.name < prefix_upper_bound(prefix)
    )


def row_of(token: Token) -> dict[str, Any]:
    return {
        "name": token.name,
        "version": token.version,
        "owner": token.owner,
        "expiration": token.expiration,
        "priority": token.priority,
        "data": token.data,
    }


def _token(row: sa.Row[Any]) -> Token:
    return Token(
        name=row.name,
        version=row.version,
        owner=row.owner,
        expiration=row.expiration,
        priority=row.priority if row.priority is not None else 0.0,
        data=row.data,
    )


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def reason(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's statement dump."""
    original = getattr(exc, "orig", None)
    return str(original or exc).splitlines()[0]
