"""Fixtures for the MySQL store's tests: a fresh database on a real server.

The server is MariaDB or MySQL at ``$PINBALL_TEST_MYSQL_URL``, by default
root without a password on 127.0.0.1:3306. Each test gets a database of its
own, dropped afterwards; without a reachable server the tests are skipped
with the reason.
"""

import os
import time
import uuid
from collections.abc import Iterator

import pymysql
import pytest
import sqlalchemy as sa
from mysql_testing import FaultyProxy, StoreMaker, connect
from pinball_core.plugins import mask_url

from pinball_store_mysql import MysqlStore

SERVER_ENV = "PINBALL_TEST_MYSQL_URL"
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306/"

_ABANDONED_SEC = 6 * 3600


@pytest.fixture(scope="session")
def mysql_server_url() -> sa.URL:
    """The test server, or a skip that says why there is none."""
    raw = os.environ.get(SERVER_ENV) or DEFAULT_SERVER_URL
    url = sa.make_url(raw).set(database=None)
    try:
        admin = connect(url, connect_timeout=5)
    except pymysql.err.MySQLError as exc:
        pytest.skip(
            f"no MySQL/MariaDB server at {mask_url(raw)} ({exc}); start MariaDB "
            f"(.ci/run does) or point {SERVER_ENV} at a server"
        )
    with admin:
        _drop_abandoned_databases(admin)
    return url


def _drop_abandoned_databases(admin: pymysql.connections.Connection) -> None:
    """Drop test databases left by runs killed long ago (a cancelled CI job).

    Their names carry their creation time; a test takes minutes, so one
    older than :data:`_ABANDONED_SEC` belongs to no run still going.
    """
    with admin.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE 'pinball\\_test\\_%'")
        for (name,) in cursor.fetchall():
            stamp = name.split("_")[2]
            if stamp.isdigit() and time.time() - int(stamp) > _ABANDONED_SEC:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def database_url(mysql_server_url: sa.URL) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = f"pinball_test_{int(time.time())}_{uuid.uuid4().hex[:8]}"
    admin = connect(mysql_server_url)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield mysql_server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cursor:
            # A connection the test left open must not make the drop hang.
            cursor.execute("SET SESSION lock_wait_timeout = 30")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def admin(database_url: str) -> Iterator[pymysql.connections.Connection]:
    """A plain connection to the test's database, for setting up and looking."""
    connection = connect(sa.make_url(database_url))
    yield connection
    connection.close()


@pytest.fixture
def make_store(database_url: str) -> Iterator[StoreMaker]:
    """Opens stores on the test's database; all are closed after the test."""
    stores: list[MysqlStore] = []

    def make(**kwargs: object) -> MysqlStore:
        kwargs.setdefault("master_name", "test")
        store = MysqlStore(database_url, **kwargs)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def proxy(mysql_server_url: sa.URL) -> Iterator[FaultyProxy]:
    """A relay to the test server that loses a COMMIT when told to."""
    relay = FaultyProxy(mysql_server_url)
    yield relay
    relay.close()


@pytest.fixture
def proxied_url(proxy: FaultyProxy, database_url: str) -> str:
    """The test's database, reached through :func:`proxy`."""
    return proxy.url(str(sa.make_url(database_url).database))
