"""Every refusal: each problem is listed, naming file, line, workflow and job."""

import pathlib
from collections.abc import Callable

import pytest
from pinball_core.errors import DefinitionError

from pinball_parser_yaml import YamlParser

Parse = Callable[[str], YamlParser]
WriteYaml = Callable[..., pathlib.Path]


def only_problem(parser: YamlParser) -> str:
    (problem,) = parser.validate()
    return problem


def test_unknown_dependency(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              extract: {command: "true"}
              load: {command: "true", depends_on: [extrct]}
        """
    )

    problem = only_problem(parser)
    assert problem.startswith(f"{parser.path}:5:44: workflow w, job load: ")
    assert "'extrct', which is not a job of this workflow" in problem
    assert "did you mean 'extract'?" in problem


def test_refused_definition_starts_nothing(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a: {command: "true", depends_on: [nope]}
              b: {command: "true", depends_on: [b]}
        """
    )

    with pytest.raises(DefinitionError) as raised:
        parser.instance_tokens("w", "1")
    message = str(raised.value)
    # Start, reload, poison and graph all build tokens: the words fit each.
    assert message.startswith("workflow w has 2 problems in its definition; fix them:")
    assert isinstance(raised.value, ValueError)
    assert len(raised.value.problems) == 2
    assert "job a: depends on 'nope'" in message
    assert "job b: depends on itself" in message


def test_self_dependency(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a: {command: "true", depends_on: [a]}
        """
    )

    assert only_problem(parser) == (
        f"{parser.path}:4:41: workflow w, job a: depends on itself; "
        "remove it from its own depends_on"
    )


def test_cycle_prints_its_path(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              start: {command: "true"}
              a: {command: "true", depends_on: [start, c]}
              b: {command: "true", depends_on: [a]}
              c: {command: "true", depends_on: [b]}
        """
    )

    problem = only_problem(parser)
    assert problem.startswith(f"{parser.path}:5:7: workflow w, job a: ")
    assert "cycle: a -> b -> c -> a;" in problem
    assert "cyclic: true" in problem


def test_two_separate_cycles_are_both_listed(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a: {command: "true", depends_on: [b]}
              b: {command: "true", depends_on: [a]}
              c: {command: "true", depends_on: [d]}
              d: {command: "true", depends_on: [c]}
        """
    )

    problems = parser.validate()
    assert len(problems) == 2
    assert "a -> b -> a" in problems[0] or "b -> a -> b" in problems[0]
    assert "c -> d -> c" in problems[1] or "d -> c -> d" in problems[1]


def test_duplicate_job_names(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a: {command: "true"}
              a: {command: "false"}
        """
    )

    problem = only_problem(parser)
    assert problem.startswith(f"{parser.path}:5:7: workflow w, job a: ")
    assert "defined twice" in problem


def test_duplicate_workflow_names_in_a_file(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w: {jobs: {a: {command: "true"}}}
          w: {jobs: {b: {command: "true"}}}
        """
    )

    problem = only_problem(parser)
    assert problem.startswith(f"{parser.path}:3:3: ")
    assert "workflow 'w' is defined twice in this file" in problem


def test_duplicate_workflow_names_across_files(
    write_yaml: WriteYaml, tmp_path: pathlib.Path
) -> None:
    first = write_yaml('workflows: {w: {jobs: {a: {command: "true"}}}}', "1.yaml")
    second = write_yaml('workflows: {w: {jobs: {a: {command: "true"}}}}', "2.yaml")

    problem = only_problem(YamlParser(tmp_path))

    assert problem.startswith(f"{second}:1:13: workflow w: ")
    assert f"also defined in {first}:1" in problem


def test_duplicate_setting(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a:
                command: "true"
                max_attempts: 2
                max_attempts: 3
        """
    )

    problem = only_problem(parser)
    assert problem.startswith(f"{parser.path}:7:9: workflow w, job a: ")
    assert "'max_attempts' is written twice" in problem


@pytest.mark.parametrize(
    ("name", "kind"), [("daily-report", "workflow"), ("load.data", "job")]
)
def test_bad_names(parse: Parse, name: str, kind: str) -> None:
    workflow, job = (name, "a") if kind == "workflow" else ("w", name)
    parser = parse(
        f'workflows: {{"{workflow}": {{jobs: {{"{job}": {{command: x}}}}}}}}'
    )

    problem = only_problem(parser)
    assert f"{kind} name {name!r} must be letters, digits and underscores" in problem
    assert problem.startswith(f"{parser.path}:1:")


def test_numeric_name_must_be_quoted(parse: Parse) -> None:
    parser = parse('workflows: {w: {jobs: {123: {command: "true"}}}}')

    assert "write it in quotes" in only_problem(parser)


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("{recurrence: 1d, cron: '* * * * *'}", "exactly one of recurrence or cron"),
        ("{timezone: UTC}", "exactly one of recurrence or cron"),
        ("{recurrence: 5x}", "recurrence '5x' must be a positive whole number"),
        ("{recurrence: 0d}", "recurrence '0d' must be a positive whole number"),
        ("{cron: '30 0 * *'}", "cron '30 0 * *'"),
        ("{recurrence: 1d, timezone: Mars/Olympus}", "timezone 'Mars/Olympus'"),
        ("{recurrence: 1d, overrun_policy: SKIPP}", "did you mean 'SKIP'?"),
        ("{recurrence: 1d, start: tomorrow}", "start 'tomorrow' must be an ISO"),
        ("{recurrence: 1d, max_running_instances: 0}", "max_running_instances"),
        ("{recurrence: 1d, every: 2}", "unknown schedule key 'every'"),
        ("daily", "schedule must be a mapping"),
    ],
)
def test_bad_schedules(parse: Parse, schedule: str, reason: str) -> None:
    parser = parse(
        f"""\
        workflows:
          w:
            schedule: {schedule}
            jobs: {{a: {{command: "true"}}}}
        """
    )

    problem = only_problem(parser)
    assert problem.startswith(f"{parser.path}:3:")
    assert "workflow w: " in problem
    assert reason in problem


def test_unknown_keys_suggest_the_right_one(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            job:
              a: {comand: "true", depends: []}
        """
    )

    problems = parser.validate()
    assert any(
        "unknown workflow key 'job'; did you mean 'jobs'?" in p for p in problems
    )
    assert f"{parser.path}:3:5: workflow w:" in "\n".join(problems)


def test_unknown_job_keys(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a: {comand: "true", retry_delay: 5}
        """
    )

    problems = parser.validate()
    assert any(
        p.startswith(f"{parser.path}:4:11: workflow w, job a: unknown job key 'comand'")
        and "did you mean 'command'?" in p
        for p in problems
    )
    assert any("did you mean 'retry_delay_sec'?" in p for p in problems)
    # The misspelt command leaves the job with nothing to run.
    assert any("exactly one of command, python or condition" in p for p in problems)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("max_attempts: 0", "max_attempts must be a whole number of at least 1"),
        ("max_attempts: 2.5", "max_attempts must be a whole number"),
        ("retry_delay_sec: soon", "retry_delay_sec must be a number, got 'soon'"),
        ("retry_delay_sec: -1", "retry_delay_sec must be at least 0"),
        ("retry_backoff: 0.5", "retry_backoff must be at least 1"),
        ("abort_timeout_sec: 0", "abort_timeout_sec must be more than 0"),
        ("disabled: yes", "disabled must be true or false, got 'yes'"),
        ("priority: high", "priority must be a number"),
        ("emails: me@example.com", "emails must be a list of addresses"),
        ("depends_on: start", "depends_on must be a list of job names"),
        ("python: not-a-callable", "must be 'module:function'"),
        ("command: ''", "must be non-empty text"),
    ],
)
def test_wrong_types(parse: Parse, setting: str, reason: str) -> None:
    extra = "" if setting.startswith(("python", "command")) else ', command: "true"'
    parser = parse(
        f"""\
        workflows:
          w:
            jobs:
              start: {{command: "true"}}
              a: {{{setting}{extra}}}
        """
    )

    problems = parser.validate()
    assert any(reason in p for p in problems), problems
    assert all(p.startswith(f"{parser.path}:5:") for p in problems), problems
    assert all("workflow w, job a: " in p for p in problems), problems


def test_both_command_and_python(parse: Parse) -> None:
    parser = parse('workflows: {w: {jobs: {a: {command: "x", python: "m:f"}}}}')

    assert "found command and python" in only_problem(parser)


def test_every_problem_is_listed_not_only_the_first(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            schedule: {recurrence: 5x}
            jobs:
              a: {command: "true", depends_on: [missing]}
              b: {command: "true", max_attempts: 0}
              b-2: {command: "true"}
          v:
            jobs:
              x: {command: "true", depends_on: [y]}
              y: {command: "true", depends_on: [x]}
        """
    )

    problems = parser.validate()
    assert len(problems) == 5, problems
    assert [p.split(": ", 1)[0].split(":")[1] for p in problems] == [
        "3",
        "6",
        "7",
        "5",
        "10",
    ]


def test_file_that_is_not_a_workflow_file(parse: Parse) -> None:
    parser = parse("- just\n- a list\n")

    assert "the file must be a mapping" in only_problem(parser)


def test_missing_path(tmp_path: pathlib.Path) -> None:
    parser = YamlParser(tmp_path / "nowhere.yaml")

    assert "no such file or folder" in only_problem(parser)
    assert parser.workflow_names() == []


def test_workflow_defined_in_two_files_cannot_start(
    write_yaml: WriteYaml, tmp_path: pathlib.Path
) -> None:
    write_yaml('workflows: {w: {jobs: {a: {command: "true"}}}}', "1.yaml")
    write_yaml('workflows: {w: {jobs: {b: {command: "true"}}}}', "2.yaml")

    with pytest.raises(ValueError, match="also defined in"):
        YamlParser(tmp_path).instance_tokens("w", "1")


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        (
            "{cron: '61 * * * *'}",
            "cron '61 * * * *': the minute field '61' is not in 0-59",
        ),
        ("{recurrence: 1d, timezone: Mars/Olympus}", "timezone 'Mars/Olympus' is"),
        ("{recurrence: 3 parsecs}", "recurrence '3 parsecs' must be"),
        ("{recurrence: 1d, start: tomorrow}", "start 'tomorrow' must be"),
        ("{recurrence: 1d, catchup: 2}", "catchup must be true or false"),
    ],
)
def test_a_bad_schedule_value_names_its_key_once(
    parse: Parse, schedule: str, reason: str
) -> None:
    parser = parse(
        f"""\
        workflows:
          w:
            schedule: {schedule}
            jobs: {{a: {{command: "true"}}}}
        """
    )

    problem = only_problem(parser)
    assert f"workflow w: {reason}" in problem


def test_a_workflow_defined_in_two_files_cannot_be_built(
    write_yaml: WriteYaml,
) -> None:
    first = write_yaml('workflows: {w1: {jobs: {a: {command: "true"}}}}', "a.yaml")
    second = write_yaml('workflows: {w1: {jobs: {a: {command: "true"}}}}', "b.yaml")
    parser = YamlParser(first.parent)

    with pytest.raises(DefinitionError) as raised:
        parser.instance_tokens("w1", "1")

    assert str(raised.value) == (
        "workflow w1 has a problem in its definition; fix it:\n"
        f"  {second}:1:13: workflow w1: is also defined in {first}:1; rename one"
    )
