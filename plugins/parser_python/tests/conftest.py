"""Fixtures for the Python parser's tests: workflows modules written on the fly."""

import pathlib
import textwrap
from collections.abc import Callable, Iterator

import pytest

from pinball_parser_python import PythonParser

#: The README's example: every kind of job and a schedule. The same workflow
#: as the YAML parser's README example.
EXAMPLE = """\
from datetime import datetime, timedelta

from pinball_parser_python import Schedule, Workflow

daily = Workflow(
    "daily_report",
    schedule=Schedule(
        every=timedelta(days=1),
        start=datetime(2026, 1, 1, 0, 30),
        timezone="UTC",
        overrun_policy="SKIP",
        max_running_instances=1,
    ),
    emails=["owner@example.com"],
)
extract = daily.shell("extract", "echo PINBALL:EVENT_ATTR:rows=10")
transform = daily.shell(
    "transform", "echo %(rows)s", depends_on=[extract], max_attempts=3,
    retry_delay_sec=5,
)
daily.python("load", "mypackage.jobs:load", depends_on=[transform])
daily.condition("wait_for_input", "test -f ready.flag", retry_delay_sec=60)

WORKFLOWS = [daily]
"""

WriteModule = Callable[..., pathlib.Path]
Parse = Callable[[str], PythonParser]


@pytest.fixture
def example() -> str:
    return EXAMPLE


@pytest.fixture
def write_module(tmp_path: pathlib.Path) -> WriteModule:
    """Write dedented Python source to ``name`` under a temporary folder."""

    def write(text: str, name: str = "workflows.py") -> pathlib.Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def parse(write_module: WriteModule) -> Parse:
    """A parser reading one file made of the given Python source."""

    def make(text: str) -> PythonParser:
        return PythonParser({"path": str(write_module(text))})

    return make


@pytest.fixture
def importable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    """A folder on ``sys.path`` for packages a test writes; forgotten after."""
    import sys

    folder = tmp_path / "importable"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)
