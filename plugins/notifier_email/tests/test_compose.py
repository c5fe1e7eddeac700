"""How single mails are put together, without a server: subjects, addresses
and which log files may be quoted."""

import pathlib
import time
from typing import Any

import pytest
import yaml
from pinball_core.config import load_config
from pinball_core.workflow.model import ExecutionRecord, Job

from pinball_notifier_email import settings_from_config
from pinball_notifier_email.compose import Composer, Mail
from pinball_notifier_email.events import JobFailed
from pinball_notifier_email.smtp import build_message


class _NoOwners:
    """Stands in for the master: a workflow without a schedule."""

    def failure_context(self, *args: Any) -> list[str]:
        return []

    def workflow_emails(self, workflow: str) -> list[str]:
        return []


@pytest.fixture
def logs(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.fixture
def composer(tmp_path: pathlib.Path, logs: pathlib.Path) -> Composer:
    path = tmp_path / "pinball.yaml"
    path.write_text(yaml.safe_dump({"logs_dir": str(logs)}), encoding="utf-8")
    return Composer(settings_from_config(load_config(path)), _NoOwners())  # type: ignore[arg-type]


def _failure(
    exit_code: int | None = 1,
    reason: str = "",
    emails: list[str] | None = None,
    logs: dict[str, str] | None = None,
) -> JobFailed:
    now = time.time()
    record = ExecutionRecord(
        instance="1",
        start_time=now - 3725,
        end_time=now,
        exit_code=exit_code,
        info="run it",
        logs=logs or {},
    )
    job = Job(name="j", command="run it", emails=emails or ["a@example.com"])
    job.history = [record]
    return JobFailed("wf", "1", "j", 0, exit_code, reason, True, job)


def _compose(composer: Composer, event: JobFailed) -> Mail:
    mail = composer.compose(event)
    assert mail is not None
    return mail


@pytest.mark.parametrize(
    ("exit_code", "reason", "subject"),
    [
        (3, "", "[Pinball] Job j of wf failed with exit code 3"),
        (-9, "", "[Pinball] Job j of wf was killed by signal SIGKILL"),
        (1, "timed out after 5 s", "[Pinball] Job j of wf failed: timed out after 5 s"),
        (None, "could not start: no such file\nat all", "[Pinball] Job j of wf "
         "failed: could not start: no such file at all"),
    ],
)  # fmt: skip
def test_failure_subjects(
    composer: Composer, exit_code: int | None, reason: str, subject: str
) -> None:
    mail = _compose(composer, _failure(exit_code, reason))

    assert mail.subject == subject
    assert "Run time:   1:02:05" in mail.text


def test_addresses_are_stripped_and_counted_once(composer: Composer) -> None:
    event = _failure(emails=[" a@example.com", "A@Example.com", "", "b@example.com"])

    assert _compose(composer, event).recipients == ("a@example.com", "b@example.com")


def test_only_logs_under_logs_dir_are_quoted(
    composer: Composer, logs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    inside = logs / "wf" / "1" / "j.1.stderr"
    inside.parent.mkdir(parents=True)
    inside.write_text("".join(f"line {n}\n" for n in range(100)))
    outside = tmp_path / "secret.txt"
    outside.write_text("do not mail me\n")

    quoted = _compose(composer, _failure(logs={"stderr": str(inside)}))
    refused = _compose(composer, _failure(logs={"stderr": str(outside)}))

    assert "line 99" in quoted.text and "line 80" in quoted.text
    assert "line 79" not in quoted.text  # log_lines: 20
    assert "do not mail me" not in refused.text + (refused.html or "")
    assert str(outside) in refused.text  # still listed, as a path


def test_message_headers(composer: Composer) -> None:
    mail = _compose(composer, _failure())
    message = build_message(mail, "pinball@example.com")

    assert message["From"] == "pinball@example.com"
    assert message["To"] == "a@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Pinball-Event"] == "job_failed"
    assert str(message["Message-ID"]).endswith("@example.com>")
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
