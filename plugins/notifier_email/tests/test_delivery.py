"""Delivery: a dead, hung or refusing SMTP server never holds up a worker,
mails wait and retry until the server is back, what cannot be sent is logged
with its recipients and subject, and what is left is sent at process exit.
"""

import collections
import json
import logging
import pathlib
import ssl
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword
from email_harness import (
    OWNER,
    WAIT_SEC,
    Inbox,
    MakeConfig,
    MakePinball,
    expected_failure_mails,
    failing_workflow,
    free_port,
    wait_for,
)
from pinball_core.components import Notification
from pinball_core.workflow.instance import instance_tokens


def _notify(pinball: Any, subject: str, to: str = "ops@example.com") -> None:
    pinball.plugins.hook.pinball_notify(
        notification=Notification((to,), subject, f"{subject}.")
    )


def test_hung_server_does_not_hold_up_the_workers(
    make_pinball: MakePinball, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The server accepts connections and never answers, with a 10-minute
    timeout: the mail thread hangs on a first mail before any job runs, and
    stays hung. Every job still runs and the instance ends, with no mail
    delivered; once the server answers again every mail arrives, once."""
    caplog.set_level(logging.WARNING, "pinball_notifier_email")
    inbox.black_hole()
    pinball = make_pinball(email={"timeout_sec": 600})
    outbox = pinball.notifier.outbox
    assert outbox is not None
    _notify(pinball, "Before the run")
    wait_for("the mail thread to hang", lambda: inbox.hung_connections() == 1)

    pinball.schedule("wf", [OWNER])
    pinball.start(instance_tokens("wf", "1", failing_workflow(8)))
    pinball.start_workers(3)

    assert pinball.finished.wait("wf", "1") == "FAILURE"
    summary = pinball.instance("wf", "1")
    assert sorted(j.name for j in summary.jobs if j.attempts == 1) == sorted(
        ["start", *(f"fail_{n}" for n in range(8))]
    )
    # Still the one connection, waiting for the server's greeting.
    assert inbox.hung_connections() == 1
    assert inbox.received() == []
    assert outbox.pending() == 10 and outbox.sent == 0

    inbox.start()  # closing the hole ends the hung connection
    assert outbox.flush(WAIT_SEC)
    received = inbox.received()
    assert received[0].subject == "Before the run"
    assert collections.Counter((m.subject, m.recipients) for m in received[1:]) == (
        expected_failure_mails(8, pinball.first_failure("wf"))
    )
    assert outbox.sent == 10 and outbox.dropped == 0
    assert any("cannot send mail through" in r.message for r in caplog.records)


def test_mails_wait_for_a_stopped_server_and_arrive_when_it_is_back(
    make_pinball: MakePinball, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Connections are refused while the jobs fail; the mails are retried
    with a growing delay and arrive, in order and once, when it is back."""
    caplog.set_level(logging.INFO, "pinball_notifier_email")
    inbox.stop()
    pinball = make_pinball()
    pinball.schedule("wf", [OWNER])
    pinball.start(instance_tokens("wf", "1", failing_workflow(4)))
    pinball.start_workers(2)

    assert pinball.finished.wait("wf", "1") == "FAILURE"
    outbox = pinball.notifier.outbox
    assert outbox is not None
    wait_for(
        "two failed tries",
        lambda: sum("cannot send mail" in r.message for r in caplog.records) >= 2,
    )
    assert outbox.pending() == 5

    inbox.start()
    assert outbox.flush(WAIT_SEC)
    received = inbox.received()
    assert collections.Counter((m.subject, m.recipients) for m in received) == (
        expected_failure_mails(4, pinball.first_failure("wf"))
    )
    # The instance ended after its jobs failed, and is mailed after them.
    assert "FAILURE: workflow wf" in received[-1].subject
    assert any("takes mail again" in r.message for r in caplog.records)


def test_a_mail_given_up_on_is_logged_with_recipients_and_subject(
    make_pinball: MakePinball, inbox: Inbox, caplog: pytest.LogCaptureFixture,
    spool_dir: pathlib.Path,
) -> None:  # fmt: skip
    inbox.stop()
    pinball = make_pinball(email={"give_up_after_sec": 0.5})
    _notify(pinball, "Nightly report", to="boss@example.com")

    record = wait_for(
        "the give-up error",
        lambda: next((r for r in caplog.records if r.levelno == logging.ERROR), None),
    )
    assert "still not sent after" in record.message
    assert "boss@example.com" in record.message
    assert "'Nightly report'" in record.message
    outbox = pinball.notifier.outbox
    assert outbox is not None and outbox.flush(WAIT_SEC)
    assert outbox.dropped == 1
    assert list(spool_dir.glob("*.json")) == []

    inbox.start()
    _notify(pinball, "Later report")
    (mail,) = inbox.wait_for(1)
    assert mail.subject == "Later report"


class _Refusing(Inbox):
    """A server that has no mailbox for anyone at nowhere.example.com."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.endswith("@nowhere.example.com"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_refused_mail_is_logged_and_not_retried(
    make_config: MakeConfig, make_pinball: MakePinball, inbox: Inbox,
    caplog: pytest.LogCaptureFixture, spool_dir: pathlib.Path,
) -> None:  # fmt: skip
    inbox.stop()
    refusing = _Refusing(inbox.port)
    refusing.start()
    try:
        pinball = make_pinball()
        _notify(pinball, "To nobody", to="x@nowhere.example.com")
        _notify(pinball, "To somebody", to="ops@example.com")
        pinball.plugins.hook.pinball_notify(
            notification=Notification(
                ("y@nowhere.example.com", "dev@example.com"), "To both", "Both."
            )
        )
        outbox = pinball.notifier.outbox
        assert outbox is not None and outbox.flush(WAIT_SEC)
    finally:
        refusing.stop()

    assert [(m.subject, m.recipients) for m in refusing.received()] == [
        ("To somebody", ("ops@example.com",)),
        ("To both", ("dev@example.com",)),
    ]
    assert outbox.sent == 2 and outbox.dropped == 1
    assert list(spool_dir.glob("*.json")) == []
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "the server refused it" in errors[0] and "550" in errors[0]
    assert "x@nowhere.example.com" in errors[0] and "'To nobody'" in errors[0]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("y@nowhere.example.com" in w for w in warnings)


def test_a_full_queue_drops_and_logs_without_blocking(
    make_pinball: MakePinball, inbox: Inbox, caplog: pytest.LogCaptureFixture,
    spool_dir: pathlib.Path,
) -> None:  # fmt: skip
    """The mail thread is stuck on a hung server; events beyond the queue's
    size are dropped at once, each with an error naming it."""
    inbox.black_hole()
    pinball = make_pinball(email={"timeout_sec": 600, "queue_size": 2})
    outbox = pinball.notifier.outbox
    assert outbox is not None

    _notify(pinball, "first")
    # The thread has composed "first" and hangs waiting for the greeting.
    wait_for("the thread to hang", lambda: inbox.hung_connections() == 1)
    for n in range(4):
        _notify(pinball, f"more {n}")

    dropped = [r.message for r in caplog.records if "dropped" in r.message]
    assert len(dropped) == 2
    assert all("plugins.email.queue_size" in m for m in dropped)
    assert "'more 2'" in dropped[0] and "'more 3'" in dropped[1]

    inbox.start()
    assert outbox.flush(WAIT_SEC)
    # At most two mails wait: when the queued two join, the oldest makes way.
    assert [m.subject for m in inbox.received()] == ["more 0", "more 1"]
    assert outbox.sent == 2 and outbox.dropped == 3
    assert list(spool_dir.glob("*.json")) == []
    assert any(
        "too many mails waiting" in r.message and "'first'" in r.message
        for r in caplog.records
    )


_SCRIPT = """\
import logging, sys
from pinball_core.components import Notification
from pinball_core.config import load_config
from pinball_core.plugins import PluginManager

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
config = load_config(sys.argv[1])
plugins = PluginManager()
plugins.load_optional()
plugins.configure(config)
plugins.hook.pinball_notify(
    notification=Notification(("ops@example.com",), "Sent at exit", "Bye.")
)
# The process ends here, at once: the mail thread must finish the job.
"""


def _run_and_exit(config_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(config_path)],
        capture_output=True,
        text=True,
        timeout=WAIT_SEC,
        check=False,
    )


def test_waiting_mail_is_sent_at_process_exit(
    make_config: MakeConfig, inbox: Inbox, spool_dir: pathlib.Path
) -> None:
    config = make_config()
    assert config.source is not None

    result = _run_and_exit(config.source)

    assert result.returncode == 0, result.stderr
    (mail,) = inbox.received()
    assert mail.subject == "Sent at exit"
    # Nothing left: neither the mail's file nor the process's lock file.
    assert list(spool_dir.iterdir()) == []


def test_mail_still_unsent_at_exit_is_logged(
    make_config: MakeConfig, inbox: Inbox
) -> None:
    inbox.stop()
    config = make_config(email={"exit_flush_sec": 0.5, "spool": False})
    assert config.source is not None

    result = _run_and_exit(config.source)

    assert result.returncode == 0, result.stderr
    assert (
        "ERROR:pinball_notifier_email.outbox:mail not sent: the notifier "
        "stopped first; to ops@example.com, subject 'Sent at exit'" in result.stderr
    )


def test_mail_still_unsent_at_exit_stays_in_the_spool(
    make_config: MakeConfig, inbox: Inbox, spool_dir: pathlib.Path
) -> None:
    """The file stays, and so does the lock file, unlocked, for the next
    process to adopt them; the log says where the mail is."""
    inbox.stop()
    config = make_config(email={"exit_flush_sec": 0.5})
    assert config.source is not None

    result = _run_and_exit(config.source)

    assert result.returncode == 0, result.stderr
    (path,) = spool_dir.glob("*.json")
    assert json.loads(path.read_text())["subject"] == "Sent at exit"
    assert [p.name for p in spool_dir.glob("*.lock")] == [
        path.name.split(".")[0] + ".lock"
    ]
    assert (
        f"WARNING:pinball_notifier_email.outbox:mail not sent: the notifier "
        f"stopped first; kept in {path} for the next Pinball process on this "
        "host; to ops@example.com, subject 'Sent at exit'" in result.stderr
    )
    assert "ERROR" not in result.stderr


# -- TLS and login -------------------------------------------------------------------


@pytest.fixture
def authority(tmp_path: pathlib.Path) -> tuple[trustme.CA, pathlib.Path]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, ca_file


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


class _Logins:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.seen.append((login, password))
        # handled=False: aiosmtpd answers 535 itself on a failure.
        ok = (login, password) == ("pinball", "s3cret")
        return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize("mode", ["starttls", "smtp_ssl"])
# aiosmtpd warns when AUTH is allowed without its own STARTTLS; with
# smtp_ssl the whole connection is TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_tls_and_login(
    make_pinball: MakePinball,
    authority: tuple[trustme.CA, pathlib.Path],
    mode: str,
) -> None:
    ca, ca_file = authority
    logins = _Logins()
    context = _server_context(ca)
    tls: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if mode == "starttls"
        # aiosmtpd offers AUTH only after its own STARTTLS unless told that
        # this connection, TLS from the start, is safe for it too.
        else {"ssl_context": context, "auth_require_tls": False}
    )
    server = Inbox(free_port(), authenticator=logins, auth_required=True, **tls)
    server.start()
    try:
        pinball = make_pinball(
            email={"starttls": mode == "starttls", "ca_file": str(ca_file)},
            smtp_port=server.port,
            smtp_ssl=mode == "smtp_ssl",
            smtp_user="pinball",
            smtp_pass="s3cret",
        )
        _notify(pinball, f"Over {mode}")
        (mail,) = server.wait_for(1)
    finally:
        server.stop()
    assert mail.subject == f"Over {mode}"
    assert logins.seen == [("pinball", "s3cret")]


def _starttls_server(ca: trustme.CA) -> Inbox:
    return Inbox(
        free_port(),
        tls_context=_server_context(ca),
        require_starttls=True,
        authenticator=_Logins(),
        auth_required=True,
    )


# aiosmtpd leaves the transport of a failed TLS handshake for the garbage
# collector; that is the test server's leak, not the notifier's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("trusted", "password", "hint"),
    [
        (False, "s3cret", "plugins.email.ca_file names the authority"),
        (True, "wrong", "refused the login of 'pinball'"),
    ],
)
def test_tls_and_login_problems_are_retried_with_a_hint(
    make_pinball: MakePinball,
    authority: tuple[trustme.CA, pathlib.Path],
    caplog: pytest.LogCaptureFixture,
    trusted: bool,
    password: str,
    hint: str,
) -> None:
    """A certificate not trusted or a wrong password is the server's trouble,
    not the mail's: it is logged with what to change, and retried."""
    ca, ca_file = authority
    server = _starttls_server(ca)
    server.start()
    try:
        email: dict[str, Any] = {"starttls": True}
        if trusted:
            email["ca_file"] = str(ca_file)
        pinball = make_pinball(
            email=email, smtp_port=server.port, smtp_user="pinball", smtp_pass=password
        )
        _notify(pinball, "Never sent")
        wait_for(
            "a second try",
            lambda: sum(hint in r.message for r in caplog.records) >= 2,
        )
        outbox = pinball.notifier.outbox
        assert outbox is not None and outbox.pending() == 1
    finally:
        server.stop()
    assert server.received() == []
    pinball.notifier.close(timeout=0)
