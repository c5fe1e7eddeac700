"""``pinball workflow reschedule|unschedule|next`` and ``pinball scheduler``.

The workflow commands run in-process on a real master with a parser
registered here; ``pinball scheduler`` also runs as a real process, with
the YAML parser, and is stopped with a real SIGTERM.
"""

import argparse
import datetime
import json
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import yaml

from pinball_core import hookimpl
from pinball_core.app import Application
from pinball_core.cli import main
from pinball_core.client import HttpClient, MasterClient
from pinball_core.commands import workflow as workflow_cli
from pinball_core.commands.workflow._shared import WorkflowCommandError
from pinball_core.errors import DefinitionError
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.scheduler.history import read_scheduled_run
from pinball_core.scheduler.reschedule import parked_token, read_schedule
from pinball_core.scheduler.scheduler import PARKED_OWNER
from pinball_core.scheduler.spec import ScheduleSpec
from pinball_core.scheduler.testing import DictParser, ManualClock, SchedulerRig
from pinball_core.scheduler.timeline import upcoming
from pinball_core.token import Token
from pinball_core.workflow import names

DEFINITIONS = {
    "nightly": ScheduleSpec(
        workflow="nightly",
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        emails=("a@example.com",),
    ),
    "hourly": ScheduleSpec(workflow="hourly", recurrence_sec=3600),
    "by_hand": None,
}


class ParserPlugin:
    """Makes the :class:`DictParser` the test keeps in ``parser``."""

    def __init__(self) -> None:
        self.parser = DictParser(DEFINITIONS)

    @hookimpl
    def pinball_make_parser(self, params: dict[str, Any]) -> DictParser:
        return self.parser


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


@pytest.fixture
def plugin() -> ParserPlugin:
    return ParserPlugin()


@pytest.fixture
def app(
    tmp_path: pathlib.Path, master: MasterThread, plugin: ParserPlugin
) -> Application:
    config = tmp_path / "pinball.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "store": f"sqlite:///{tmp_path / 'pinball.db'}",
                "parser": "test",
            }
        )
    )
    app = LocalApplication(config, master)
    app.plugins.register(plugin, "parser.test")
    return app


@pytest.fixture
def client(master: MasterThread) -> MasterClient:
    return master.client()


def workflow(app: Application, *argv: str, force: bool = True) -> int:
    """Run ``pinball workflow ARGV`` in-process; the exit code."""
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    workflow_cli.register(subparsers)
    args = parser.parse_args(["workflow", *argv, *(["-f"] if force else [])])
    code: int = args.handler(args, app)
    return code


# -- reschedule -------------------------------------------------------------------


def test_reschedule_writes_every_scheduled_workflow(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert workflow(app, "reschedule") == 0

    out = capsys.readouterr().out
    assert "hourly: scheduled, first run" in out
    assert "nightly: scheduled, first run" in out and "CE" in out
    assert "by_hand" not in out
    found = read_schedule(client, "nightly")
    assert found is not None
    token, schedule = found
    assert schedule.spec == DEFINITIONS["nightly"]
    assert token.owner == PARKED_OWNER
    assert token.expiration == schedule.state.next_run
    assert read_schedule(client, "by_hand") is None


def test_reschedule_keeps_the_place_of_an_unchanged_cadence(
    app: Application,
    client: MasterClient,
    plugin: ParserPlugin,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workflow(app, "reschedule")
    before = read_schedule(client, "hourly")
    assert before is not None
    capsys.readouterr()

    # Same cadence, other settings: kept in place, settings rewritten.
    plugin.parser.workflows["hourly"] = ScheduleSpec(
        workflow="hourly", recurrence_sec=3600, overrun_policy="DELAY"
    )
    workflow(app, "reschedule", "-w", "hourly")
    after = read_schedule(client, "hourly")
    assert after is not None
    assert after[1].state == before[1].state
    assert after[1].spec.overrun_policy == "DELAY"
    assert "hourly: settings updated, next run kept" in capsys.readouterr().out

    # Nothing changed: no write at all.
    workflow(app, "reschedule", "-w", "hourly")
    again = read_schedule(client, "hourly")
    assert again is not None and again[0].version == after[0].version
    assert "hourly: unchanged" in capsys.readouterr().out

    # A new cadence starts afresh.
    plugin.parser.workflows["hourly"] = ScheduleSpec(
        workflow="hourly", recurrence_sec=600
    )
    workflow(app, "reschedule", "-w", "hourly")
    replaced = read_schedule(client, "hourly")
    assert replaced is not None
    assert replaced[1].spec.recurrence_sec == 600
    assert "hourly: rescheduled (was every 3600 s in UTC, DELAY)" in (
        capsys.readouterr().out
    )


def test_reschedule_reports_stale_schedules_and_removes_them_when_asked(
    app: Application,
    client: MasterClient,
    plugin: ParserPlugin,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workflow(app, "reschedule")
    del plugin.parser.workflows["hourly"]
    plugin.parser.workflows["nightly"] = None
    capsys.readouterr()

    assert workflow(app, "reschedule") == 0
    out = capsys.readouterr().out
    assert "hourly: has a schedule, but the parser no longer defines it; kept" in out
    assert "nightly: has a schedule, but its definition has no schedule; kept" in out
    assert "--remove-missing` removes them" in out
    assert read_schedule(client, "hourly") is not None

    assert workflow(app, "reschedule", "--remove-missing") == 0
    out = capsys.readouterr().out
    assert "hourly: schedule removed" in out
    assert read_schedule(client, "hourly") is None
    assert read_schedule(client, "nightly") is None


def test_reschedule_of_an_unknown_workflow(app: Application) -> None:
    with pytest.raises(WorkflowCommandError, match="not defined by the parser"):
        workflow(app, "reschedule", "-w", "nope")


def test_reschedule_reports_schedules_it_cannot_use_and_writes_the_rest(
    app: Application,
    client: MasterClient,
    plugin: ParserPlugin,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugin.parser.workflows["hourly"] = ScheduleSpec(
        workflow="hourly", recurrence_sec=3600, overrun_policy="NO_SUCH_POLICY"
    )

    assert workflow(app, "reschedule") == 1

    err = capsys.readouterr().err
    assert "pinball: error: workflow hourly:" in err
    assert "NO_SUCH_POLICY" in err
    assert read_schedule(client, "hourly") is None
    assert read_schedule(client, "nightly") is not None


# -- unschedule ---------------------------------------------------------------------


def test_unschedule_removes_the_schedule_only(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow(app, "reschedule")

    assert workflow(app, "unschedule", "-w", "hourly") == 0

    assert "removed the schedule of workflow hourly" in capsys.readouterr().out
    assert read_schedule(client, "hourly") is None
    assert read_schedule(client, "nightly") is not None
    with pytest.raises(WorkflowCommandError, match="has no schedule"):
        workflow(app, "unschedule", "-w", "hourly")


def test_unschedule_asks_first(app: Application, client: MasterClient) -> None:
    workflow(app, "reschedule")

    with pytest.raises(WorkflowCommandError, match="pass -f"):
        workflow(app, "unschedule", "-w", "hourly", force=False)
    assert read_schedule(client, "hourly") is not None


# -- next ----------------------------------------------------------------------------


def store_schedule(client: MasterClient, spec: ScheduleSpec, now: float) -> None:
    from pinball_core.scheduler.reschedule import new_schedule

    client.modify(updates=[parked_token(new_schedule(spec, now))])


# The command reads the real clock: these schedules are years ahead of it.


def test_next_shows_local_and_utc_times_across_a_change(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ScheduleSpec(workflow="nightly", cron="30 2 * * *", timezone="Europe/Berlin")
    store_schedule(
        client,
        spec,
        datetime.datetime(2030, 3, 29, 12, tzinfo=datetime.UTC).timestamp(),
    )

    assert workflow(app, "next", "-w", "nightly", "-n", "3") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "workflow nightly: cron '30 2 * * *' in Europe/Berlin, overrun policy SKIP, "
        "at most 3 running (default)"
    )
    assert lines[2].split() == [
        "2030-03-30",
        "02:30:00",
        "CET",
        "(+0100)",
        "2030-03-30",
        "01:30:00",
        "UTC",
    ]
    assert lines[3].split() == [
        "2030-03-31",
        "03:00:00",
        "CEST",
        "(+0200)",
        "2030-03-31",
        "01:00:00",
        "UTC",
    ]
    assert lines[4].split() == [
        "2030-04-01",
        "02:30:00",
        "CEST",
        "(+0200)",
        "2030-04-01",
        "00:30:00",
        "UTC",
    ]


def test_next_as_json(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ScheduleSpec(
        workflow="monthly",
        recurrence="P1M",
        start="2030-01-31T09:00:00",
        timezone="America/New_York",
    )
    store_schedule(
        client, spec, datetime.datetime(2030, 2, 1, tzinfo=datetime.UTC).timestamp()
    )

    assert workflow(app, "next", "-w", "monthly", "-n", "2", "--json") == 0

    body = json.loads(capsys.readouterr().out)
    assert body["workflow"] == "monthly"
    assert body["schedule"]["recurrence"] == "P1M"
    assert [r["local"] for r in body["runs"]] == [
        "2030-02-28T09:00:00-05:00",
        "2030-03-31T09:00:00-04:00",
    ]
    assert [r["utc"] for r in body["runs"]] == [
        "2030-02-28T14:00:00+00:00",
        "2030-03-31T13:00:00+00:00",
    ]


def test_next_shows_what_the_scheduler_then_does(
    client: MasterClient, plugins_for_rig: PluginManager
) -> None:
    # Around the end of summer time in London, on 25 October 2026.
    start = datetime.datetime(2026, 10, 23, tzinfo=datetime.UTC)
    rig = SchedulerRig(
        client, ManualClock(start), DictParser({}), plugins_for_rig.make_overrun_policy
    )
    rig.add(ScheduleSpec(workflow="w", cron="0 1,2 * * *", timezone="Europe/London"))
    found = read_schedule(client, "w")
    assert found is not None

    predicted = upcoming(found[1], rig.clock(), 10)
    while rig.clock() < predicted[-1]:
        rig.clock.advance(1800)
        rig.run_pass()
        rig.finish_all("w")

    assert [r.scheduled_time for r in rig.runs("w")] == predicted
    on_the_day = [r.local_time for r in rig.runs("w") if "2026-10-25" in r.local_time]
    assert on_the_day == ["2026-10-25T01:00:00+01:00", "2026-10-25T02:00:00+00:00"]


@pytest.fixture
def plugins_for_rig() -> PluginManager:
    return PluginManager()


class ProblemParser(DictParser):
    """A parser whose workflows all have a problem in their definitions."""

    def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
        raise DefinitionError(workflow, [f"{workflow}.yaml:4:7: job a: a cycle"])


def test_a_due_run_of_a_definition_with_problems_is_refused_naming_them(
    client: MasterClient, plugins_for_rig: PluginManager
) -> None:
    rig = SchedulerRig(
        client,
        ManualClock(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)),
        ProblemParser({}),
        plugins_for_rig.make_overrun_policy,
    )
    rig.add(ScheduleSpec(workflow="w", recurrence_sec=3600))
    rig.clock.advance(3601)

    rig.run_pass()

    [refused] = rig.calls("pinball_schedule_refused")
    assert refused["reason"] == (
        "workflow w has a problem in its definition; fix it: w.yaml:4:7: job a: a cycle"
    )


def test_next_of_a_workflow_whose_definition_has_no_schedule(
    app: Application,
) -> None:
    with pytest.raises(WorkflowCommandError) as error:
        workflow(app, "next", "-w", "by_hand")

    assert str(error.value).startswith(
        "workflow by_hand has no schedule: its definition has none; add one there"
    )
    with pytest.raises(WorkflowCommandError, match="-n must be from 1"):
        workflow(app, "next", "-w", "by_hand", "-n", "0")


def test_next_of_a_schedule_not_written_yet(app: Application) -> None:
    with pytest.raises(WorkflowCommandError) as error:
        workflow(app, "next", "-w", "hourly")

    assert str(error.value) == (
        "workflow hourly has no schedule in the master; `pinball workflow "
        "reschedule -w hourly` writes the one its definition has"
    )


def test_next_of_a_workflow_that_is_not_defined(app: Application) -> None:
    with pytest.raises(WorkflowCommandError) as error:
        workflow(app, "next", "-w", "nosuch")

    message = str(error.value)
    assert message.startswith("workflow nosuch is not defined by the parser 'test'")
    assert message.endswith("it knows: by_hand, hourly, nightly")
    assert "reschedule" not in message


def test_reschedule_of_a_workflow_whose_definition_has_no_schedule(
    app: Application, client: MasterClient, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(WorkflowCommandError) as error:
        workflow(app, "reschedule", "-w", "by_hand")

    assert str(error.value).startswith(
        "workflow by_hand has no schedule in its definition"
    )
    assert capsys.readouterr().out == ""
    assert client.query(names.SCHEDULE_PREFIX) == []


# -- pinball scheduler ------------------------------------------------------------


WORKFLOWS = """\
workflows:
  tick:
    schedule: {recurrence: 1H, timezone: Europe/Berlin}
    jobs:
      only: {command: "true"}
"""


@pytest.fixture
def process_config(tmp_path: pathlib.Path, master: MasterThread) -> pathlib.Path:
    (tmp_path / "flows.yaml").write_text(WORKFLOWS)
    config = tmp_path / "process.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            home: {tmp_path / "home"}
            master_port: {master.port}
            store: sqlite:///{tmp_path / "pinball.db"}
            parser: yaml
            parser_params: {{path: flows.yaml}}
            scheduler_poll_sec: 1
            """
        )
    )
    return config


def make_due(client: MasterClient, workflow_name: str) -> float:
    """Move the schedule's next run to a second ago; its slot."""
    found = read_schedule(client, workflow_name)
    assert found is not None
    token, schedule = found
    slot = time.time() - 1
    due = schedule.with_state(next_run=slot)
    client.modify(updates=[parked_token(due, token.version)])
    return slot


def pinball(config: pathlib.Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_scheduler_process_starts_due_runs_and_stops_on_sigterm(
    process_config: pathlib.Path, master: MasterThread, tmp_path: pathlib.Path
) -> None:
    client = master.client()
    done = pinball(process_config, "workflow", "reschedule")
    assert done.returncode == 0, done.stderr
    assert "tick: scheduled, first run" in done.stdout
    slot = make_due(client, "tick")

    log = (tmp_path / "scheduler.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pinball_core",
            "-c",
            str(process_config),
            "-m",
            "scheduler",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        tokens: list[Any] = []
        while not tokens and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "scheduler.log").read_text()
            tokens = client.query(names.workflow_prefix("tick"))
            time.sleep(0.1)
        assert tokens, (tmp_path / "scheduler.log").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        log.close()

    assert code == 0
    run = read_scheduled_run(tokens)
    assert run is not None and run.scheduled_time == slot
    output = (tmp_path / "scheduler.log").read_text()
    assert "started tick instance" in output
    assert "stopped after" in output


def test_scheduler_once_prints_the_pass(
    process_config: pathlib.Path,
    master: MasterThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert master.port is not None
    http = HttpClient("127.0.0.1", master.port, connect_attempts=2)
    assert main(["-c", str(process_config), "workflow", "reschedule"]) == 0
    make_due(http, "tick")
    capsys.readouterr()

    assert main(["-c", str(process_config), "scheduler", "--once"]) == 0

    assert "1 schedule(s), 1 due, 1 claimed: 1 started" in capsys.readouterr().out
    assert main(["-c", str(process_config), "workflow", "next", "-w", "tick"]) == 0
    assert "every 1 hour, overrun policy SKIP" in capsys.readouterr().out
    http.close()


def test_status_shows_the_slot_a_scheduled_instance_runs_for(
    process_config: pathlib.Path,
    master: MasterThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(process_config)
    assert main(["-c", config, "workflow", "reschedule"]) == 0
    slot = make_due(master.client(), "tick")
    assert main(["-c", config, "scheduler", "--once"]) == 0
    (instance,) = master.client().group(names.workflow_prefix("tick"), "/")
    instance = instance.removeprefix(names.workflow_prefix("tick")).strip("/")
    capsys.readouterr()

    show = ["-c", config, "workflow", "status", "-w", "tick", "-i", instance]
    assert main([*show, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert main(show) == 0
    text = capsys.readouterr().out

    assert shown["scheduled_for"] == slot
    assert "scheduled for" in text and "Europe/Berlin" in text


def test_scheduler_with_a_parser_that_cannot_load_stops_at_once(
    tmp_path: pathlib.Path, master: MasterThread, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"master_port: {master.port}\nparser: not_installed\n")

    assert main(["-c", str(config), "scheduler"]) == 2

    assert "parser plugin 'not_installed'" in capsys.readouterr().err


# -- reschedule with definitions that have problems --------------------------------

REPORTS = """\
workflows:
  nightly_report:
    schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
    jobs:
      only: {command: "true"}
"""

SYNC = """\
workflows:
  hourly_sync:
    schedule: {recurrence: 1H}
    jobs:
      only: {command: "true"}
"""


@pytest.fixture
def flows_config(tmp_path: pathlib.Path, master: MasterThread) -> str:
    """A config whose YAML parser reads reports.yaml and sync.yaml."""
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "reports.yaml").write_text(REPORTS)
    (folder / "sync.yaml").write_text(SYNC)
    config = tmp_path / "flows-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "master_port": master.port,
                "store": f"sqlite:///{tmp_path / 'pinball.db'}",
                "parser": "yaml",
                "parser_params": {"path": "flows"},
            }
        )
    )
    return str(config)


def test_reschedule_reports_a_file_that_does_not_parse_and_keeps_its_schedules(
    flows_config: str,
    tmp_path: pathlib.Path,
    master: MasterThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = master.client()
    assert main(["-c", flows_config, "workflow", "reschedule"]) == 0
    before = read_schedule(client, "nightly_report")
    assert before is not None
    reports = tmp_path / "flows" / "reports.yaml"
    reports.write_text(REPORTS + "oops: [\n")
    (tmp_path / "flows" / "sync.yaml").write_text(SYNC.replace("1H", "2H"))
    capsys.readouterr()

    assert main(["-c", flows_config, "workflow", "reschedule"]) == 1

    captured = capsys.readouterr()
    assert f"pinball: error: {reports}:7:1: not valid YAML" in captured.err
    assert "hourly_sync: rescheduled" in captured.out
    assert (
        "nightly_report: has a schedule, but the parser does not define it now, "
        "perhaps because of the problems in the definitions; kept"
    ) in captured.out
    assert "--remove-missing` removes them" not in captured.out

    assert main(["-c", flows_config, "workflow", "reschedule", "--remove-missing"]) == 1

    captured = capsys.readouterr()
    assert "schedule removed" not in captured.out
    assert f"{reports}:7:1: not valid YAML" in captured.err
    assert (
        "pinball: error: not removing the schedule of nightly_report: the "
        "definitions have problems that may hide its workflow"
    ) in captured.err
    assert "`pinball workflow validate`" in captured.err
    after = read_schedule(client, "nightly_report")
    assert after is not None and after[0] == before[0]

    reports.write_text(REPORTS)
    assert main(["-c", flows_config, "workflow", "reschedule", "--remove-missing"]) == 0
    assert "nightly_report: unchanged" in capsys.readouterr().out


def test_reschedule_of_one_workflow_keeps_its_schedule_when_problems_may_hide_it(
    flows_config: str,
    tmp_path: pathlib.Path,
    master: MasterThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = master.client()
    assert main(["-c", flows_config, "workflow", "reschedule"]) == 0
    (tmp_path / "flows" / "reports.yaml").write_text(REPORTS + "oops: [\n")
    capsys.readouterr()

    argv = ["workflow", "reschedule", "-w", "nightly_report", "--remove-missing"]
    assert main(["-c", flows_config, *argv]) == 1

    assert "not valid YAML" in capsys.readouterr().err
    assert read_schedule(client, "nightly_report") is not None

    # A workflow never scheduled nor defined: refused, naming what may hide it.
    assert main(["-c", flows_config, "workflow", "reschedule", "-w", "nightly"]) == 2

    err = capsys.readouterr().err
    assert "workflow nightly is not defined by the parser 'yaml'" in err
    assert "it knows: hourly_sync" in err
    assert "problem that may hide it" in err


def test_reschedule_keeps_a_schedule_its_definition_lost_to_a_problem(
    flows_config: str,
    tmp_path: pathlib.Path,
    master: MasterThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = master.client()
    assert main(["-c", flows_config, "workflow", "reschedule"]) == 0
    sync = tmp_path / "flows" / "sync.yaml"
    sync.write_text(SYNC.replace("recurrence: 1H", "recurrence: 2H, timezone: Mars"))
    capsys.readouterr()

    code = main(["-c", flows_config, "workflow", "reschedule", "--remove-missing"])

    captured = capsys.readouterr()
    assert code == 1
    assert "workflow hourly_sync: timezone 'Mars' is unknown" in captured.err
    assert (
        "hourly_sync: its definition has problems, so its schedule is left as it was"
    ) in captured.out
    assert "nightly_report: unchanged" in captured.out
    kept = read_schedule(client, "hourly_sync")
    assert kept is not None and kept[1].spec.recurrence_sec == 3600


def test_reschedule_holds_a_workflow_its_parser_refuses_to_build(
    app: Application,
    client: MasterClient,
    plugin: ParserPlugin,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workflow(app, "reschedule")
    before = read_schedule(client, "hourly")
    # Problems that only building finds, and that name no workflow.
    plugin.parser = ProblemParser(
        {**DEFINITIONS, "hourly": ScheduleSpec(workflow="hourly", recurrence_sec=60)}
    )
    capsys.readouterr()

    assert workflow(app, "reschedule") == 1

    captured = capsys.readouterr()
    assert "hourly: its definition has problems, so its schedule is left as it was" in (
        captured.out
    )
    assert "pinball: error: hourly.yaml:4:7: job a: a cycle" in captured.err
    assert "by_hand" not in captured.out
    after = read_schedule(client, "hourly")
    assert before is not None and after is not None and after[0] == before[0]
