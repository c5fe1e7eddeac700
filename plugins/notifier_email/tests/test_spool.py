"""The mail spool: mail composed by a process that dies is sent by the next
one, once; a live process's mail is never taken; a bad file or folder is
logged and never stops anything."""

import collections
import json
import logging
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from email_harness import (
    OWNER,
    WAIT_SEC,
    Inbox,
    MakeConfig,
    MakePinball,
    Pinball,
    expected_failure_mails,
    failing_workflow,
    first_failure,
    free_port,
    read_summary,
    schedule,
    wait_for,
)
from pinball_core.components import Notification
from pinball_core.local import MasterThread
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import Job


def _notify(pinball: Pinball, subject: str, to: str = "ops@example.com") -> None:
    pinball.plugins.hook.pinball_notify(
        notification=Notification((to,), subject, f"{subject}.")
    )


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def _mail_files(spool_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(spool_dir.glob("*.json"))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes to SIGKILL at the end if a test left them running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(WAIT_SEC)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def _workers(
    config: pathlib.Path, log: pathlib.Path, processes: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """``pinball workers`` as a user runs it, its output in ``log``."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pinball_core", "-c", str(config)]
            + ["workers", "-n", "2"],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    processes.append(process)
    return process


def test_mail_of_a_killed_worker_is_sent_by_the_next_one_once(
    make_config: MakeConfig, master: MasterThread, inbox: Inbox,
    spool_dir: pathlib.Path, tmp_path: pathlib.Path,
    processes: list[subprocess.Popen[str]],
) -> None:  # fmt: skip
    """A ``pinball workers`` process runs a failing instance while the SMTP
    server is down, composes its mails and is SIGKILLed. The next one, with
    the server up, sends every mail as composed, once, as soon as it runs a
    job; then nothing is left in the spool."""
    inbox.stop()
    # A claim the killed worker left waiting at the master may be handed a
    # job: short polls and leases keep that from holding up the next worker.
    config = make_config(worker_poll_time_sec=0.2, worker_lease_sec=3)
    assert config.source is not None
    schedule(master, "wf", [OWNER])
    master.client().modify(instance_tokens("wf", "1", failing_workflow(4)))

    first = _workers(config.source, tmp_path / "first.log", processes)
    # Four job failures and the instance's end.
    wait_for("five mails in the spool", lambda: len(_mail_files(spool_dir)) == 5)
    first.send_signal(signal.SIGKILL)
    first.wait(WAIT_SEC)
    spooled = {}
    for path in _mail_files(spool_dir):
        data = json.loads(path.read_text(encoding="utf-8"))
        spooled[data["subject"]] = data
    assert inbox.received() == []

    inbox.start()
    master.client().modify(instance_tokens("wf2", "1", {"ok": Job(command="true")}))
    second = _workers(config.source, tmp_path / "second.log", processes)
    inbox.wait_for(5)
    wait_for("an empty spool", lambda: _mail_files(spool_dir) == [])
    wait_for("wf2 to end", lambda: read_summary(master, "wf2", "1").end is not None)
    second.send_signal(signal.SIGTERM)
    assert second.wait(WAIT_SEC) == 0

    received = inbox.received()
    assert collections.Counter((m.subject, m.recipients) for m in received) == (
        expected_failure_mails(4, first_failure(master, "wf"))
    )
    for mail in received:
        data = spooled[mail.subject]
        assert list(mail.recipients) == data["recipients"]
        # The same lines as composed, but for CRLF endings and end spaces.
        assert _lines(mail.part("plain")) == _lines(data["text"])
        assert _lines(mail.part("html")) == _lines(data["html"])
        assert "wf" in mail.part("plain") and "wf" in mail.part("html")
    (fail_1,) = inbox.by_subject("Job fail_1 ")
    assert "Exit code:  2" in fail_1.part("plain")
    assert fail_1.part("html").lstrip().startswith("<!DOCTYPE html>")
    # The dead worker's lock went with its mails, the second's at its stop.
    assert list(spool_dir.iterdir()) == []


_HOLDER = """\
import pathlib, sys, time
from pinball_core.components import Notification
from pinball_core.config import load_config
from pinball_core.plugins import PluginManager

config_path, spool_dir, count = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
plugins = PluginManager()
plugins.load_optional()
plugins.configure(load_config(config_path))
for n in range(count):
    plugins.hook.pinball_notify(
        notification=Notification(("ops@example.com",), f"From A {n}", "A.")
    )
while len(list(spool_dir.glob("*.json"))) < count:
    time.sleep(0.02)
print("spooled", flush=True)
sys.stdin.read()  # alive, its server down, until the test is done with it
"""


def test_a_live_process_keeps_its_mail_and_a_dead_one_gives_it_up(
    make_config: MakeConfig, make_pinball: MakePinball, inbox: Inbox,
    spool_dir: pathlib.Path, processes: list[subprocess.Popen[str]],
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    """Process A, whose SMTP server is down, holds three mails in the spool.
    Process B, on the same spool with its server up, starts its mail thread
    and sends only its own mail. Once A is killed, C adopts A's mails and
    sends them once, in order, before its own."""
    config = make_config(smtp_port=free_port())
    assert config.source is not None
    with (tmp_path / "a.log").open("w") as errors:
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_HOLDER)]
            + [str(config.source), str(spool_dir), "3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    processes.append(holder)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "spooled\n"
    held = _mail_files(spool_dir)
    assert len(held) == 3

    b = make_pinball()
    _notify(b, "From B")
    outbox = b.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)
    assert [m.subject for m in inbox.received()] == ["From B"]
    assert _mail_files(spool_dir) == held

    holder.kill()
    holder.wait(WAIT_SEC)
    c = make_pinball()
    _notify(c, "From C")
    outbox = c.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)
    assert [m.subject for m in inbox.received()] == [
        "From B",
        "From A 0",
        "From A 1",
        "From A 2",
        "From C",
    ]
    assert _mail_files(spool_dir) == []
    assert not (spool_dir / f"{held[0].name.split('.')[0]}.lock").exists()


def test_a_mail_is_spooled_until_sent(
    make_pinball: MakePinball, inbox: Inbox, spool_dir: pathlib.Path
) -> None:
    inbox.stop()
    pinball = make_pinball()
    before = time.time()
    _notify(pinball, "Waiting", to="boss@example.com")

    (path,) = wait_for("the spool file", lambda: _mail_files(spool_dir))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {
        "format": 1,
        "kind": "message",
        "recipients": ["boss@example.com"],
        "subject": "Waiting",
        "text": "Waiting.",
        "html": None,
        "queued": data["queued"],
    }
    assert before - 1 <= data["queued"] <= time.time()
    assert list(spool_dir.glob("*.tmp")) == []

    inbox.start()
    outbox = pinball.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)
    assert [m.subject for m in inbox.received()] == ["Waiting"]
    assert _mail_files(spool_dir) == []
    pinball.notifier.close(timeout=5)
    assert list(spool_dir.iterdir()) == []


def _dead_owner(spool_dir: pathlib.Path, files: dict[str, str]) -> str:
    """Files of a process that died: its lock file (unlocked) and ``files``
    named ``<owner>.<name>``; returns its name."""
    owner = "99999-0badf00d"
    spool_dir.mkdir(parents=True, exist_ok=True)
    (spool_dir / f"{owner}.lock").write_text("")
    for name, text in files.items():
        (spool_dir / f"{owner}.{name}").write_text(text, encoding="utf-8")
    return owner


def _mail_file(subject: str, queued: float) -> str:
    return json.dumps(
        {
            "format": 1,
            "kind": "message",
            "recipients": ["ops@example.com"],
            "subject": subject,
            "text": f"{subject}.",
            "html": f"<p>{subject}.</p>",
            "queued": queued,
        }
    )


@pytest.mark.parametrize(
    ("hook", "arguments"),
    [
        (
            "pinball_job_started",
            {"workflow": "wf", "instance": "1", "job": "j", "execution": 0},
        ),
        (
            "pinball_schedule_fired",
            {"workflow": "wf", "instance": "1", "scheduled_time": 0.0},
        ),
    ],
)
def test_running_a_job_or_starting_a_run_sends_what_a_dead_process_left(
    make_pinball: MakePinball, inbox: Inbox, spool_dir: pathlib.Path,
    hook: str, arguments: dict[str, object],
) -> None:  # fmt: skip
    """A worker or scheduler with no mail of its own still sends it."""
    _dead_owner(spool_dir, {"00000001.json": _mail_file("Left over", time.time())})
    pinball = make_pinball()

    getattr(pinball.plugins.hook, hook)(**arguments)

    (mail,) = inbox.wait_for(1)
    assert mail.subject == "Left over"
    wait_for("an empty spool", lambda: _mail_files(spool_dir) == [])


def test_a_corrupt_spool_file_is_moved_aside_and_logged(
    make_pinball: MakePinball, inbox: Inbox, spool_dir: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    owner = _dead_owner(
        spool_dir,
        {
            "00000001.json": "{not json",
            "00000002.json": _mail_file("Left over", time.time()),
            "00000003.json": json.dumps({"format": 1, "subject": "no recipients"}),
            "00000004.tmp": '{"format": 1, "ki',
        },
    )
    pinball = make_pinball()
    _notify(pinball, "Now")
    outbox = pinball.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)

    left_over, now = inbox.received()
    assert (left_over.subject, now.subject) == ("Left over", "Now")
    assert left_over.part("html").strip() == "<p>Left over.</p>"
    # Of the dead owner's files only the bad ones are left: its half-written
    # one and its lock file are gone, its good one sent.
    assert sorted(p.name for p in spool_dir.glob(f"{owner}.*")) == [
        f"{owner}.00000001.json.bad",
        f"{owner}.00000003.json.bad",
    ]
    assert _mail_files(spool_dir) == []
    bad = spool_dir / f"{owner}.00000001.json"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].startswith(f"spooled mail {bad} cannot be read (")
    assert errors[0].endswith(f"moved aside to {bad}.bad")
    assert "recipients" in errors[1]


def test_a_spooled_mail_is_given_up_counting_from_its_first_queueing(
    make_pinball: MakePinball, inbox: Inbox, spool_dir: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _dead_owner(
        spool_dir,
        {
            "00000001.json": _mail_file("Too old", time.time() - 7200),
            "00000002.json": _mail_file("Recent", time.time() - 60),
        },
    )
    pinball = make_pinball(email={"give_up_after_sec": 3600})
    _notify(pinball, "Now")
    outbox = pinball.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)

    assert [m.subject for m in inbox.received()] == ["Recent", "Now"]
    assert _mail_files(spool_dir) == []
    assert any(
        "still not sent after 3600 s" in r.getMessage()
        and "'Too old'" in r.getMessage()
        for r in caplog.records
    )


def test_spool_off_writes_nothing(
    make_pinball: MakePinball, inbox: Inbox, spool_dir: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    inbox.stop()
    pinball = make_pinball(email={"spool": False})
    _notify(pinball, "From memory")
    wait_for(
        "a failed try",
        lambda: any("cannot send mail" in r.getMessage() for r in caplog.records),
    )

    assert not spool_dir.exists()
    inbox.start()
    outbox = pinball.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)
    assert [m.subject for m in inbox.received()] == ["From memory"]
    assert not spool_dir.exists()


def test_an_unusable_spool_folder_is_logged_once_and_mail_still_goes(
    make_pinball: MakePinball, inbox: Inbox, tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Under a file, the folder cannot be made, even by root."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    folder = blocker / "spool"

    pinball = make_pinball(email={"spool_dir": str(folder)})
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    _notify(pinball, "Still sent")
    outbox = pinball.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)

    assert error.startswith(f"mail spool {folder} cannot be used: ")
    assert "Not a directory" in error and "plugins.email.spool_dir" in error
    assert [m.subject for m in inbox.received()] == ["Still sent"]
    # One error, at configure; nothing more when the mail goes out.
    assert sum(r.levelno >= logging.ERROR for r in caplog.records) == 1
