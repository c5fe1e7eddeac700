"""The outbox: a bounded queue and one daemon thread that sends what is in it.

Hooks only queue an event and return, so a slow or dead SMTP server (or
master) never holds up a worker or the scheduler. The thread turns each
event into its mail at once, while what it describes can still be read,
and sends mails in order. When the server cannot take mail every waiting
mail waits, with a doubling delay between tries; a mail the server refuses
for good, or one still unsent after ``give_up_after_sec``, is logged with
its recipients and subject and dropped. At process exit the thread gets
``exit_flush_sec`` to send what is left; what still is not sent is logged.

With a :class:`~pinball_notifier_email.spool.Spool`, each mail is also
written to disk once composed and its file removed once the mail is sent or
dropped, so mail still waiting when the process dies is sent by the next
process on the host whose mail thread starts: the thread first adopts it.
"""

import atexit
import dataclasses
import logging
import pathlib
import queue
import threading
import time
from collections.abc import Callable

from pinball_core.errors import MasterError

from pinball_notifier_email.compose import Mail
from pinball_notifier_email.events import Event
from pinball_notifier_email.settings import EmailSettings
from pinball_notifier_email.smtp import MailRejected, ServerUnavailable, SmtpConnection
from pinball_notifier_email.spool import Spool

log = logging.getLogger(__name__)

# How often a stopping thread looks at its deadline while waiting.
_STOP_TICK_SEC = 0.1


@dataclasses.dataclass
class _Item:
    """One event on its way: its mail once composed, and its retry timer."""

    #: None for a mail adopted from the spool: it was composed elsewhere.
    event: Event | None
    queued_at: float
    mail: Mail | None = None
    #: When composing may be tried again after the master could not be read.
    compose_at: float = 0.0
    compose_failures: int = 0
    #: The mail's file in the spool, once written there.
    spooled: pathlib.Path | None = None


class Outbox:
    """Queues events from any thread; one daemon thread composes and sends.

    :param settings: The notifier's settings.
    :param compose: Makes an event's mail (None: nobody to tell); it may
        raise :class:`~pinball_core.errors.MasterError` to be tried again.
    :param connect: Opens an SMTP session; replaceable for tests.
    :param spool: Where composed mails wait on disk; None keeps them in
        memory only. Used from the mail thread alone.
    """

    def __init__(
        self,
        settings: EmailSettings,
        compose: Callable[[Event], Mail | None],
        connect: Callable[[EmailSettings], SmtpConnection] = SmtpConnection,
        spool: Spool | None = None,
    ) -> None:
        self.settings = settings
        self._compose = compose
        self._connect = connect
        self._spool = spool
        # None wakes the thread to stop; it is never counted as an event.
        self._events: queue.Queue[tuple[float, Event] | None] = queue.Queue(
            settings.queue_size
        )
        # Guards _items, the counters and the thread's start and stop.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._items: list[_Item] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stop_deadline = 0.0
        self._closed = False
        # Wake-up calls in the queue, which pending() does not count.
        self._wakeups = 0
        # The server's state: consecutive failed tries and the next try.
        self._server_failures = 0
        self._server_retry_at = 0.0
        #: Mails the server accepted, and mails dropped unsent, since start.
        self.sent = 0
        self.dropped = 0

    # -- Any thread ---------------------------------------------------------------

    def put(self, event: Event) -> bool:
        """Queue ``event`` without waiting; False if it was dropped.

        An event is dropped, with an error naming it, when the queue is full
        (the mail thread has fallen far behind) or the outbox is closed.
        """
        if self._closed:
            log.error("mail for %s not queued: the notifier has stopped", _name(event))
            return False
        self.start()
        try:
            self._events.put_nowait((time.monotonic(), event))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            log.error(
                "mail for %s dropped: %d events already wait to be mailed "
                "(plugins.email.queue_size)",
                _name(event),
                self.settings.queue_size,
            )
            return False
        return True

    def pending(self) -> int:
        """Events queued or mails waiting to be sent."""
        with self._lock:
            return self._queued() + len(self._items)

    def _queued(self) -> int:
        return self._events.unfinished_tasks - self._wakeups

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until nothing is left to send.

        True if everything queued before and during the wait was sent or
        dropped; False if the time ran out first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._queued() or self._items:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop: send what is waiting within ``timeout`` seconds, log the rest.

        ``timeout`` defaults to ``exit_flush_sec``; tries already delayed by
        a failing server get one more try now. Called at process exit too.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        if thread is None:
            return
        wait = self.settings.exit_flush_sec if timeout is None else timeout
        self._stop_deadline = time.monotonic() + wait
        # Mails held back by a failing server get one more try now.
        self._server_retry_at = 0.0
        self._stopping.set()
        self._wake()
        thread.join(wait + _STOP_TICK_SEC * 5)
        if thread.is_alive():
            # Stuck in a connection attempt; it is a daemon and dies with the
            # process, so what it holds is reported from here.
            self._report_unsent("the notifier stopped first")

    # -- The mail thread -----------------------------------------------------------

    @property
    def spooling(self) -> bool:
        """Whether composed mails are kept on disk (until the spool fails)."""
        return self._spool is not None

    def start(self) -> None:
        """Start the mail thread unless it runs; at once, without waiting.

        The thread first adopts the spooled mail of processes that died,
        then sends it with the mails of this process.
        """
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(
                target=self._run, name="pinball-mail", daemon=True
            )
            self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        self._claim_spool()
        while True:
            try:
                self._step()
            except Exception:
                # A bug here must not silence every later mail.
                log.exception("mail thread: unexpected error; going on")
                time.sleep(1.0)
            if self._stopping.is_set():
                with self._lock:
                    idle = not self._queued() and not self._items
                if idle or time.monotonic() >= self._stop_deadline:
                    break
        self._report_unsent("the notifier stopped first")
        # Only the thread gives up the spool's lock: while a hung thread may
        # still send, another process must not adopt its mails.
        if self._spool is not None:
            self._spool.release()

    def _claim_spool(self) -> None:
        spool = self._spool
        if spool is None:
            return
        try:
            adopted = spool.claim()
        except OSError as exc:
            log.error(
                "mail spool %s cannot be used (%s); this process keeps its "
                "mail in memory only",
                spool.folder,
                exc,
            )
            self._spool = None
            return
        # The give-up delay counts from when the mail was first queued.
        wall, now = time.time(), time.monotonic()
        items = [
            _Item(None, now - max(0.0, wall - s.queued), s.mail, spooled=s.path)
            for s in adopted
        ]
        with self._lock:
            self._items[:0] = items
            dropped = self._trim()
        self._drop(dropped, "too many mails waiting (plugins.email.queue_size)")

    def _step(self) -> None:
        self._take_events(self._sleep_time())
        now = time.monotonic()
        self._compose_due(now)
        # Before sending: a mail adopted from the spool may be long overdue.
        self._expire(time.monotonic())
        if self._ready() and now >= self._server_retry_at:
            self._send_ready()
        with self._changed:
            self._changed.notify_all()

    def _sleep_time(self) -> float | None:
        """How long to wait for new events before there is other work."""
        if self._stopping.is_set():
            return _STOP_TICK_SEC
        now = time.monotonic()
        with self._lock:
            items = list(self._items)
        if not items:
            return None
        due = [i.compose_at for i in items if i.mail is None]
        if any(i.mail is not None for i in items):
            due.append(self._server_retry_at)
        oldest = min(i.queued_at for i in items) + self.settings.give_up_after_sec
        return max(0.0, min([*due, oldest]) - now)

    def _wake(self) -> None:
        # The thread may be waiting for an event with no timeout. A full
        # queue needs no wake-up call: the thread is busy with it.
        with self._lock:
            self._wakeups += 1
        try:
            self._events.put_nowait(None)
        except queue.Full:
            with self._lock:
                self._wakeups -= 1

    def _take_events(self, wait: float | None) -> None:
        """Move queued events into the item list, waiting up to ``wait`` for one."""
        try:
            entry = self._events.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            if entry is None:
                with self._lock:
                    self._wakeups -= 1
                    self._events.task_done()
            else:
                self._add(_Item(entry[1], entry[0]))
            try:
                entry = self._events.get_nowait()
            except queue.Empty:
                return

    def _add(self, item: _Item) -> None:
        with self._lock:
            self._items.append(item)
            self._events.task_done()
            dropped = self._trim()
        self._drop(dropped, "too many mails waiting (plugins.email.queue_size)")

    def _trim(self) -> list[_Item]:
        """Take the oldest items beyond ``queue_size`` out; the lock is held."""
        over = len(self._items) - self.settings.queue_size
        if over <= 0:
            return []
        dropped = self._items[:over]
        del self._items[:over]
        self.dropped += over
        return dropped

    def _drop(self, items: list[_Item], why: str) -> None:
        for item in items:
            self._unspool(item)
            _log_unsent(item, why)

    def _compose_due(self, now: float) -> None:
        with self._lock:
            due = [i for i in self._items if i.mail is None and i.compose_at <= now]
        for item in due:
            assert item.event is not None
            try:
                mail = self._compose(item.event)
            except (MasterError, OSError) as exc:
                item.compose_failures += 1
                delay = self._backoff(item.compose_failures)
                item.compose_at = time.monotonic() + delay
                log.warning(
                    "cannot prepare the mail for %s: the master could not be "
                    "read (%s); trying again in %.3g s",
                    _name(item.event),
                    exc,
                    delay,
                )
                continue
            except Exception:
                log.exception(
                    "cannot prepare the mail for %s; dropped", _name(item.event)
                )
                mail = None
            with self._lock:
                if mail is None:
                    self._items.remove(item)
                else:
                    item.mail = mail
            if mail is not None:
                self._save(item, mail)

    def _save(self, item: _Item, mail: Mail) -> None:
        """Write a composed mail to the spool, if there is one."""
        spool = self._spool
        if spool is None:
            return
        queued = time.time() - (time.monotonic() - item.queued_at)
        try:
            item.spooled = spool.save(mail, queued)
        except OSError as exc:
            log.warning(
                "mail %r kept in memory only: cannot write it to the spool %s (%s)",
                mail.subject,
                spool.folder,
                exc,
            )

    def _unspool(self, item: _Item) -> None:
        """Remove a mail's file from the spool: it was sent or dropped."""
        path = item.spooled
        if path is None or self._spool is None:
            return
        item.spooled = None
        try:
            self._spool.discard(path)
        except OSError as exc:
            log.warning(
                "cannot remove the spool file %s (%s); the process that adopts "
                "it will send the mail %r again",
                path,
                exc,
                item.mail.subject if item.mail is not None else "",
            )

    def _ready(self) -> list[_Item]:
        with self._lock:
            return [i for i in self._items if i.mail is not None]

    def _send_ready(self) -> None:
        ready = self._ready()
        settings = self.settings
        try:
            with self._connect(settings) as connection:
                for item in ready:
                    mail = item.mail
                    assert mail is not None
                    try:
                        delivery = connection.send(mail, settings.sender)
                    except MailRejected as exc:
                        self._finish(item, sent=False)
                        _log_unsent(item, f"the server refused it: {exc}")
                        continue
                    self._finish(item, sent=True)
                    if delivery.refused:
                        log.warning(
                            "mail %r: the server refused some recipients: %s",
                            mail.subject,
                            delivery.refused,
                        )
                    log.info(
                        "mailed %r to %s", mail.subject, ", ".join(mail.recipients)
                    )
        except ServerUnavailable as exc:
            self._server_failures += 1
            delay = self._backoff(self._server_failures)
            self._server_retry_at = time.monotonic() + delay
            log.warning(
                "cannot send mail through %s:%d: %s; %d mail(s) waiting, next "
                "try in %.3g s",
                settings.smtp_host,
                settings.smtp_port,
                exc,
                len(self._ready()),
                delay,
            )
            return
        if self._server_failures:
            log.info(
                "SMTP server %s:%d takes mail again",
                settings.smtp_host,
                settings.smtp_port,
            )
        self._server_failures = 0
        self._server_retry_at = 0.0

    def _finish(self, item: _Item, *, sent: bool) -> None:
        self._unspool(item)
        with self._lock:
            if item in self._items:
                self._items.remove(item)
            if sent:
                self.sent += 1
            else:
                self.dropped += 1

    def _expire(self, now: float) -> None:
        limit = self.settings.give_up_after_sec
        with self._lock:
            old = [i for i in self._items if now - i.queued_at >= limit]
            for item in old:
                self._items.remove(item)
            self.dropped += len(old)
        self._drop(old, f"still not sent after {limit:.0f} s")

    def _backoff(self, failures: int) -> float:
        settings = self.settings
        delay = settings.retry_delay_sec * 2 ** min(failures - 1, 30)
        return float(min(delay, settings.max_retry_delay_sec))

    def _report_unsent(self, why: str) -> None:
        # Mails in the spool stay there, for the next process to send; this
        # may run on another thread while the mail thread hangs, so it leaves
        # the spool alone.
        with self._lock:
            left = [i for i in self._items if i.spooled is None]
            kept = [i for i in self._items if i.spooled is not None]
            self._items.clear()
            self.dropped += len(left)
            while True:
                try:
                    entry = self._events.get_nowait()
                except queue.Empty:
                    break
                self._events.task_done()
                if entry is None:
                    self._wakeups -= 1
                    continue
                left.append(_Item(entry[1], entry[0]))
                self.dropped += 1
            self._changed.notify_all()
        for item in left:
            _log_unsent(item, why)
        for item in kept:
            assert item.mail is not None
            log.warning(
                "mail not sent: %s; kept in %s for the next Pinball process on "
                "this host; to %s, subject %r",
                why,
                item.spooled,
                ", ".join(item.mail.recipients),
                item.mail.subject,
            )


def _name(event: Event | None) -> str:
    """A short description of an event for logs."""
    if event is None:
        return "a mail from the spool"
    kind = type(event).__name__
    parts = [getattr(event, "workflow", ""), getattr(event, "instance", "")]
    parts.append(getattr(event, "job", ""))
    where = "/".join(p for p in parts if p)
    notification = getattr(event, "notification", None)
    if notification is not None:
        where = repr(notification.subject)
    return f"{kind} {where}".strip()


def _log_unsent(item: _Item, why: str) -> None:
    mail = item.mail
    if mail is None:
        log.error("mail for %s not sent: %s", _name(item.event), why)
        return
    log.error(
        "mail not sent: %s; to %s, subject %r",
        why,
        ", ".join(mail.recipients),
        mail.subject,
    )
