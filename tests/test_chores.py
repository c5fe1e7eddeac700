"""Ending an instance: a waiting job whose inputs are all fed keeps it open."""

import pathlib

from pinball_core.client import MasterClient
from pinball_core.local import MasterThread
from pinball_core.testing.hooks import HookRecorder
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.chores import ARCHIVE_INFIX, Chores
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import WorkerSettings


def _chores(client: MasterClient, tmp_path: pathlib.Path) -> Chores:
    settings = WorkerSettings(
        lease_sec=30, poll_sec=0.5, logs_dir=str(tmp_path), archive_delay_sec=3600
    )
    hooks = HookRecorder()
    return Chores(
        client,
        settings,
        "worker-test",
        lambda hook, **kwargs: getattr(hooks, hook)(**kwargs),
    )


def _fan_in(client: MasterClient, fed: list[str]) -> None:
    """An instance whose upstream jobs have ended, feeding ``sink`` from ``fed``.

    The upstream jobs' tokens are gone, as after their ends; ``sink`` still
    waits, as in the moment before the worker that fed it last starts it.
    """
    upstream = [f"u{i}" for i in range(5)]
    jobs = {name: Job(command="true") for name in upstream}
    jobs["sink"] = Job(command="true", inputs=upstream)
    made = instance_tokens("fan", "1", jobs)
    tokens = [t for t in made if "/job/" in t.name and t.name.endswith("/sink")]
    events = [
        Token(names.event_name("fan", "1", "sink", name, "e"), data="{}")
        for name in fed
    ]
    client.modify(tokens + events)


def _finished(client: MasterClient) -> bool:
    signals = client.query(names.signal_prefix("fan", "1"))
    return any(ARCHIVE_INFIX in t.name for t in signals)


def test_a_job_fed_on_every_input_keeps_the_instance_open(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    _fan_in(client, [f"u{i}" for i in range(5)])

    _chores(client, tmp_path).finish_if_done("fan", "1")

    assert not _finished(client)


def test_a_job_short_of_one_input_cannot_run_and_the_instance_ends(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    # Five events, but two on one input: as many events as inputs is not enough.
    _fan_in(client, ["u0", "u1", "u2", "u3"])
    client.modify([Token(names.event_name("fan", "1", "sink", "u0", "f"), data="{}")])

    _chores(client, tmp_path).finish_if_done("fan", "1")

    assert _finished(client)
