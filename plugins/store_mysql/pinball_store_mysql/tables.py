"""The MySQL store's tables: one set per master, utf8mb4, sized for InnoDB.

Each master has its own tables, named ``pinball_<table>_<suffix>`` after its
``master_name`` as the original Pinball did, so several masters can share
one database. Every name stays within MySQL's 64-character identifier limit
however long the master's name is.

InnoDB keys are at most 3072 bytes, less than a token name of
:data:`~pinball_core.token.MAX_NAME_LENGTH` characters of four UTF-8 bytes
each. So active tokens are keyed by the SHA-256 of the name, and prefix
scans use an index on the name's first :data:`NAME_INDEX_CHARS` characters.
"""

import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from pinball_core.stores.schema import Schema
from pinball_core.token import MAX_NAME_LENGTH
from sqlalchemy.dialects import mysql

log = logging.getLogger(__name__)

#: The longest table, index or lock name MySQL accepts.
MAX_IDENTIFIER_LENGTH = 64

#: How many leading characters of a name the name index holds: 768 characters
#: of at most 4 bytes are InnoDB's 3072-byte key limit.
NAME_INDEX_CHARS = 768

#: The store's distribution, named when a database is newer than it.
PACKAGE = "pinball-store-mysql"

_BASES = (
    "pinball_schema_version",
    "pinball_active_tokens",
    "pinball_archived_tokens",
    "pinball_applied_requests",
    "pinball_last_commit",
)

# Room left for the suffix once the longest base and its "_" are in.
_SUFFIX_ROOM = MAX_IDENTIFIER_LENGTH - max(len(b) for b in _BASES) - 1
_HASH_CHARS = 8

# Binary collations that compare by code point without padding, best first:
# MySQL 8's, then MariaDB's. Trailing spaces then count, as they do in Python.
_NO_PAD_COLLATIONS = ("utf8mb4_0900_bin", "utf8mb4_nopad_bin")
_PAD_COLLATION = "utf8mb4_bin"

# The one row of the last-commit table.
_SLOT = 1


def table_suffix(master_name: str) -> str:
    """The part of every table name that says which master owns it.

    Lower case (so names mean the same where MySQL ignores case), with every
    character other than a letter, digit or ``_`` made ``_``. A suffix too
    long for the longest table name keeps its start and ends with a hash of
    the whole master name, so two long names still get different tables.
    """
    if not master_name:
        raise ValueError("master_name must not be empty")
    suffix = re.sub(r"[^a-z0-9_]", "_", master_name.lower())
    if len(suffix) > _SUFFIX_ROOM:
        digest = hashlib.sha256(master_name.encode("utf-8")).hexdigest()
        suffix = f"{suffix[: _SUFFIX_ROOM - _HASH_CHARS - 1]}_{digest[:_HASH_CHARS]}"
    return suffix


def name_key(name: str) -> bytes:
    """The primary key of the active token called ``name``."""
    return hashlib.sha256(name.encode("utf-8")).digest()


@dataclasses.dataclass(frozen=True, slots=True)
class MysqlSchema(Schema):
    """The core's :class:`Schema` plus the table that records the last commit.

    :attr:`last_commit` holds one row with the id of the last transaction the
    store committed; it is written inside every commit, so after a connection
    drops during COMMIT the store can read whether that commit happened.
    """

    last_commit: sa.Table = dataclasses.field(kw_only=True)


def build(suffix: str, collation: str | None = None) -> MysqlSchema:
    """The tables for ``suffix``.

    ``collation`` is the one ``CREATE TABLE`` uses; queries do not depend on
    it, so stores build their query tables without one and the migration
    builds them again with the collation it found on the server.
    """
    metadata = sa.MetaData()
    options: dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        # DYNAMIC rows allow index keys up to 3072 bytes on MySQL 5.7 too.
        "mysql_row_format": "DYNAMIC",
    }
    if collation is not None:
        options["mysql_collate"] = collation

    def table(base: str, *parts: sa.schema.SchemaItem) -> sa.Table:
        return sa.Table(f"{base}_{suffix}", metadata, *parts, **options)

    def name_column() -> sa.Column[str]:
        return sa.Column("name", sa.String(MAX_NAME_LENGTH), nullable=False)

    def name_index() -> sa.Index:
        # Index names are per table in MySQL, so a short fixed one is unique.
        return sa.Index("name_prefix", "name", mysql_length=NAME_INDEX_CHARS)

    version = table(
        "pinball_schema_version", sa.Column("version", sa.Integer, nullable=False)
    )
    active = table(
        "pinball_active_tokens",
        sa.Column("name_key", sa.BINARY(32), primary_key=True),
        name_column(),
        *_token_columns(),
        name_index(),
    )
    archived = table(
        "pinball_archived_tokens",
        # Versions are unique for the master's whole life: archiving a name
        # twice keeps both records.
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        name_column(),
        *_token_columns(with_version=False),
        sa.Column("archived_at", sa.Double, nullable=False),
        name_index(),
    )
    requests = table(
        "pinball_applied_requests",
        sa.Column("request_id", sa.String(160), primary_key=True),
        sa.Column("applied_at", sa.Double, nullable=False),
        # A claim's answer holds whole tokens, data included.
        sa.Column("response", mysql.LONGTEXT, nullable=False),
        sa.Index("applied_at", "applied_at"),
    )
    last_commit = table(
        "pinball_last_commit",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("commit_id", sa.String(32), nullable=False),
    )

    return MysqlSchema(
        version=version,
        active_tokens=active,
        archived_tokens=archived,
        applied_requests=requests,
        migrations=[_create_v1(suffix)],
        package=PACKAGE,
        last_commit=last_commit,
    )


def _token_columns(*, with_version: bool = True) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = []
    if with_version:
        columns.append(sa.Column("version", sa.BigInteger, nullable=False))
    columns += [
        sa.Column("owner", sa.String(255), nullable=True),
        # DOUBLE, not MySQL's FLOAT, which keeps only 24 bits of a timestamp.
        sa.Column("expiration", sa.Double, nullable=True),
        sa.Column("priority", sa.Double, nullable=False, server_default="0"),
        # Up to 4 GB; the server's max_allowed_packet is the real bound.
        sa.Column("data", mysql.LONGTEXT, nullable=True),
    ]
    return columns


def last_commit_marker(schema: MysqlSchema, commit_id: str) -> sa.Executable:
    """The statement that records ``commit_id`` as the last commit."""
    insert = mysql.insert(schema.last_commit).values(slot=_SLOT, commit_id=commit_id)
    return insert.on_duplicate_key_update(commit_id=insert.inserted.commit_id)


def last_commit_query(schema: MysqlSchema) -> sa.Select[Any]:
    """The id of the last commit, read with a lock.

    The lock waits for a transaction still holding the row, so a commit the
    server is still finishing is seen once it ends, not missed.
    """
    table = schema.last_commit
    return sa.select(table.c.commit_id).where(table.c.slot == _SLOT).with_for_update()


def collation_of(conn: sa.Connection) -> str:
    """The best binary utf8mb4 collation this server has."""
    names = set(
        conn.execute(
            sa.text(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS "
                "WHERE COLLATION_NAME IN :names"
            ).bindparams(sa.bindparam("names", expanding=True)),
            {"names": list(_NO_PAD_COLLATIONS)},
        ).scalars()
    )
    for name in _NO_PAD_COLLATIONS:
        if name in names:
            return name
    log.warning(
        "this MySQL server has no binary no-pad utf8mb4 collation (MySQL 8 or "
        "MariaDB 10.2 have one); using %s, under which a prefix ending in a "
        "space also matches the name without it",
        _PAD_COLLATION,
    )
    return _PAD_COLLATION


def _create_v1(suffix: str) -> Callable[[sa.Connection], None]:
    def create_v1(conn: sa.Connection) -> None:
        # MySQL commits each CREATE TABLE at once; checkfirst lets a migration
        # that died half-way simply run again.
        tables = build(suffix, collation_of(conn))
        tables.version.metadata.create_all(conn, checkfirst=True)
        first = tables.last_commit.insert().values(slot=_SLOT, commit_id="0" * 32)
        conn.execute(first.prefix_with("IGNORE"))

    return create_v1
