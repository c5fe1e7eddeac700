"""What the email notifier's tests are built from: an SMTP server that
keeps what it receives, worker threads that call the plugin's hooks, and
waits for conditions.

Nothing here waits a fixed time: every wait is for a condition, with a
deadline that only turns a hang into a failure.
"""

import collections
import dataclasses
import email
import email.message
import email.policy
import json
import pathlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from pinball_core import hookimpl
from pinball_core.config import Config
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.plugins import PluginManager
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Job
from pinball_core.workflow.status import InstanceSummary, Status, read_instance
from pinball_core.workflow.worker import Worker, WorkerSettings

from pinball_notifier_email import EmailNotifier

#: The longest any condition is waited for.
WAIT_SEC = 60.0


def wait_for(what: str, condition: Callable[[], Any], timeout: float = WAIT_SEC) -> Any:
    """The first truthy value of ``condition()``; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- SMTP ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Received:
    """One mail as the SMTP server got it."""

    sender: str
    recipients: tuple[str, ...]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        # Python folds a long subject before its first word and keeps the
        # space when it reads it back; mail clients drop it.
        return " ".join(str(self.message["Subject"]).split())

    def part(self, subtype: str) -> str:
        """The ``text/<subtype>`` body."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part in {self.subject!r}"
        assert body.get_content_type() == f"text/{subtype}"
        content: str = body.get_content()
        return content


class Inbox:
    """An aiosmtpd server on a loopback port, and every mail it received.

    :meth:`stop` and :meth:`start` take the server down and bring it back
    on the same port; :meth:`black_hole` holds the port with a socket that
    accepts connections but never answers, as a hung server does.
    """

    def __init__(self, port: int, **controller_options: Any) -> None:
        self.port = port
        self.mails: list[Received] = []
        self._options = controller_options
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._hole: socket.socket | None = None
        self._held: list[socket.socket] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=email.policy.default
        )
        assert isinstance(message, email.message.EmailMessage)
        with self._lock:
            self.mails.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), message)
            )
        return "250 OK"

    def start(self) -> None:
        self.close_black_hole()
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, **self._options
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def black_hole(self) -> None:
        self.stop()
        hole = socket.socket()
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", self.port))
        hole.listen(16)
        self._hole = hole
        threading.Thread(target=self._swallow, args=(hole,), daemon=True).start()

    def _swallow(self, hole: socket.socket) -> None:
        # Accept and hold every connection, saying nothing: a hung server.
        while True:
            try:
                connection, _ = hole.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(connection)

    def hung_connections(self) -> int:
        """Connections the black hole holds open."""
        with self._lock:
            return len(self._held)

    def close_black_hole(self) -> None:
        if self._hole is not None:
            # Wakes the thread blocked in accept(), which close() alone does
            # not, and which would keep the port.
            self._hole.shutdown(socket.SHUT_RDWR)
            self._hole.close()
            self._hole = None
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            connection.close()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.mails)

    def wait_for(self, count: int, timeout: float = WAIT_SEC) -> list[Received]:
        """The mails once there are at least ``count``."""
        wait_for(f"{count} mail(s)", lambda: len(self.received()) >= count, timeout)
        return self.received()

    def by_subject(self, text: str) -> list[Received]:
        return [m for m in self.received() if text in m.subject]


# -- Master, config, plugin ------------------------------------------------------------


MakeConfig = Callable[..., Config]


class Finished:
    """A plugin that records every instance end, to wait for one."""

    def __init__(self) -> None:
        self.ends: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    @hookimpl
    def pinball_instance_finished(
        self, workflow: str, instance: str, status: str
    ) -> None:
        with self._lock:
            self.ends[workflow, instance] = status

    def wait(self, workflow: str, instance: str) -> str:
        def ended() -> str | None:
            with self._lock:
                return self.ends.get((workflow, instance))

        status: str = wait_for(f"{workflow}/{instance} to finish", ended)
        return status


@dataclasses.dataclass
class Pinball:
    """The plugin loaded from its entry point into a plugin manager, with
    worker threads that call its hooks."""

    plugins: PluginManager
    notifier: EmailNotifier
    finished: Finished
    master: MasterThread
    logs_dir: pathlib.Path
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    workers: list[Worker] = dataclasses.field(default_factory=list)
    threads: list[threading.Thread] = dataclasses.field(default_factory=list)

    def start_workers(self, count: int = 2) -> None:
        settings = WorkerSettings(
            lease_sec=30,
            poll_sec=0.2,
            logs_dir=str(self.logs_dir),
            archive_delay_sec=3600,
            abort_grace_sec=0.5,
            tick_sec=0.05,
        )
        for _ in range(count):
            worker = Worker(
                self.master.client(), LocalExecutor(), settings, hook=self.plugins.hook
            )
            thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
            thread.start()
            self.workers.append(worker)
            self.threads.append(thread)

    def stop_workers(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.abort_running.set()
        for thread in self.threads:
            thread.join(timeout=WAIT_SEC)

    def start(self, tokens: list[Token]) -> None:
        self.master.client().modify(tokens)

    def schedule(self, workflow: str, emails: list[str], **fields: Any) -> None:
        """Post the workflow's schedule token, as a parser writes it."""
        data = {"workflow": workflow, "recurrence_sec": 86400, "emails": emails}
        token = Token(names.schedule_name(workflow), data=json.dumps(data | fields))
        self.master.client().modify([token])

    def first_failure(self, workflow: str, instance: str = "1") -> str:
        """The failed job whose end the master recorded first."""
        return first_failure(self.master, workflow, instance)

    def instance(self, workflow: str, instance: str) -> InstanceSummary:
        return read_summary(self.master, workflow, instance)


MakePinball = Callable[..., Pinball]


def read_summary(master: MasterThread, workflow: str, instance: str) -> InstanceSummary:
    summary = read_instance(master.client(), workflow, instance, time.time())
    assert summary is not None
    return summary


def first_failure(master: MasterThread, workflow: str, instance: str = "1") -> str:
    """The failed job whose end the master recorded first.

    Versions only grow, so the lowest version among the failed jobs'
    tokens (left as they ended) is the first failure.
    """
    summary = read_summary(master, workflow, instance)
    failed = {j.name for j in summary.jobs if j.status is Status.FAILURE}
    tokens = master.client().query(names.job_prefix(workflow, instance))
    versions = {}
    for token in tokens:
        parsed = names.parse_job_name(token.name)
        if parsed is not None and parsed.job in failed:
            versions[parsed.job] = token.version or 0
    return min(versions, key=lambda job: versions[job])


def schedule(master: MasterThread, workflow: str, emails: list[str]) -> None:
    """Post the workflow's schedule token, as a parser writes it."""
    data = {"workflow": workflow, "recurrence_sec": 86400, "emails": emails}
    token = Token(names.schedule_name(workflow), data=json.dumps(data))
    master.client().modify([token])


# -- A failing workflow ----------------------------------------------------------------

#: The owner of the workflows the tests run.
OWNER = "owner@example.com"


def failing_workflow(count: int) -> dict[str, Job]:
    """``count`` jobs that fail at once, each with its own address."""
    jobs = {"start": Job(command="true")}
    for n in range(count):
        jobs[f"fail_{n}"] = Job(
            command=f"exit {n + 1}", inputs=["start"], emails=[f"f{n}@example.com"]
        )
    jobs["after"] = Job(command="true", inputs=[f"fail_{n}" for n in range(count)])
    return jobs


def expected_failure_mails(
    count: int, first: str
) -> collections.Counter[tuple[str, tuple[str, ...]]]:
    """Every mail of a run of :func:`failing_workflow`, once each, as
    (subject, recipients)."""
    expected: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
    for n in range(count):
        subject = f"[Pinball] Job fail_{n} of wf failed with exit code {n + 1}"
        owners = (OWNER,) if first == f"fail_{n}" else ()
        expected[subject, (f"f{n}@example.com", *owners)] = 1
    expected["[Pinball] FAILURE: workflow wf, instance 1", (OWNER,)] = 1
    return expected
