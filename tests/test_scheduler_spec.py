"""The schedule token's content: one format for every parser, read strictly.

The format written by the first parsers stays as it was; newer keys appear
only when used, and keys a later version adds survive a rewrite.
"""

import json
import pathlib
import textwrap
from typing import Any

import pytest
from pinball_parser_yaml.parser import YamlParser

from pinball_core.scheduler.spec import (
    Schedule,
    ScheduleError,
    ScheduleSpec,
    ScheduleState,
    parse_recurrence,
    schedule_token,
)
from pinball_core.token import Token
from pinball_core.workflow import names

# What the YAML parser wrote before calendar periods and catch-up existed.
FIRST_FORMAT = {
    "workflow": "daily_report",
    "recurrence_sec": 86400,
    "start": "2026-01-01T00:30:00",
    "timezone": "UTC",
    "overrun_policy": "SKIP",
    "max_running_instances": 1,
    "emails": ["owner@example.com"],
}


def test_the_first_format_reads_and_writes_back_unchanged() -> None:
    spec = ScheduleSpec.from_data(FIRST_FORMAT)

    assert spec.recurrence_sec == 86400
    assert spec.emails == ("owner@example.com",)
    assert spec.to_data() == FIRST_FORMAT


def test_new_keys_are_written_only_when_used() -> None:
    spec = ScheduleSpec(
        workflow="monthly",
        recurrence="P1M",
        start="2026-01-31T09:00:00",
        timezone="Europe/Berlin",
        catchup=True,
        max_catchup=3,
    )

    data = spec.to_data()

    assert data["recurrence"] == "P1M"
    assert "recurrence_sec" not in data and "cron" not in data
    assert data["catchup"] is True and data["max_catchup"] == 3
    assert ScheduleSpec.from_data(data) == spec
    plain = ScheduleSpec(workflow="w", cron="0 * * * *").to_data()
    assert "catchup" not in plain and "max_catchup" not in plain


def test_state_and_unknown_keys_survive_a_rewrite() -> None:
    data = dict(FIRST_FORMAT, owner_team="data", state={"next_run": 1.5e9})
    token = Token(names.schedule_name("daily_report"), data=json.dumps(data))

    schedule = Schedule.from_token(token)
    again = json.loads(schedule.with_state(delayed_since=7.0).to_json())

    assert schedule.state.next_run == 1.5e9
    assert again["owner_team"] == "data"
    assert again["state"] == {"next_run": 1.5e9, "delayed_since": 7.0}


def test_the_original_policy_numbers_are_read_as_names() -> None:
    for number, name in [(0, "SKIP"), (1, "ABORT_RUNNING"), (4, "START_NEW")]:
        data = dict(FIRST_FORMAT, overrun_policy=number)
        assert ScheduleSpec.from_data(data).overrun_policy == name


def test_a_parser_builds_tokens_with_the_model() -> None:
    spec = ScheduleSpec(workflow="w", cron="30 2 * * *", timezone="Europe/Berlin")

    token = schedule_token(spec)

    assert token.name == "/schedule/workflow/w"
    assert token.owner is None and token.version is None
    assert ScheduleSpec.from_data(json.loads(token.data or "")) == spec


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"recurrence_sec": None}, "exactly one of recurrence_sec, recurrence or cron"),
        ({"cron": "* * * * *"}, "found recurrence_sec and cron"),
        ({"recurrence_sec": 0}, "recurrence_sec must be at least 1"),
        ({"recurrence_sec": "1d"}, "recurrence_sec must be a number of seconds"),
        ({"recurrence_sec": None, "recurrence": "P1DT1H"}, "mixes calendar parts"),
        ({"recurrence_sec": None, "recurrence": "1M"}, "not an ISO 8601 duration"),
        ({"recurrence_sec": None, "cron": "0 0 30 2 *"}, "names no date that exists"),
        ({"recurrence_sec": None, "cron": "0 0 * *"}, "five fields"),
        ({"recurrence_sec": None, "cron": "30 25 * * *"}, "hour field '25' is not"),
        ({"recurrence_sec": None, "cron": "* * * 13 *"}, "month field '13' is not"),
        ({"timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is unknown"),
        ({"start": "tomorrow"}, "start 'tomorrow' is not an ISO date and time"),
        ({"overrun_policy": "skip it"}, "overrun_policy must name an overrun policy"),
        ({"max_running_instances": 0}, "max_running_instances must be a whole number"),
        ({"max_catchup": -1}, "max_catchup must be a whole number"),
        ({"catchup": "yes"}, "catchup must be true or false"),
        ({"emails": "a@b.c"}, "'emails' must be a list"),
        ({"workflow": "daily report"}, "must be letters, digits and underscores"),
    ],
)
def test_bad_schedules_name_the_key(change: dict[str, Any], reason: str) -> None:
    data = dict(FIRST_FORMAT, **change)

    with pytest.raises(ScheduleError, match=reason) as raised:
        ScheduleSpec.from_data(data, where="schedule token /schedule/workflow/x")

    assert "schedule token /schedule/workflow/x" in str(raised.value)


def test_a_token_whose_name_and_workflow_disagree_is_refused() -> None:
    token = Token("/schedule/workflow/other", data=json.dumps(FIRST_FORMAT))

    with pytest.raises(
        ScheduleError, match="should be /schedule/workflow/daily_report"
    ):
        Schedule.from_token(token)


def test_bad_state_is_refused() -> None:
    data = dict(FIRST_FORMAT, state={"next_run": "soon"})
    token = Token(names.schedule_name("daily_report"), data=json.dumps(data))

    with pytest.raises(ScheduleError, match="state.next_run must be a time"):
        Schedule.from_token(token)
    with pytest.raises(ScheduleError, match="not JSON"):
        Schedule.from_json("{", where="x")


def test_state_round_trip() -> None:
    state = ScheduleState(
        next_run=10.0, anchor="2026-01-01T00:00:00", notified_slot=5.0, aborted=("1",)
    )

    assert ScheduleState.from_data(state.to_data(), where="x") == state


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("30M", {"recurrence_sec": 1800}),
        ("2H", {"recurrence_sec": 7200}),
        ("1d", {"recurrence_sec": 86400}),
        ("1w", {"recurrence_sec": 604800}),
        ("P1M", {"recurrence": "P1M"}),
        ("P1Y", {"recurrence": "P1Y"}),
        ("PT30M", {"recurrence": "PT30M"}),
    ],
)
def test_recurrences_as_people_write_them(text: str, keys: dict[str, Any]) -> None:
    assert parse_recurrence(text) == keys


@pytest.mark.parametrize("text", ["0d", "5x", "1D", "P", "P1DT1H"])
def test_bad_recurrences(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("'", ".")):
        parse_recurrence(text)


# -- The YAML parser writes the new keys ------------------------------------------


def yaml_parser(tmp_path: pathlib.Path, schedule: str) -> YamlParser:
    path = tmp_path / "flows.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            workflows:
              w:
                schedule: {schedule}
                jobs:
                  only: {{command: "true"}}
            """
        )
    )
    return YamlParser(path)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("{recurrence: P1M, start: '2026-01-31T09:00:00'}", {"recurrence": "P1M"}),
        ("{recurrence: P1Y, timezone: America/New_York}", {"recurrence": "P1Y"}),
        ("{recurrence: 1d, catchup: true}", {"recurrence_sec": 86400, "catchup": True}),
        (
            "{cron: '0 * * * *', catchup: true, max_catchup: 3}",
            {"cron": "0 * * * *", "catchup": True, "max_catchup": 3},
        ),
    ],
)
def test_yaml_calendar_periods_and_catchup(
    tmp_path: pathlib.Path, schedule: str, expected: dict[str, Any]
) -> None:
    parser = yaml_parser(tmp_path, schedule)

    token = parser.schedule_token("w")

    assert parser.validate() == []
    assert token is not None
    data = json.loads(token.data or "")
    assert {k: data[k] for k in expected} == expected
    ScheduleSpec.from_data(data)


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("{recurrence: P1DT2H}", "mixes calendar parts"),
        ("{recurrence: P0M}", "is zero"),
        ("{recurrence: 1d, catchup: maybe}", "catchup must be true or false"),
        ("{recurrence: 1d, catchup: true, max_catchup: 0}", "max_catchup must be"),
        ("{cron: '0 0 31 2 *'}", "names no date that exists"),
    ],
)
def test_yaml_bad_new_keys(tmp_path: pathlib.Path, schedule: str, reason: str) -> None:
    problems = yaml_parser(tmp_path, schedule).validate()

    assert len(problems) == 1
    assert reason in problems[0]
    assert "flows.yaml:3:" in problems[0]
