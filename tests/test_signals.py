"""Signals at the global, workflow and instance levels, on a real master."""

import pytest

from pinball_core.client import MasterClient
from pinball_core.token import Token
from pinball_core.workflow import signals
from pinball_core.workflow.model import ABORT, ARCHIVE, DRAIN, EXIT, Signal

WF = "some_workflow"
INST = "123"


def insert_signal(client: MasterClient, name: str, signal: Signal) -> Token:
    [token] = client.modify(updates=[Token(name, data=signal.to_json())])
    return token


def actions(
    client: MasterClient, workflow: str | None = None, instance: str | None = None
) -> set[str]:
    return set(signals.read_signals(client, workflow, instance))


def test_nothing_is_set_in_an_empty_master(client: MasterClient) -> None:
    found = signals.read_signals(client)

    assert found == {}
    assert not signals.exit_applies(found, generation=1)


def test_each_level_sees_its_own_signals_and_those_above(
    client: MasterClient,
) -> None:
    # Lower-case names: the payload, not the name, says which action it is.
    insert_signal(client, "/workflow/__SIGNAL__/exit", Signal(EXIT))
    insert_signal(client, f"/workflow/{WF}/__SIGNAL__/drain", Signal(DRAIN))
    insert_signal(client, f"/workflow/{WF}/{INST}/__SIGNAL__/drain", Signal(DRAIN))
    insert_signal(client, f"/workflow/{WF}/{INST}/__SIGNAL__/abort", Signal(ABORT))

    assert actions(client) == {EXIT}
    assert actions(client, WF) == {EXIT, DRAIN}
    assert actions(client, WF, INST) == {EXIT, DRAIN, ABORT}
    assert actions(client, "other_workflow", INST) == {EXIT}


def test_the_most_specific_level_wins(client: MasterClient) -> None:
    insert_signal(client, "/workflow/__SIGNAL__/ABORT", Signal(ABORT, timestamp=1.0))
    insert_signal(
        client, f"/workflow/{WF}/{INST}/__SIGNAL__/ABORT", Signal(ABORT, timestamp=2.0)
    )

    token, signal = signals.read_signals(client, WF, INST)[ABORT]

    assert signal.timestamp == 2.0
    assert token.name == f"/workflow/{WF}/{INST}/__SIGNAL__/ABORT"


def test_a_token_that_is_not_a_signal_is_ignored(client: MasterClient) -> None:
    client.modify(updates=[Token("/workflow/__SIGNAL__/DRAIN", data="garbage")])

    assert signals.read_signals(client) == {}


def test_exit_stops_only_older_generations(client: MasterClient) -> None:
    signals.set_signal(client, EXIT, generation=2)

    found = signals.read_signals(client)

    assert not signals.exit_applies(found, generation=2)
    assert not signals.exit_applies(found, generation=3)
    assert signals.exit_applies(found, generation=1)
    assert signals.exit_applies(found, generation=0)


def test_exit_without_a_generation_stops_every_worker(client: MasterClient) -> None:
    signals.set_signal(client, EXIT)

    assert signals.exit_applies(signals.read_signals(client), generation=100)


def test_exit_reports_its_generation(client: MasterClient) -> None:
    token = signals.set_signal(client, EXIT, generation=7)

    assert token is not None
    assert token.name == "/workflow/__SIGNAL__/EXIT"
    _, signal = signals.read_signals(client)[EXIT]
    assert signal.generation == 7


def test_set_at_workflow_then_instance_level(client: MasterClient) -> None:
    signals.set_signal(client, DRAIN, WF)

    assert actions(client, WF) == {DRAIN}

    signals.set_signal(client, ABORT, WF, INST)

    assert actions(client, WF) == {DRAIN}
    assert actions(client, WF, INST) == {DRAIN, ABORT}


def test_abort_is_stamped_with_the_time_it_was_set(client: MasterClient) -> None:
    signals.set_signal(client, ABORT, WF, INST)

    _, signal = signals.read_signals(client, WF, INST)[ABORT]

    assert signal.timestamp is not None and signal.timestamp > 0


@pytest.mark.parametrize(
    ("workflow", "instance"), [(None, None), (WF, None), (WF, INST)]
)
def test_set_twice_at_one_level_changes_nothing(
    client: MasterClient, workflow: str | None, instance: str | None
) -> None:
    first = signals.set_signal(client, DRAIN, workflow, instance)

    second = signals.set_signal(client, DRAIN, workflow, instance)

    assert first is not None
    assert second is None
    assert [t.version for t, _ in signals.read_signals(client, WF, INST).values()] == [
        first.version
    ]


def test_set_at_a_level_when_a_wider_level_has_it(client: MasterClient) -> None:
    signals.set_signal(client, DRAIN)

    token = signals.set_signal(client, DRAIN, WF)

    assert token is not None
    assert token.name == f"/workflow/{WF}/__SIGNAL__/DRAIN"


def test_set_loses_to_a_concurrent_insert(
    client: MasterClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer inserts the signal between this one's read and write.
    real_query = client.query

    def query_then_race(
        prefix: str = "", *args: object, **kwargs: object
    ) -> list[Token]:
        answer = real_query(prefix)
        insert_signal(client, f"{prefix}DRAIN", Signal(DRAIN))
        return answer

    monkeypatch.setattr(client, "query", query_then_race)

    assert signals.set_signal(client, DRAIN, WF) is None


def test_set_replaces_a_broken_token_under_the_actions_name(
    client: MasterClient,
) -> None:
    client.modify(updates=[Token("/workflow/__SIGNAL__/DRAIN", data="garbage")])

    token = signals.set_signal(client, DRAIN)

    assert token is not None
    assert actions(client) == {DRAIN}


def test_replace_moves_the_exit_generation_on(client: MasterClient) -> None:
    signals.set_signal(client, EXIT, generation=1)

    same = signals.set_signal(client, EXIT, generation=1, replace=True)
    moved = signals.set_signal(client, EXIT, generation=2, replace=True)

    assert same is None
    assert moved is not None
    assert signals.read_signals(client)[EXIT][1].generation == 2


@pytest.mark.parametrize(
    ("workflow", "instance"), [(None, None), (WF, None), (WF, INST)]
)
def test_removed_signal_is_gone_for_every_reader(
    client: MasterClient, workflow: str | None, instance: str | None
) -> None:
    signals.set_signal(client, DRAIN, workflow, instance)

    removed = signals.remove_signal(client, DRAIN, workflow, instance)

    assert removed
    assert DRAIN not in actions(client, WF, INST)
    assert not signals.remove_signal(client, DRAIN, workflow, instance)


def test_remove_leaves_other_levels_alone(client: MasterClient) -> None:
    signals.set_signal(client, DRAIN)
    signals.set_signal(client, DRAIN, WF)

    assert signals.remove_signal(client, DRAIN, WF)

    token, _ = signals.read_signals(client, WF)[DRAIN]
    assert signals.level_of(token.name) == (None, None)
    assert not signals.remove_signal(client, DRAIN, WF)


def test_remove_finds_a_signal_by_its_payload(client: MasterClient) -> None:
    insert_signal(client, f"/workflow/{WF}/__SIGNAL__/drain", Signal(DRAIN))

    assert signals.remove_signal(client, DRAIN, WF)
    assert actions(client, WF) == set()


def test_stamp_only_adds_missing_attributes(client: MasterClient) -> None:
    assert signals.stamp_signal(client, ARCHIVE, WF, INST, timestamp=12345) is None

    signals.set_signal(client, ARCHIVE, WF, INST)
    first = signals.stamp_signal(client, ARCHIVE, WF, INST, timestamp=12345)
    second = signals.stamp_signal(client, ARCHIVE, WF, INST, timestamp=123456)

    assert first is not None
    assert second is None
    assert signals.read_signals(client, WF, INST)[ARCHIVE][1].timestamp == 12345


def test_unknown_action_is_refused(client: MasterClient) -> None:
    with pytest.raises(ValueError, match="unknown signal action 'PAUSE'"):
        signals.set_signal(client, "PAUSE")


@pytest.mark.parametrize(
    ("name", "level", "words"),
    [
        ("/workflow/__SIGNAL__/DRAIN", (None, None), "global"),
        ("/workflow/wf/__SIGNAL__/DRAIN", ("wf", None), "workflow wf"),
        ("/workflow/wf/1/__SIGNAL__/DRAIN", ("wf", "1"), "instance wf/1"),
    ],
)
def test_level_of(name: str, level: tuple[str | None, str | None], words: str) -> None:
    assert signals.level_of(name) == level
    assert signals.level_name(*level) == words


def test_stamp_keeps_a_lease_on_the_signal(client: MasterClient) -> None:
    # Workers lease the ARCHIVE signal as a timer until the archive is due.
    client.modify(
        updates=[
            Token(
                f"/workflow/{WF}/{INST}/__SIGNAL__/ARCHIVE",
                owner="archive-timer",
                expiration=4_000_000_000.0,
                data=Signal(ARCHIVE).to_json(),
            )
        ]
    )

    stamped = signals.stamp_signal(client, ARCHIVE, WF, INST, timestamp=5.0)

    assert stamped is not None
    assert (stamped.owner, stamped.expiration) == ("archive-timer", 4_000_000_000.0)
