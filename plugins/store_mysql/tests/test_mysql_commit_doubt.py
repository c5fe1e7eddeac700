"""A connection lost during COMMIT: the store learns what happened, never guesses.

A proxy between the store and the real server cuts the connection either
just after the server committed (the client never hears so) or instead of
passing COMMIT on (the server rolls back). Archiving a token is the probe:
sent twice it would break the archive's key, so "exactly once" is visible.
"""

import logging
from collections.abc import Iterator

import pytest
from mysql_testing import FaultyProxy, StoreMaker
from pinball_core.errors import MasterUnavailableError, StoreError
from pinball_core.local import MasterThread
from pinball_core.store import AppliedRequest, StoreChange
from pinball_core.token import Token

from pinball_store_mysql import MysqlStore, StoreInDoubtError

_FAST = {"retry_sec": 1, "read_retry_sec": 1, "doubt_retry_sec": 1}


@pytest.fixture
def through_proxy(proxied_url: str) -> Iterator[StoreMaker]:
    stores: list[MysqlStore] = []

    def make(**options: float) -> MysqlStore:
        store = MysqlStore(proxied_url, master_name="test", options=options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def _archive_change() -> tuple[Token, StoreChange]:
    token = Token("/wf/1/job", 5, data="done")
    change = StoreChange(
        archives=[token], requests=[AppliedRequest("archive:r1", 1000.0, "null")]
    )
    return token, change


def _prepared(store: MysqlStore, token: Token) -> None:
    store.initialize()
    store.commit(StoreChange(updates=[token]))


def test_commit_that_happened_is_reported_done(
    through_proxy: StoreMaker,
    make_store: StoreMaker,
    proxy: FaultyProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = through_proxy()
    token, change = _archive_change()
    _prepared(store, token)

    proxy.arm("after")
    with caplog.at_level(logging.WARNING):
        store.commit(change)

    assert proxy.cuts == 1
    assert "but the commit happened" in caplog.text
    direct = make_store()
    assert direct.load_active_tokens() == []
    assert direct.read_tokens(archived=True) == [token]
    assert [r.request_id for r in direct.load_applied_requests(0)] == ["archive:r1"]


def test_commit_that_did_not_reach_the_server_is_sent_again(
    through_proxy: StoreMaker,
    make_store: StoreMaker,
    proxy: FaultyProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = through_proxy()
    token, change = _archive_change()
    _prepared(store, token)

    proxy.arm("before")
    with caplog.at_level(logging.WARNING):
        store.commit(change)

    assert proxy.cuts == 1
    assert "did not happen; sending it again" in caplog.text
    direct = make_store()
    assert direct.load_active_tokens() == []
    assert direct.read_tokens(archived=True) == [token]


def test_unknown_outcome_that_did_not_happen_lets_writes_go_on(
    through_proxy: StoreMaker, make_store: StoreMaker, proxy: FaultyProxy
) -> None:
    store = through_proxy(**_FAST)
    token, change = _archive_change()
    _prepared(store, token)

    proxy.arm("before", then_refuse=True)
    with pytest.raises(StoreError, match="could not be asked whether it happened"):
        store.commit(change)
    # Still unreachable: the next commit cannot settle the doubt either.
    with pytest.raises(StoreError, match="could not be asked"):
        store.commit(StoreChange(updates=[Token("/later", 9)]))

    proxy.refusing = False
    store.commit(change)
    assert make_store().read_tokens(archived=True) == [token]


def test_unknown_outcome_that_did_happen_stops_writes_for_a_restart(
    through_proxy: StoreMaker, make_store: StoreMaker, proxy: FaultyProxy
) -> None:
    store = through_proxy(**_FAST)
    token, change = _archive_change()
    _prepared(store, token)

    proxy.arm("after", then_refuse=True)
    with pytest.raises(StoreError, match="could not be asked"):
        store.commit(change)

    proxy.refusing = False
    for _ in range(2):
        with pytest.raises(StoreInDoubtError, match="restart the master"):
            store.commit(StoreChange(updates=[Token("/later", 9)]))
    direct = make_store()
    assert direct.read_tokens(archived=True) == [token]
    assert direct.read_tokens("/later") == []


def test_master_answers_only_what_the_store_committed(
    through_proxy: StoreMaker, make_store: StoreMaker, proxy: FaultyProxy
) -> None:
    store = through_proxy(**_FAST)
    store.initialize()
    with MasterThread(store) as master:
        client = master.client()
        (kept,) = client.modify([Token("/kept", data="1")])

        # Lost before the server saw COMMIT, and the server then unreachable:
        # the request fails and the master's memory stays as the store is.
        proxy.arm("before", then_refuse=True)
        with pytest.raises(MasterUnavailableError, match="nothing was applied"):
            client.modify([Token("/refused", data="2")])
        assert _names(client.query("/")) == ["/kept"]

        # Lost after the server committed: the client hears it succeeded.
        proxy.refusing = False
        proxy.arm("after")
        (done,) = client.modify([Token("/done", data="3")])
        served = client.query("/")

    # Memory and store agree, the master's version counter included.
    stored = make_store().read_tokens("/")
    assert _names(stored) == ["/done", "/kept"]
    assert served == stored
    assert done in stored and kept in stored


def _names(tokens: list[Token]) -> list[str]:
    return [t.name for t in tokens if not t.name.startswith("/__")]
