"""The ``email`` notifier plugin: Pinball's hooks in, mail out.

Registered through the ``pinball.notifiers`` entry point ``email``, so every
Pinball process loads it; it does nothing until a hook has something to
mail, and only then starts its mail thread. Each hook decides at once
whether its event is mailed at all (``plugins.email.events``), copies what
it was given and queues it, so the worker or scheduler calling it goes on
without waiting.

Composed mails wait on disk, in the spool (``plugins.email.spool_dir``), so
that mail of a process that died is sent by the next one on the host. A
process adopts that mail when its mail thread starts: at its first event, or
as soon as it runs a job or starts a scheduled run.
"""

import collections
import logging
import pathlib
import threading
from typing import Any

from pinball_core import hookimpl
from pinball_core.client import HttpClient, MasterClient
from pinball_core.components import Notification
from pinball_core.config import Config
from pinball_core.workflow.model import Job
from pinball_core.workflow.status import InstanceSummary

from pinball_notifier_email.compose import INSTANCE_EVENTS, Composer
from pinball_notifier_email.events import (
    Event,
    InstanceFinished,
    JobFailed,
    Message,
    ScheduleRefused,
    WarnTimeout,
)
from pinball_notifier_email.lookup import MasterFacts
from pinball_notifier_email.outbox import Outbox
from pinball_notifier_email.settings import EmailSettings, settings_from_config
from pinball_notifier_email.spool import Spool, check_folder

log = logging.getLogger(__name__)

# Events remembered to drop a repeated report of the same thing.
_REMEMBERED = 10_000

# The mail thread reads the master with fewer, shorter tries than a worker:
# a mail should not wait minutes on a master that is down.
_MASTER_ATTEMPTS = 3
_MASTER_TIMEOUT_SEC = 30.0


class EmailNotifier:
    """Mails job failures, warn timeouts, instance ends and refused schedules."""

    def __init__(self) -> None:
        self.settings: EmailSettings | None = None
        self.outbox: Outbox | None = None
        self._facts: MasterFacts | None = None
        self._seen: collections.OrderedDict[tuple[Any, ...], None] = (
            collections.OrderedDict()
        )
        self._seen_lock = threading.Lock()

    # -- Configuration -----------------------------------------------------------

    @hookimpl
    def pinball_configure(self, config: Any) -> None:
        if not isinstance(config, Config):
            # Embedding code (or a test) may configure its plugins with
            # something else; there is nothing to mail with then.
            log.debug("email notifier left off: %r is not a Pinball config", config)
            return
        settings = settings_from_config(config)
        self.close()
        self.settings = settings
        self._facts = MasterFacts(
            lambda: _master_client(settings), settings.default_max_running_instances
        )
        self.outbox = Outbox(
            settings, Composer(settings, self._facts).compose, spool=_spool(settings)
        )

    def close(self, timeout: float | None = None) -> None:
        """Send what is waiting (up to ``timeout``, default ``exit_flush_sec``)
        and stop the mail thread; done at process exit in any case."""
        if self.outbox is not None:
            self.outbox.close(timeout)
        if self._facts is not None:
            self._facts.close()

    # -- Hooks ---------------------------------------------------------------------

    # These two only start the mail thread, which first adopts what a process
    # that died left in the spool; they need none of the hook's arguments.

    @hookimpl
    def pinball_job_started(self) -> None:
        self._adopt_spool()

    @hookimpl
    def pinball_schedule_fired(self) -> None:
        self._adopt_spool()

    @hookimpl
    def pinball_job_failed(
        self,
        workflow: str,
        instance: str,
        job: str,
        execution: int,
        exit_code: int | None,
        reason: str,
        will_retry: bool,
        payload: Job | None,
    ) -> None:
        kind = "job_retried" if will_retry else "job_failed"
        if not self._wanted(kind, (kind, workflow, instance, job, execution)):
            return
        self._put(
            JobFailed(
                workflow=workflow,
                instance=instance,
                job=job,
                execution=execution,
                exit_code=exit_code,
                reason=reason,
                final=not will_retry,
                payload=_copy(payload),
            )
        )

    @hookimpl
    def pinball_job_timed_out(
        self,
        workflow: str,
        instance: str,
        job: str,
        execution: int,
        timeout: float,
        payload: Job | None,
    ) -> None:
        key = ("warn_timeout", workflow, instance, job, execution)
        if not self._wanted("warn_timeout", key):
            return
        self._put(
            WarnTimeout(
                workflow=workflow,
                instance=instance,
                job=job,
                execution=execution,
                timeout=timeout,
                payload=_copy(payload),
            )
        )

    @hookimpl
    def pinball_instance_finished(
        self,
        workflow: str,
        instance: str,
        status: str,
        summary: InstanceSummary | None,
    ) -> None:
        # An instance retried after its end ends again, and is mailed again.
        kind = INSTANCE_EVENTS.get(status, "instance_failed")
        if not self._wanted(kind, None):
            return
        self._put(InstanceFinished(workflow, instance, status, summary))

    @hookimpl
    def pinball_schedule_refused(
        self, workflow: str, scheduled_time: float, reason: str
    ) -> None:
        key = ("schedule_refused", workflow, scheduled_time)
        if not self._wanted("schedule_refused", key):
            return
        self._put(ScheduleRefused(workflow, scheduled_time, reason))

    @hookimpl
    def pinball_notify(self, notification: Notification) -> None:
        if not self._wanted(notification.kind, None):
            return
        self._put(Message(notification))

    # -- Helpers -------------------------------------------------------------------

    def _wanted(self, kind: str, key: tuple[Any, ...] | None) -> bool:
        """Whether ``kind`` is mailed, and ``key`` (if any) was not seen yet."""
        settings = self.settings
        if settings is None:
            log.debug("%s not mailed: the email notifier is not configured", kind)
            return False
        if not settings.sends(kind):
            return False
        if key is None:
            return True
        with self._seen_lock:
            if key in self._seen:
                log.debug("%s reported twice; mailed once", key)
                return False
            self._seen[key] = None
            if len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        return True

    def _adopt_spool(self) -> None:
        # A process that runs jobs or starts runs lives on, so it sends what
        # a dead process left without waiting for a mail of its own. Short
        # commands (pinball tokens ls) call no such hook, and so never wait
        # at exit on mail that is not theirs.
        outbox = self.outbox
        if outbox is not None and outbox.spooling:
            outbox.start()

    def _put(self, event: Event) -> None:
        if self.outbox is not None:
            self.outbox.put(event)


def _copy(payload: Job | None) -> Job | None:
    # The worker keeps changing its Job after the hook returns; the mail is
    # composed later, on another thread, so it gets a copy of this moment.
    return None if payload is None else Job.from_json(payload.to_json())


def _spool(settings: EmailSettings) -> Spool | None:
    """The spool, if it is on and its folder can be written; else None, with
    one error: mail then waits in memory, and a worker never stops for it."""
    if settings.spool_dir is None:
        return None
    folder = pathlib.Path(settings.spool_dir)
    try:
        check_folder(folder)
    except OSError as exc:
        log.error(
            "mail spool %s cannot be used: %s; unsent mail will not survive a "
            "restart of this process. Make the folder writable, or set "
            "plugins.email.spool_dir to another folder (spool: false turns the "
            "spool off)",
            folder,
            exc,
        )
        return None
    return Spool(folder)


def _master_client(settings: EmailSettings) -> MasterClient:
    return HttpClient(
        settings.master_host,
        settings.master_port,
        secret=settings.master_secret,
        timeout_sec=_MASTER_TIMEOUT_SEC,
        connect_attempts=_MASTER_ATTEMPTS,
        max_backoff_sec=5.0,
    )
