"""What the MySQL store does beyond the contract: its tables, sizes and locks."""

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from mysql_testing import StoreMaker, connect, wait_for
from pinball_core.errors import StoreError
from pinball_core.store import AppliedRequest, StoreChange
from pinball_core.token import MAX_NAME_LENGTH, Token

from pinball_store_mysql import MysqlStore
from pinball_store_mysql.tables import MAX_IDENTIFIER_LENGTH, name_key, table_suffix

Admin = pymysql.connections.Connection


def _tables(admin: Admin) -> dict[str, str]:
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE()"
        )
        return dict(cursor.fetchall())


def test_four_byte_utf8_in_names_and_data_round_trips(make_store: StoreMaker) -> None:
    store = make_store()
    store.initialize()
    emoji = "\U0001f3b1\U0001f40d\U00010348"
    tokens = [
        Token(f"/wf/{emoji}/job", 1, owner=f"worker {emoji}", data=f"{{'{emoji}'}}"),
        # As long as a name may be, every character four bytes in UTF-8.
        Token("/" + "\U0001f600" * (MAX_NAME_LENGTH - 1), 2, data=emoji * 1000),
        # Same as the one above but for the last character: past any index
        # prefix, so only a key on the whole name keeps them apart.
        Token("/" + "\U0001f600" * (MAX_NAME_LENGTH - 2) + "\U0001f601", 3),
    ]
    store.commit(StoreChange(updates=tokens))

    reader = make_store()
    assert reader.load_active_tokens() == sorted(tokens, key=lambda t: t.name)
    assert reader.read_tokens(f"/wf/{emoji}/") == [tokens[0]]
    assert reader.count_tokens("/\U0001f600") == 2

    store.commit(StoreChange(archives=tokens[1:]))
    assert reader.read_tokens("/\U0001f600", archived=True) == tokens[1:]
    assert reader.group_token_names("/", archived=True) == {
        tokens[1].name: 1,
        tokens[2].name: 1,
    }


def test_ten_megabytes_of_data_round_trip(make_store: StoreMaker) -> None:
    store = make_store()
    store.initialize()
    # Quotes, backslashes and newlines are escaped on the wire; all must survive.
    chunk = "ab\\c\"d'e\nf\U0001f3b1" + "x" * 1014
    data = (chunk * (10 * 1024 * 1024 // len(chunk) + 1))[: 10 * 1024 * 1024]
    big = Token("/big", 7, data=data)
    store.commit(StoreChange(updates=[big]))

    reader = make_store()
    (loaded,) = reader.load_active_tokens()
    assert loaded.data == data
    store.commit(StoreChange(archives=[big]))
    assert reader.read_tokens("/big", archived=True) == [big]


def test_data_over_max_allowed_packet_is_refused_before_sending(
    make_store: StoreMaker, admin: Admin
) -> None:
    with admin.cursor() as cursor:
        cursor.execute("SELECT @@max_allowed_packet")
        (limit,) = cursor.fetchone()
    if limit > 64 * 1024 * 1024:
        pytest.skip(f"the server's max_allowed_packet is {limit}; too big to exceed")
    store = make_store(options={"retry_sec": 30})
    store.initialize()
    store.commit(StoreChange(updates=[Token("/kept", 1)]))

    too_big = Token("/too/big", 2, data="y" * (limit + 1))
    with pytest.raises(StoreError, match=r"/too/big .*max_allowed_packet"):
        store.commit(StoreChange(updates=[too_big, Token("/small", 3)]))
    assert [t.name for t in store.load_active_tokens()] == ["/kept"]

    big_answer = AppliedRequest("claim:1", 1.0, "z" * (limit + 1))
    with pytest.raises(StoreError, match="claim:1.*max_allowed_packet"):
        store.commit(StoreChange(requests=[big_answer]))


def test_tables_are_named_after_the_master_and_fit_mysql(
    make_store: StoreMaker, admin: Admin
) -> None:
    long_name = "build-farm-" + "x" * 200 + ".example.com"
    first = make_store(master_name=long_name)
    first.initialize()
    first.commit(StoreChange(updates=[Token("/a", 1)]))
    second = make_store(master_name="Other.Host")
    second.initialize()
    second.commit(StoreChange(updates=[Token("/b", 2)]))

    found = _tables(admin)
    assert "pinball_active_tokens_other_host" in found
    assert len(found) == 10
    assert all(len(name) <= MAX_IDENTIFIER_LENGTH for name in found)
    assert all(engine == "InnoDB" for engine in found.values())
    assert f"pinball_archived_tokens_{table_suffix(long_name)}" in found
    # A name differing only past the cut gets other tables.
    assert table_suffix(long_name) != table_suffix(long_name + "2")

    assert [t.name for t in make_store(master_name=long_name).read_tokens()] == ["/a"]
    assert [t.name for t in second.read_tokens()] == ["/b"]


def test_columns_hold_utf8mb4_text_and_large_data(
    make_store: StoreMaker, admin: Admin
) -> None:
    make_store(master_name="cols").initialize()
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, "
            "COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%\\_cols'"
        )
        columns = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
    active = "pinball_active_tokens_cols"
    assert columns[active, "data"][0] == "longtext"
    assert columns["pinball_applied_requests_cols", "response"][0] == "longtext"
    assert columns[active, "expiration"][0] == "double"
    kind, charset, collation = columns[active, "name"]
    assert (kind, charset) == ("varchar", "utf8mb4")
    assert collation in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")


def test_newer_schema_is_refused(make_store: StoreMaker, admin: Admin) -> None:
    store = make_store()
    store.initialize()
    store.commit(StoreChange(updates=[Token("/kept", 1)]))
    with admin.cursor() as cursor:
        cursor.execute("UPDATE pinball_schema_version_test SET version = 99")

    newer = make_store()
    with pytest.raises(StoreError, match="schema version 99.*pinball-store-mysql"):
        newer.initialize()
    assert [t.name for t in newer.load_active_tokens()] == ["/kept"]


def test_initialize_again_is_harmless(make_store: StoreMaker, admin: Admin) -> None:
    make_store().initialize()
    make_store().initialize()
    with admin.cursor() as cursor:
        cursor.execute("SELECT version FROM pinball_schema_version_test")
        assert cursor.fetchall() == ((1,),)


def test_a_second_master_on_the_same_tables_is_refused(
    make_store: StoreMaker,
) -> None:
    first = make_store()
    first.initialize()
    first.lock_for_master()

    second = make_store()
    with pytest.raises(StoreError, match="another master is using the store"):
        second.lock_for_master()
    # Another master name means other tables, and another lock.
    make_store(master_name="elsewhere").lock_for_master()

    first.close()
    second.lock_for_master()
    second.commit(StoreChange(updates=[Token("/a", 1)]))


def test_master_lock_is_taken_again_after_its_connection_dies(
    make_store: StoreMaker, admin: Admin
) -> None:
    store = make_store()
    store.initialize()
    store.lock_for_master()
    _kill_lock_connection(store, admin)

    store.commit(StoreChange(updates=[Token("/a", 1)]))
    assert [t.name for t in store.load_active_tokens()] == ["/a"]


def test_a_master_whose_lock_was_taken_stops_writing(
    make_store: StoreMaker, admin: Admin
) -> None:
    store = make_store()
    store.initialize()
    store.lock_for_master()
    _kill_lock_connection(store, admin)
    intruder = make_store()
    intruder.lock_for_master()

    with pytest.raises(StoreError, match="another master is using the store"):
        store.commit(StoreChange(updates=[Token("/a", 1)]))
    assert store.load_active_tokens() == []


def _kill_lock_connection(store: MysqlStore, admin: Admin) -> None:
    lock = store._master_lock
    assert lock is not None
    with admin.cursor() as cursor:
        cursor.execute("SELECT IS_USED_LOCK(%s)", (lock.name,))
        (holder,) = cursor.fetchone()
        cursor.execute(f"KILL {int(holder)}")


def test_connection_dropped_by_the_server_is_replaced(
    make_store: StoreMaker, admin: Admin
) -> None:
    store = make_store()
    store.initialize()
    store.commit(StoreChange(updates=[Token("/a", 1)]))
    # What wait_timeout or a restart does to the pooled connections.
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
        )
        for (connection_id,) in cursor.fetchall():
            cursor.execute(f"KILL {int(connection_id)}")

    store.commit(StoreChange(updates=[Token("/b", 2)]))
    assert [t.name for t in store.read_tokens()] == ["/a", "/b"]


class _Retries:
    """Counts the store's "trying again" warnings and waits for the first."""

    def __init__(self, caplog: pytest.LogCaptureFixture, text: str) -> None:
        self._caplog = caplog
        self._text = text

    def seen(self) -> bool:
        return any(
            self._text in r.getMessage() and "trying again" in r.getMessage()
            for r in self._caplog.records
        )


def test_lock_wait_timeout_is_retried(
    make_store: StoreMaker, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(options={"lock_wait_timeout_sec": 1, "retry_sec": 120})
    store.initialize()
    store.commit(StoreChange(updates=[Token("/busy", 1)]))
    errors: list[BaseException] = []

    with _transaction(database_url) as blocker:
        blocker.execute("SELECT * FROM pinball_active_tokens_test FOR UPDATE")
        change = StoreChange(updates=[Token("/busy", 2, data="new")])
        writer = _committing(store, change, errors)
        retried = _Retries(caplog, "(1205)")
        wait_for(retried.seen, 60, "the store to retry after a lock wait timeout")
    writer.join(timeout=60)

    assert errors == []
    assert store.load_active_tokens() == [Token("/busy", 2, data="new")]


def test_deadlock_is_retried(
    make_store: StoreMaker,
    admin: Admin,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store(options={"retry_sec": 120})
    store.initialize()
    store.commit(StoreChange(updates=[Token("/first", 1), Token("/second", 2)]))
    lock = "SELECT name FROM pinball_active_tokens_test WHERE name_key = %s FOR UPDATE"
    errors: list[BaseException] = []

    with _transaction(database_url) as other:
        # Much larger than the store's, so InnoDB picks the store's as the
        # deadlock victim.
        other.executemany(
            "INSERT INTO ballast VALUES (%s)", [(n,) for n in range(2000)]
        )
        other.execute(lock, (name_key("/second"),))

        # The store locks /first, then waits for /second ...
        change = StoreChange(updates=[Token("/first", 3), Token("/second", 4)])
        writer = _committing(store, change, errors)
        # INNODB_TRX is refreshed only when not read for 0.1 s; poll slower.
        wait_for(lambda: _lock_waits(admin) > 0, 60, "a lock wait", interval=0.3)

        # ... and now the other transaction waits for /first: a deadlock.
        other.execute(lock, (name_key("/first"),))
        retried = _Retries(caplog, "(1213)")
        wait_for(retried.seen, 60, "the store to retry after a deadlock")
    writer.join(timeout=60)

    assert errors == []
    assert [t.version for t in store.load_active_tokens()] == [3, 4]


@contextlib.contextmanager
def _transaction(database_url: str) -> Iterator[Any]:
    """A cursor in a transaction of another client, rolled back at the end.

    The database gets a ``ballast`` table to write to.
    """
    connection = connect(sa.make_url(database_url))
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS ballast (n INT)")
        connection.autocommit(False)
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.rollback()
        connection.close()


def _lock_waits(admin: Admin) -> int:
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
            "WHERE trx_state = 'LOCK WAIT'"
        )
        (count,) = cursor.fetchone()
        return int(count)


def _committing(
    store: MysqlStore, change: StoreChange, errors: list[BaseException]
) -> threading.Thread:
    """A started thread that commits ``change``, keeping any error."""
    writer = threading.Thread(target=_commit_catching, args=(store, change, errors))
    writer.start()
    return writer


def _commit_catching(
    store: MysqlStore, change: StoreChange, errors: list[BaseException]
) -> None:
    try:
        store.commit(change)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_a_reader_with_another_master_name_is_told_why(make_store: StoreMaker) -> None:
    make_store(master_name="the-master").initialize()
    reader = make_store(master_name="another-host")
    with pytest.raises(StoreError, match="doesn't exist.*set master_name"):
        reader.read_tokens()
