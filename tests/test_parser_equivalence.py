"""The same workflow written in Python and in YAML makes identical tokens.

Both parsers hand their definitions to :mod:`pinball_core.workflow.definition`
for checks, priorities and payloads; these tests hold them to it on the
examples shipped in ``examples/`` and on a workflow using every option.
"""

import json
import pathlib
import textwrap

import pytest
from pinball_parser_python import PythonParser
from pinball_parser_yaml import YamlParser

from pinball_core.components import Parser
from pinball_core.token import Token

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

EVERY_OPTION_YAML = """\
workflows:
  everything:
    schedule: {cron: "15 3 * * 1-5", start: "2026-02-01T03:15:00",
               timezone: Europe/Berlin, overrun_policy: DELAY_UNTIL_SUCCESS,
               max_running_instances: 2}
    emails: [team@example.com]
    jobs:
      wait: {condition: "test -f /tmp/flag", max_attempts: 5, retry_delay_sec: 30}
      first:
        command: "echo PINBALL:EVENT_ATTR:n=1"
        emails: [me@example.com, team@example.com]
        priority: 7.5
      second:
        python: "pkg.jobs:run"
        depends_on: [first, wait]
        max_attempts: 4
        retry_delay_sec: 2.5
        retry_backoff: 2
        max_retry_delay_sec: 60
        warn_timeout_sec: 10
        abort_timeout_sec: 20
      third: {command: "echo %(n)s", depends_on: [second], disabled: true}
      fourth: {command: "true", depends_on: [first]}
  looping:
    cyclic: true
    jobs:
      start: {command: "true"}
      a: {command: "true", depends_on: [start, b]}
      b: {command: "true", depends_on: [a]}
"""

EVERY_OPTION_PYTHON = """\
from datetime import datetime

from pinball_parser_python import Schedule, Workflow

everything = Workflow(
    "everything",
    schedule=Schedule(cron="15 3 * * 1-5", start=datetime(2026, 2, 1, 3, 15),
                      timezone="Europe/Berlin", overrun_policy="DELAY_UNTIL_SUCCESS",
                      max_running_instances=2),
    emails=["team@example.com"],
)
wait = everything.condition("wait", "test -f /tmp/flag", max_attempts=5,
                            retry_delay_sec=30)
first = everything.shell("first", "echo PINBALL:EVENT_ATTR:n=1",
                         emails=["me@example.com", "team@example.com"], priority=7.5)
second = everything.python(
    "second", "pkg.jobs:run", depends_on=[first, wait], max_attempts=4,
    retry_delay_sec=2.5, retry_backoff=2, max_retry_delay_sec=60,
    warn_timeout_sec=10, abort_timeout_sec=20,
)
everything.shell("third", "echo %(n)s", depends_on=[second], disabled=True)
everything.shell("fourth", "true", depends_on=[first])

looping = Workflow("looping", cyclic=True)
looping.shell("start", "true")
looping.shell("a", "true", depends_on=["start", "b"])
looping.shell("b", "true", depends_on=["a"])

WORKFLOWS = [everything, looping]
"""


def tokens_of(parser: Parser, workflow: str) -> list[tuple[str, float, str | None]]:
    """The tokens, but for where each parser's jobs import Python from.

    That is the folder of the definitions, which differs between the formats
    by design; everything else must be equal.
    """
    tokens: list[Token] = parser.instance_tokens(workflow, "1")
    found = []
    for token in tokens:
        data = json.loads(token.data or "{}")
        data.pop("python_path", None)
        found.append((token.name, token.priority, json.dumps(data, sort_keys=True)))
    return sorted(found)


def schedule_of(parser: Parser, workflow: str) -> tuple[str, str | None] | None:
    token = parser.schedule_token(workflow)
    return None if token is None else (token.name, token.data)


def assert_same(python: Parser, yaml: Parser) -> None:
    assert python.validate() == []
    assert yaml.validate() == []
    assert python.workflow_names() == yaml.workflow_names()
    for workflow in yaml.workflow_names():
        assert tokens_of(python, workflow) == tokens_of(yaml, workflow), workflow
        assert schedule_of(python, workflow) == schedule_of(yaml, workflow), workflow


def test_shipped_examples_are_the_same_in_both_formats() -> None:
    python = PythonParser({"path": str(EXAMPLES / "python" / "workflows.py")})
    yaml = YamlParser(EXAMPLES / "yaml")

    assert_same(python, yaml)
    assert len(yaml.workflow_names()) == 6


def test_every_option_is_the_same_in_both_formats(tmp_path: pathlib.Path) -> None:
    (tmp_path / "w.yaml").write_text(EVERY_OPTION_YAML)
    (tmp_path / "w.py").write_text(EVERY_OPTION_PYTHON)

    assert_same(
        PythonParser({"path": str(tmp_path / "w.py")}), YamlParser(tmp_path / "w.yaml")
    )


@pytest.mark.parametrize(
    ("yaml_job", "python_job", "reason"),
    [
        (
            "b: {command: 'true', depends_on: [nope]}",
            "w.shell('b', 'true', depends_on=['nope'])",
            "job b: depends on 'nope', which is not a job of this workflow",
        ),
        (
            "b: {command: 'true', depends_on: [b]}",
            "w.shell('b', 'true', depends_on=['b'])",
            "job b: depends on itself",
        ),
        (
            "b: {command: 'true', depends_on: [a]}\n"
            "      a: {command: 'x', depends_on: [b]}",
            "w.shell('b', 'true', depends_on=['a'])\n"
            "w.shell('a', 'x', depends_on=['b'])",
            "the jobs depend on each other in a cycle: b -> a -> b",
        ),
    ],
)
def test_refusals_read_the_same(
    tmp_path: pathlib.Path, yaml_job: str, python_job: str, reason: str
) -> None:
    (tmp_path / "w.yaml").write_text(f"workflows:\n  w:\n    jobs:\n      {yaml_job}\n")
    (tmp_path / "w.py").write_text(
        "from pinball_parser_python import Workflow\nw = Workflow('w')\n"
        + textwrap.dedent(python_job)
        + "\n"
    )

    (from_yaml,) = YamlParser(tmp_path / "w.yaml").validate()
    (from_python,) = PythonParser({"path": str(tmp_path / "w.py")}).validate()

    # The place differs (a line and column, a line); the reason is the same.
    assert reason in from_yaml and reason in from_python
    assert (
        from_yaml.split(": ", 1)[1].split(";")[0]
        == from_python.split(": ", 1)[1].split(";")[0]
    )
