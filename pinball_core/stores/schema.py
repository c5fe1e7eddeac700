"""The tables every SQL store uses, and their versioned migrations.

The schema version lives in its own table. Each migration is a function that
takes the schema from one version to the next inside the same transaction as
the version bump, so a store is never left half-migrated. (MySQL commits each
DDL statement at once; its store writes migrations that can safely run again.)

Other SQL stores build their own :class:`Schema` with the same columns.
"""

import dataclasses
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from pinball_core.errors import StoreError
from pinball_core.token import MAX_NAME_LENGTH

log = logging.getLogger(__name__)

metadata = sa.MetaData()

#: Name strings compare by code point, so prefix ranges select exactly.
NameType = sa.String(MAX_NAME_LENGTH)

schema_version = sa.Table(
    "pinball_schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def _token_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("expiration", sa.Float, nullable=True),
        sa.Column("priority", sa.Float, nullable=False, default=0.0),
        sa.Column("data", sa.Text, nullable=True),
    ]


active_tokens = sa.Table(
    "pinball_active_tokens",
    metadata,
    sa.Column("name", NameType, primary_key=True),
    *_token_columns(),
)

# Archived rows are keyed by version, which is unique for the master's whole
# life, so archiving a name twice keeps both records instead of replacing one.
archived_tokens = sa.Table(
    "pinball_archived_tokens",
    metadata,
    sa.Column("name", NameType, nullable=False, index=True),
    *_token_columns(),
    sa.Column("archived_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("version"),
)

applied_requests = sa.Table(
    "pinball_applied_requests",
    metadata,
    # The request kind, a colon and the client's id of up to 128 characters.
    sa.Column("request_id", sa.String(160), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False, index=True),
    sa.Column("response", sa.Text, nullable=False),
)


def _create_v1(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[active_tokens, archived_tokens, applied_requests])


#: Migration ``i`` takes the schema from version ``i`` to ``i + 1``.
MIGRATIONS: list[Callable[[sa.Connection], None]] = [_create_v1]

CURRENT_VERSION = len(MIGRATIONS)


@dataclasses.dataclass(frozen=True, slots=True)
class Schema:
    """The tables one store reads and writes, and the migrations that make them.

    :class:`~pinball_core.stores.sql.SqlStore` queries these tables by column
    name only, so a store on another database can build its own set (other
    table names, column types or keys) with the same columns and pass it in.
    ``version`` is the one-row table that holds the schema version.
    """

    version: sa.Table
    active_tokens: sa.Table
    archived_tokens: sa.Table
    applied_requests: sa.Table
    migrations: Sequence[Callable[[sa.Connection], None]]
    #: The distribution that defines these tables, named when a database is newer.
    package: str = "pinball-core"

    @property
    def current_version(self) -> int:
        return len(self.migrations)


#: The tables above, as the built-in stores use them.
DEFAULT = Schema(
    version=schema_version,
    active_tokens=active_tokens,
    archived_tokens=archived_tokens,
    applied_requests=applied_requests,
    migrations=MIGRATIONS,
)


def migrate(engine: sa.Engine, schema: Schema = DEFAULT) -> int:
    """Bring ``schema`` at ``engine`` to its current version.

    Returns the version found before migrating (0 for an empty database).
    Refuses a database written by a newer Pinball rather than guess at it.
    """
    current = schema.current_version
    with engine.begin() as conn:
        schema.version.create(conn, checkfirst=True)
        found = conn.execute(sa.select(schema.version.c.version)).scalar()
        if found is None:
            conn.execute(schema.version.insert().values(version=0))
            found = 0

        if found > current:
            raise StoreError(
                f"the database at {engine.url.render_as_string()} has schema "
                f"version {found} but this Pinball knows versions up to "
                f"{current}; upgrade {schema.package}"
            )

        for version in range(found, current):
            log.info(
                "migrating store schema from version %d to %d", version, version + 1
            )
            schema.migrations[version](conn)
            conn.execute(schema.version.update().values(version=version + 1))
    return found
