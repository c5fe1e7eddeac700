"""``%(key)s`` in a job's command: event attributes in, and what is missing.

A key no upstream job gave becomes empty text, as in the original, but not
silently: the worker warns, naming the job and every missing key.
"""

import logging

import pytest

from pinball_core.workflow.worker import substitute

JOB = "/workflow/w/1/job/waiting/load"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "pinball_core.workflow.worker"
        and record.levelno == logging.WARNING
    ]


def test_a_missing_key_is_empty_and_named_with_its_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    command = substitute("load %(day)s %(rows)s %(nope)s %(rows)s", {"day": "mon"}, JOB)

    assert command == "load mon   "
    assert warnings_of(caplog) == [
        f"job {JOB}: no upstream job gave %(rows)s, %(nope)s, so they are empty; "
        "an upstream job sets one by printing PINBALL:EVENT_ATTR:key=value"
    ]


def test_without_a_job_the_warning_names_the_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    assert substitute("echo %(nope)s", {}) == "echo "

    [warning] = warnings_of(caplog)
    assert warning.startswith("command 'echo %(nope)s': no upstream job gave %(nope)s")


def test_every_key_given_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    assert substitute("echo %(a)s 100%%", {"a": "1"}, JOB) == "echo 1 100%"
    assert substitute("date +%Y", {}, JOB) == "date +%Y"

    assert warnings_of(caplog) == []
