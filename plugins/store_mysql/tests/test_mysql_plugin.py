"""Selecting the MySQL store from a config, and the errors a bad one gets."""

import pathlib
import textwrap
import uuid
from collections.abc import Iterator

import pymysql
import pytest
import sqlalchemy as sa
from mysql_testing import connect, free_port
from pinball_core.app import Application
from pinball_core.errors import ConfigError, StoreError
from pinball_core.plugins import PluginManager
from pinball_core.store import StoreChange
from pinball_core.token import Token

from pinball_store_mysql import MysqlStore


@pytest.fixture
def user_with_password(
    mysql_server_url: sa.URL, database_url: str
) -> Iterator[tuple[str, str]]:
    """A user that may use only the test's database, with a random password."""
    name = f"pinball_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    database = sa.make_url(database_url).database
    admin = connect(mysql_server_url)
    hosts = ("localhost", "%")
    try:
        with admin.cursor() as cursor:
            for host in hosts:
                cursor.execute(
                    "CREATE USER %s@%s IDENTIFIED BY %s", (name, host, password)
                )
                cursor.execute(f"GRANT ALL ON `{database}`.* TO %s@%s", (name, host))
        yield name, password
    finally:
        with admin.cursor() as cursor:
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", (name, host))
        admin.close()


def test_databases_block_with_password_from_the_environment(
    tmp_path: pathlib.Path,
    database_url: str,
    user_with_password: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = user_with_password
    server = sa.make_url(database_url)
    monkeypatch.setenv("PINBALL_TEST_DB_PASSWORD", password)
    config = tmp_path / "pinball.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            master_name: ci-master.example.com
            databases:
              pinball.persistence:
                ENGINE: django.db.backends.mysql
                NAME: {server.database}
                USER: {user}
                PASSWORD: ${{PINBALL_TEST_DB_PASSWORD}}
                HOST: {server.host}
                PORT: {server.port or 3306}
                CONN_MAX_AGE: 600
            plugins:
              mysql:
                pool_size: 2
                retry_sec: 5
            """
        )
    )

    store = Application(config).open_store()
    try:
        assert isinstance(store, MysqlStore)
        assert store.suffix == "ci_master_example_com"
        assert store.options.pool_size == 2
        assert password not in store.display_url
        store.initialize()
        store.lock_for_master()
        store.commit(StoreChange(updates=[Token("/configured", 1)]))
        assert [t.name for t in store.read_tokens()] == ["/configured"]
    finally:
        store.close()


@pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql", "mariadb+pymysql"])
def test_the_plugin_serves_mysql_and_mariadb_urls(
    scheme: str, database_url: str
) -> None:
    url = sa.make_url(database_url).set(drivername=scheme)
    store = PluginManager().make_store(url.render_as_string(hide_password=False))
    try:
        assert isinstance(store, MysqlStore)
        store.initialize()
    finally:
        store.close()


def test_bad_options_name_the_key(database_url: str) -> None:
    with pytest.raises(ConfigError, match=r"plugins\.mysql\.pool_size: .*greater"):
        PluginManager().make_store(database_url, {"pool_size": 0})
    with pytest.raises(ConfigError, match=r"plugins\.mysql\.poolsize: unknown option"):
        PluginManager().make_store(database_url, {"poolsize": 3})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+mysqldb://root@127.0.0.1/db", "uses PyMySQL"),
        ("mysql+pymysql://root@127.0.0.1/", "names no database"),
        ("mysql+pymysql://root@127.0.0.1/db?charset=latin1", "needs utf8mb4"),
        ("mysql+pymysql://root@127.0.0.1/db?colour=blue", "colour"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        MysqlStore(url)


def test_driver_options_in_the_url_reach_pymysql(database_url: str) -> None:
    url = sa.make_url(database_url).update_query_dict(
        {"init_command": "SET @pinball_probe = 42", "isolation_level": "serializable"}
    )
    store = MysqlStore(url.render_as_string(hide_password=False), master_name="test")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT @pinball_probe")).scalar() == 42
            level = conn.execute(sa.text("SELECT @@tx_isolation")).scalar()
            assert level == "SERIALIZABLE"
    finally:
        store.close()


def test_unreachable_server_fails_after_the_retry_window() -> None:
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/pinball"
    store = MysqlStore(url, options={"read_retry_sec": 0.5, "connect_timeout_sec": 1})
    with pytest.raises(StoreError, match=r"cannot prepare the store .*\(2003\)"):
        store.initialize()
    store.close()


def test_wrong_password_is_not_retried(
    database_url: str, user_with_password: tuple[str, str]
) -> None:
    user, _ = user_with_password
    url = sa.make_url(database_url).set(username=user, password="wrong")
    store = MysqlStore(
        url.render_as_string(hide_password=False), options={"read_retry_sec": 60}
    )
    with pytest.raises(StoreError, match="check the user name and password") as info:
        store.initialize()
    assert "wrong" not in str(info.value)
    assert "attempts" not in str(info.value)
    store.close()


def test_missing_database_is_named(mysql_server_url: sa.URL) -> None:
    url = mysql_server_url.set(database=f"pinball_absent_{uuid.uuid4().hex[:8]}")
    store = MysqlStore(url.render_as_string(hide_password=False))
    with pytest.raises(StoreError, match="create the database first"):
        store.initialize()
    store.close()


def test_pymysql_is_the_driver(database_url: str) -> None:
    store = MysqlStore(database_url)
    try:
        with store.engine.connect() as conn:
            assert isinstance(conn.connection.dbapi_connection, pymysql.Connection)
    finally:
        store.close()
