"""Refusals: every problem of a definition is listed at once, with its place.

Each problem names the file and line of the call that made the workflow or
job, the workflow and the job; nothing with problems can start.
"""

import pathlib
from collections.abc import Callable

import pytest
from pinball_core.errors import DefinitionError

from pinball_parser_python import PythonParser
from pinball_parser_python.parser import make

Parse = Callable[[str], PythonParser]
WriteModule = Callable[..., pathlib.Path]

HEADER = (
    "from datetime import timedelta\n"
    "from pinball_parser_python import Schedule, Workflow\n"
)


def problems(parse: Parse, body: str) -> list[str]:
    return parse(HEADER + body).validate()


def only(parse: Parse, body: str) -> str:
    found = problems(parse, body)
    assert len(found) == 1, found
    return found[0]


def test_unknown_dependency_with_a_suggestion(parse: Parse) -> None:
    problem = only(
        parse,
        "w = Workflow('w')\n"
        "w.shell('transform', 'true')\n"
        "w.shell('load', 'true', depends_on=['transfrom'])\n",
    )

    assert problem.endswith(
        "workflows.py:5: workflow w, job load: depends on 'transfrom', which is not "
        "a job of this workflow; did you mean 'transform'?"
    )


def test_job_depending_on_itself(parse: Parse) -> None:
    problem = only(parse, "w = Workflow('w')\nw.shell('a', 'true', depends_on=['a'])\n")

    assert "workflows.py:4: workflow w, job a: depends on itself" in problem


def test_cycle_prints_its_path(parse: Parse) -> None:
    problem = only(
        parse,
        "w = Workflow('w')\n"
        "w.shell('a', 'true', depends_on=['c'])\n"
        "w.shell('b', 'true', depends_on=['a'])\n"
        "w.shell('c', 'true', depends_on=['b'])\n",
    )

    assert "workflows.py:4: workflow w, job a:" in problem
    assert "cycle: a -> b -> c -> a;" in problem
    assert "cyclic=True" in problem


def test_duplicate_job(parse: Parse) -> None:
    problem = only(
        parse, "w = Workflow('w')\nw.shell('a', 'true')\nw.python('a', 'm:f')\n"
    )

    assert "workflows.py:5: workflow w, job a: is defined twice" in problem
    assert "first at " in problem and "workflows.py:4" in problem


def test_duplicate_workflow(parse: Parse) -> None:
    problem = only(
        parse,
        "one = Workflow('w')\none.shell('a', 'true')\n"
        "two = Workflow('w')\ntwo.shell('b', 'true')\n"
        "WORKFLOWS = [one, two]\n",
    )

    assert "workflows.py:5: workflow w: is also defined at " in problem


def test_bad_names(parse: Parse) -> None:
    found = problems(parse, "w = Workflow('my flow')\nw.shell('load-data', 'true')\n")

    assert any(
        "workflow name 'my flow' must be letters" in p and "'my_flow'" in p
        for p in found
    )
    assert any("job name 'load-data'" in p and "'load_data'" in p for p in found)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("Schedule()", "exactly one of every or cron"),
        ("Schedule(every=60, cron='* * * * *')", "exactly one of every or cron"),
        ("Schedule(every=0)", "every must be at least 1 second"),
        ("Schedule(every=timedelta(milliseconds=5))", "every must be at least 1"),
        ("Schedule(every='1x')", "must be a positive whole number and a unit"),
        ("Schedule(every=[1])", "timedelta, a number of seconds or text"),
        ("Schedule(cron='61 * * * *')", "the minute field '61' is not in 0-59"),
        ("Schedule(cron='* * * *')", "not a cron expression"),
        ("Schedule(every=60, start='yesterday')", "must be a datetime or an ISO"),
        ("Schedule(every=60, timezone='Mars/Olympus')", "timezone 'Mars/Olympus'"),
        ("Schedule(every=60, overrun_policy='SKIPP')", "did you mean 'SKIP'?"),
        ("Schedule(every=60, max_running_instances=0)", "at least 1"),
        ("'daily'", "schedule must be a Schedule"),
    ],
)
def test_bad_schedules(parse: Parse, schedule: str, expected: str) -> None:
    problem = only(
        parse, f"w = Workflow('w', schedule={schedule})\nw.shell('a', 'x')\n"
    )

    assert "workflows.py:3: workflow w:" in problem
    assert expected in problem


def test_unknown_keyword_with_a_suggestion(parse: Parse) -> None:
    found = problems(
        parse,
        "w = Workflow('w', email=['a@example.com'])\n"
        "w.shell('a', 'true', max_attempt=3)\n",
    )

    assert any(
        "workflow w: unknown workflow option 'email'; did you mean 'emails'?" in p
        for p in found
    )
    assert any(
        "job a: unknown job option 'max_attempt'; did you mean 'max_attempts'?" in p
        for p in found
    )


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("w.shell('a', '')", "needs a command as non-empty text"),
        ("w.shell('a', 42)", "needs a command as non-empty text"),
        ("w.python('a', 'no_colon')", "must be 'module:function'"),
        ("w.condition('a', ' ')", "needs a command as non-empty text"),
        ("w.shell('a', 'x', max_attempts=0)", "max_attempts must be a whole number"),
        ("w.shell('a', 'x', max_attempts=True)", "max_attempts must be a whole"),
        ("w.shell('a', 'x', retry_delay_sec=-1)", "retry_delay_sec must be at least 0"),
        ("w.shell('a', 'x', retry_backoff=0.5)", "retry_backoff must be at least 1"),
        ("w.shell('a', 'x', warn_timeout_sec=0)", "warn_timeout_sec must be more"),
        ("w.shell('a', 'x', abort_timeout_sec='1')", "abort_timeout_sec must be a"),
        ("w.shell('a', 'x', priority='high')", "priority must be a number"),
        ("w.shell('a', 'x', disabled='yes')", "disabled must be True or False"),
        ("w.shell('a', 'x', emails=[1])", "emails must be a list of addresses"),
        ("w.shell('a', 'x', depends_on=[1])", "depends_on item 1 must be a job"),
    ],
)
def test_bad_job_values(parse: Parse, call: str, expected: str) -> None:
    problem = only(parse, f"w = Workflow('w')\n{call}\n")

    assert "workflows.py:4: workflow w, job a:" in problem
    assert expected in problem


def test_dependency_on_a_job_of_another_workflow(parse: Parse) -> None:
    found = problems(
        parse,
        "one = Workflow('one')\nfar = one.shell('far', 'true')\n"
        "two = Workflow('two')\ntwo.shell('near', 'true', depends_on=[far])\n"
        "WORKFLOWS = [one, two]\n",
    )

    assert len(found) == 1
    assert "workflow two, job near: depends on job far of workflow one" in found[0]


def test_every_problem_at_once(parse: Parse) -> None:
    found = problems(
        parse,
        "w = Workflow('w', schedule=Schedule(cron='nope'))\n"
        "w.shell('a', 'true', depends_on=['b', 'missing'])\n"
        "w.shell('b', 'true', depends_on=['a'], max_attempts=0)\n"
        "w.shell('bad name', 'true')\n",
    )

    assert len(found) == 5, found
    joined = "\n".join(found)
    for expected in ("cron 'nope'", "'missing'", "max_attempts", "'bad name'", "cycle"):
        assert expected in joined


def test_workflow_with_problems_cannot_start_but_others_can(parse: Parse) -> None:
    parser = parse(
        HEADER + "good = Workflow('good')\ngood.shell('a', 'true')\n"
        "bad = Workflow('bad')\nbad.shell('a', 'true', depends_on=['x', 'y'])\n"
    )

    with pytest.raises(DefinitionError) as raised:
        parser.instance_tokens("bad", "1")
    assert "workflow bad has 2 problems in its definition" in str(raised.value)
    assert "'x'" in str(raised.value) and "'y'" in str(raised.value)
    assert len(parser.instance_tokens("good", "1")) == 1


def test_bad_schedule_blocks_its_schedule_token(parse: Parse) -> None:
    parser = parse(HEADER + "w = Workflow('w', schedule=Schedule(every=-5))\n")

    assert parser.schedule_token("w") is None


def test_unknown_workflow_with_a_suggestion(parse: Parse) -> None:
    parser = parse(HEADER + "w = Workflow('daily_report')\nw.shell('a', 'x')\n")

    with pytest.raises(ValueError, match="did you mean 'daily_report'"):
        parser.instance_tokens("daily_reprot", "1")


def test_unknown_workflow_of_a_module_that_fails_to_import(parse: Parse) -> None:
    parser = parse(HEADER + "w = Workflow('w')\nw.shell('a', undefined_name)\n")

    with pytest.raises(ValueError) as raised:
        parser.instance_tokens("w", "1")

    message = str(raised.value)
    assert message.startswith("no workflow 'w' in path ")
    assert "problems outside any workflow may hide it:\n  " in message
    assert "NameError: name 'undefined_name' is not defined" in message


def test_import_error_names_the_module_file_and_line(parse: Parse) -> None:
    (problem,) = parse(
        HEADER + "w = Workflow('w')\nw.shell('a', undefined_name)\n"
    ).validate()

    assert "workflows.py:4: importing workflows module" in problem
    assert "NameError: name 'undefined_name' is not defined" in problem


def test_import_error_in_a_module_it_imports(
    write_module: WriteModule, importable: pathlib.Path
) -> None:
    (importable / "broken_helper.py").write_text("x = 1\nraise RuntimeError('boom')\n")
    path = write_module("import broken_helper\n")

    (problem,) = PythonParser({"path": str(path)}).validate()

    assert "broken_helper.py:2:" in problem
    assert "RuntimeError: boom" in problem


def test_syntax_error_names_the_line(parse: Parse) -> None:
    (problem,) = parse(HEADER + "w = Workflow('w'\n").validate()

    assert "workflows.py:" in problem and "SyntaxError" in problem


def test_missing_module_names_it(tmp_path: pathlib.Path) -> None:
    (problem,) = PythonParser({"module": "no_such_flows.daily"}, tmp_path).validate()

    assert "cannot import workflows module 'no_such_flows.daily'" in problem
    assert "PYTHONPATH" in problem


def test_missing_file(tmp_path: pathlib.Path) -> None:
    (problem,) = PythonParser({"path": str(tmp_path / "nope.py")}).validate()

    assert "nope.py: no such file or folder" in problem


def test_module_without_workflows(parse: Parse) -> None:
    (problem,) = parse("x = 1\n").validate()

    assert "defines no workflows" in problem and "WORKFLOWS" in problem


def test_wrong_things_in_the_list(parse: Parse) -> None:
    (problem,) = parse(HEADER + "WORKFLOWS = ['daily']\n").validate()

    assert "WORKFLOWS[0] must be a Workflow, not str" in problem


def test_import_problem_blocks_every_workflow(write_module: WriteModule) -> None:
    good = write_module(HEADER + "w = Workflow('good')\nw.shell('a', 'x')\n", "f/a.py")
    write_module("raise ValueError('half written')\n", "f/b.py")
    parser = PythonParser({"path": str(good.parent)})

    assert parser.workflow_names() == ["good"]
    with pytest.raises(ValueError, match="half written"):
        parser.instance_tokens("good", "1")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "^parser_params: .* exactly one of module"),
        ({"module": "a", "path": "b"}, "found module and path"),
        (
            {"path": "x.py", "modul": "y"},
            "^parser_params.modul: .* did you mean 'module'?",
        ),
        ({"module": "a", "zzz": 1}, "^parser_params.zzz: .*; it takes module, path"),
    ],
)
def test_bad_parser_params(params: dict[str, str], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        make(params, None)


def test_legacy_params_may_carry_template_parameters() -> None:
    parser = make({"workflows_config": "m.WORKFLOWS", "greeting": "hi"}, None)

    assert parser.params["greeting"] == "hi"
