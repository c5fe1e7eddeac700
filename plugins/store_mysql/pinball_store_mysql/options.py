"""The MySQL store's options and the checks on its URL.

Options come from the config's ``plugins:`` block under the URL's scheme
(``plugins: {mysql: {pool_size: 10}}``); the URL's own query parameters go
to PyMySQL unchanged, as the ``OPTIONS`` of a Django ``databases:`` entry did.
"""

import inspect
from collections.abc import Mapping
from typing import Any

import pydantic
import pymysql
import sqlalchemy as sa
from pinball_core.errors import ConfigError, StoreError
from pinball_core.plugins import mask_url
from pydantic import BaseModel, ConfigDict, Field

#: URL schemes this plugin serves; each is an entry point of the store group.
SCHEMES = ("mysql", "mariadb")

# Query parameters SQLAlchemy's PyMySQL dialect reads itself.
_DIALECT_PARAMETERS = frozenset({"ssl_check_hostname"})


class MysqlOptions(BaseModel):
    """Connection pool, timeouts and retries of one store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool_size: int = Field(default=5, gt=0, description="connections kept open")
    max_overflow: int = Field(
        default=10, ge=0, description="extra connections opened under load"
    )
    pool_timeout_sec: float = Field(
        default=30, gt=0, description="wait for a free pooled connection"
    )
    pool_recycle_sec: float = Field(
        default=3600,
        gt=0,
        description="replace connections older than this, well before the "
        "server's wait_timeout drops them",
    )
    connect_timeout_sec: float = Field(
        default=10, gt=0, description="to open one connection"
    )
    read_timeout_sec: float = Field(
        default=600, gt=0, description="for one answer from the server"
    )
    write_timeout_sec: float = Field(
        default=600, gt=0, description="to send one statement to the server"
    )
    lock_wait_timeout_sec: int | None = Field(
        default=None,
        gt=0,
        description="the session's innodb_lock_wait_timeout; None: the server's",
    )
    retry_sec: float = Field(
        default=60,
        ge=0,
        description="how long a write is retried through lost connections, "
        "restarts, deadlocks and lock waits before the request fails",
    )
    read_retry_sec: float = Field(
        default=10, ge=0, description="the same for reads and for start-up"
    )
    doubt_retry_sec: float = Field(
        default=600,
        ge=0,
        description="how long a commit whose connection was lost during COMMIT "
        "keeps asking the server whether it happened; the master's writes wait "
        "meanwhile, since answering before knowing could contradict the store",
    )

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, scheme: str) -> "MysqlOptions":
        """Check the ``plugins.<scheme>`` options; ConfigError names a bad key."""
        try:
            return cls.model_validate(dict(raw or {}))
        except pydantic.ValidationError as exc:
            problems = []
            for error in exc.errors():
                key = ".".join(str(part) for part in error["loc"])
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    message = f"unknown option; known: {', '.join(cls.model_fields)}"
                problems.append(f"plugins.{scheme}.{key}: {message}")
            raise ConfigError("; ".join(problems)) from None


def engine_url(url: str) -> tuple[sa.URL, dict[str, Any]]:
    """The URL to connect with, and engine settings taken out of its query.

    Accepts ``mysql://``, ``mysql+pymysql://`` and the same with ``mariadb``;
    the driver is always PyMySQL. Refuses, naming the part, a URL without a
    database, another driver, a character set other than utf8mb4, or a query
    parameter PyMySQL does not know. ``isolation_level`` (a Django
    ``OPTIONS`` key) becomes the engine's isolation level.
    """
    shown = mask_url(url)
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"{shown!r} is not a database URL: {exc}") from None

    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend not in SCHEMES:
        raise StoreError(f"{shown!r} is not a MySQL or MariaDB URL")
    if parsed.drivername not in (backend, f"{backend}+pymysql"):
        raise StoreError(
            f"the store {shown!r} asks for the driver {driver!r}; this store "
            f"uses PyMySQL: write {backend}+pymysql://"
        )
    if not parsed.database:
        raise StoreError(
            f"the store {shown!r} names no database; write "
            f"{backend}+pymysql://USER:PASSWORD@HOST:PORT/DATABASE"
        )

    query = dict(parsed.query)
    charset = query.pop("charset", "utf8mb4")
    if charset != "utf8mb4":
        raise StoreError(
            f"the store {shown!r} asks for charset={charset}; Pinball stores "
            "any Unicode text and needs utf8mb4: drop the charset parameter"
        )
    settings: dict[str, Any] = {}
    level = query.pop("isolation_level", None)
    if level is not None:
        settings["isolation_level"] = str(level).upper().replace("_", " ")

    known = set(inspect.signature(pymysql.connections.Connection).parameters)
    unknown = sorted(set(query) - known - _DIALECT_PARAMETERS)
    if unknown:
        raise StoreError(
            f"the store {shown!r} has the parameter(s) {', '.join(unknown)}, "
            "which PyMySQL does not take"
        )
    parsed = parsed.set(drivername=f"{backend}+pymysql", query=query)
    return parsed, settings
