"""What workers do besides running jobs: ending instances and archiving them,
and starting jobs that no completion started.

An instance ends when nothing in it can run any more; the worker that sees
it first inserts the instance's ARCHIVE signal, leased until the archive is
due, so the signal doubles as the timer that tells a later worker to move
the instance's tokens to the store's archive.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from pinball_core.client import MasterClient
from pinball_core.errors import NotFoundError, VersionConflictError
from pinball_core.protocol import Query
from pinball_core.token import Token
from pinball_core.workflow import names, signals, transitions
from pinball_core.workflow.model import ABORT, ARCHIVE, Job, PayloadError, Signal
from pinball_core.workflow.status import instance_status

log = logging.getLogger(__name__)

ARCHIVE_INFIX = f"/{names.SIGNAL}/{ARCHIVE}"


def instance_events(workflow: str, instance: str) -> str:
    """The prefix of every event queued in an instance."""
    return f"{names.instance_prefix(workflow, instance)}input/"


class Chores:
    """Instance ends, archives and sweeps, on behalf of one worker."""

    def __init__(
        self,
        client: MasterClient,
        settings: Any,
        name: str,
        call: Callable[..., None],
    ) -> None:
        self.client = client
        self.settings = settings
        self.name = name
        self._call = call

    def finish_if_done(
        self,
        workflow: str,
        instance: str,
        *,
        none_runnable: bool = False,
        events_queued: int | None = None,
    ) -> None:
        """Mark the instance finished if nothing in it can run any more.

        A caller that has just looked may say what it saw since its own last
        change, to spare the requests: ``none_runnable``, no runnable job;
        ``events_queued``, how many events wait in the instance. The ARCHIVE
        signal is inserted, not updated, so of several workers ending the
        last jobs at once exactly one succeeds and reports it. It is leased
        until the archive is due, which makes it a timer.
        """
        if not none_runnable and self.client.query(
            names.job_prefix(workflow, instance, names.RUNNABLE), 1
        ):
            return
        if self._has_ready_job(workflow, instance, events_queued):
            return
        seen = signals.read_signals(self.client, workflow, instance)
        now = time.time()
        aborted = ABORT in seen
        due = now if aborted else now + self.settings.archive_delay_sec
        signal = Token(
            f"{names.signal_prefix(workflow, instance)}{ARCHIVE}",
            owner="archive-timer",
            expiration=due,
            data=Signal(action=ARCHIVE, timestamp=due).to_json(),
        )
        try:
            self.client.modify([signal])
        except VersionConflictError:
            return
        tokens = self.client.query(names.instance_prefix(workflow, instance))
        summary = instance_status(tokens, time.time(), signals=seen)
        status = summary.status.value if summary is not None else "SUCCESS"
        log.info("instance %s/%s finished: %s", workflow, instance, status)
        self._call(
            "pinball_instance_finished",
            workflow=workflow,
            instance=instance,
            status=status,
            summary=summary,
        )

    def _has_ready_job(
        self, workflow: str, instance: str, events_queued: int | None = None
    ) -> bool:
        """Whether a waiting job has an event on every input.

        Another worker's end may have just made one ready, a moment before
        that worker starts it: the instance is not finished then. Events are
        counted before any is read: a job fed by hundreds of upstream jobs
        cannot be ready while it holds fewer events than inputs, and reading
        all its events at each upstream end would cost the square of the fan.
        """
        if events_queued is None:
            (events_queued,) = self.client.count([instance_events(workflow, instance)])
        if events_queued == 0:
            return False
        waiting: list[tuple[str, Job]] = []
        for token in self.client.query(
            names.job_prefix(workflow, instance, names.WAITING)
        ):
            parsed = names.parse_job_name(token.name)
            try:
                job = Job.from_json(token.data)
            except PayloadError:
                continue
            if parsed is not None and job.inputs:
                waiting.append((parsed.job, job))
        if not waiting:
            return False

        prefixes = [names.input_prefix(workflow, instance, name) for name, _ in waiting]
        counts = self.client.count(prefixes)
        worth = [
            (prefix, job)
            for prefix, (_, job), got in zip(prefixes, waiting, counts, strict=True)
            if got >= len(job.inputs)
        ]
        if not worth:
            return False
        read = self.client.query_many([Query(prefix) for prefix, _ in worth])
        for (prefix, job), events in zip(worth, read, strict=True):
            fed = {event.name[len(prefix) :].split("/", 1)[0] for event in events}
            if all(name in fed for name in job.inputs):
                return True
        return False

    def archive_due(self) -> int:
        """Archive finished instances whose archive time has come."""
        archived = 0
        due = self.client.query_and_own(
            self.name,
            names.WORKFLOW_PREFIX,
            10,
            lease_sec=self.settings.lease_sec,
            contains=ARCHIVE_INFIX,
        )
        for signal_token in due:
            parts = signal_token.name.split("/")
            if len(parts) != 6:
                continue
            workflow, instance = parts[2], parts[3]
            tokens = self.client.query(names.instance_prefix(workflow, instance))
            if any(names.RUNNABLE_INFIX in t.name for t in tokens):
                # Revived since it finished (a retry); it is not done.
                self.client.modify(deletes=[signal_token])
                continue
            try:
                self.client.archive(tokens)
            except (VersionConflictError, NotFoundError):
                continue
            archived += 1
            log.info(
                "archived instance %s/%s (%d tokens)", workflow, instance, len(tokens)
            )
        return archived

    def sweep(self) -> int:
        """Start waiting jobs that have an event on every input.

        Completions start downstream jobs themselves; this catches what they
        cannot see: events posted by hand or by tools, and an event that
        reached a job while it was running.
        """
        started = 0
        events = self.client.query(names.WORKFLOW_PREFIX, contains="/input/")
        jobs_with_events = set()
        for token in events:
            parsed = names.parse_event_name(token.name)
            if parsed is not None:
                jobs_with_events.add((parsed.workflow, parsed.instance, parsed.job))
        for workflow, instance, job_name in sorted(jobs_with_events):
            waiting = self.client.query(
                names.job_name(workflow, instance, names.WAITING, job_name)
            )
            if not waiting:
                continue
            token = waiting[0]
            try:
                job = Job.from_json(token.data)
            except PayloadError as exc:
                log.error(
                    "job token %s is unreadable (%s); not starting it", token.name, exc
                )
                continue
            queued = transitions.view_of(
                workflow,
                instance,
                self.client.query(names.input_prefix(workflow, instance, job_name)),
            ).events.get(job_name, {})
            if not all(queued.get(name) for name in job.inputs):
                continue
            change = transitions.Change()
            transitions.move(
                change, workflow, instance, job_name, token.priority, job, queued, token
            )
            try:
                self.client.modify(change.updates, change.deletes)
            except (VersionConflictError, NotFoundError):
                continue
            started += 1
        return started
