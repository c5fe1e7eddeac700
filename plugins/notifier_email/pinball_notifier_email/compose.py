"""Turning events into mails: who gets them, the subject, and both parts.

Each mail is plain text plus HTML, rendered from the templates in
``templates/``. The HTML environment escapes every value it inserts, so a
job name, a command, a log line or an attribute value holding ``<``, ``&``
or quotes shows as text and can add no markup or link to the mail.
"""

import dataclasses
import datetime
import logging
import os
import pathlib
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jinja2
from pinball_core.components import Notification
from pinball_core.errors import MasterError
from pinball_core.workflow.model import ExecutionRecord, Job
from pinball_core.workflow.status import (
    ABORTED_REASON_PREFIX,
    JobSummary,
    Status,
)

from pinball_notifier_email.events import (
    Event,
    InstanceFinished,
    JobFailed,
    Message,
    ScheduleRefused,
    WarnTimeout,
)
from pinball_notifier_email.links import UiLinks
from pinball_notifier_email.lookup import MasterFacts
from pinball_notifier_email.settings import EmailSettings

log = logging.getLogger(__name__)

#: The event switch for each way an instance can end.
INSTANCE_EVENTS: Mapping[str, str] = {
    Status.SUCCESS: "instance_succeeded",
    Status.FAILURE: "instance_failed",
    Status.ABORTED: "instance_aborted",
}

# The most of a log file read for its last lines.
_EXCERPT_BYTES = 64 * 1024

_COLOURS: Mapping[str, str] = {
    Status.SUCCESS: "#2e7d32",
    Status.FAILURE: "#c62828",
    Status.ABORTED: "#ef6c00",
    Status.RUNNING: "#1565c0",
    Status.RETRY_PENDING: "#ef6c00",
    Status.CONDITION_PENDING: "#ef6c00",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Mail:
    """One mail ready to send; ``kind`` is the event that made it."""

    kind: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str | None


class Composer:
    """Makes the mails for events, reading the master where a hook fell short."""

    def __init__(self, settings: EmailSettings, facts: MasterFacts) -> None:
        self.settings = settings
        self.facts = facts
        self.links = UiLinks(settings.ui_url)
        loader = jinja2.PackageLoader("pinball_notifier_email", "templates")
        self._html = _environment(loader, autoescape=True)
        self._text = _environment(loader, autoescape=False)

    def compose(self, event: Event) -> Mail | None:
        """The mail ``event`` calls for, or None when nobody is to be told.

        :raises MasterError: if the master could not be read for who else
            to tell; the caller tries again later.
        """
        if isinstance(event, JobFailed):
            return self._job_failed(event)
        if isinstance(event, WarnTimeout):
            return self._warn_timeout(event)
        if isinstance(event, InstanceFinished):
            return self._instance_finished(event)
        if isinstance(event, ScheduleRefused):
            return self._schedule_refused(event)
        return self._message(event)

    # -- One function per event ------------------------------------------------

    def _job_failed(self, event: JobFailed) -> Mail | None:
        job = event.payload
        record = _record(job, event.execution)
        if (
            record is not None
            and event.reason.startswith(ABORTED_REASON_PREFIX)
            and not record.logs
        ):
            # Stopped by an ABORT before it ever ran: the instance-end mail
            # tells the owners; a mail per such job would only be noise.
            log.debug("no mail for %s: it never ran", _where(event))
            return None

        recipients = list(job.emails if job is not None else [])
        owners: list[str] = []
        if event.final:
            try:
                owners = self.facts.failure_context(
                    event.workflow, event.instance, event.job, recipients
                )
            except (MasterError, OSError) as exc:
                log.warning(
                    "cannot read the master for %s (%s); mailing the job's "
                    "addresses only",
                    _where(event),
                    exc,
                )
        recipients += owners
        context = self._execution(event, job, record)
        context.update(
            final=event.final,
            first_failure=bool(owners),
            end=record.end_time if record is not None else None,
            exit_code=event.exit_code,
            reason=event.reason,
        )
        outcome = _outcome(event.exit_code, event.reason)
        retry = "" if event.final else " (will retry)"
        subject = f"Job {event.job} of {event.workflow} {outcome}{retry}"
        kind = "job_failed" if event.final else "job_retried"
        return self._mail(kind, recipients, subject, "job_failed", context)

    def _warn_timeout(self, event: WarnTimeout) -> Mail | None:
        job = event.payload
        record = _record(job, event.execution)
        recipients = list(job.emails if job is not None else [])
        try:
            recipients += self.facts.workflow_emails(event.workflow)
        except (MasterError, OSError) as exc:
            log.warning(
                "cannot read the schedule of %s (%s); mailing the job's addresses only",
                event.workflow,
                exc,
            )
        context = self._execution(event, job, record)
        context.update(timeout=event.timeout)
        subject = (
            f"Job {event.job} of {event.workflow} exceeded its warn timeout "
            f"of {_timeout(event.timeout)}"
        )
        return self._mail("warn_timeout", recipients, subject, "warn_timeout", context)

    def _instance_finished(self, event: InstanceFinished) -> Mail | None:
        kind = INSTANCE_EVENTS.get(event.status, "instance_failed")
        recipients = self.facts.workflow_emails(event.workflow)
        if not _clean(recipients):
            log.debug("no addresses for %s; no instance mail", event.workflow)
            return None

        summary = event.summary
        missing = ""
        if summary is None:
            try:
                summary = self.facts.instance(event.workflow, event.instance)
            except (MasterError, OSError) as exc:
                missing = f"the master could not be read ({exc})"
            else:
                if summary is None:
                    missing = "it has been archived already"
        links = {
            "workflow": self.links.workflow(event.workflow),
            "instance": self.links.instance(event.workflow, event.instance),
        }
        context: dict[str, Any] = {
            "workflow": event.workflow,
            "instance": event.instance,
            "status": event.status,
            "links": links,
            "start": summary.start if summary is not None else None,
            "end": summary.end if summary is not None else None,
            "run_time": _span(summary.start, summary.end) if summary else None,
            "jobs": [],
            "failures": [],
            "table": "",
            "missing": missing,
        }
        if summary is not None:
            jobs = [self._job_row(event, j) for j in _by_last_start(summary.jobs)]
            context["jobs"] = jobs
            context["table"] = _text_table(jobs)
            context["failures"] = [
                (j["name"], j["link"], j["why"]) for j in jobs if j["why"]
            ]
        subject = (
            f"{event.status}: workflow {event.workflow}, instance {event.instance}"
        )
        return self._mail(kind, recipients, subject, "instance_finished", context)

    def _schedule_refused(self, event: ScheduleRefused) -> Mail | None:
        recipients = self.facts.workflow_emails(event.workflow)
        if not _clean(recipients):
            log.debug("no addresses for %s; no refusal mail", event.workflow)
            return None
        running, cap = self.facts.running(event.workflow)
        context: dict[str, Any] = {
            "workflow": event.workflow,
            "scheduled_time": event.scheduled_time,
            "reason": event.reason.rstrip("."),
            "cap": cap,
            "running": [
                {
                    "instance": i.instance,
                    "link": self.links.instance(event.workflow, i.instance),
                    "start": i.start,
                    "jobs": i.running_jobs,
                }
                for i in running
            ],
            "links": {"workflow": self.links.workflow(event.workflow)},
        }
        if len(running) >= cap:
            subject = (
                f"Workflow {event.workflow} not started: {len(running)} "
                f"instance{'s' if len(running) != 1 else ''} running, at most "
                f"{cap} allowed"
            )
        else:
            subject = f"Workflow {event.workflow} not started: {event.reason}"
        return self._mail(
            "schedule_refused", recipients, subject, "schedule_refused", context
        )

    def _message(self, event: Message) -> Mail | None:
        notification: Notification = event.notification
        recipients = _clean(notification.recipients)
        if not recipients:
            return None
        return Mail(
            kind=notification.kind,
            recipients=recipients,
            subject=_one_line(notification.subject),
            text=notification.text,
            html=notification.html,
        )

    # -- Shared parts --------------------------------------------------------------

    def _mail(
        self,
        kind: str,
        recipients: Iterable[str],
        subject: str,
        template: str,
        context: dict[str, Any],
    ) -> Mail | None:
        cleaned = _clean(recipients)
        if not cleaned:
            log.debug("%s: nobody to tell", subject)
            return None
        subject = _one_line(self.settings.subject_prefix + subject)
        text = self._text.get_template(f"{template}.txt").render(e=context)
        html = self._html.get_template(f"{template}.html").render(
            e=context, subject=subject
        )
        return Mail(kind, cleaned, subject, text, html)

    def _execution(
        self,
        event: JobFailed | WarnTimeout,
        job: Job | None,
        record: ExecutionRecord | None,
    ) -> dict[str, Any]:
        """What the failure and warning mails say about the execution."""
        w, i, j, n = event.workflow, event.instance, event.job, event.execution
        attempts = job.max_attempts if job is not None else 0
        attempt = job.failures_in_a_row(i) if job is not None else 0
        start = record.start_time if record is not None else None
        end = record.end_time if record is not None else None
        logs = sorted((record.logs if record is not None else {}).items())
        excerpt_kind, excerpt = _excerpt(
            logs, self.settings.log_lines, self.settings.logs_dir
        )
        return {
            "workflow": w,
            "instance": i,
            "job": j,
            "execution": n,
            "attempt": attempt,
            "attempts": attempts if attempts > 1 else 0,
            "command": record.info if record is not None else "",
            "start": start,
            "run_time": _span(start, end) if end is not None else _since(start),
            "logs": [
                (kind, self.links.log(w, i, j, n, kind), path) for kind, path in logs
            ],
            "attributes": sorted((record.event_attributes if record else {}).items()),
            "properties": sorted((record.properties if record else {}).items()),
            "excerpt": excerpt,
            "excerpt_kind": excerpt_kind,
            "links": {
                "workflow": self.links.workflow(w),
                "instance": self.links.instance(w, i),
                "job": self.links.job(w, i, j),
                "execution": self.links.execution(w, i, j, n),
            },
        }

    def _job_row(self, event: InstanceFinished, job: JobSummary) -> dict[str, Any]:
        last = job.last
        start = last.start_time if last is not None else None
        end = last.end_time if last is not None else None
        why = ""
        if job.status in (Status.FAILURE, Status.ABORTED) and last is not None:
            why = last.reason or f"exit code {_exit_code(last.exit_code)}"
        return {
            "name": job.name,
            "link": self.links.job(event.workflow, event.instance, job.name),
            "status": str(job.status),
            "attempts": job.attempts,
            "start": start,
            "end": end,
            "run_time": _span(start, end),
            "exit_code": last.exit_code if last is not None else None,
            "why": why,
        }


# -- Helpers ---------------------------------------------------------------------


def _environment(loader: jinja2.BaseLoader, *, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        utc=_utc,
        duration=_duration,
        timeout=_timeout,
        exit_code=_exit_code,
        status_colour=lambda status: _COLOURS.get(status, "#555"),
    )
    return env


def _record(job: Job | None, execution: int) -> ExecutionRecord | None:
    if job is None or not job.history:
        return None
    if 0 <= execution < len(job.history):
        return job.history[execution]
    return job.history[-1]


def _clean(addresses: Iterable[str]) -> tuple[str, ...]:
    """Addresses stripped, without blanks or repeats (of any letter case)."""
    seen: set[str] = set()
    kept = []
    for address in addresses:
        address = address.strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            kept.append(address)
    return tuple(kept)


def _one_line(text: str) -> str:
    # A header cannot hold line breaks; a reason or a name might.
    return " ".join(text.split())


def _outcome(exit_code: int | None, reason: str) -> str:
    if exit_code is not None and exit_code > 0 and not reason:
        return f"failed with exit code {exit_code}"
    if exit_code is not None and exit_code < 0 and not reason:
        return f"was killed by {_exit_code(exit_code)}"
    return f"failed: {reason}" if reason else "failed"


def _utc(when: float | None) -> str:
    if when is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    """``H:MM:SS``, the original's run-time format."""
    if seconds is None:
        return "-"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _timeout(seconds: float) -> str:
    """A timeout as set: ``90 s``, ``0.5 s``; an hour or more as ``H:MM:SS``."""
    return f"{seconds:g} s" if seconds < 3600 else _duration(seconds)


def _exit_code(code: int | None) -> str:
    if code is None:
        return "-"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return str(code)


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _since(start: float | None) -> float | None:
    return None if start is None else time.time() - start


def _by_last_start(jobs: Sequence[JobSummary]) -> list[JobSummary]:
    """Jobs in the order they last started; those that never ran at the end."""

    def key(job: JobSummary) -> tuple[int, float, str]:
        last = job.last
        if last is None:
            return (1, 0.0, job.name)
        return (0, last.start_time, job.name)

    return sorted(jobs, key=key)


def _text_table(jobs: list[dict[str, Any]]) -> str:
    header = ["Job", "Status", "Attempts", "Last start", "Last end", "Run time", "Exit"]
    rows = [
        [
            j["name"],
            j["status"],
            str(j["attempts"]),
            _utc(j["start"]),
            _utc(j["end"]),
            _duration(j["run_time"]),
            _exit_code(j["exit_code"]),
        ]
        for j in jobs
    ]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
        for r in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _excerpt(logs: list[tuple[str, str]], lines: int, logs_dir: str) -> tuple[str, str]:
    """The last ``lines`` lines of stderr, or of stdout if stderr is empty.

    Only files under ``logs_dir`` are read: a log path comes from token data,
    which a hand-made token could point at any file on the worker's host.
    """
    if lines <= 0:
        return "", ""
    paths = dict(logs)
    root = pathlib.Path(logs_dir).resolve()
    for kind in ("stderr", "stdout"):
        path = paths.get(kind)
        if not path:
            continue
        if not pathlib.Path(path).resolve().is_relative_to(root):
            log.warning("not quoting log %s: it is outside %s", path, root)
            continue
        tail = _tail(path, lines)
        if tail.strip():
            return kind, tail
    return "", ""


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _EXCERPT_BYTES))
            data = file.read()
    except OSError as exc:
        log.debug("cannot read log %s: %s", path, exc)
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def _where(event: JobFailed | WarnTimeout) -> str:
    return f"{event.workflow}/{event.instance}/{event.job}#{event.execution}"
