"""What a valid definition turns into: job tokens and schedule tokens."""

import json
import pathlib
from collections.abc import Callable

import pytest
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Job

from pinball_parser_yaml import YamlParser

Parse = Callable[[str], YamlParser]
WriteYaml = Callable[..., pathlib.Path]


def jobs_by_name(tokens: list[Token]) -> dict[str, tuple[Token, Job]]:
    return {t.name.rsplit("/", 1)[1]: (t, Job.from_json(t.data)) for t in tokens}


def test_example_is_valid(parse: Parse, example: str) -> None:
    parser = parse(example)

    assert parser.validate() == []
    assert parser.workflow_names() == ["daily_report"]


def test_example_tokens(parse: Parse, example: str) -> None:
    tokens = jobs_by_name(parse(example).instance_tokens("daily_report", "7"))

    assert set(tokens) == {"extract", "transform", "load", "wait_for_input"}
    extract_token, extract = tokens["extract"]
    assert extract_token.name == names.job_name(
        "daily_report", "7", "runnable", "extract"
    )
    assert extract.inputs == [names.WORKFLOW_START]
    assert extract.outputs == ["transform"]
    assert extract.events and extract.command == "echo PINBALL:EVENT_ATTR:rows=10"

    transform_token, transform = tokens["transform"]
    assert transform_token.name.endswith("/job/waiting/transform")
    assert (transform.inputs, transform.outputs) == (["extract"], ["load"])
    assert (transform.max_attempts, transform.retry_delay_sec) == (3, 5.0)
    assert transform.events == []
    assert transform.emails == ["owner@example.com"]


def test_python_and_condition_jobs(parse: Parse, example: str) -> None:
    tokens = jobs_by_name(parse(example).instance_tokens("daily_report", "7"))

    load = tokens["load"][1]
    assert (load.kind, load.command, load.condition) == (
        "python",
        "mypackage.jobs:load",
        False,
    )
    condition = tokens["wait_for_input"][1]
    assert (condition.kind, condition.condition) == ("shell", True)
    assert condition.command == "test -f ready.flag"
    # Its own retry delay wins; the attempts keep the condition default.
    assert (condition.max_attempts, condition.retry_delay_sec) == (10, 60.0)


def test_condition_defaults(parse: Parse) -> None:
    parser = parse(
        """
        workflows:
          w:
            jobs:
              c: {condition: "true"}
        """
    )
    (token,) = parser.instance_tokens("w", "1")
    job = Job.from_json(token.data)

    assert (job.condition, job.max_attempts, job.retry_delay_sec) == (True, 10, 300.0)


def test_priorities_grow_with_downstream_work(parse: Parse, example: str) -> None:
    tokens = jobs_by_name(parse(example).instance_tokens("daily_report", "7"))

    priorities = {name: token.priority for name, (token, _) in tokens.items()}
    assert priorities == {
        "extract": 3.0,
        "transform": 2.0,
        "load": 1.0,
        "wait_for_input": 1.0,
    }


def test_priority_set_by_the_job_wins(parse: Parse) -> None:
    parser = parse(
        """
        workflows:
          w:
            jobs:
              a: {command: "true", priority: 50}
              b: {command: "true", depends_on: [a]}
              c: {command: "true", depends_on: [a, b]}
        """
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    assert {n: t.priority for n, (t, _) in tokens.items()} == {
        "a": 50.0,
        "b": 2.0,
        "c": 1.0,
    }


def test_every_job_key_reaches_the_payload(parse: Parse) -> None:
    parser = parse(
        """
        workflows:
          w:
            emails: [team@example.com]
            jobs:
              a:
                command: "true"
                emails: [me@example.com, team@example.com]
                max_attempts: 4
                retry_delay_sec: 2.5
                retry_backoff: 2
                max_retry_delay_sec: 60
                warn_timeout_sec: 10
                abort_timeout_sec: 20
                disabled: true
        """
    )
    (token,) = parser.instance_tokens("w", "1")
    job = Job.from_json(token.data)

    assert job.emails == ["team@example.com", "me@example.com"]
    assert (job.max_attempts, job.retry_delay_sec, job.retry_backoff) == (4, 2.5, 2.0)
    assert (job.max_retry_delay_sec, job.warn_timeout_sec) == (60.0, 10.0)
    assert (job.abort_timeout_sec, job.disabled) == (20.0, True)


def test_duplicate_dependency_is_collapsed_with_a_warning(
    parse: Parse, caplog: pytest.LogCaptureFixture
) -> None:
    parser = parse(
        """
        workflows:
          w:
            jobs:
              a: {command: "true"}
              b: {command: "true", depends_on: [a, a]}
        """
    )

    assert parser.validate() == []
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))
    assert tokens["b"][1].inputs == ["a"]
    assert "dependency 'a' is listed twice" in caplog.text
    assert "workflow w, job b" in caplog.text


def test_cyclic_workflow_is_allowed_when_declared(parse: Parse) -> None:
    parser = parse(
        """
        workflows:
          loop:
            cyclic: true
            jobs:
              start: {command: "true"}
              a: {command: "true", depends_on: [start, b]}
              b: {command: "true", depends_on: [a]}
        """
    )

    assert parser.validate() == []
    tokens = jobs_by_name(parser.instance_tokens("loop", "1"))
    assert tokens["a"][1].inputs == ["start", "b"]
    assert tokens["b"][1].outputs == ["a"]


def test_recurrence_schedule_token(parse: Parse, example: str) -> None:
    token = parse(example).schedule_token("daily_report")

    assert token is not None
    assert token.name == names.schedule_name("daily_report")
    assert token.owner is None and token.expiration is None
    assert json.loads(token.data or "") == {
        "workflow": "daily_report",
        "recurrence_sec": 86400,
        "start": "2026-01-01T00:30:00",
        "timezone": "UTC",
        "overrun_policy": "SKIP",
        "max_running_instances": 1,
        "emails": ["owner@example.com"],
    }


@pytest.mark.parametrize(
    ("recurrence", "seconds"), [("30M", 1800), ("2H", 7200), ("1w", 604800)]
)
def test_recurrence_units(parse: Parse, recurrence: str, seconds: int) -> None:
    parser = parse(
        f"""
        workflows:
          w:
            schedule: {{recurrence: {recurrence}}}
            jobs: {{a: {{command: "true"}}}}
        """
    )

    token = parser.schedule_token("w")
    assert token is not None
    assert json.loads(token.data or "")["recurrence_sec"] == seconds


def test_cron_schedule_token_with_defaults(parse: Parse) -> None:
    parser = parse(
        """
        workflows:
          w:
            schedule: {cron: "30 0 * * *", timezone: Europe/Berlin}
            jobs: {a: {command: "true"}}
        """
    )

    token = parser.schedule_token("w")
    assert token is not None
    assert json.loads(token.data or "") == {
        "workflow": "w",
        "cron": "30 0 * * *",
        "start": None,
        "timezone": "Europe/Berlin",
        "overrun_policy": "SKIP",
        "max_running_instances": None,
        "emails": [],
    }


def test_unscheduled_workflow_has_no_schedule_token(parse: Parse) -> None:
    parser = parse('workflows: {w: {jobs: {a: {command: "true"}}}}')

    assert parser.schedule_token("w") is None


def test_folder_of_files(write_yaml: WriteYaml, tmp_path: pathlib.Path) -> None:
    write_yaml('workflows: {b_flow: {jobs: {a: {command: "true"}}}}', "b.yaml")
    write_yaml('workflows: {a_flow: {jobs: {a: {command: "true"}}}}', "a.yml")
    write_yaml("not: [a workflow file", "notes.txt")
    write_yaml('workflows: {deep: {jobs: {a: {command: "true"}}}}', "sub/c.yaml")

    parser = YamlParser(tmp_path)

    assert parser.workflow_names() == ["a_flow", "b_flow"]
    assert parser.validate() == []


def test_relative_path_starts_at_base_dir(
    write_yaml: WriteYaml, tmp_path: pathlib.Path
) -> None:
    write_yaml('workflows: {w: {jobs: {a: {command: "true"}}}}', "flows/w.yaml")

    parser = YamlParser("flows", base_dir=tmp_path)

    assert parser.workflow_names() == ["w"]


def test_unknown_workflow_is_refused_with_a_suggestion(
    parse: Parse, example: str
) -> None:
    parser = parse(example)

    with pytest.raises(ValueError, match="did you mean 'daily_report'"):
        parser.instance_tokens("daily_reports", "1")
