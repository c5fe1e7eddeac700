"""What a valid Python definition turns into: job tokens and schedule tokens."""

import json
import logging
import pathlib
from collections.abc import Callable

import pytest
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Job

from pinball_parser_python import PythonParser, Workflow

Parse = Callable[[str], PythonParser]
WriteModule = Callable[..., pathlib.Path]


def one_workflow(name: str) -> str:
    """Source of a module defining workflow ``name`` with one job."""
    return (
        "from pinball_parser_python import Workflow\n"
        f"WORKFLOWS = [Workflow({name!r})]\n"
        "WORKFLOWS[0].shell('a', 'true')\n"
    )


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
    assert (extract.inputs, extract.outputs) == ([names.WORKFLOW_START], ["transform"])
    assert extract.events and extract.command == "echo PINBALL:EVENT_ATTR:rows=10"

    transform_token, transform = tokens["transform"]
    assert transform_token.name.endswith("/job/waiting/transform")
    assert (transform.inputs, transform.outputs) == (["extract"], ["load"])
    assert (transform.max_attempts, transform.retry_delay_sec) == (3, 5.0)
    assert transform.emails == ["owner@example.com"]

    load = tokens["load"][1]
    assert (load.kind, load.command, load.condition) == (
        "python",
        "mypackage.jobs:load",
        False,
    )
    condition = tokens["wait_for_input"][1]
    assert (condition.kind, condition.condition) == ("shell", True)
    # Its own retry delay wins; the attempts keep the condition default.
    assert (condition.max_attempts, condition.retry_delay_sec) == (10, 60.0)


def test_priorities_grow_with_downstream_work(parse: Parse, example: str) -> None:
    tokens = jobs_by_name(parse(example).instance_tokens("daily_report", "7"))

    assert {n: t.priority for n, (t, _) in tokens.items()} == {
        "extract": 3.0,
        "transform": 2.0,
        "load": 1.0,
        "wait_for_input": 1.0,
    }


def test_priority_set_by_the_job_wins(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w")
        a = w.shell("a", "true", priority=50)
        b = w.shell("b", "true", depends_on=[a])
        w.shell("c", "true", depends_on=[a, b])
        """
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    assert {n: t.priority for n, (t, _) in tokens.items()} == {
        "a": 50.0,
        "b": 2.0,
        "c": 1.0,
    }


def test_every_job_option_reaches_the_payload(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w", emails=["team@example.com"])
        w.shell(
            "a", "true", emails=["me@example.com", "team@example.com"],
            max_attempts=4, retry_delay_sec=2.5, retry_backoff=2,
            max_retry_delay_sec=60, warn_timeout_sec=10, abort_timeout_sec=20,
            disabled=True,
        )
        """
    )
    (token,) = parser.instance_tokens("w", "1")
    job = Job.from_json(token.data)

    assert job.emails == ["team@example.com", "me@example.com"]
    assert (job.max_attempts, job.retry_delay_sec, job.retry_backoff) == (4, 2.5, 2.0)
    assert (job.max_retry_delay_sec, job.warn_timeout_sec) == (60.0, 10.0)
    assert (job.abort_timeout_sec, job.disabled) == (20.0, True)


def test_emails_as_one_comma_separated_string(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w", emails="a@example.com, b@example.com")
        w.shell("a", "true")
        """
    )
    (token,) = parser.instance_tokens("w", "1")

    assert Job.from_json(token.data).emails == ["a@example.com", "b@example.com"]


def test_duplicate_dependency_is_collapsed_with_a_warning(
    parse: Parse, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w")
        a = w.shell("a", "true")
        w.shell("b", "true", depends_on=[a, "a"])
        """
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    assert parser.validate() == []
    assert tokens["b"][1].inputs == ["a"]
    assert "dependency 'a' is listed twice" in caplog.text
    assert "workflows.py:5" in caplog.text


def test_single_dependency_without_a_list(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w")
        a = w.shell("a", "true")
        w.shell("b", "true", depends_on=a)
        w.shell("c", "true", depends_on="b")
        """
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    assert (tokens["b"][1].inputs, tokens["c"][1].inputs) == (["a"], ["b"])


def test_cyclic_workflow_is_allowed_when_declared(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w", cyclic=True)
        w.shell("start", "true")
        w.shell("a", "true", depends_on=["start", "b"])
        w.shell("b", "true", depends_on=["a"])
        """
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    assert parser.validate() == []
    assert tokens["a"][1].inputs == ["start", "b"]
    assert tokens["b"][1].outputs == ["a"]


def test_interval_schedule_token(parse: Parse, example: str) -> None:
    token = parse(example).schedule_token("daily_report")

    assert token is not None and token.name == "/schedule/workflow/daily_report"
    assert (token.owner, token.expiration) == (None, None)
    assert json.loads(token.data) == {
        "workflow": "daily_report",
        "recurrence_sec": 86400,
        "start": "2026-01-01T00:30:00",
        "timezone": "UTC",
        "overrun_policy": "SKIP",
        "max_running_instances": 1,
        "emails": ["owner@example.com"],
    }


def test_cron_schedule_token_with_its_own_emails(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Schedule, Workflow
        w = Workflow(
            "w",
            schedule=Schedule(cron="30 0 * * *", timezone="Europe/Berlin",
                              emails=["oncall@example.com"]),
            emails=["owner@example.com"],
        )
        w.shell("a", "true")
        """
    )
    token = parser.schedule_token("w")

    assert token is not None
    assert json.loads(token.data) == {
        "workflow": "w",
        "cron": "30 0 * * *",
        "start": None,
        "timezone": "Europe/Berlin",
        "overrun_policy": "SKIP",
        "max_running_instances": None,
        "emails": ["owner@example.com", "oncall@example.com"],
    }


def test_unscheduled_workflow_has_no_schedule_token(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w")
        w.shell("a", "true")
        """
    )

    assert parser.schedule_token("w") is None


def test_module_level_workflows_count_without_a_list(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        first = Workflow("first")
        first.shell("a", "true")
        second = Workflow("second")
        second.shell("a", "true")
        """
    )

    assert parser.workflow_names() == ["first", "second"]


def test_workflows_dict_by_name(parse: Parse) -> None:
    parser = parse(
        """
        from pinball_parser_python import Workflow
        w = Workflow("w")
        w.shell("a", "true")
        WORKFLOWS = {"w": w}
        """
    )

    assert parser.workflow_names() == ["w"]


def test_module_parameter_imports_a_package(importable: pathlib.Path) -> None:
    package = importable / "team_flows"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "daily.py").write_text(
        "from pinball_parser_python import Workflow\n"
        "w = Workflow('daily')\n"
        "w.shell('a', 'true')\n"
        "OTHER = [Workflow('other')]\n"
        "OTHER[0].shell('b', 'true')\n"
    )

    assert PythonParser({"module": "team_flows.daily"}).workflow_names() == ["daily"]
    named = PythonParser({"module": "team_flows.daily:OTHER"})
    assert named.workflow_names() == ["other"]


def test_module_is_read_anew_by_each_parser(importable: pathlib.Path) -> None:
    module = importable / "changing_flows.py"
    module.write_text(one_workflow("one"))
    assert PythonParser({"module": "changing_flows"}).workflow_names() == ["one"]

    module.write_text(one_workflow("second_one"))
    assert PythonParser({"module": "changing_flows"}).workflow_names() == ["second_one"]


def test_module_next_to_the_config_file(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "config_dir"
    folder.mkdir()
    (folder / "beside_config.py").write_text(one_workflow("w"))
    parser = PythonParser({"module": "beside_config"}, base_dir=folder)

    assert parser.workflow_names() == ["w"]


def test_folder_of_files(write_module: WriteModule) -> None:
    write_module(
        one_workflow("a"),
        "flows/a.py",
    )
    path = write_module(
        one_workflow("b"),
        "flows/b.py",
    )

    assert PythonParser({"path": str(path.parent)}).workflow_names() == ["a", "b"]


def test_relative_path_starts_at_the_base_dir(write_module: WriteModule) -> None:
    path = write_module(one_workflow("w"))
    parser = PythonParser({"path": path.name}, base_dir=path.parent)

    assert parser.workflow_names() == ["w"]


def test_workflow_built_in_code_without_a_module() -> None:
    # The API is plain Python: a definition made in a function works too.
    workflow = Workflow("made_here")
    first = workflow.shell("first", "true")
    workflow.shell("second", "true", depends_on=[first])

    assert workflow.problems == []
    assert workflow.jobs["second"].depends_on == ["first"]
    assert workflow.jobs["first"].site.file == __file__


@pytest.mark.parametrize(
    ("every", "keys"),
    [
        ("timedelta(minutes=30)", {"recurrence_sec": 1800}),
        ("90", {"recurrence_sec": 90}),
        ("'1d'", {"recurrence_sec": 86400}),
        ("'P1M'", {"recurrence": "P1M"}),
    ],
)
def test_every_forms(parse: Parse, every: str, keys: dict[str, object]) -> None:
    parser = parse(
        "from datetime import timedelta\n"
        "from pinball_parser_python import Schedule, Workflow\n"
        f"w = Workflow('w', schedule=Schedule(every={every}, catchup=True))\n"
        "w.shell('a', 'true')\n"
    )
    token = parser.schedule_token("w")

    assert parser.validate() == []
    assert token is not None
    data = json.loads(token.data)
    assert {k: data[k] for k in keys} == keys
    assert data["catchup"] is True
