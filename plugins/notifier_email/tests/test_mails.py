"""What is mailed, to whom, and what it says: real workflows run by worker
threads on a real master, with the plugin loaded through its entry point and
an aiosmtpd server receiving the mail.

Each test waits until the instance has ended and the notifier has sent
everything it queued, then checks the complete set of mails received, so an
extra or repeated mail fails the test as surely as a missing one.
"""

import collections
import html.parser
import pathlib
import re
import time

from email_harness import WAIT_SEC, Inbox, MakePinball, Pinball, Received, wait_for
from pinball_core.components import Notification
from pinball_core.token import Token
from pinball_core.workflow import names, signals, status
from pinball_core.workflow.instance import START_EVENT, instance_tokens
from pinball_core.workflow.model import ABORT, Job

SENDER = "pinball@example.com"
OWNER = "owner@example.com"
UI = "http://pinball.example.com:8080"


def _settle(pinball: Pinball, workflow: str, instance: str = "1") -> str:
    """Wait for the instance's end and for every mail queued to be sent."""
    ended = pinball.finished.wait(workflow, instance)
    assert pinball.notifier.outbox is not None
    assert pinball.notifier.outbox.flush(WAIT_SEC), "mails still waiting"
    return ended


def _check_envelope(mail: Received) -> None:
    """The sender, the headers and both parts every Pinball mail has."""
    assert mail.sender == SENDER
    assert mail.message["From"] == SENDER
    assert [a.strip() for a in str(mail.message["To"]).split(",")] == list(
        mail.recipients
    )
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.part("plain").strip()
    assert mail.part("html").lstrip().startswith("<!DOCTYPE html>")


def test_failed_jobs_are_mailed_once_each_and_the_owners_once(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    """Three jobs fail at about the same time on three workers, one after a
    retry. Each failure is mailed once, to its job's addresses; the
    workflow's owners are added to the instance's first failure only; the
    instance's end is mailed once, to the owners, with every job in it."""
    pinball = make_pinball()
    pinball.schedule("etl", [OWNER, "second.owner@example.com"])
    jobs = {
        "extract": Job(command="echo PINBALL:EVENT_ATTR:rows=10"),
        "load_a": Job(
            command="echo 'disk full' >&2; exit 3",
            inputs=["extract"],
            emails=["a@example.com"],
        ),
        "load_b": Job(
            command="exit 4",
            inputs=["extract"],
            max_attempts=2,
            emails=["b@example.com", OWNER.upper()],
        ),
        "load_c": Job(command="exit 5", inputs=["extract"]),
        "report": Job(command="true", inputs=["load_a"], emails=["r@example.com"]),
    }
    pinball.start(instance_tokens("etl", "1", jobs))
    pinball.start_workers(3)

    assert _settle(pinball, "etl") == "FAILURE"

    first = pinball.first_failure("etl")
    owners = (OWNER, "second.owner@example.com")

    expected: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
    for job, code, emails in [
        ("load_a", 3, ("a@example.com",)),
        ("load_b", 4, ("b@example.com", OWNER.upper())),
        ("load_c", 5, ()),
    ]:
        to = emails + tuple(
            o for o in owners if job == first and o not in _lower(emails)
        )
        if to:
            subject = f"[Pinball] Job {job} of etl failed with exit code {code}"
            expected[subject, to] += 1
    expected["[Pinball] FAILURE: workflow etl, instance 1", owners] += 1
    received = inbox.received()
    assert collections.Counter((m.subject, m.recipients) for m in received) == expected

    for mail in received:
        _check_envelope(mail)

    (load_a,) = inbox.by_subject("Job load_a")
    text, page = load_a.part("plain"), load_a.part("html")
    for body in (text, page):
        assert "etl" in body and "load_a" in body
        assert "disk full" in body  # the end of its stderr
        assert f"{UI}/workflows/etl/instances/1/jobs/load_a" in body
        assert (
            f"{UI}/workflows/etl/instances/1/jobs/load_a/executions/0/logs/stderr"
            in (body)
        )
    assert "Exit code:  3" in text
    assert "echo 'disk full' >&2; exit 3" in text
    assert "echo &#39;disk full&#39; &gt;&amp;2; exit 3" in page

    (load_b,) = inbox.by_subject("Job load_b")
    assert "Execution:  1 (attempt 2 of 2)" in load_b.part("plain")

    (end,) = inbox.by_subject("FAILURE: workflow etl")
    text, page = end.part("plain"), end.part("html")
    table = text[text.index("Jobs, by their last start") :]
    rows = [line.split()[0] for line in table.splitlines()[3:8]]
    assert rows[0] == "extract" and rows[-1] == "report"
    assert sorted(rows) == sorted(jobs)
    assert re.search(r"^report +NEVER_RUN +0 ", table, re.MULTILINE)
    for job in jobs:
        assert f'<a href="{UI}/workflows/etl/instances/1/jobs/{job}">{job}</a>' in page
    assert "load_a: exit code 3" in text
    assert f"{UI}/workflows/etl/instances/1" in page


def test_success_is_not_mailed_unless_asked(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    quiet = make_pinball()
    quiet.schedule("quiet", [OWNER])
    quiet.start(instance_tokens("quiet", "1", {"only": Job(command="true")}))
    quiet.start_workers(1)

    assert _settle(quiet, "quiet") == "SUCCESS"
    assert inbox.received() == []


def test_success_is_mailed_when_switched_on(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    pinball = make_pinball(email={"events": {"instance_succeeded": True}})
    pinball.schedule("daily", [OWNER])
    jobs = {
        "first": Job(command="true"),
        "second": Job(command="true", inputs=["first"]),
    }
    pinball.start(instance_tokens("daily", "1", jobs))
    pinball.start_workers(1)

    assert _settle(pinball, "daily") == "SUCCESS"
    (mail,) = inbox.received()
    _check_envelope(mail)
    assert mail.subject == "[Pinball] SUCCESS: workflow daily, instance 1"
    assert mail.recipients == (OWNER,)
    text = mail.part("plain")
    assert "Status:     SUCCESS" in text
    assert text.index("first ") < text.index("second ")


def test_switched_off_failures_are_not_mailed(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    pinball = make_pinball(email={"events": {"job_failed": False}})
    pinball.schedule("noisy", [OWNER])
    jobs = {"bad": Job(command="exit 1", emails=["bad@example.com"])}
    pinball.start(instance_tokens("noisy", "1", jobs))
    pinball.start_workers(1)

    _settle(pinball, "noisy")
    assert [m.subject for m in inbox.received()] == [
        "[Pinball] FAILURE: workflow noisy, instance 1"
    ]


def test_retries_are_mailed_when_switched_on(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    pinball = make_pinball(email={"events": {"job_retried": True}})
    jobs = {"flaky": Job(command="exit 2", max_attempts=2, emails=["f@example.com"])}
    pinball.start(instance_tokens("flaky", "1", jobs))
    pinball.start_workers(1)

    _settle(pinball, "flaky")
    assert [m.subject for m in inbox.received()] == [
        "[Pinball] Job flaky of flaky failed with exit code 2 (will retry)",
        "[Pinball] Job flaky of flaky failed with exit code 2",
    ]


def test_warn_timeout_is_mailed_while_the_job_runs(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    pinball = make_pinball()
    pinball.schedule("slow", [OWNER])
    jobs = {
        "long": Job(
            command="echo started; sleep 1.5",
            warn_timeout_sec=0.3,
            emails=["l@example.com"],
        )
    }
    pinball.start(instance_tokens("slow", "1", jobs))
    pinball.start_workers(1)

    (mail,) = inbox.wait_for(1)
    # Mailed while it still ran: the instance had not ended yet.
    assert pinball.instance("slow", "1").status is status.Status.RUNNING
    assert _settle(pinball, "slow") == "SUCCESS"
    assert len(inbox.received()) == 1

    _check_envelope(mail)
    assert mail.subject == (
        "[Pinball] Job long of slow exceeded its warn timeout of 0.3 s"
    )
    assert mail.recipients == ("l@example.com", OWNER)
    text = mail.part("plain")
    assert "It is still running" in text
    assert "echo started; sleep 1.5" in text
    assert f"{UI}/workflows/slow/instances/1/jobs/long" in mail.part("html")


def test_abort_mails_the_killed_job_and_the_end_not_the_unstarted_ones(
    make_pinball: MakePinball, inbox: Inbox, tmp_path: pathlib.Path
) -> None:
    """An ABORT kills the running job, which is mailed as failed; jobs that
    never ran are not mailed one by one. The instance is archived at once,
    and its end is still mailed with every job in it."""
    pinball = make_pinball()
    pinball.schedule("doomed", [OWNER])
    started = tmp_path / "started"
    jobs = {
        "long": Job(command=f"touch {started}; sleep 300", emails=["l@example.com"]),
        "quick": Job(command="true", emails=["q@example.com"]),
        "after": Job(command="true", inputs=["quick"], emails=["a@example.com"]),
        "last": Job(command="true", inputs=["long", "after"], emails=["z@example.com"]),
    }
    # "quick" waits behind "long", so it is still queued when the ABORT comes.
    pinball.start(instance_tokens("doomed", "1", jobs, {"long": 10, "quick": 1}))
    pinball.start_workers(1)
    wait_for("the long job to start", started.exists)

    signals.set_signal(pinball.master.client(), ABORT, "doomed", "1")

    assert _settle(pinball, "doomed") == "ABORTED"
    subjects = sorted((m.subject, m.recipients) for m in inbox.received())
    assert subjects == [
        ("[Pinball] ABORTED: workflow doomed, instance 1", (OWNER,)),
        (
            "[Pinball] Job long of doomed failed: aborted by an ABORT signal",
            ("l@example.com", OWNER),
        ),
    ]
    (end,) = inbox.by_subject("ABORTED")
    table = end.part("plain")
    for job in jobs:
        assert re.search(rf"^{job} ", table, re.MULTILINE), job
    assert "ABORTED" in end.part("html")


class _Tags(html.parser.HTMLParser):
    """Every start tag and attribute name in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def _markup(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def test_html_special_characters_are_escaped(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    """A job whose name, command, output, attributes and properties are made
    of markup: the HTML parts show them as text and gain no tag, attribute
    or link from them.

    Parsers allow only letters, digits and underscores in names, but the
    master takes any token name, so a token written by hand or by another
    tool can carry such a name: the mail must be safe either way.
    """
    pinball = make_pinball(email={"events": {"instance_failed": True}})
    pinball.schedule("safe", [OWNER])
    name = "<b onclick=\"alert('x')\">J&amp;K"
    command = (
        "echo '<script>alert(1)</script>' >&2; "
        "echo 'PINBALL:EVENT_ATTR:note=<i onmouseover=\"x\">&'; "
        "echo 'PINBALL:link=<a href=\"javascript:x\">go</a'; exit 7"
    )
    job = Job(
        name=name,
        command=command,
        inputs=[names.WORKFLOW_START],
        emails=["x@example.com"],
        events=[{"name": START_EVENT, "creator": "test", "attributes": {}}],
    )
    pinball.start(
        [
            Token(
                f"{names.job_prefix('safe', '1', names.RUNNABLE)}{name}",
                data=job.to_json(),
            )
        ]
    )
    pinball.start_workers(1)

    _settle(pinball, "safe")
    failed, end = sorted(inbox.received(), key=lambda m: "FAILURE" in m.subject)
    assert failed.subject == f"[Pinball] Job {name} of safe failed with exit code 7"
    assert "FAILURE" in end.subject

    text = failed.part("plain")
    assert name in text and "<script>alert(1)</script>" in text
    assert 'note = <i onmouseover="x">&' in text

    for mail in (failed, end):
        page = mail.part("html")
        tags = _markup(page)
        assert tags.tags <= {
            "html", "head", "meta", "title", "body", "h2", "p", "b", "a", "table",
            "tr", "th", "td", "span", "code", "ul", "li", "pre", "br",
        }  # fmt: skip
        assert tags.attributes <= {"href", "style", "charset"}
        assert name not in page
        assert "&lt;b onclick=&#34;alert(&#39;x&#39;)&#34;&gt;J&amp;amp;K" in page
        # The name is one path segment of its links, fully quoted.
        assert "/jobs/%3Cb%20onclick%3D%22alert%28%27x%27%29%22%3EJ%26amp%3BK" in page
    page = failed.part("html")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;i onmouseover=&#34;x&#34;&gt;&amp;" in page
    assert "&lt;a href=&#34;javascript:x&#34;&gt;go&lt;/a" in page
    assert "javascript:" not in {
        value for value in _hrefs(page) if value.startswith("javascript:")
    }


def _hrefs(page: str) -> set[str]:
    found: set[str] = set()

    class Links(html.parser.HTMLParser):
        def handle_starttag(
            self, tag: str, attrs: list[tuple[str, str | None]]
        ) -> None:
            found.update(v or "" for k, v in attrs if k == "href")

    Links().feed(page)
    return found


def test_refused_schedule_is_mailed_once_per_slot(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    """The scheduler reports each refused slot once; a repeat is not mailed
    again, a later slot is. The mail lists the running instances."""
    pinball = make_pinball()
    pinball.schedule("busy", [OWNER], max_running_instances=2)
    for instance in ("100", "200"):
        pinball.start(instance_tokens("busy", instance, {"wait": Job(command="true")}))
    slot = time.time()
    reason = "2 instances are running; max_running_instances is 2"

    for due in (slot, slot, slot + 3600):
        pinball.plugins.hook.pinball_schedule_refused(
            workflow="busy", scheduled_time=due, reason=reason
        )
    assert pinball.notifier.outbox is not None
    assert pinball.notifier.outbox.flush(WAIT_SEC)

    mails = inbox.received()
    assert len(mails) == 2
    for mail in mails:
        _check_envelope(mail)
        assert mail.recipients == (OWNER,)
        assert mail.subject == (
            "[Pinball] Workflow busy not started: 2 instances running, "
            "at most 2 allowed"
        )
        text, page = mail.part("plain"), mail.part("html")
        assert "Running instances: 2" in text and "Most allowed:      2" in text
        assert reason in text
        for instance in ("100", "200"):
            assert f"{UI}/workflows/busy/instances/{instance}" in page


def test_notifications_are_sent_as_given(
    make_pinball: MakePinball, inbox: Inbox
) -> None:
    pinball = make_pinball()
    pinball.plugins.hook.pinball_notify(
        notification=Notification(
            recipients=("ops@example.com", " ops@example.com", "dev@example.com"),
            subject="Deploy\nfinished",
            text="All done.",
            html="<p>All <b>done</b>.</p>",
            kind="deploy",
        )
    )
    pinball.plugins.hook.pinball_notify(
        notification=Notification(("ops@example.com",), "Plain only", "Just text.")
    )

    first, second = inbox.wait_for(2)
    assert first.recipients == ("ops@example.com", "dev@example.com")
    assert first.subject == "Deploy finished"
    assert first.part("plain").strip() == "All done."
    assert first.part("html").strip() == "<p>All <b>done</b>.</p>"
    assert first.message["X-Pinball-Event"] == "deploy"
    assert second.message.get_content_type() == "text/plain"
    assert second.message.get_content().strip() == "Just text."


def test_no_mail_without_addresses(make_pinball: MakePinball, inbox: Inbox) -> None:
    """A failing job with no addresses, in a workflow with no schedule."""
    pinball = make_pinball()
    pinball.start(instance_tokens("lonely", "1", {"bad": Job(command="exit 1")}))
    pinball.start_workers(1)

    assert _settle(pinball, "lonely") == "FAILURE"
    assert inbox.received() == []


def _lower(emails: tuple[str, ...]) -> set[str]:
    return {e.lower() for e in emails}
