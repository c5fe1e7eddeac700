"""The behaviour every store must have, as tests a store plugin inherits.

A store plugin's tests subclass :class:`StoreContract` and provide one
fixture, ``store_factory``: a callable that opens a new, uninitialised store
on a fresh database, the same database on every call within a test::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path):
            return lambda: MyStore(f"my://{tmp_path}/db")
"""

from collections.abc import Callable, Iterator

import pytest

from pinball_core.errors import StoreError
from pinball_core.store import AppliedRequest, Store, StoreChange
from pinball_core.token import FOREVER, Token

StoreFactory = Callable[[], Store]


def _tokens(*names: str, version: int = 1) -> list[Token]:
    return [
        Token(name, version + i, data=f"data of {name}") for i, name in enumerate(names)
    ]


class StoreContract:
    """Tests that any :class:`~pinball_core.store.Store` must pass."""

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> Iterator[Store]:
        store = store_factory()
        store.initialize()
        yield store
        store.close()

    def test_initialize_twice_keeps_data(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        store.commit(StoreChange(updates=_tokens("/a")))
        again = store_factory()
        again.initialize()
        assert [t.name for t in again.load_active_tokens()] == ["/a"]
        again.close()

    def test_tokens_round_trip_exactly(self, store: Store) -> None:
        token = Token(
            "/wf/ünïcödé/job",
            version=2**62,
            owner="worker-1",
            expiration=FOREVER,
            priority=-1.5e-3,
            data='{"text": "' + "x" * 100_000 + '", "emoji": "\U0001f3b1"}',
        )
        store.commit(StoreChange(updates=[token]))
        assert store.load_active_tokens() == [token]
        assert store.read_tokens("/wf/") == [token]

    def test_updates_replace_by_name(self, store: Store) -> None:
        store.commit(StoreChange(updates=[Token("/a", 1, data="old")]))
        store.commit(StoreChange(updates=[Token("/a", 2, owner="o", data="new")]))
        assert store.load_active_tokens() == [Token("/a", 2, owner="o", data="new")]

    def test_deletes_remove(self, store: Store) -> None:
        store.commit(StoreChange(updates=_tokens("/a", "/b", "/c")))
        store.commit(StoreChange(deletes=["/a", "/c", "/never-there"]))
        assert [t.name for t in store.load_active_tokens()] == ["/b"]

    def test_many_tokens_in_one_change(self, store: Store) -> None:
        names = [f"/bulk/{i:05d}" for i in range(3000)]
        store.commit(StoreChange(updates=_tokens(*names)))
        store.commit(StoreChange(deletes=names[:2500]))
        assert store.count_tokens("/bulk/") == 500

    def test_archive_moves_tokens_unchanged(self, store: Store) -> None:
        tokens = _tokens("/wf/1/a", "/wf/1/b", "/wf/2/a")
        store.commit(StoreChange(updates=tokens))
        store.commit(StoreChange(archives=tokens[:2]))
        assert store.load_active_tokens() == tokens[2:]
        assert store.read_tokens("/wf/1/", archived=True) == tokens[:2]
        assert store.count_tokens(archived=True) == 2

    def test_archiving_a_name_again_keeps_both(self, store: Store) -> None:
        first, second = Token("/a", 1, data="first"), Token("/a", 7, data="second")
        store.commit(StoreChange(updates=[first]))
        store.commit(StoreChange(archives=[first]))
        store.commit(StoreChange(updates=[second]))
        store.commit(StoreChange(archives=[second]))
        assert store.read_tokens("/a", archived=True) == [first, second]

    def test_failed_commit_changes_nothing(self, store: Store) -> None:
        kept = _tokens("/kept/a", "/kept/b")
        store.commit(StoreChange(updates=kept, archives=[]))
        store.commit(StoreChange(archives=[kept[0]]))
        store.commit(StoreChange(updates=[kept[0]]))

        # Archiving the same version twice breaks the archive's key, after
        # the change's other writes were already sent.
        bad = StoreChange(
            updates=[Token("/new", 50)], deletes=["/kept/b"], archives=[kept[0]]
        )
        with pytest.raises(StoreError):
            store.commit(bad)

        assert store.load_active_tokens() == kept
        assert store.count_tokens(archived=True) == 1

    def test_applied_requests(self, store: Store) -> None:
        store.commit(
            StoreChange(
                requests=[
                    AppliedRequest("old", 100.0, "[]"),
                    AppliedRequest("new", 200.0, '[{"name": "/a"}]'),
                ]
            )
        )
        assert store.load_applied_requests(150.0) == [
            AppliedRequest("new", 200.0, '[{"name": "/a"}]')
        ]
        store.commit(StoreChange(forget_requests_before=150.0))
        assert [r.request_id for r in store.load_applied_requests(0.0)] == ["new"]

    def test_prefixes_match_literally(self, store: Store) -> None:
        names = ["/a%b/x", "/a_b/x", "/aXb/x", "/a'b\"/x", "/a\\b/x", "/ab/x"]
        store.commit(StoreChange(updates=_tokens(*names)))
        for name in names:
            prefix = name[: -len("x")]
            assert [t.name for t in store.read_tokens(prefix)] == [name]
            assert store.count_tokens(prefix) == 1

    def test_read_pages_in_name_order(self, store: Store) -> None:
        names = [f"/p/{i:03d}" for i in range(25)]
        store.commit(StoreChange(updates=_tokens(*reversed(names))))
        pages = [
            [t.name for t in store.read_tokens("/p/", limit=10, offset=start)]
            for start in (0, 10, 20)
        ]
        assert pages == [names[:10], names[10:20], names[20:]]
        assert store.read_tokens("/q/") == []

    def test_group_names_by_delimiter(self, store: Store) -> None:
        names = ["/w/a/1", "/w/a/2", "/w/b/1", "/w/c", "/x/a"]
        store.commit(StoreChange(updates=_tokens(*names)))
        store.commit(StoreChange(archives=_tokens("/w/a/1")))
        assert store.group_token_names("/w/") == {"/w/a": 1, "/w/b": 1, "/w/c": 1}
        assert store.group_token_names("/w/", archived=True) == {"/w/a": 1}
        assert store.group_token_names("/") == {"/w": 3, "/x": 1}

    def test_delete_archived_tokens(self, store: Store) -> None:
        tokens = _tokens("/w/1/a", "/w/1/b", "/w/2/a")
        store.commit(StoreChange(updates=tokens))
        store.commit(StoreChange(archives=tokens))
        assert store.delete_archived_tokens("/w/1/") == 2
        assert store.read_tokens(archived=True) == tokens[2:]

    def test_an_initialized_store_exists_for_readers(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        reader = store_factory()
        reader.require_existing()
        reader.close()

    def test_second_store_sees_commits(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        reader = store_factory()
        store.commit(StoreChange(updates=_tokens("/seen")))
        assert [t.name for t in reader.read_tokens()] == ["/seen"]
        reader.close()
