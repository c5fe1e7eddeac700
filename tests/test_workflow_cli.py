"""``pinball workflow``: the operator commands, on a real master and store.

Most tests call the command handlers in-process, with an application whose
master client is a :class:`MasterThread`'s and whose parser is a small one
registered here; job outcomes are written into job tokens directly. A few
run ``python -m pinball_core`` as a process to check the whole path.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml
from pinball_processes import free_port

from pinball_core import hookimpl
from pinball_core.app import Application
from pinball_core.client import MasterClient
from pinball_core.commands import workflow as workflow_cli
from pinball_core.commands.workflow import poison as poison_command
from pinball_core.commands.workflow._shared import JobToken, WorkflowCommandError
from pinball_core.commands.workflow.store_reads import StoreClient
from pinball_core.errors import MasterError, PluginLoadError
from pinball_core.local import MasterThread
from pinball_core.protocol import Query
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import (
    ABORT,
    ARCHIVE,
    DRAIN,
    EXIT,
    ExecutionRecord,
    Job,
    Signal,
)
from pinball_core.workflow.signals import read_signals, set_signal
from pinball_core.workflow.status import PAUSE_OWNER_PREFIX

WF = "some_workflow"
INST = "123"
CAP = 2
GENERATION = 3
DAY = 86400.0

# The test parser's workflows: job name to Job fields (plus "priority").
DEFINITIONS: dict[str, dict[str, dict[str, Any]]] = {
    WF: {
        "parent": {"command": "echo parent", "priority": 10},
        "child": {"command": "echo child", "inputs": ["parent"]},
    },
    "other_workflow": {"only": {"command": "true"}},
}


class DictParser:
    """A parser whose workflows are Python dicts of job fields."""

    def __init__(self, workflows: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.workflows = workflows

    def workflow_names(self) -> list[str]:
        return sorted(self.workflows)

    def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
        jobs, priorities = {}, {}
        for name, spec in self.workflows[workflow].items():
            fields = dict(spec)
            priorities[name] = fields.pop("priority", 0.0)
            jobs[name] = Job(name=name, **fields)
        return instance_tokens(workflow, instance, jobs, priorities)

    def schedule_token(self, workflow: str) -> Token | None:
        return None

    def validate(self) -> list[str]:
        return []


class ParserPlugin:
    """Makes a :class:`DictParser` of :data:`DEFINITIONS`, or of ``params``."""

    @hookimpl
    def pinball_make_parser(self, params: dict[str, Any]) -> DictParser:
        return DictParser(params.get("workflows") or DEFINITIONS)


class LocalApplication(Application):
    """An application on the test's master, without HTTP."""

    def __init__(self, config_path: pathlib.Path, master: MasterThread) -> None:
        super().__init__(config_path)
        self._master = master

    def master_client(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        interactive: bool = False,
    ) -> MasterClient:
        return self._master.client()


@pytest.fixture(autouse=True)
def clean_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINBALL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PINBALL_MASTER_SECRET", raising=False)
    monkeypatch.delenv("PINBALL_DISABLE_PLUGINS", raising=False)


def write_config(tmp_path: pathlib.Path, **extra: Any) -> pathlib.Path:
    path = tmp_path / "pinball.yaml"
    values = {
        "home": str(tmp_path / "home"),
        "logs_dir": str(tmp_path / "logs"),
        "store": f"sqlite:///{tmp_path / 'pinball.db'}",
        "parser": "test",
        "generation": GENERATION,
        "default_max_workflow_running_instances": CAP,
        **extra,
    }
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def app(tmp_path: pathlib.Path, master: MasterThread) -> LocalApplication:
    app = LocalApplication(write_config(tmp_path), master)
    app.plugins.register(ParserPlugin(), "parser.test")
    return app


@pytest.fixture
def client(master: MasterThread) -> MasterClient:
    return master.client()


def run(app: Application, *argv: str) -> int:
    """Parse ``pinball workflow ARGV`` and run the handler in-process."""
    parser = argparse.ArgumentParser(prog="pinball")
    workflow_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["workflow", *argv])
    code: int = args.handler(args, app)
    return code


def output(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


# -- Building instances by hand


def record(
    exit_code: int | None = 0,
    start: float = 100.0,
    end: float | None = 200.0,
    instance: str = INST,
    events: list[dict[str, Any]] | None = None,
) -> ExecutionRecord:
    return ExecutionRecord(
        instance=instance,
        start_time=start,
        end_time=end,
        exit_code=None if end is None else exit_code,
        events=events or [],
    )


def put_job(
    client: MasterClient,
    name: str,
    state: str = names.WAITING,
    *,
    instance: str = INST,
    workflow: str = WF,
    priority: float = 0.0,
    owner: str | None = None,
    expiration: float | None = None,
    **fields: Any,
) -> Token:
    fields.setdefault("inputs", [names.WORKFLOW_START])
    job = Job(name=name, **fields)
    [token] = client.modify(
        updates=[
            Token(
                names.job_name(workflow, instance, state, name),
                priority=priority,
                owner=owner,
                expiration=expiration,
                data=job.to_json(),
            )
        ]
    )
    return token


def put_signal(
    client: MasterClient,
    action: str,
    workflow: str | None = WF,
    instance: str | None = INST,
    **fields: Any,
) -> Token:
    name = names.signal_prefix(workflow, instance) + action
    [token] = client.modify(
        updates=[Token(name, data=Signal(action, **fields).to_json())]
    )
    return token


def finished_instance(
    client: MasterClient, instance: str = INST, workflow: str = WF
) -> None:
    """``parent`` succeeded with an event attribute; ``child`` failed after it."""
    events = [{"name": "e1", "creator": "w", "attributes": {"day": "monday"}}]
    put_job(
        client,
        "parent",
        instance=instance,
        workflow=workflow,
        outputs=["child"],
        history=[record(instance=instance)],
    )
    put_job(
        client,
        "child",
        instance=instance,
        workflow=workflow,
        inputs=["parent"],
        priority=10,
        history=[
            record(exit_code=1, start=300, end=400, instance=instance, events=events)
        ],
    )


def job_of(token: Token) -> Job:
    return Job.from_json(token.data)


def active(client: MasterClient, instance: str = INST) -> dict[str, Token]:
    return {t.name: t for t in client.query(names.instance_prefix(WF, instance))}


def archived(store: SqliteStore, instance: str = INST) -> list[Token]:
    return store.read_tokens(names.instance_prefix(WF, instance), archived=True)


def archive_instance(client: MasterClient, instance: str = INST) -> None:
    client.archive(client.query(names.instance_prefix(WF, instance)))


def instances(client: MasterClient) -> set[str]:
    groups = client.group(names.workflow_prefix(WF), "/")
    return {key.rsplit("/", 1)[-1] for key in groups} - {names.SIGNAL}


def answer_yes(monkeypatch: pytest.MonkeyPatch, answer: str = "y") -> list[str]:
    """Pretend stdin is a terminal on which the operator types ``answer``."""
    questions: list[str] = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)

    def fake_input(prompt: str = "") -> str:
        questions.append(prompt)
        return answer

    monkeypatch.setattr("builtins.input", fake_input)
    return questions


# -- Options


def test_a_missing_option_is_named(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="stop needs -i INSTANCE"):
        run(app, "stop", "-w", WF)


def test_an_option_the_command_does_not_take_is_refused(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="drain does not take -e"):
        run(app, "-e", "1", "drain")


def test_instance_needs_its_workflow(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="needs its workflow"):
        run(app, "drain", "-i", INST)


def test_names_must_be_words(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="letters, digits and underscores"):
        run(app, "status", "-w", "a/b")


def test_options_may_come_before_the_command(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    put_job(client, "parent")

    assert run(app, "-w", WF, "-i", INST, "drain") == 0

    assert f"/workflow/{WF}/{INST}/__SIGNAL__/DRAIN" in output(capsys)


# -- start


def test_start_unknown_workflow_names_the_parser(app: Application) -> None:
    with pytest.raises(WorkflowCommandError) as error:
        run(app, "start", "-w", "does_not_exist")

    message = str(error.value)
    assert "workflow does_not_exist is not defined by the parser 'test'" in message
    assert WF in message


def test_start_inserts_the_parsers_instance(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(app, "start", "-w", WF) == 0

    [instance] = instances(client)
    assert instance.isdigit()
    text = output(capsys)
    assert f"started workflow {WF} instance {instance}" in text
    assert f"/workflow/{WF}/{instance}/" in text
    parsed = [names.parse_job_name(name) for name in active(client, instance)]
    assert {p.job for p in parsed if p is not None} == {"parent", "child"}


def test_start_warns_of_a_drain_that_holds_the_instance_back(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    set_signal(client, DRAIN)
    set_signal(client, DRAIN, WF)
    set_signal(client, EXIT)
    set_signal(client, DRAIN, "other_workflow")

    assert run(app, "start", "-w", WF) == 0

    captured = capsys.readouterr()
    assert f"started workflow {WF} instance" in captured.out
    assert captured.err.splitlines() == [
        "pinball: warning: DRAIN is set at global level (/workflow/__SIGNAL__/"
        "DRAIN), so no job of the new instance starts until it is removed with "
        "`pinball workflow undrain`",
        f"pinball: warning: DRAIN is set at workflow {WF} level (/workflow/{WF}/"
        "__SIGNAL__/DRAIN), so no job of the new instance starts until it is "
        f"removed with `pinball workflow undrain -w {WF}`",
    ]


def test_start_warns_of_an_abort_that_stops_the_instance(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    set_signal(client, ABORT, WF)

    assert run(app, "start", "-w", WF) == 0

    assert capsys.readouterr().err == (
        f"pinball: warning: ABORT is set at workflow {WF} level (/workflow/{WF}/"
        "__SIGNAL__/ABORT), so the new instance shows ABORTED and none of its "
        f"jobs runs while it is set; remove it with `pinball workflow unabort "
        f"-w {WF}`\n"
    )


def test_start_without_signals_warns_of_nothing(
    app: Application, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(app, "start", "-w", WF) == 0

    assert capsys.readouterr().err == ""


def test_start_takes_the_next_id_when_one_is_taken(
    app: Application, client: MasterClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "pinball_core.commands.workflow._shared.new_instance_id", lambda: "1000"
    )
    put_job(client, "parent", instance="1000", history=[record(instance="1000")])

    assert run(app, "start", "-w", WF) == 0

    assert instances(client) == {"1000", "1001"}
    assert len(active(client, "1000")) == 1


def test_start_refuses_at_the_default_cap(
    app: Application, client: MasterClient
) -> None:
    for instance in ("1", "2"):
        put_job(client, "parent", names.RUNNABLE, instance=instance)

    with pytest.raises(WorkflowCommandError) as error:
        run(app, "start", "-w", WF)

    assert "2 running instances (1, 2) and may run at most 2" in str(error.value)
    assert "default_max_workflow_running_instances" in str(error.value)
    assert instances(client) == {"1", "2"}


def test_start_below_the_cap_does_not_count_finished_instances(
    app: Application, client: MasterClient
) -> None:
    put_job(client, "parent", names.RUNNABLE, instance="1")
    finished_instance(client, instance="2")

    assert run(app, "start", "-w", WF) == 0

    assert len(instances(client)) == 3


def test_the_schedules_cap_wins_over_the_default(
    app: Application, client: MasterClient
) -> None:
    for instance in ("1", "2"):
        put_job(client, "parent", names.RUNNABLE, instance=instance)
    client.modify(
        updates=[
            Token(
                names.schedule_name(WF), data=json.dumps({"max_running_instances": 3})
            )
        ]
    )

    assert run(app, "start", "-w", WF) == 0

    with pytest.raises(
        WorkflowCommandError, match=f"its schedule /schedule/workflow/{WF}"
    ):
        run(app, "start", "-w", WF)


class SchedulerRacingClient:
    """A client on which the scheduler starts an instance just before the
    command's first modify, after the command has counted what runs."""

    def __init__(self, client: MasterClient) -> None:
        self._client = client
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __enter__(self) -> "SchedulerRacingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def modify(self, *args: Any, **kwargs: Any) -> list[Token]:
        if not self.raced:
            self.raced = True
            put_job(self._client, "parent", names.RUNNABLE, instance="9")
            # The scheduler writes the schedule with every start it makes.
            schedule = self._client.query(names.schedule_name(WF))
            self._client.modify(updates=schedule)
        return self._client.modify(*args, **kwargs)


def test_a_start_racing_the_scheduler_does_not_pass_the_cap(
    tmp_path: pathlib.Path, master: MasterThread
) -> None:
    client = master.client()
    racing = SchedulerRacingClient(client)

    class RacingApplication(LocalApplication):
        def master_client(self, *args: Any, **kwargs: Any) -> MasterClient:
            return racing  # type: ignore[return-value]

    app = RacingApplication(write_config(tmp_path), master)
    app.plugins.register(ParserPlugin(), "parser.test")
    put_job(client, "parent", names.RUNNABLE, instance="1")
    client.modify(
        updates=[
            Token(
                names.schedule_name(WF), data=json.dumps({"max_running_instances": 2})
            )
        ]
    )

    with pytest.raises(WorkflowCommandError, match="2 running instances"):
        run(app, "start", "-w", WF)

    assert racing.raced
    assert instances(client) == {"1", "9"}


def test_start_with_a_parser_that_is_not_installed(
    tmp_path: pathlib.Path, master: MasterThread
) -> None:
    app = LocalApplication(write_config(tmp_path, parser="no_such_parser"), master)

    with pytest.raises(PluginLoadError, match="no_such_parser"):
        run(app, "start", "-w", WF)


# -- stop


def test_stop_unknown_instance(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="is not active"):
        run(app, "stop", "-w", WF, "-i", "does_not_exist", "-f")


def test_stop_aborts_and_archives_the_instance(
    app: Application,
    client: MasterClient,
    store: SqliteStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    finished_instance(client)

    assert run(app, "stop", "-w", WF, "-i", INST, "-f") == 0

    assert active(client) == {}
    kept = {t.name: t for t in archived(store)}
    assert f"/workflow/{WF}/{INST}/job/waiting/child" in kept
    assert Signal.from_json(
        kept[f"/workflow/{WF}/{INST}/__SIGNAL__/ABORT"].data
    ).timestamp
    text = output(capsys)
    assert (
        f"stopped workflow {WF} instance {INST}: set ABORT and archived 3 tokens"
        in text
    )
    assert "note" not in text


def test_stop_notes_jobs_that_were_running(
    app: Application,
    client: MasterClient,
    store: SqliteStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    put_job(
        client,
        "parent",
        names.RUNNABLE,
        owner="worker_1",
        expiration=time.time() + 600,
        history=[record(end=None)],
    )

    run(app, "stop", "-w", WF, "-i", INST, "-f")

    assert active(client) == {}
    assert "note: parent was running" in output(capsys)


def test_stop_without_a_terminal_or_force_changes_nothing(
    app: Application, client: MasterClient
) -> None:
    finished_instance(client)
    before = active(client)

    with pytest.raises(WorkflowCommandError, match="pass -f"):
        run(app, "stop", "-w", WF, "-i", INST)

    assert active(client) == before


def test_stop_asks_and_a_no_changes_nothing(
    app: Application,
    client: MasterClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    finished_instance(client)
    questions = answer_yes(monkeypatch, answer="")

    run(app, "stop", "-w", WF, "-i", INST)

    assert questions == [
        f"stop workflow {WF} instance {INST}: abort it and archive its 2 tokens? [y/N] "
    ]
    assert "nothing changed" in output(capsys)
    assert len(active(client)) == 2


# -- pause and resume


def test_pause_holds_free_tokens_and_leaves_running_jobs(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    lease = time.time() + 600
    put_job(client, "parent", names.RUNNABLE, owner="worker_1", expiration=lease)
    put_job(client, "child", inputs=["parent"])

    run(app, "pause", "-w", WF, "-i", INST, "-f")

    tokens = active(client)
    parent = tokens[f"/workflow/{WF}/{INST}/job/runnable/parent"]
    child = tokens[f"/workflow/{WF}/{INST}/job/waiting/child"]
    assert (parent.owner, parent.expiration) == ("worker_1", lease)
    assert child.owner is not None and child.owner.startswith(PAUSE_OWNER_PREFIX)
    assert child.expiration == FOREVER
    text = output(capsys)
    assert f"paused workflow {WF} instance {INST}: holding 1 token" in text
    assert "parent kept running" in text


def test_pause_unknown_instance(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="is not active"):
        run(app, "pause", "-w", WF, "-i", INST, "-f")


def test_resume_releases_only_what_pause_holds(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    lease = time.time() + 600
    put_job(client, "parent", names.RUNNABLE, owner="worker_1", expiration=lease)
    put_job(client, "child", inputs=["parent"])
    run(app, "pause", "-w", WF, "-i", INST, "-f")
    output(capsys)

    run(app, "resume", "-w", WF, "-i", INST)

    tokens = active(client)
    assert tokens[f"/workflow/{WF}/{INST}/job/runnable/parent"].owner == "worker_1"
    child = tokens[f"/workflow/{WF}/{INST}/job/waiting/child"]
    assert (child.owner, child.expiration) == (None, None)
    assert f"resumed workflow {WF} instance {INST}: released 1 token" in output(capsys)


def test_resume_of_an_instance_that_is_not_paused(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)

    run(app, "resume", "-w", WF, "-i", INST)

    assert "is not paused" in output(capsys)


# -- retry


def test_retry_unknown_instance(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="neither active nor archived"):
        run(app, "retry", "-w", "does_not_exist", "-i", INST, "-f")


def test_retry_active_instance_runs_failed_jobs_with_their_events(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    put_signal(client, ARCHIVE, timestamp=12345)

    run(app, "retry", "-w", WF, "-i", INST, "-f")

    tokens = active(client)
    assert f"/workflow/{WF}/{INST}/__SIGNAL__/ARCHIVE" not in tokens
    assert f"/workflow/{WF}/{INST}/job/waiting/child" not in tokens
    child = tokens[f"/workflow/{WF}/{INST}/job/runnable/child"]
    assert child.priority == 10
    assert job_of(child).events[0]["attributes"] == {"day": "monday"}
    assert f"/workflow/{WF}/{INST}/job/waiting/parent" in tokens
    assert f"retried 1 job of workflow {WF} instance {INST}: child" in output(capsys)


def test_retry_without_an_archive_signal(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)

    run(app, "retry", "-w", WF, "-i", INST, "-f")

    assert "retried 1 job" in output(capsys)


def test_retry_with_nothing_failed(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    put_job(client, "parent", history=[record()])

    run(app, "retry", "-w", WF, "-i", INST, "-f")

    assert "nothing to retry" in output(capsys)


def test_retry_of_an_aborted_instance_says_to_unabort(
    app: Application, client: MasterClient
) -> None:
    finished_instance(client)
    put_signal(client, ABORT, workflow=WF, instance=None, timestamp=1)

    with pytest.raises(WorkflowCommandError, match=f"unabort -w {WF}`"):
        run(app, "retry", "-w", WF, "-i", INST, "-f")


def test_retry_archived_instance_copies_it_into_a_new_one(
    app: Application,
    client: MasterClient,
    store: SqliteStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    finished_instance(client)
    put_signal(client, ARCHIVE, timestamp=1)
    archive_instance(client)

    run(app, "retry", "-w", WF, "-i", INST, "-f")

    [new] = instances(client)
    assert new != INST
    tokens = active(client, new)
    assert set(tokens) == {
        f"/workflow/{WF}/{new}/job/waiting/parent",
        f"/workflow/{WF}/{new}/job/runnable/child",
    }
    child = tokens[f"/workflow/{WF}/{new}/job/runnable/child"]
    assert child.priority == 10
    assert job_of(child).events[0]["attributes"] == {"day": "monday"}
    assert f"as instance {new} (/workflow/{WF}/{new}/)" in output(capsys)
    assert len(archived(store)) == 3


def test_an_archived_instance_retried_shows_its_own_start(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    archive_instance(client)
    run(app, "retry", "-w", WF, "-i", INST, "-f")
    [new] = instances(client)
    capsys.readouterr()

    run(app, "status", "-w", WF, "--json")

    shown = {i["instance"]: i for i in json.loads(output(capsys))["instances"]}
    # The copy carries the original's history, but has not run yet itself.
    assert (shown[INST]["start"], shown[new]["start"]) == (100, None)

    [child] = [t for t in active(client, new).values() if "/child" in t.name]
    job = job_of(child)
    job.history.append(record(start=5000, end=None, instance=new))
    client.modify(updates=[Token(child.name, child.version, data=job.to_json())])
    run(app, "status", "-w", WF, "--json")

    shown = {i["instance"]: i for i in json.loads(output(capsys))["instances"]}
    assert shown[new]["start"] == 5000


def test_retrying_an_archived_instance_again_names_the_copy_it_made(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    archive_instance(client)
    run(app, "retry", "-w", WF, "-i", INST, "-f")
    [new] = instances(client)

    with pytest.raises(WorkflowCommandError) as refused:
        run(app, "retry", "-w", WF, "-i", INST, "-f")

    assert instances(client) == {new}
    assert (
        f"workflow {WF} instance {INST} was already retried as instance {new} "
        "(RUNNING)" in str(refused.value)
    )
    assert f"`pinball workflow retry -w {WF} -i {new}`" in str(refused.value)


def test_an_archived_instance_whose_copy_is_archived_too_names_that_copy(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    archive_instance(client)
    run(app, "retry", "-w", WF, "-i", INST, "-f")
    [copy] = instances(client)
    archive_instance(client, copy)

    with pytest.raises(WorkflowCommandError, match=f"as instance {copy} .archived"):
        run(app, "retry", "-w", WF, "-i", INST, "-f")
    run(app, "retry", "-w", WF, "-i", copy, "-f")

    [again] = instances(client)
    assert again not in (INST, copy)
    with pytest.raises(WorkflowCommandError, match=f"as instance {again} "):
        run(app, "retry", "-w", WF, "-i", INST, "-f")


def test_retry_of_an_archived_instance_respects_the_cap(
    app: Application, client: MasterClient
) -> None:
    finished_instance(client)
    archive_instance(client)
    for instance in ("1", "2"):
        put_job(client, "parent", names.RUNNABLE, instance=instance)

    with pytest.raises(WorkflowCommandError, match="may run at most 2"):
        run(app, "retry", "-w", WF, "-i", INST, "-f")


def test_retry_of_a_running_instance_is_not_stopped_by_the_cap(
    app: Application, client: MasterClient
) -> None:
    finished_instance(client)
    put_job(client, "other", names.RUNNABLE)
    put_job(client, "parent", names.RUNNABLE, instance="1")

    assert run(app, "retry", "-w", WF, "-i", INST, "-f") == 0


# -- redo


def test_redo_of_a_job_that_is_not_waiting(
    app: Application, client: MasterClient
) -> None:
    put_job(client, "parent", names.RUNNABLE, history=[record()])

    with pytest.raises(WorkflowCommandError, match="queued or running"):
        run(app, "redo", "-w", WF, "-i", INST, "-j", "parent", "-e", "0", "-f")


def test_redo_of_an_unknown_instance(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="is not active"):
        run(app, "redo", "-w", WF, "-i", INST, "-j", "parent", "-e", "0", "-f")


def test_redo_runs_that_executions_events_again(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    first = [{"name": "e0", "creator": "w", "attributes": {"n": "0"}}]
    second = [{"name": "e1", "creator": "w", "attributes": {"n": "1"}}]
    put_job(
        client,
        "child",
        priority=7,
        history=[record(events=first), record(exit_code=1, events=second)],
    )

    run(app, "redo", "-w", WF, "-i", INST, "-j", "child", "-e", "1", "-f")

    tokens = active(client)
    assert f"/workflow/{WF}/{INST}/job/waiting/child" not in tokens
    runnable = tokens[f"/workflow/{WF}/{INST}/job/runnable/child"]
    assert runnable.priority == 7
    assert job_of(runnable).events == second
    assert f"redoing execution 1 of job child in workflow {WF} instance {INST}" in (
        output(capsys)
    )


def test_redo_of_an_execution_that_does_not_exist(
    app: Application, client: MasterClient
) -> None:
    put_job(client, "child", history=[record()])

    with pytest.raises(WorkflowCommandError, match="has executions 0 to 0"):
        run(app, "redo", "-w", WF, "-i", INST, "-j", "child", "-e", "1", "-f")


# -- poison


def tree() -> dict[str, JobToken]:
    """Three levels as an upside-down binary tree: 4 top jobs, 2, then 1."""
    inputs = {
        "job_0_0": ["start", "start_prime"],
        "job_0_1": ["start", "start_prime"],
        "job_0_2": ["start", "start_prime"],
        "job_0_3": ["start", "start_prime"],
        "job_1_0": ["job_0_0", "job_0_1"],
        "job_1_1": ["job_0_2", "job_0_3"],
        "job_2_0": ["job_1_0", "job_1_1"],
    }
    outputs: dict[str, list[str]] = {name: [] for name in inputs}
    for name, upstream in inputs.items():
        for parent in upstream:
            if parent in outputs:
                outputs[parent].append(name)
    jobs = {}
    for name in inputs:
        job = Job(name=name, inputs=inputs[name], outputs=outputs[name])
        token = Token(names.job_name(WF, INST, names.WAITING, name), version=1)
        jobs[name] = JobToken(name, names.WAITING, token, job)
    return jobs


@pytest.mark.parametrize(
    ("roots", "will_run"),
    [
        ([], 0),
        (["job_0_0", "job_0_1", "job_0_2", "job_0_3"], 7),
        (["job_0_0", "job_0_2"], 5),
    ],
)
def test_poison_runs_the_roots_and_everything_below(
    roots: list[str], will_run: int
) -> None:
    planned = poison_command.plan(WF, INST, tree(), [], roots)

    assert len(planned.jobs) == will_run
    assert sorted(planned.runnable) == sorted(roots)


def test_poisoning_all_tops_creates_two_events_per_root() -> None:
    planned = poison_command.plan(
        WF, INST, tree(), [], ["job_0_0", "job_0_1", "job_0_2", "job_0_3"]
    )

    assert planned.new_events == 8
    consumed = [
        event["creator"] for token in planned.updates for event in job_of(token).events
    ]
    assert consumed == ["analyzer"] * 8


def test_poison_queues_events_for_jobs_still_waiting_on_others() -> None:
    planned = poison_command.plan(WF, INST, tree(), [], ["job_0_0", "job_0_2"])

    queued = sorted(t.name for t in planned.updates if names.parse_event_name(t.name))
    assert queued == [
        f"/workflow/{WF}/{INST}/input/job_1_0/job_0_1/poison_4",
        f"/workflow/{WF}/{INST}/input/job_1_1/job_0_3/poison_5",
    ]


def test_poison_unknown_instance(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="neither active nor archived"):
        run(app, "poison", "-w", WF, "-i", INST, "-j", "parent", "-f")


def test_poison_unknown_root(app: Application, client: MasterClient) -> None:
    finished_instance(client)

    with pytest.raises(WorkflowCommandError, match="no job nope in"):
        run(app, "poison", "-w", WF, "-i", INST, "-j", "nope", "-f")


def test_poison_active_instance(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    put_signal(client, ARCHIVE, timestamp=1)
    put_job(client, "parent", instance="other")

    run(app, "poison", "-w", WF, "-i", INST, "-j", "child", "-f")

    tokens = active(client)
    assert f"/workflow/{WF}/{INST}/__SIGNAL__/ARCHIVE" not in tokens
    child = tokens[f"/workflow/{WF}/{INST}/job/runnable/child"]
    assert [e["creator"] for e in job_of(child).events] == ["analyzer"]
    assert job_of(child).history  # an active instance keeps its history
    assert f"/workflow/{WF}/{INST}/job/waiting/parent" in tokens
    assert active(client, "other") != {}
    assert (
        f"poisoned workflow {WF} instance {INST} from roots child: child will run"
        in (output(capsys))
    )


def test_poison_archived_instance_makes_a_fresh_copy(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    archive_instance(client)

    run(app, "poison", "-w", WF, "-i", INST, "-j", "parent", "-f")

    [new] = instances(client)
    tokens = active(client, new)
    assert set(tokens) == {
        f"/workflow/{WF}/{new}/job/runnable/parent",
        f"/workflow/{WF}/{new}/job/waiting/child",
    }
    assert all(not job_of(t).history for t in tokens.values())
    assert f"poisoned workflow {WF} from roots parent as new instance {new}" in (
        output(capsys)
    )


def test_poison_from_the_definitions(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run(app, "poison", "-w", WF, "-j", "child", "-f")

    [new] = instances(client)
    tokens = active(client, new)
    assert set(tokens) == {
        f"/workflow/{WF}/{new}/job/waiting/parent",
        f"/workflow/{WF}/{new}/job/runnable/child",
    }
    parent = tokens[f"/workflow/{WF}/{new}/job/waiting/parent"]
    assert parent.priority == 10
    assert job_of(parent).events == []
    assert "child will run" in output(capsys)


# -- Signals


@pytest.mark.parametrize(
    ("command", "action"), [("drain", DRAIN), ("abort", ABORT), ("exit", EXIT)]
)
def test_set_a_signal_at_instance_level(
    app: Application,
    client: MasterClient,
    capsys: pytest.CaptureFixture[str],
    command: str,
    action: str,
) -> None:
    put_job(client, "parent")

    run(app, command, "-w", WF, "-i", INST, "-f")

    assert action in read_signals(client, WF, INST)
    assert f"/workflow/{WF}/{INST}/__SIGNAL__/{action}" in output(capsys)

    run(app, command, "-w", WF, "-i", INST, "-f")

    assert f"{action} is already set at instance {WF}/{INST} level" in output(capsys)


@pytest.mark.parametrize(
    ("command", "action"), [("undrain", DRAIN), ("unabort", ABORT), ("unexit", EXIT)]
)
def test_remove_a_signal_at_instance_level(
    app: Application,
    client: MasterClient,
    capsys: pytest.CaptureFixture[str],
    command: str,
    action: str,
) -> None:
    put_job(client, "parent")
    set_signal(client, action, WF, INST)

    run(app, command, "-w", WF, "-i", INST)

    assert action not in read_signals(client, WF, INST)
    assert f"removed {action} at instance {WF}/{INST} level" in output(capsys)

    run(app, command, "-w", WF, "-i", INST)

    assert f"{action} is not set at instance {WF}/{INST} level" in output(capsys)


@pytest.mark.parametrize("command", ["unabort", "undrain", "abort"])
def test_signals_of_an_archived_instance_are_refused(
    app: Application, client: MasterClient, command: str
) -> None:
    finished_instance(client)
    put_signal(client, ABORT, timestamp=150)
    archive_instance(client)

    with pytest.raises(WorkflowCommandError) as refused:
        run(app, command, "-w", WF, "-i", INST, "-f")

    message = str(refused.value)
    assert message.startswith(f"workflow {WF} instance {INST} is archived (ABORTED)")
    assert f"`pinball workflow retry -w {WF} -i {INST}`" in message
    assert client.query(names.signal_prefix(WF, INST)) == []


@pytest.mark.parametrize("command", ["drain", "abort", "exit", "unabort"])
def test_a_signal_for_an_instance_that_does_not_exist_is_refused(
    app: Application, client: MasterClient, command: str
) -> None:
    for instance in range(5, 11):
        put_job(client, "parent", instance=str(instance))

    with pytest.raises(WorkflowCommandError) as refused:
        run(app, command, "-w", WF, "-i", "42", "-f")

    message = str(refused.value)
    assert message.startswith(
        f"workflow {WF} instance 42 is neither active nor archived, so a signal "
        "would apply to nothing"
    )
    # Ids grow with time: 10 is newer than 9.
    assert "its active instances, newest first: 10, 9, 8, 7, 6 and 1 more" in message
    assert message.endswith(f"`pinball workflow status -w {WF}`")
    assert client.query(names.instance_prefix(WF, "42")) == []


def test_a_signal_for_a_missing_instance_of_an_idle_workflow_says_so(
    app: Application, client: MasterClient
) -> None:
    with pytest.raises(WorkflowCommandError, match=f"workflow {WF} has no active"):
        run(app, "drain", "-w", WF, "-i", "42")


def test_a_signal_left_without_its_instance_can_be_removed(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    set_signal(client, DRAIN, WF, "42")

    run(app, "undrain", "-w", WF, "-i", "42")

    assert f"removed DRAIN at instance {WF}/42 level" in output(capsys)
    assert read_signals(client, WF, "42") == {}


def test_undrain_says_when_a_wider_drain_still_applies(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    set_signal(client, DRAIN)
    set_signal(client, DRAIN, WF)

    run(app, "undrain", "-w", WF)

    text = output(capsys)
    assert f"removed DRAIN at workflow {WF} level" in text
    assert "DRAIN is still set at global level (/workflow/__SIGNAL__/DRAIN)" in text
    assert "`pinball workflow undrain`" in text


def test_exit_posts_this_configs_generation(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    set_signal(client, EXIT, generation=1)

    run(app, "exit", "-f")

    assert read_signals(client)[EXIT][1].generation == GENERATION
    assert f"older than generation {GENERATION}" in output(capsys)


def test_exit_warns_that_workers_of_this_configs_generation_stay(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run(app, "exit", "-f")

    warning = capsys.readouterr().err
    assert warning.startswith(
        f"pinball: warning: EXIT for generation {GENERATION} applies to workers "
        f"of generations below {GENERATION}; workers of generation {GENERATION} "
        "(this config's) stay"
    )
    assert "raise `generation` in the new workers' config first" in warning
    assert warning.count("\n") == 1


def test_exit_for_every_generation_does_not_warn(
    tmp_path: pathlib.Path, master: MasterThread, capsys: pytest.CaptureFixture[str]
) -> None:
    app = LocalApplication(write_config(tmp_path, generation=0), master)

    run(app, "exit", "-f")

    assert capsys.readouterr().err == ""


def test_abort_needs_force_without_a_terminal(
    app: Application, client: MasterClient
) -> None:
    with pytest.raises(WorkflowCommandError, match="pass -f"):
        run(app, "abort")

    assert read_signals(client) == {}


SIGNAL_COMMANDS = ["drain", "undrain", "abort", "unabort", "exit", "unexit"]


@pytest.mark.parametrize("command", SIGNAL_COMMANDS)
def test_a_signal_for_a_workflow_nothing_knows_is_refused(
    app: Application, client: MasterClient, command: str
) -> None:
    with pytest.raises(WorkflowCommandError) as refused:
        run(app, command, "-w", "some_workflw", "-f")

    message = str(refused.value)
    assert message.startswith(
        "workflow some_workflw is not defined by the parser 'test'"
    )
    assert "it knows: other_workflow, some_workflow" in message
    assert "the master and the store hold nothing of it" in message
    assert message.endswith("did you mean 'some_workflow'?")
    assert client.query(names.workflow_prefix("some_workflw")) == []

    with pytest.raises(WorkflowCommandError, match="not defined by the parser"):
        run(app, command, "-w", "nope", "-i", INST, "-f")


def test_a_signal_for_an_unknown_workflow_does_not_list_it(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(WorkflowCommandError):
        run(app, "drain", "-w", "typo_wf")

    run(app, "list", "--json")

    assert "typo_wf" not in output(capsys)


def retired_with_an_instance(client: MasterClient, store: SqliteStore) -> None:
    put_job(client, "only", workflow="retired")


def retired_with_an_archived_instance(client: MasterClient, store: SqliteStore) -> None:
    put_job(client, "only", workflow="retired")
    client.archive(client.query(names.workflow_prefix("retired")))


def retired_with_a_schedule(client: MasterClient, store: SqliteStore) -> None:
    client.modify(updates=[Token(names.schedule_name("retired"), data="{}")])


def retired_with_a_signal(client: MasterClient, store: SqliteStore) -> None:
    set_signal(client, DRAIN, "retired")


@pytest.mark.parametrize(
    "leftover",
    [
        retired_with_an_instance,
        retired_with_an_archived_instance,
        retired_with_a_schedule,
        retired_with_a_signal,
    ],
)
@pytest.mark.parametrize("command", ["drain", "abort", "undrain"])
def test_a_workflow_no_longer_defined_still_takes_signals(
    app: Application,
    client: MasterClient,
    store: SqliteStore,
    leftover: Any,
    command: str,
) -> None:
    leftover(client, store)

    assert run(app, command, "-w", "retired", "-f") == 0


def test_a_signal_goes_ahead_when_the_parser_cannot_tell(
    tmp_path: pathlib.Path,
    master: MasterThread,
    client: MasterClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = LocalApplication(write_config(tmp_path, parser="no_such_parser"), master)

    assert run(app, "abort", "-w", "maybe_new", "-f") == 0

    assert ABORT in read_signals(client, "maybe_new")
    err = capsys.readouterr().err
    assert err.startswith(
        "pinball: warning: cannot tell whether workflow maybe_new is defined ("
    )
    assert err.endswith("; setting ABORT anyway\n")


def test_a_defined_workflow_without_instances_takes_signals(
    app: Application, client: MasterClient
) -> None:
    assert run(app, "drain", "-w", "other_workflow") == 0

    assert DRAIN in read_signals(client, "other_workflow")


# -- disable and enable


def test_disable_unknown_job(app: Application, client: MasterClient) -> None:
    finished_instance(client)

    with pytest.raises(
        WorkflowCommandError, match="no job nope in .*its jobs are: child, parent"
    ):
        run(app, "disable", "-w", WF, "-i", INST, "-j", "nope", "-f")


def test_disable_and_enable(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    put_job(client, "parent", disabled=True)
    put_job(client, "child", inputs=["parent"])

    assert run(app, "disable", "-w", WF, "-i", INST, "-j", "parent,child", "-f") == 0

    assert all(job_of(t).disabled for t in active(client).values())
    text = output(capsys)
    assert f"disabled 1 job of workflow {WF} instance {INST}: child" in text
    assert "already disabled: parent" in text

    assert run(app, "enable", "-w", WF, "-i", INST, "-j", "parent,child") == 0

    assert not any(job_of(t).disabled for t in active(client).values())
    assert "enabled 2 jobs" in output(capsys)


def test_disable_skips_a_running_job(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    lease = time.time() + 600
    token = put_job(client, "parent", names.RUNNABLE, owner="w", expiration=lease)

    assert run(app, "disable", "-w", WF, "-i", INST, "-j", "parent", "-f") == 1

    assert active(client)[token.name].version == token.version
    assert "skipped, leased by a worker: parent" in output(capsys)


# -- reload


def test_reload_workflow_not_in_the_definitions(
    app: Application, client: MasterClient
) -> None:
    put_job(client, "parent", workflow="gone")

    with pytest.raises(WorkflowCommandError, match="workflow gone is not defined"):
        run(app, "reload", "-w", "gone", "-i", INST, "-f")


def test_reload_updates_definitions_and_skips_running_jobs(
    app: Application,
    client: MasterClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lease = time.time() + 600
    running = put_job(
        client, "parent", names.RUNNABLE, owner="w", expiration=lease, command="old"
    )
    put_job(
        client,
        "child",
        inputs=["parent"],
        command="old",
        history=[record()],
        disabled=True,
    )
    changed = {
        WF: {
            "parent": {"command": "new parent"},
            "child": {
                "command": "new child",
                "inputs": ["parent"],
                "max_attempts": 4,
                "abort_timeout_sec": 60,
                "priority": 5,
            },
        }
    }
    monkeypatch.setitem(DEFINITIONS, WF, changed[WF])

    assert run(app, "reload", "-w", WF, "-i", INST, "-f") == 1

    tokens = active(client)
    child_token = tokens[f"/workflow/{WF}/{INST}/job/waiting/child"]
    child = job_of(child_token)
    assert (child.command, child.max_attempts, child.abort_timeout_sec) == (
        "new child",
        4,
        60,
    )
    assert child.history and child.disabled  # the instance's own state stays
    assert child_token.priority == 5
    assert child_token.owner is None
    assert tokens[running.name].version == running.version
    text = output(capsys)
    assert f"reloaded 1 job of workflow {WF} instance {INST}: child" in text
    assert "skipped, leased by a worker: parent" in text


def test_reload_one_job_leaves_the_others(
    app: Application, client: MasterClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_job(client, "parent", command="old")
    put_job(client, "parent_2", command="old")
    monkeypatch.setitem(
        DEFINITIONS,
        WF,
        {"parent": {"command": "new"}, "parent_2": {"command": "new"}},
    )

    assert run(app, "reload", "-w", WF, "-i", INST, "-j", "parent", "-f") == 0

    tokens = active(client)
    assert job_of(tokens[f"/workflow/{WF}/{INST}/job/waiting/parent"]).command == "new"
    other = tokens[f"/workflow/{WF}/{INST}/job/waiting/parent_2"]
    assert job_of(other).command == "old"
    assert other.owner is None


# -- cleanup


def test_cleanup_keeps_at_least_a_week(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="at least 7 days"):
        run(app, "cleanup", "-a", "6", "-f")


def test_cleanup_with_nothing_old(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    put_job(client, "parent", history=[record(start=now - 10, end=now - 5)])
    archive_instance(client)

    run(app, "cleanup", "-a", "10", "-f")

    assert "nothing to clean" in output(capsys)


def test_cleanup_removes_old_archived_instances_and_their_logs(
    app: Application,
    client: MasterClient,
    store: SqliteStore,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time()
    put_job(
        client, "parent", instance="1", history=[record(start=20, end=30, instance="1")]
    )
    put_job(
        client,
        "parent",
        instance="2",
        history=[record(start=now - 5, end=now, instance="2")],
    )
    # An aborted instance that never ran ends when it was aborted.
    put_job(client, "parent", names.RUNNABLE, instance="3")
    put_signal(client, ABORT, instance="3", timestamp=now - 20 * DAY)
    for instance in ("1", "2", "3"):
        archive_instance(client, instance)
        (tmp_path / "logs" / WF / instance).mkdir(parents=True)
        (tmp_path / "logs" / WF / instance / "parent.stdout").write_text("x")

    run(app, "cleanup", "-a", "10", "-f")

    assert archived(store, "1") == archived(store, "3") == []
    assert len(archived(store, "2")) == 1
    assert sorted(p.name for p in (tmp_path / "logs" / WF).iterdir()) == ["2"]
    text = output(capsys)
    assert f"{WF}/3: ABORTED" in text
    assert "removed 3 archived tokens of 2 instances and 2 log folders" in text


# -- status and list


def test_status_of_an_instance(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    set_signal(client, DRAIN, WF)

    run(app, "status", "-w", WF, "-i", INST, "--json")

    shown = json.loads(output(capsys))
    assert shown["status"] == "FAILURE"
    assert shown["signals"] == [f"DRAIN (workflow {WF})"]
    assert [
        (j["name"], j["status"], j["attempts"], j["last_exit_code"])
        for j in shown["jobs"]
    ] == [
        ("child", "FAILURE", 1, 1),
        ("parent", "SUCCESS", 1, 0),
    ]

    run(app, "status", "-w", WF, "-i", INST)

    text = output(capsys)
    assert text.startswith(f"workflow {WF} instance {INST}: FAILURE\n")
    assert "child" in text and "FAILURE" in text


def test_status_of_an_archived_instance(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    archive_instance(client)

    run(app, "status", "-w", WF, "-i", INST, "--json")

    shown = json.loads(output(capsys))
    assert (shown["status"], shown["archived"]) == ("FAILURE", True)


def test_status_of_an_unknown_workflow(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="no workflow nope"):
        run(app, "status", "-w", "nope")


def test_status_of_a_workflow_lists_active_and_archived_instances(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client, instance="1")
    archive_instance(client, "1")
    put_job(client, "parent", names.RUNNABLE, instance="2")

    run(app, "status", "-w", WF, "--json")

    shown = json.loads(output(capsys))
    assert (shown["status"], shown["last_instance"], shown["running_instances"]) == (
        "RUNNING",
        "2",
        1,
    )
    # Newest first: instance 2 has not started yet, so it is newer than 1.
    assert [
        (i["instance"], i["status"], i["archived"]) for i in shown["instances"]
    ] == [
        ("2", "RUNNING", False),
        ("1", "FAILURE", True),
    ]


def test_status_of_a_workflow_lists_the_newest_instance_first(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    for instance in ("1", "2", "3"):
        put_job(
            client,
            "parent",
            instance=instance,
            history=[record(start=100 * int(instance), instance=instance)],
        )

    run(app, "status", "-w", WF)

    header, columns, *rows = output(capsys).splitlines()
    assert header.endswith(", last 3")
    assert columns.split()[0] == "INSTANCE"
    assert [row.split()[0] for row in rows] == ["3", "2", "1"]


def test_list_shows_every_workflow(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_instance(client)
    put_job(client, "only", names.RUNNABLE, workflow="other_workflow", instance="9")
    client.modify(updates=[Token(names.schedule_name("scheduled_only"), data="{}")])
    set_signal(client, DRAIN)

    run(app, "list", "--json")

    shown = {w["workflow"]: w for w in json.loads(output(capsys))}
    assert set(shown) == {WF, "other_workflow", "scheduled_only"}
    assert shown[WF]["status"] == "FAILURE"
    assert shown["other_workflow"]["status"] == "RUNNING"
    assert shown["scheduled_only"]["status"] == "NEVER_RUN"

    run(app, "list")

    assert f"workflow {WF}: FAILURE, 0 running instances, last {INST}" in output(capsys)


# -- Definitions with problems, read by the YAML parser

#: Workflow files whose ``some_workflow`` cannot be built, by what is wrong,
#: with a line of the problem the error must show.
BROKEN: dict[str, tuple[dict[str, str], str]] = {
    "cycle": (
        {
            "flows.yaml": f"""\
workflows:
  {WF}:
    jobs:
      a: {{command: "true", depends_on: [b]}}
      b: {{command: "true", depends_on: [a]}}
"""
        },
        f"flows.yaml:4:7: workflow {WF}, job a: the jobs depend on each other "
        "in a cycle: a -> b -> a",
    ),
    "missing dependency": (
        {
            "flows.yaml": f"""\
workflows:
  {WF}:
    jobs:
      a: {{command: "true", depends_on: [nope]}}
"""
        },
        f"flows.yaml:4:41: workflow {WF}, job a: depends on 'nope', which is "
        "not a job of this workflow",
    ),
    "unknown key": (
        {
            "flows.yaml": f"""\
workflows:
  {WF}:
    jobs:
      a: {{command: "true", retries: 3}}
"""
        },
        f"flows.yaml:4:28: workflow {WF}, job a: unknown job key 'retries'",
    ),
    "defined twice": (
        {
            "a.yaml": f'workflows: {{{WF}: {{jobs: {{a: {{command: "true"}}}}}}}}\n',
            "b.yaml": f'workflows: {{{WF}: {{jobs: {{a: {{command: "true"}}}}}}}}\n',
        },
        f"b.yaml:1:13: workflow {WF}: is also defined in ",
    ),
}


@pytest.fixture(params=sorted(BROKEN))
def broken(request: pytest.FixtureRequest) -> tuple[dict[str, str], str]:
    return BROKEN[request.param]


def yaml_app(
    tmp_path: pathlib.Path, master: MasterThread, files: dict[str, str]
) -> LocalApplication:
    """An application whose YAML parser reads ``files``, written to a folder."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    config = write_config(tmp_path, parser="yaml", parser_params={"path": "flows"})
    return LocalApplication(config, master)


def test_start_refuses_a_definition_with_problems_in_one_message(
    tmp_path: pathlib.Path,
    master: MasterThread,
    client: MasterClient,
    broken: tuple[dict[str, str], str],
) -> None:
    files, problem = broken
    app = yaml_app(tmp_path, master, files)

    with pytest.raises(WorkflowCommandError) as error:
        run(app, "start", "-w", WF)

    message = str(error.value)
    assert message.startswith(
        f"workflow {WF} has a problem in its definition; fix it:\n  "
    )
    assert problem in message
    assert "cannot start" not in message
    assert instances(client) == set()


def test_poison_of_a_new_instance_refuses_a_definition_with_problems(
    tmp_path: pathlib.Path,
    master: MasterThread,
    client: MasterClient,
    broken: tuple[dict[str, str], str],
) -> None:
    files, problem = broken
    app = yaml_app(tmp_path, master, files)

    with pytest.raises(WorkflowCommandError) as error:
        run(app, "poison", "-w", WF, "-j", "a", "-f")

    assert problem in str(error.value)
    assert instances(client) == set()


def test_reload_refuses_a_definition_with_problems(
    tmp_path: pathlib.Path,
    master: MasterThread,
    client: MasterClient,
    broken: tuple[dict[str, str], str],
) -> None:
    files, problem = broken
    app = yaml_app(tmp_path, master, files)
    put_job(client, "a", command="echo old")
    before = active(client)

    with pytest.raises(WorkflowCommandError) as error:
        run(app, "reload", "-w", WF, "-i", INST, "-f")

    assert problem in str(error.value)
    assert active(client) == before


def test_start_of_a_workflow_in_a_file_that_does_not_parse(
    tmp_path: pathlib.Path, master: MasterThread
) -> None:
    text = f'workflows:\n  {WF}:\n    jobs:\n      a:\n        command: "echo hi\n'
    app = yaml_app(tmp_path, master, {"flows.yaml": text})

    with pytest.raises(WorkflowCommandError) as error:
        run(app, "start", "-w", WF)

    lines = str(error.value).splitlines()
    assert lines[0].startswith(f"workflow {WF} is not defined by the parser 'yaml'")
    assert lines[1] == "the definitions have 1 problem that may hide it:"
    assert lines[2] == (
        f"  {tmp_path}/flows/flows.yaml:5:18: not valid YAML: while scanning a "
        "quoted scalar that starts here, found unexpected end of stream at line 6, "
        "column 1"
    )


def test_an_unknown_workflow_is_not_blamed_on_other_workflows_problems(
    tmp_path: pathlib.Path, master: MasterThread
) -> None:
    app = yaml_app(tmp_path, master, BROKEN["cycle"][0])

    with pytest.raises(WorkflowCommandError) as error:
        run(app, "start", "-w", "nosuch")

    assert str(error.value) == (
        "workflow nosuch is not defined by the parser 'yaml' (parser_params "
        f"{{'path': 'flows'}}); it knows: {WF}"
    )


def test_start_shows_the_refusal_of_any_parser(
    app: Application, client: MasterClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: DictParser, workflow: str, instance: str) -> list[Token]:
        raise ValueError(f"workflow {workflow} needs the table 'sales' first")

    monkeypatch.setattr(DictParser, "instance_tokens", refuse)

    with pytest.raises(WorkflowCommandError, match="needs the table 'sales' first"):
        run(app, "start", "-w", WF)
    assert instances(client) == set()


# -- Reading the store while the master is down


def test_the_store_answers_reads_as_the_master_does(
    client: MasterClient, sqlite_url: str
) -> None:
    for instance, priority in (("1", 5.0), ("2", 9.0), ("3", 5.0)):
        put_job(client, "parent", names.RUNNABLE, instance=instance, priority=priority)
    prefix = names.workflow_prefix(WF)
    queries = [Query(prefix), Query(prefix, max_tokens=2, contains="/runnable/")]

    with StoreClient(SqliteStore(sqlite_url)) as from_store:
        assert from_store.query_many(queries) == client.query_many(queries)
        assert from_store.group(prefix, "/") == client.group(prefix, "/")
        assert from_store.count([prefix]) == [3]
        assert from_store.read(queries, counts=[prefix]) == client.read(
            queries, counts=[prefix]
        )
        with pytest.raises(MasterError, match="modify needs the master"):
            from_store.modify(updates=[Token("/x")])


# -- As a process


@pytest.fixture
def process_config(tmp_path: pathlib.Path, master: MasterThread) -> pathlib.Path:
    assert master.port is not None
    return write_config(
        tmp_path,
        master_host="127.0.0.1",
        master_port=master.port,
        client_connect_attempts=1,
        client_timeout_sec=20,
        parser="test_workflow_cli:ParserPlugin",
    )


def pinball(config: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pinball_core -c CONFIG workflow ARGS``; stdin is no TTY."""
    env = os.environ.copy()
    # The test parser is this module, imported by its dotted path.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(pathlib.Path(__file__).parent), env.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), "workflow", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_start_and_status_as_a_process(process_config: pathlib.Path) -> None:
    started = pinball(process_config, "start", "-w", WF)

    assert started.returncode == 0, started.stderr
    instance = started.stdout.split(" instance ")[1].split(":")[0]
    shown = pinball(process_config, "status", "-w", WF, "-i", instance, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "RUNNING"


def test_refusals_are_one_line_errors(
    process_config: pathlib.Path, client: MasterClient
) -> None:
    finished_instance(client)

    result = pinball(process_config, "stop", "-w", WF, "-i", INST)

    assert result.returncode == 2
    assert result.stderr.startswith("pinball: error: not changing anything: stop")
    assert len(result.stderr.splitlines()) == 1
    assert len(active(client)) == 2


def test_a_definition_with_problems_is_one_error_line_and_exit_2(
    tmp_path: pathlib.Path, master: MasterThread
) -> None:
    (tmp_path / "flows.yaml").write_text(BROKEN["cycle"][0]["flows.yaml"])
    assert master.port is not None
    config = write_config(
        tmp_path,
        master_host="127.0.0.1",
        master_port=master.port,
        client_connect_attempts=1,
        parser="yaml",
        parser_params={"path": "flows.yaml"},
    )

    result = pinball(config, "start", "-w", WF, "-f")

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"pinball: error: workflow {WF} has a problem in its definition; fix it:",
        f"  {tmp_path}/{BROKEN['cycle'][1]}; break it, or declare the "
        "workflow 'cyclic: true'",
    ]


@pytest.fixture
def master_down(tmp_path: pathlib.Path) -> pathlib.Path:
    """A config on the test's store whose master address answers nothing."""
    return write_config(
        tmp_path,
        master_host="127.0.0.1",
        master_port=free_port(),
        parser="test_workflow_cli:ParserPlugin",
    )


def test_an_unreachable_master_is_one_plain_error_line(
    master_down: pathlib.Path,
) -> None:
    result = pinball(master_down, "start", "-w", WF)

    address = f"127.0.0.1:{yaml.safe_load(master_down.read_text())['master_port']}"
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"pinball: error: cannot reach the master at {address}: ")
    # A one-shot command gives up quickly, whatever client_connect_attempts says.
    assert "gave up after 3 attempts" in line
    assert line.endswith("is it running? (`pinball master`)")


@pytest.mark.parametrize("command", [["list"], ["status", "-w", WF]])
def test_a_misspelt_store_is_named_and_not_created(
    tmp_path: pathlib.Path, command: list[str]
) -> None:
    path = tmp_path / "nonexistent" / "dir" / "p.db"
    config = write_config(
        tmp_path,
        store=f"sqlite:///{path}",
        master_host="127.0.0.1",
        master_port=free_port(),
        parser="test_workflow_cli:ParserPlugin",
    )

    result = pinball(config, *command)

    assert result.returncode == 1, result.stderr
    assert (
        f"no Pinball store at {path} (store in {config}); has a master ever run "
        "on it? start one with `pinball master`"
    ) in result.stderr
    assert "no such table" not in result.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_status_and_list_read_the_store_when_the_master_is_down(
    master_down: pathlib.Path, client: MasterClient
) -> None:
    finished_instance(client, instance="1")
    archive_instance(client, "1")
    put_job(client, "parent", names.RUNNABLE, instance="2")

    shown = pinball(master_down, "status", "-w", WF, "--json")
    listed = pinball(master_down, "list")
    one = pinball(master_down, "status", "-w", WF, "-i", "1")

    assert shown.returncode == 0, shown.stderr
    assert {
        (i["instance"], i["status"], i["archived"])
        for i in json.loads(shown.stdout)["instances"]
    } == {("1", "FAILURE", True), ("2", "RUNNING", False)}
    for result in (shown, listed, one):
        assert result.returncode == 0, result.stderr
        [warning] = result.stderr.splitlines()
        assert warning.startswith("pinball: warning: cannot reach the master at ")
        assert "showing what the store holds" in warning
    assert f"workflow {WF}: RUNNING, 1 running instance, last 2" in listed.stdout
    assert one.stdout.startswith(f"workflow {WF} instance 1: FAILURE (archived)")
