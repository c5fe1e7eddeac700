"""One master per store: a MySQL named lock held on a connection of its own.

``GET_LOCK`` belongs to the connection that took it and ends with it, so a
master that dies releases its store at once, and a server restart releases
it too. The store therefore checks, inside every commit, that its lock
connection is still alive and still the holder, and takes the lock again
after a restart if no other master took it first.
"""

import hashlib
import logging
from typing import Any

import sqlalchemy as sa
from pinball_core.errors import StoreError

from pinball_store_mysql.tables import MAX_IDENTIFIER_LENGTH

log = logging.getLogger(__name__)

_IS_USED = sa.text("SELECT IS_USED_LOCK(:name)")

_HOLDER = sa.text(
    "SELECT p.ID, p.USER, p.HOST FROM information_schema.PROCESSLIST p "
    "WHERE p.ID = IS_USED_LOCK(:name)"
)


def lock_name(kind: str, database: str, suffix: str) -> str:
    """A server-wide lock name for ``kind`` of the tables ``suffix`` in ``database``.

    Named locks are global to the server, not per database, so the database
    is part of the name; a name too long for MySQL becomes a hash.
    """
    name = f"pinball.{kind}.{database}.{suffix}"
    if len(name) > MAX_IDENTIFIER_LENGTH:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        name = f"pinball.{kind}.{digest[:40]}"
    return name


class MasterLock:
    """The named lock that makes one master the only writer of its tables.

    :param engine: where to open the lock's own connection.
    :param name: the lock name, from :func:`lock_name`.
    :param store: how to name the store in errors.
    """

    def __init__(self, engine: sa.Engine, name: str, store: str) -> None:
        self._engine = engine
        self.name = name
        self._store = store
        self._connection: Any = None
        self._connection_id: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StoreError naming the master that has it.

        Database errors (the server is down) pass through, for the caller
        to retry.
        """
        # Out of the pool for good: closing it ends the lock, nothing else does.
        pooled = self._engine.raw_connection()
        pooled.detach()
        connection: Any = pooled.dbapi_connection
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (self.name,))
                got, connection_id = cursor.fetchone()
        except BaseException:
            connection.close()
            raise
        if got != 1:
            connection.close()
            raise StoreError(
                f"another master is using the store {self._store}: "
                f"{self._holder()} holds the lock {self.name!r}; stop it first, "
                "or give this master another master_name"
            )
        self._connection = connection
        self._connection_id = connection_id
        log.info(
            "holding the master lock %r on connection %d", self.name, connection_id
        )

    def check(self, conn: sa.Connection) -> None:
        """Make sure this store still holds the lock; call inside a transaction.

        Takes the lock again if its connection was lost and the lock is free.
        The ping proves the lock connection alive now; the transaction's
        connection then proves the server was not restarted since, so the
        holder it reports is this lock connection and no other.
        """
        if not self._alive():
            self.release()
            log.warning(
                "lost the connection holding the master lock %r; taking it again",
                self.name,
            )
            self.acquire()
        holder = conn.execute(_IS_USED, {"name": self.name}).scalar()
        if holder != self._connection_id:
            raise StoreError(
                f"this master lost its lock {self.name!r} on the store "
                f"{self._store} to {self._holder()}; stop one of the two masters"
            )

    def release(self) -> None:
        """End the lock by closing its connection."""
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception as exc:  # noqa: BLE001 - it is being dropped anyway
                log.debug("closing the master lock connection: %s", exc)
            self._connection = None
            self._connection_id = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    def _alive(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.ping(reconnect=False)
        except Exception:  # noqa: BLE001 - any failure means the lock is gone
            return False
        return True

    def _holder(self) -> str:
        """Who holds the lock, as well as the server tells."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(_HOLDER, {"name": self.name}).first()
        except sa.exc.SQLAlchemyError:
            return "another connection"
        if row is None:
            return "another connection"
        return f"connection {row.ID} ({row.USER}@{row.HOST})"
