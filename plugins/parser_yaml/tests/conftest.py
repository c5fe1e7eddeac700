"""Fixtures for the YAML parser's tests: workflow files written on the fly."""

import pathlib
import textwrap
from collections.abc import Callable

import pytest

from pinball_parser_yaml import YamlParser

#: The example of the README, with every kind of job and a schedule.
EXAMPLE = """\
workflows:
  daily_report:
    schedule: {recurrence: 1d, start: "2026-01-01T00:30:00", timezone: UTC,
               overrun_policy: SKIP, max_running_instances: 1}
    emails: [owner@example.com]
    jobs:
      extract: {command: "echo PINBALL:EVENT_ATTR:rows=10"}
      transform:
        command: "echo %(rows)s"
        depends_on: [extract]
        max_attempts: 3
        retry_delay_sec: 5
      load: {python: "mypackage.jobs:load", depends_on: [transform]}
      wait_for_input: {condition: "test -f ready.flag", retry_delay_sec: 60}
"""

WriteYaml = Callable[..., pathlib.Path]


@pytest.fixture
def example() -> str:
    """The README's example workflow file."""
    return EXAMPLE


@pytest.fixture
def write_yaml(tmp_path: pathlib.Path) -> WriteYaml:
    """Write dedented YAML text to ``name`` under a temporary folder."""

    def write(text: str, name: str = "workflows.yaml") -> pathlib.Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def parse(write_yaml: WriteYaml) -> Callable[[str], YamlParser]:
    """A parser reading one file made of the given YAML text."""

    def make(text: str) -> YamlParser:
        return YamlParser(write_yaml(text))

    return make
