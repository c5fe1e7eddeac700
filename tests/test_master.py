"""The master's requests, in process and over HTTP, on a real SQLite store.

The numbered scenarios follow the original master's acceptance behaviour:
fixture F1 holds ten tokens ``/some_dir/some_token_i`` (priority i), each
with ten children ``.../some_other_token_j`` (priority j).
"""

import asyncio
import threading
import time

import pytest

from pinball_core.client import MasterClient
from pinball_core.errors import (
    InputError,
    MasterUnavailableError,
    NotFoundError,
    StoreError,
    VersionConflictError,
)
from pinball_core.local import MasterThread
from pinball_core.master import TokenMaster
from pinball_core.protocol import ModifyRequest, Query, QueryAndOwnRequest
from pinball_core.store import StoreChange
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.token import FOREVER, VERSION_TOKEN_NAME, Token


@pytest.fixture
def f1(client: MasterClient) -> MasterClient:
    tokens = []
    for i in range(10):
        parent = f"/some_dir/some_token_{i}"
        tokens.append(Token(parent, priority=i, data=f"parent {i}"))
        for j in range(10):
            tokens.append(Token(f"{parent}/some_other_token_{j}", priority=j))
    client.modify(tokens)
    return client


def everything(client: MasterClient) -> list[Token]:
    return client.query("")


def by_name(tokens: list[Token]) -> list[Token]:
    return sorted(tokens, key=lambda t: t.name)


def assert_unique_versions(client: MasterClient) -> None:
    versions = [t.version for t in everything(client)]
    assert len(versions) == len(set(versions))


def test_versions_strictly_increase(store: SqliteStore) -> None:
    master = TokenMaster(store)
    versions = [master._next_version() for _ in range(1000)]
    assert versions == sorted(set(versions))


def test_fresh_master_groups_its_version_token(client: MasterClient) -> None:
    assert client.group("/") == {VERSION_TOKEN_NAME: 1}


def test_fresh_master_query_returns_one_list(client: MasterClient) -> None:
    answer = client.query_many([Query("", 10)])
    assert len(answer) == 1
    assert [t.name for t in answer[0]] == [VERSION_TOKEN_NAME]


def test_fresh_master_claims_nothing(client: MasterClient) -> None:
    assert client.query_and_own("someone", "", 10, expiration=FOREVER) == []


def test_insert_returns_versioned_token(client: MasterClient) -> None:
    (stored,) = client.modify([Token("/some_other_dir/some_token", data="d")])
    assert stored.name == "/some_other_dir/some_token"
    assert stored.version is not None and stored.version > 0
    assert stored.data == "d"


def test_archive_inserted_token(master: MasterThread, client: MasterClient) -> None:
    (stored,) = client.modify([Token("/some_other_dir/some_token")])
    client.archive([stored])
    assert client.query("/some_other_dir/") == []
    archived = master.store.read_tokens("/some_other_dir/", archived=True)
    assert archived == [stored]


def test_empty_requests_do_nothing(f1: MasterClient) -> None:
    before = everything(f1)
    f1.archive([])
    assert f1.group("") == {t.name: 1 for t in before}
    assert f1.modify() == []
    assert f1.query_many([]) == []
    assert f1.query_and_own("me", "/nothing/here", lease_sec=10) == []
    assert everything(f1) == before


def test_archive_moves_tokens(master: MasterThread, f1: MasterClient) -> None:
    before = everything(f1)
    targets = [
        t
        for t in before
        if t.name
        in ("/some_dir/some_token_0", "/some_dir/some_token_0/some_other_token_0")
    ]
    f1.archive(targets)

    after = everything(f1)
    assert len(after) == len(before) - 2
    assert by_name(master.store.load_active_tokens()) == after
    stored = master.store.count_tokens() + master.store.count_tokens(archived=True)
    assert stored == len(before)


def test_group_by_delimiter(f1: MasterClient) -> None:
    groups = f1.group("/some_dir/", "/")
    assert groups == {f"/some_dir/some_token_{i}": 11 for i in range(10)}


def test_delete_two_tokens(f1: MasterClient) -> None:
    before = everything(f1)
    f1.modify(deletes=before[1:3])
    assert len(everything(f1)) == len(before) - 2
    assert_unique_versions(f1)


def test_update_and_insert_together(f1: MasterClient) -> None:
    (old,) = f1.query("/some_dir/some_token_0", 1)
    count = len(everything(f1))
    changed = Token(old.name, old.version, priority=old.priority, data="new data")
    updated, inserted = f1.modify(
        [changed, Token("/some_other_dir/some_token", data="inserted")]
    )

    assert (updated.name, updated.data) == (old.name, "new data")
    assert updated.version != old.version
    assert inserted.name == "/some_other_dir/some_token"
    assert inserted.data == "inserted" and inserted.version > 0
    assert len(everything(f1)) == count + 1
    assert_unique_versions(f1)


def test_rename_attempt_fails_and_changes_nothing(f1: MasterClient) -> None:
    before = everything(f1)
    (old,) = f1.query("/some_dir/some_token_0", 1)
    with pytest.raises(NotFoundError):
        f1.modify([Token("/some_dir/renamed", old.version)])
    assert everything(f1) == before


def test_delete_and_update_together(f1: MasterClient) -> None:
    count = len(everything(f1))
    (first,) = f1.query("/some_dir/some_token_0", 1)
    (second,) = f1.query("/some_dir/some_token_1", 1)
    answer = f1.modify([Token(second.name, second.version, data="x")], [first])
    assert [t.name for t in answer] == [second.name]
    assert len(everything(f1)) == count - 1
    assert_unique_versions(f1)


def test_query_orders_and_truncates(f1: MasterClient) -> None:
    top, under = f1.query_many(
        [Query("/some_dir", 10), Query("/some_dir/some_token_0", 100)]
    )
    assert len(top) == 10
    assert all(t.name.startswith("/some_dir") and t.priority == 9 for t in top)
    assert len(under) == 11
    assert all(t.name.startswith("/some_dir/some_token_0") for t in under)


def test_read_answers_queries_and_counts_in_one_request(f1: MasterClient) -> None:
    parent = "/some_dir/some_token_3"
    tokens, counts = f1.read(
        [Query(parent, 2)], counts=[f"{parent}/", "/some_dir/", "/nothing/"]
    )

    assert [t.name for t in tokens[0]] == [
        f"{parent}/some_other_token_9",
        f"{parent}/some_other_token_8",
    ]
    assert counts == [10, 110, 0]
    assert f1.read([Query("/nothing/")]) == ([[]], [])


def test_read_refuses_counts_that_are_not_prefixes(f1: MasterClient) -> None:
    with pytest.raises(InputError, match="a query's counts needs a list of prefixes"):
        f1.call("query", {"queries": [], "counts": "/some_dir/"})


def test_claim_skips_owned_tokens(f1: MasterClient) -> None:
    (expired,) = f1.query("/some_dir/some_token_0", 1)
    (forever,) = f1.query("/some_dir/some_token_1", 1)
    f1.modify(
        [
            Token(expired.name, expired.version, "old", time.time() - 5),
            Token(forever.name, forever.version, "keeper", FOREVER),
        ]
    )

    claimed = f1.query_and_own("new owner", "", 200, expiration=FOREVER)

    names = {t.name for t in claimed}
    assert names == {t.name for t in everything(f1)} - {
        VERSION_TOKEN_NAME,
        forever.name,
    }
    assert all(t.owner == "new owner" and t.expiration == FOREVER for t in claimed)
    assert expired.name in names


def test_claim_takes_highest_priority_with_lease(f1: MasterClient) -> None:
    before = time.time()
    (claimed,) = f1.query_and_own("worker", "/some_dir/", 1, lease_sec=30)
    assert claimed.priority == 9
    assert before + 29 < claimed.expiration < time.time() + 31
    # A claimed token is not claimed again while the lease holds.
    (second,) = f1.query_and_own("worker", "/some_dir/", 1, lease_sec=30)
    assert second.name != claimed.name and second.priority == 9


@pytest.mark.parametrize(
    "name",
    ["no_slash", "/double//slash", "/trailing/", "/", "/" + "x" * 1024, ""],
)
def test_bad_names_are_input_errors(client: MasterClient, name: str) -> None:
    with pytest.raises(InputError):
        client.modify([Token(name)])
    assert everything(client) == [client.query(VERSION_TOKEN_NAME)[0]]


def test_longest_name_is_accepted(client: MasterClient) -> None:
    name = "/" + "x" * 1023
    assert client.modify([Token(name)])[0].name == name


def test_same_name_twice_in_one_request(client: MasterClient) -> None:
    (token,) = client.modify([Token("/a")])
    with pytest.raises(InputError, match="more than once"):
        client.modify([Token("/b"), Token("/b")])
    with pytest.raises(InputError, match="more than once"):
        client.modify([Token("/a", token.version)], [token])
    assert [t.name for t in client.query("/")][:1] == ["/__BLESSED_VERSION__"]
    assert client.query("/b") == []


def test_version_conflicts(client: MasterClient) -> None:
    (token,) = client.modify([Token("/a", data="1")])
    with pytest.raises(VersionConflictError):
        client.modify([Token("/a", data="again")])
    with pytest.raises(VersionConflictError):
        client.modify([Token("/a", token.version - 1, data="stale")])
    with pytest.raises(VersionConflictError):
        client.modify(deletes=[Token("/a", token.version + 1)])
    assert client.query("/a") == [token]


def test_delete_needs_version_and_existing_token(client: MasterClient) -> None:
    with pytest.raises(InputError):
        client.modify(deletes=[Token("/a")])
    with pytest.raises(NotFoundError):
        client.modify(deletes=[Token("/a", 5)])
    with pytest.raises(NotFoundError):
        client.archive([Token("/a", 5)])


def test_version_token_is_protected(client: MasterClient) -> None:
    (counter,) = client.query(VERSION_TOKEN_NAME)
    with pytest.raises(InputError):
        client.modify([Token(VERSION_TOKEN_NAME, counter.version, data="x")])
    with pytest.raises(InputError):
        client.modify(deletes=[counter])
    with pytest.raises(InputError):
        client.archive([counter])


def test_all_or_nothing(client: MasterClient) -> None:
    (a,) = client.modify([Token("/a")])
    with pytest.raises(VersionConflictError):
        client.modify([Token("/new"), Token("/a", a.version + 1)], [])
    assert client.query("/new") == []


def test_repeated_request_id_is_applied_once(client: MasterClient) -> None:
    body = {"request_id": "lost-reply-1", "updates": [{"name": "/once"}]}
    first = client.call("modify", dict(body))
    again = client.call("modify", dict(body))
    assert first == again
    (token,) = client.query("/once")
    assert token.version == first["updates"][0]["version"]

    claim = {
        "request_id": "lost-claim-1",
        "owner": "w",
        "lease_sec": 60,
        "query": {"prefix": "/once", "max_tokens": 1},
    }
    claimed = client.call("query_and_own", dict(claim))
    assert client.call("query_and_own", dict(claim)) == claimed
    assert client.query("/once")[0].version == claimed["tokens"][0]["version"]


def test_request_ids_survive_restart(store: SqliteStore) -> None:
    body = {"request_id": "before-crash", "updates": [{"name": "/once"}]}
    with MasterThread(store) as first:
        answer = first.client().call("modify", dict(body))
    with MasterThread(store) as second:
        assert second.client().call("modify", dict(body)) == answer
        assert len(second.client().query("/once")) == 1


def test_restart_reloads_tokens_and_versions_grow(store: SqliteStore) -> None:
    with MasterThread(store) as first:
        client = first.client()
        client.modify([Token(f"/t/{i}", priority=i, data=str(i)) for i in range(50)])
        before = client.query("")
        top = max(t.version for t in before)

    with MasterThread(store) as second:
        client = second.client()
        assert client.query("/t/") == [t for t in before if t.name.startswith("/t/")]
        (counter,) = client.query(VERSION_TOKEN_NAME)
        assert counter.version is not None and counter.version > top
        (new,) = client.modify([Token("/t/new")])
        assert new.version > top


class FailingStore(SqliteStore):
    """A SQLite store whose next commits fail, as a dead database would."""

    failures = 0

    def commit(self, change: StoreChange) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("disk on fire")
        super().commit(change)


def test_store_failure_leaves_memory_unchanged(sqlite_url: str) -> None:
    store = FailingStore(sqlite_url)
    with MasterThread(store) as running:
        client = running.client()
        (kept,) = client.modify([Token("/kept", data="v1")])
        before = client.query("")

        store.failures = 1
        with pytest.raises(MasterUnavailableError, match="nothing was applied"):
            client.modify([Token("/kept", kept.version, data="v2"), Token("/new")])

        assert client.query("") == before
        assert by_name(store.load_active_tokens()) == before
        # The master recovers once the store does.
        (updated,) = client.modify([Token("/kept", kept.version, data="v2")])
        assert updated.data == "v2"
    store.close()


def test_writes_queued_behind_a_failed_commit_are_rechecked(sqlite_url: str) -> None:
    store = FailingStore(sqlite_url)
    with MasterThread(store) as running:

        async def race() -> list[object]:
            master = running.master
            store.failures = 1
            first = asyncio.create_task(
                master.modify(ModifyRequest([Token("/x", data="first")]))
            )
            await asyncio.sleep(0)
            # Checked while the first is pending: it updates the first's insert.
            pending = master._lookup("/x")
            assert pending is not None
            second = asyncio.create_task(
                master.modify(
                    ModifyRequest([Token("/x", pending.version, data="second")])
                )
            )
            third = asyncio.create_task(master.modify(ModifyRequest([Token("/y")])))
            return await asyncio.gather(first, second, third, return_exceptions=True)

        first, second, third = running.run(race())
        assert isinstance(first, MasterUnavailableError)
        assert isinstance(second, NotFoundError)
        assert [t.name for t in third] == ["/y"]
        assert running.client().query("/x") == []
    store.close()


def test_concurrent_writes_commit_in_groups(store: SqliteStore) -> None:
    commits = []
    original = store.commit

    def counting(change: StoreChange) -> None:
        commits.append(len(change.updates))
        original(change)

    store.commit = counting  # type: ignore[method-assign]
    with MasterThread(store) as running:

        async def burst() -> list[list[Token]]:
            requests = [
                running.master.modify(ModifyRequest([Token(f"/burst/{i}")]))
                for i in range(500)
            ]
            return await asyncio.gather(*requests)

        answers = running.run(burst())
        assert len(answers) == 500
        assert len(commits) < 500
        assert len(running.client().query("/burst/")) == 500
        assert store.count_tokens("/burst/") == 500


def test_concurrent_claims_never_share_a_token(master: MasterThread) -> None:
    client = master.client()
    # More than the master scans outright, so claims walk its priority index
    # while earlier claims are still queued.
    client.modify([Token(f"/jobs/{i}", priority=i % 7) for i in range(600)])

    async def claim_all() -> list[list[Token]]:
        claims = [
            master.master.query_and_own(
                QueryAndOwnRequest(f"w{i}", Query("/jobs/", 3), lease_sec=60)
            )
            for i in range(200)
        ]
        return await asyncio.gather(*claims)

    batches = master.run(claim_all())
    claimed = [t.name for batch in batches for t in batch]
    assert len(claimed) == 600 == len(set(claimed))
    assert [t.priority for t in batches[0]] == [6.0, 6.0, 6.0]


def test_claims_from_a_large_pool_follow_priority(master: MasterThread) -> None:
    client = master.client()
    client.modify([Token(f"/pool/{i:04d}", priority=i % 50) for i in range(1000)])
    client.modify([Token(f"/other/{i}", priority=100) for i in range(300)])

    claimed = [
        client.query_and_own("w", "/pool/", 1, lease_sec=60)[0] for _ in range(60)
    ]

    priorities = [t.priority for t in claimed]
    assert priorities == sorted(priorities, reverse=True)
    assert priorities[:20] == [49.0] * 20 and priorities[20:40] == [48.0] * 20
    assert len({t.name for t in claimed}) == 60


def test_expired_leases_return_to_a_large_pool(master: MasterThread) -> None:
    client = master.client()
    client.modify([Token(f"/pool/{i:04d}", priority=i) for i in range(500)])

    (first,) = client.query_and_own("w1", "/pool/", 1, lease_sec=0.2)
    (second,) = client.query_and_own("w2", "/pool/", 1, lease_sec=60)
    assert (first.priority, second.priority) == (499, 498)

    deadline = time.time() + 10
    while time.time() < (first.expiration or 0) and time.time() < deadline:
        time.sleep(0.05)
    (again,) = client.query_and_own("w3", "/pool/", 1, lease_sec=60)
    assert again.name == first.name and again.owner == "w3"


def test_request_id_of_another_kind_is_not_a_repeat(client: MasterClient) -> None:
    inserted = client.call(
        "modify", {"request_id": "same", "updates": [{"name": "/a"}]}
    )["updates"]
    client.call("archive", {"request_id": "same", "tokens": inserted})
    assert client.query("/a") == []


def test_writes_are_refused_once_stopping(store: SqliteStore) -> None:
    running = MasterThread(store).start()
    client = running.client()
    client.modify([Token("/before")])

    async def stop_then_write() -> BaseException | list[Token]:
        stopping = asyncio.ensure_future(running.master.stop())
        await asyncio.sleep(0)
        try:
            return await running.master.modify(ModifyRequest([Token("/after")]))
        except MasterUnavailableError as refused:
            return refused
        finally:
            await stopping

    outcome = running.run(stop_then_write())
    assert isinstance(outcome, MasterUnavailableError)
    assert "stopping" in str(outcome)
    assert [t.name for t in store.read_tokens("/")] == [
        "/__BLESSED_VERSION__",
        "/before",
    ]


def test_contains_picks_one_kind_of_token(master: MasterThread) -> None:
    client = master.client()
    tokens = []
    for wf in range(3):
        for job in range(200):
            state = "runnable" if job % 20 == 0 else "waiting"
            name = f"/workflow/w{wf}/1/job/{state}/j{job:03d}"
            tokens.append(Token(name, priority=job))
    client.modify(tokens)

    runnable = client.query("/workflow/", contains="/job/runnable/")
    assert len(runnable) == 30
    assert all("/job/runnable/" in t.name for t in runnable)

    claimed = [
        client.query_and_own("w", "/workflow/", 1, lease_sec=60, contains="/runnable/")
        for _ in range(31)
    ]
    names = [c[0].name for c in claimed[:30]]
    assert claimed[30] == []
    assert sorted(names) == sorted(t.name for t in runnable)
    assert [c[0].priority for c in claimed[:3]] == [180.0, 180.0, 180.0]


def test_waiting_claim_wakes_on_new_work(master: MasterThread) -> None:
    client = master.client()
    client.modify([Token(f"/filler/{i}") for i in range(300)])
    result: list[list[Token]] = []

    waiter = threading.Thread(
        target=lambda: result.append(
            client.query_and_own("w", "/work/", 1, lease_sec=60, wait_sec=30)
        )
    )
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()
    client.modify([Token("/work/new", data="go")])
    waiter.join(timeout=10)

    assert [t.name for t in result[0]] == ["/work/new"]


def test_waiting_claim_wakes_when_a_lease_ends(master: MasterThread) -> None:
    client = master.client()
    client.modify([Token("/work/retry", owner="delay", expiration=time.time() + 0.5)])
    (claimed,) = client.query_and_own("w", "/work/", 1, lease_sec=60, wait_sec=30)
    assert claimed.owner == "w"


def test_waiting_claim_times_out_empty(master: MasterThread) -> None:
    client = master.client()
    assert client.query_and_own("w", "/none/", 1, lease_sec=60, wait_sec=0.2) == []


@pytest.mark.parametrize(
    "token",
    [
        {"name": "/bad\ud800"},
        {"name": "/ok", "data": "lone \udfff surrogate"},
        {"name": "/ok", "owner": "\ud800"},
        {"name": "/new\nline"},
        {"name": "/__BLESSED_VERSION__/child"},
        {"name": "/ok", "priority": 10**400},
        {"name": "/ok", "expiration": 10**400},
    ],
)
def test_values_no_store_can_keep_are_input_errors(
    client: MasterClient, token: dict[str, object]
) -> None:
    with pytest.raises(InputError):
        client.call("modify", {"updates": [token]})
    assert [t.name for t in client.query("")] == [VERSION_TOKEN_NAME]


def test_bad_claims_are_input_errors(client: MasterClient) -> None:
    with pytest.raises(InputError, match="negative"):
        client.query_and_own("w", "/", 1, lease_sec=-10)
    with pytest.raises(InputError, match="too large"):
        client.call("query_and_own", {"owner": "w", "lease_sec": 10**400, "query": {}})


def test_prefix_selects_names_with_the_highest_characters(
    client: MasterClient, store: SqliteStore
) -> None:
    client.modify([Token("/p/\U0010ffffz"), Token("/p0"), Token("/p/a")])
    assert [t.name for t in client.query("/p/")] == ["/p/a", "/p/\U0010ffffz"]
    assert client.group("/p/", "/") == {"/p/a": 1, "/p/\U0010ffffz": 1}
    assert [t.name for t in store.read_tokens("/p/")] == ["/p/a", "/p/\U0010ffffz"]


def test_second_master_on_a_store_is_refused(sqlite_url: str) -> None:
    first = SqliteStore(sqlite_url)
    with MasterThread(first):
        second = SqliteStore(sqlite_url)
        with pytest.raises(StoreError, match="another master"):
            second.lock_for_master()
        second.close()
    first.close()
    again = SqliteStore(sqlite_url)
    again.lock_for_master()
    again.close()


def test_remembered_modify_keeps_versions_only(store: SqliteStore) -> None:
    body = {"request_id": "compact", "updates": [{"name": "/big", "data": "x" * 5000}]}
    with MasterThread(store) as running:
        first = running.client().call("modify", dict(body))
    (kept,) = store.load_applied_requests(0.0)
    assert kept.request_id == "modify:compact" and len(kept.response) < 100
    with MasterThread(store) as again:
        assert again.client().call("modify", dict(body)) == first
