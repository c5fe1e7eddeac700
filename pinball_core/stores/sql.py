"""A store on any SQL database SQLAlchemy reaches, through SQLAlchemy Core.

Core rather than the ORM: the master writes whole batches of plain rows and
reads them back in bulk, where ORM identity tracking would only cost time.
Dialect-specific set-up (SQLite pragmas, MySQL drivers) belongs to the plugin
that subclasses :class:`SqlStore`.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from pinball_core.errors import StoreError
from pinball_core.store import AppliedRequest, Store, StoreChange
from pinball_core.stores import schema
from pinball_core.token import Token, prefix_upper_bound

log = logging.getLogger(__name__)

# Large IN lists are split so that no database hits its bound-parameter limit.
_CHUNK = 500


# Tries at preparing the schema, for processes racing to create it.
_INITIALIZE_ATTEMPTS = 5


class SqlStore(Store):
    """Tokens in three tables: active, archived, and applied request ids."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
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
                schema.migrate(self._engine)
                return
            except sa.exc.SQLAlchemyError as exc:
                if attempt == _INITIALIZE_ATTEMPTS:
                    raise StoreError(
                        f"cannot prepare the store at {self.display_url}: "
                        f"{_reason(exc)}"
                    ) from exc
                log.debug("preparing the store failed (%s); trying again", exc)
                time.sleep(0.2 * attempt)

    def load_active_tokens(self) -> list[Token]:
        table = schema.active_tokens
        return self._read(sa.select(table).order_by(table.c.name), "load tokens")

    def load_applied_requests(self, since: float) -> list[AppliedRequest]:
        table = schema.applied_requests
        query = (
            sa.select(table.c.request_id, table.c.applied_at, table.c.response)
            .where(table.c.applied_at >= since)
            .order_by(table.c.applied_at)
        )
        with self._reading("load applied requests") as conn:
            return [AppliedRequest(*row) for row in conn.execute(query)]

    def commit(self, change: StoreChange) -> None:
        active = schema.active_tokens
        try:
            with self._engine.begin() as conn:
                self._upsert(conn, change.updates)
                for chunk in _chunks(change.deletes):
                    conn.execute(active.delete().where(active.c.name.in_(chunk)))

                if change.archives:
                    now = time.time()
                    rows = [row_of(t) | {"archived_at": now} for t in change.archives]
                    conn.execute(schema.archived_tokens.insert(), rows)
                    names = [t.name for t in change.archives]
                    for chunk in _chunks(names):
                        conn.execute(active.delete().where(active.c.name.in_(chunk)))

                self._write_requests(conn, change)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot commit to the store at {self.display_url}: {_reason(exc)}"
            ) from exc

    def _upsert(self, conn: sa.Connection, tokens: list[Token]) -> None:
        """Insert or replace active tokens by name.

        Delete-then-insert works the same on every dialect; stores override it
        with their database's own upsert, which is one statement instead of two.
        """
        active = schema.active_tokens
        for chunk in _chunks([t.name for t in tokens]):
            conn.execute(active.delete().where(active.c.name.in_(chunk)))
        if tokens:
            conn.execute(active.insert(), [row_of(t) for t in tokens])

    def _write_requests(self, conn: sa.Connection, change: StoreChange) -> None:
        table = schema.applied_requests
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
        table = _table(archived)
        query = sa.select(*[table.c[c] for c in _COLUMNS])
        query = _where_prefix(query, table, prefix)
        order = [table.c.name, table.c.version] if archived else [table.c.name]
        query = query.order_by(*order).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return self._read(query, "read tokens")

    def count_tokens(self, prefix: str = "", *, archived: bool = False) -> int:
        table = _table(archived)
        query = _where_prefix(
            sa.select(sa.func.count()).select_from(table), table, prefix
        )
        with self._reading("count tokens") as conn:
            return int(conn.execute(query).scalar_one())

    def group_token_names(
        self, prefix: str = "", delimiter: str = "/", *, archived: bool = False
    ) -> dict[str, int]:
        table = _table(archived)
        query = _where_prefix(sa.select(table.c.name), table, prefix)
        groups: dict[str, int] = {}
        with self._reading("group token names") as conn:
            # Streamed so that a large archive is never held in memory whole.
            result = conn.execution_options(yield_per=5000).execute(query)
            for (name,) in result:
                key = group_key(name, prefix, delimiter)
                groups[key] = groups.get(key, 0) + 1
        return groups

    def delete_archived_tokens(self, prefix: str) -> int:
        table = schema.archived_tokens
        try:
            with self._engine.begin() as conn:
                result = conn.execute(_where_prefix(table.delete(), table, prefix))
                return int(result.rowcount)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot delete archived tokens under {prefix!r} at "
                f"{self.display_url}: {_reason(exc)}"
            ) from exc

    def close(self) -> None:
        self._engine.dispose()

    def _read(self, query: sa.Select[Any], what: str) -> list[Token]:
        with self._reading(what) as conn:
            return [_token(row) for row in conn.execute(query)]

    def _reading(self, what: str) -> "_Reading":
        return _Reading(self, what)


class _Reading:
    """A read-only connection whose database errors become StoreError."""

    def __init__(self, store: SqlStore, what: str) -> None:
        self._store = store
        self._what = what
        self._conn: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        try:
            self._conn = self._store.engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc) from exc
        return self._conn

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._conn is not None
        self._conn.close()
        if isinstance(exc, sa.exc.SQLAlchemyError):
            raise self._error(exc) from exc

    def _error(self, exc: sa.exc.SQLAlchemyError) -> StoreError:
        return StoreError(
            f"cannot {self._what} from the store at {self._store.display_url}: "
            f"{_reason(exc)}"
        )


_COLUMNS = ("name", "version", "owner", "expiration", "priority", "data")


def group_key(name: str, prefix: str, delimiter: str) -> str:
    """The group of ``name``: its part up to the first delimiter after ``prefix``."""
    if not delimiter:
        return name
    cut = name.find(delimiter, len(prefix))
    return name if cut < 0 else name[:cut]


def _table(archived: bool) -> sa.Table:
    return schema.archived_tokens if archived else schema.active_tokens


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


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _reason(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's statement dump."""
    original = getattr(exc, "orig", None)
    return str(original or exc).splitlines()[0]
