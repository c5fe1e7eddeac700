"""The worker: claims the most urgent runnable job anywhere and runs it.

A worker holds no state of its own. It claims one runnable job token with a
lease (the master hands out the highest priority across all workflows and
instances, and holds the claim open until work appears, so a job made
runnable is picked up at once), runs it through an executor while renewing
the lease, and records the end in one atomic modify that also feeds and
starts the downstream jobs. A worker that cannot renew its lease kills its
job, since someone else may already be running it; a job whose worker died
is claimed again once the lease runs out, and the lost attempt is recorded.
"""

import contextlib
import dataclasses
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pinball_core.client import MasterClient
from pinball_core.components import ExecutionHandle, ExecutionSpec, Executor
from pinball_core.errors import (
    MasterError,
    MasterUnavailableError,
    NotFoundError,
    VersionConflictError,
)
from pinball_core.protocol import Query
from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names, signals, transitions
from pinball_core.workflow.chores import Chores, instance_events
from pinball_core.workflow.model import (
    ABORT,
    DRAIN,
    STOPPED_WITH_WORKER,
    Job,
    PayloadError,
    merge_attributes,
)

log = logging.getLogger(__name__)

# How many times a completion is recomputed after losing a race.
_COMPLETION_ATTEMPTS = 20

# How long the master holds an empty claim open. A job made runnable ends the
# hold at once, so this costs no latency; a worker asked to stop notices only
# between claims, so a short hold keeps stopping prompt, for one request every
# two seconds from an idle worker.
_CLAIM_HOLD_SEC = 2.0

# Reasons starting with this mean the job was stopped on purpose: no retry.
_ABORTED = "aborted"


@dataclasses.dataclass
class WorkerSettings:
    """How a worker behaves; :func:`settings_from_config` fills it from config."""

    generation: int = 1
    lease_sec: float = 60.0
    poll_sec: float = 10.0
    logs_dir: str = "logs"
    archive_delay_sec: float = 43200.0
    abort_grace_sec: float = 10.0
    base_url: str | None = None
    #: How often a running job's worker checks for ABORT and timeouts.
    tick_sec: float = 0.5


def settings_from_config(config: Any) -> WorkerSettings:
    """Worker settings from a :class:`~pinball_core.config.Config`."""
    base_url = None
    if config.ui_host:
        base_url = f"http://{config.ui_host}:{config.ui_port}"
    return WorkerSettings(
        generation=config.generation,
        lease_sec=config.worker_lease_sec,
        poll_sec=config.worker_poll_time_sec,
        logs_dir=str(config.logs_dir),
        archive_delay_sec=config.archive_delay_sec,
        abort_grace_sec=config.abort_grace_sec,
        base_url=base_url,
    )


def worker_name(generation: int) -> str:
    """A name no other worker has: host, generation, process, thread, random."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())
    thread = threading.get_ident()
    return f"{host}_g{generation}_{os.getpid()}_{thread}_{uuid.uuid4().hex[:6]}"


@dataclasses.dataclass
class _Outcome:
    exit_code: int
    token: Token
    #: Why the job was stopped, if it was: the ABORT signal or its timeout.
    stopped: str | None = None
    #: The lease was lost; someone else owns the job now, so record nothing.
    fenced: bool = False

    @property
    def retryable(self) -> bool:
        """Whether the job's retries apply: not when it was aborted on purpose."""
        return self.stopped is None or not self.stopped.startswith(_ABORTED)


@dataclasses.dataclass
class _Prefetch:
    """What the end of a job will need, read as the job started."""

    #: The job token's name.
    job: str
    #: When it was read, on the monotonic clock.
    read_at: float
    view: transitions.InstanceView
    seen: signals.Signals


#: Waiting jobs to look at again, by (workflow, instance), with how many
#: inputs each has: see :meth:`Worker._look_again`.
_Rechecks = dict[tuple[str, str], dict[str, int]]


class Worker:
    """One worker thread's loop; call :meth:`run` in the thread."""

    def __init__(
        self,
        client: MasterClient,
        executor: Executor,
        settings: WorkerSettings,
        *,
        hook: Any = None,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.executor = executor
        self.settings = settings
        self.hook = hook
        self.name = name or worker_name(settings.generation)
        self._next: Token | None = None
        self._last_chores = 0.0
        self._global: signals.Signals = {}
        self._global_read_at = -1e9
        # Whether the instance of the last completion had no signal that
        # forbids starting its jobs.
        self._quiet = True
        # The running job's view, read while it started (see _commit_end).
        self._prefetch: _Prefetch | None = None
        # Rechecks put off until this worker's next request (see _after_commit).
        self._deferred: _Rechecks = {}
        self.chores = Chores(client, settings, self.name, self._call)
        #: Set to stop running jobs at once rather than letting them finish.
        self.abort_running = threading.Event()

    # -- The loop -----------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set or an EXIT signal applies to this worker.

        Requests to a master that cannot be reached stop retrying once
        ``stop`` is set, except those of a running job, which stop retrying
        once :attr:`abort_running` is set: a job allowed to finish should
        still get its end recorded.
        """
        log.info(
            "worker %s started (generation %d)", self.name, self.settings.generation
        )
        with self.client.give_up_when(stop):
            while not stop.is_set():
                try:
                    if not self.run_once(stop):
                        break
                except MasterUnavailableError as exc:
                    log.warning("worker %s: master unavailable: %s", self.name, exc)
                    stop.wait(self.settings.poll_sec)
                except Exception:
                    # A bug or a bad token must not end the thread for good;
                    # the work it was on is left to its lease.
                    log.exception("worker %s: unexpected error; going on", self.name)
                    stop.wait(self.settings.poll_sec)
            self._hand_back()
        log.info("worker %s stopped", self.name)

    def _hand_back(self) -> None:
        """Give back a job this worker claimed but will not run after all.

        If this worker recorded its start with the claim, removing that
        record keeps the next worker from counting it as a lost attempt. An
        open attempt of another worker's stays, to be recorded as lost.
        """
        token, self._next = self._next, None
        if token is None:
            return
        try:
            job = Job.from_json(token.data)
            last = job.last
            if last is not None and not last.finished and last.worker == self.name:
                job.history.pop()
                job.events = last.events
            self.client.modify(
                [
                    dataclasses.replace(
                        token, owner=None, expiration=None, data=job.to_json()
                    )
                ]
            )
        except (MasterError, PayloadError) as exc:
            log.warning(
                "could not hand back %s: %s; its lease will lapse", token.name, exc
            )

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim and run at most one job; False once an EXIT says to leave."""
        stop = stop or threading.Event()
        global_signals = self._global_signals()
        if signals.exit_applies(global_signals, self.settings.generation):
            log.info("worker %s leaves: EXIT signal", self.name)
            self._hand_back()
            return False

        if time.time() - self._last_chores >= self.settings.poll_sec:
            self._last_chores = time.time()
            self.chores.archive_due()
            self.chores.sweep()

        if DRAIN in global_signals:
            self._hand_back()
            stop.wait(self.settings.poll_sec)
            return True
        if stop.is_set():
            return True

        if self._deferred and self._next is None:
            self._look_again()
        token = self._next or self._claim()
        self._next = None
        if token is not None and stop.is_set():
            # Asked to stop during the claim: the job goes back unrun.
            self._next = token
        elif token is not None:
            self._next = self.work_on(token)
        return True

    def _global_signals(self) -> signals.Signals:
        # Read at most once per tick: a busy worker would otherwise spend a
        # request per job on signals that change a few times a day.
        now = time.monotonic()
        if now - self._global_read_at >= self.settings.tick_sec:
            self._global = signals.read_signals(self.client)
            self._global_read_at = now
        return self._global

    def _claim(self) -> Token | None:
        wait = min(self.settings.poll_sec, _CLAIM_HOLD_SEC)
        claimed = self.client.query_and_own(
            self.name,
            names.WORKFLOW_PREFIX,
            1,
            lease_sec=self.settings.lease_sec,
            contains=names.RUNNABLE_INFIX,
            wait_sec=wait,
        )
        return claimed[0] if claimed else None

    # -- One job ------------------------------------------------------------

    def work_on(self, token: Token) -> Token | None:
        """Run the claimed job ``token`` and record its end.

        Returns a downstream job this worker claimed in the same update, to
        run next without asking the master again.
        """
        parsed = names.parse_job_name(token.name)
        if parsed is None:
            log.error("claimed %s, which is not a job token; leaving it", token.name)
            return None
        workflow, instance, job_name = parsed.workflow, parsed.instance, parsed.job
        try:
            job = Job.from_json(token.data)
        except PayloadError as exc:
            log.error("job token %s is unreadable (%s); parking it", token.name, exc)
            self._park(token, "unreadable job data", FOREVER)
            return None

        last = job.last
        self._prefetch = None
        if last is not None and not last.finished and last.worker == self.name:
            # Claimed and started by this worker's last completion, which
            # also checked the instance's signals.
            return self._run(token, job, workflow, instance, job_name)

        # The signals that decide whether it may start, and what its end will
        # need, in one request.
        self._prefetch = self._read_ahead(workflow, instance, job, job_name, token)
        seen = self._prefetch.seen
        if ABORT in seen:
            return self._end_unrun(token, job, instance, "aborted before it started")
        if DRAIN in seen or signals.exit_applies(seen, self.settings.generation):
            # Look again a poll period later; nobody else takes it meanwhile.
            self._park(token, "drained", time.time() + self.settings.poll_sec)
            return None

        now = time.time()
        if last is not None and not last.finished and last.instance == instance:
            last.end_time = now
            last.exit_code = 1
            last.reason = "lost: its worker stopped renewing the lease"
            log.warning("job %s: previous attempt was lost", token.name)
            if not job.can_retry(instance):
                return self._record_end(token, job, workflow, instance, job_name)

        record = transitions.start_record(job, instance, self.name, now)
        if job.disabled:
            record.info = "DISABLED"
            record.end_time = now
            record.exit_code = 0
            record.reason = "disabled"
            return self._record_end(token, job, workflow, instance, job_name)

        record.info = substitute(
            job.command, merge_attributes(record.events), job=token.name
        )
        try:
            token = self._renew(token, job)
        except (VersionConflictError, NotFoundError):
            log.warning("job %s changed before it started; not running it", token.name)
            return None
        return self._run(token, job, workflow, instance, job_name)

    def _run(
        self, token: Token, job: Job, workflow: str, instance: str, job_name: str
    ) -> Token | None:
        """Execute a job whose start is recorded in ``token``; record its end."""
        record = job.history[-1]
        give_up = _GiveUp(self.abort_running)
        with self.client.give_up_when(give_up):
            outcome = self._execute(token, job, workflow, instance, job_name, give_up)
            # The end is recorded however long the master takes to come
            # back, unless this worker must stop at once.
            give_up.lease_ends = math.inf
            if outcome.fenced:
                return None
            record.exit_code = outcome.exit_code
            record.end_time = time.time()
            record.reason = outcome.stopped
            return self._record_end(
                outcome.token,
                job,
                workflow,
                instance,
                job_name,
                retry=outcome.retryable,
                aborted=not outcome.retryable,
            )

    def _execute(
        self,
        token: Token,
        job: Job,
        workflow: str,
        instance: str,
        job_name: str,
        give_up: "_GiveUp",
    ) -> _Outcome:
        record = job.history[-1]
        execution = len(job.history) - 1
        if _lease_left(token) < self.settings.lease_sec * 2 / 3:
            # The claim's answer came late (the master was restarting, say):
            # a lease that may run out before the first renewal is renewed
            # first, and one that ran out and went to another worker is not
            # run here, or the job would run twice at once.
            try:
                token = self._renew(token, job)
            except (VersionConflictError, NotFoundError):
                log.warning(
                    "job %s: its lease ran out before it could start, and "
                    "another worker has it now; not running it here",
                    token.name,
                )
                return _Outcome(exit_code=1, token=token, fenced=True)
        give_up.lease_ends = _expiry(token)
        spec = ExecutionSpec(
            workflow=workflow,
            instance=instance,
            job=job_name,
            execution=execution,
            kind=job.kind,
            command=record.info,
            env=self._environment(workflow, instance, job_name, execution, job),
            log_dir=os.path.join(self.settings.logs_dir, workflow, instance),
        )
        try:
            handle = self.executor.start(spec)
        except (OSError, ValueError) as exc:
            log.error("job %s could not start: %s", token.name, exc)
            return _Outcome(exit_code=1, token=token, stopped=f"could not start: {exc}")
        self._call(
            "pinball_job_started",
            workflow=workflow,
            instance=instance,
            job=job_name,
            execution=execution,
        )
        if self._prefetch is None or self._prefetch.job != token.name:
            # While the job runs: a short job's end then needs no read of its
            # own, which would stand between it and the start of the next.
            try:
                self._prefetch = self._read_ahead(
                    workflow, instance, job, job_name, token
                )
            except MasterError as exc:
                # The job runs on, watched; its end reads what it needs then.
                log.warning("job %s: could not read ahead: %s", token.name, exc)
        return self._watch(handle, token, job, workflow, instance, job_name, give_up)

    def _watch(
        self,
        handle: ExecutionHandle,
        token: Token,
        job: Job,
        workflow: str,
        instance: str,
        job_name: str,
        give_up: "_GiveUp",
    ) -> _Outcome:
        """Wait for the execution, renewing the lease and enforcing timeouts.

        No request made meanwhile outlasts the lease (see :class:`_GiveUp`):
        with the master down, the job is stopped when its lease runs out,
        before another worker can take it once the master is back.
        """
        settings = self.settings
        started = time.monotonic()
        renew_at = time.time() + settings.lease_sec / 3
        warned = False
        stopped: str | None = None
        fenced = False
        while True:
            code = handle.wait(settings.tick_sec)
            _copy_output(handle, job.history[-1])
            if code is not None:
                return _Outcome(
                    exit_code=code, token=token, stopped=stopped, fenced=fenced
                )

            elapsed = time.monotonic() - started
            if job.warn_timeout_sec and elapsed > job.warn_timeout_sec and not warned:
                warned = True
                self._call(
                    "pinball_job_timed_out",
                    workflow=workflow,
                    instance=instance,
                    job=job_name,
                    execution=len(job.history) - 1,
                    timeout=job.warn_timeout_sec,
                    payload=job,
                )
            if stopped is None:
                stopped = self._reason_to_stop(job, elapsed, workflow, instance)
                if stopped is not None:
                    log.warning(
                        "job %s/%s/%s: %s; stopping it",
                        workflow,
                        instance,
                        job_name,
                        stopped,
                    )
                    handle.abort(settings.abort_grace_sec)

            # The lease is kept while a stopped job winds down too, so its
            # end is recorded by this worker and not taken for a lost one.
            if not fenced and time.time() >= renew_at:
                try:
                    token = self._renew(token, job)
                    renew_at = time.time() + settings.lease_sec / 3
                    give_up.lease_ends = _expiry(token)
                except (VersionConflictError, NotFoundError):
                    fenced = True
                except MasterUnavailableError:
                    fenced = _lease_left(token) <= 0
                if fenced:
                    stopped = stopped or "lost its lease"
                    log.warning(
                        "job %s/%s/%s lost its lease; stopping it",
                        workflow,
                        instance,
                        job_name,
                    )
                    # No grace: the job may be another worker's to run now.
                    handle.abort(0)

    def _reason_to_stop(
        self, job: Job, elapsed: float, workflow: str, instance: str
    ) -> str | None:
        """Why a running job must stop now, if it must."""
        if job.abort_timeout_sec and elapsed > job.abort_timeout_sec:
            return f"timed out after {job.abort_timeout_sec:g} s"
        if self.abort_running.is_set():
            return STOPPED_WITH_WORKER
        try:
            seen = signals.read_signals(self.client, workflow, instance)
        except MasterError as exc:
            # Left to the lease: the job stops if the master stays away.
            log.warning("job %s/%s: cannot read signals: %s", workflow, instance, exc)
            return None
        if ABORT in seen:
            return f"{_ABORTED} by an ABORT signal"
        return None

    def _record_end(
        self,
        token: Token,
        job: Job,
        workflow: str,
        instance: str,
        job_name: str,
        *,
        retry: bool = True,
        aborted: bool = False,
    ) -> Token | None:
        """Write the job's end, feed its outputs; return a claimed successor."""
        record = job.history[-1]
        succeeded = record.succeeded
        retry_until: float | None = None
        if not succeeded and retry and not aborted and job.can_retry(instance):
            # A lost attempt was no failure of the job's: no retry delay.
            delay = 0.0 if record.lost else job.retry_delay(instance)
            retry_until = time.time() + delay if delay > 0 else 0.0

        change = self._commit_end(
            token, job, workflow, instance, job_name, succeeded, retry_until
        )
        self._report(job, workflow, instance, job_name, retry_until is not None)
        if change is None:
            return None
        return self._after_commit(workflow, instance, change, retry_until is None)

    def _after_commit(
        self,
        workflow: str,
        instance: str,
        change: transitions.Change,
        may_end: bool,
    ) -> Token | None:
        """Start the waiting jobs another end may have completed; end the
        instance if nothing in it can run; return a successor to run next.

        Both need a look at the master once the change is in, and share one
        request. With a successor to run, the look waits for the read made
        as the successor starts (:meth:`_read_ahead`), so that nothing stands
        between one job's end and the next one's start. A job with fewer
        events queued than it has inputs cannot be ready; counting first
        spares reading a big fan-in's events at every end. Nothing runnable
        means nothing running either (a running job keeps its runnable
        token), so only a waiting job with every event could still start;
        :meth:`Chores.finish_if_done` looks for those.
        """
        successor = change.made_runnable[0] if change.made_runnable else None
        if change.recheck:
            self._deferred.setdefault((workflow, instance), {}).update(change.recheck)
        may_end = may_end and successor is None
        if successor is not None or not (self._deferred or may_end):
            return successor

        runnable = names.job_prefix(workflow, instance, names.RUNNABLE)
        with self._taking_looks() as looks:
            read, counts = self.client.read(
                [Query(runnable, 1)] if may_end else [],
                counts=[look.prefix for look in looks]
                + ([instance_events(workflow, instance)] if may_end else []),
            )
            started_any, successor = self._start_ready(
                looks, counts[: len(looks)], claim_in=(workflow, instance)
            )
        if may_end and not started_any and not read[0]:
            self.chores.finish_if_done(
                workflow, instance, none_runnable=True, events_queued=counts[-1]
            )
        return successor

    def _look_again(self) -> None:
        """Make the looks a completion put off, when no job read comes first."""
        with self._taking_looks() as looks:
            _, counts = self.client.read([], counts=[look.prefix for look in looks])
            self._start_ready(looks, counts)

    @contextlib.contextmanager
    def _taking_looks(self) -> Iterator[list["_Look"]]:
        """The looks put off so far, for one request to make; put back if it
        fails, so that a master that is down loses none of them."""
        deferred, self._deferred = self._deferred, {}
        try:
            yield [
                _Look(workflow, instance, job, inputs)
                for (workflow, instance), jobs in deferred.items()
                for job, inputs in jobs.items()
            ]
        except BaseException:
            for key, jobs in deferred.items():
                self._deferred.setdefault(key, {}).update(jobs)
            raise

    def _start_ready(
        self,
        looks: list["_Look"],
        counts: list[int],
        claim_in: tuple[str, str] | None = None,
    ) -> tuple[bool, Token | None]:
        """Start each looked-at job that has as many events as inputs and
        turns out to be ready; whether any started, and the one claimed.

        Only a job of ``claim_in`` (workflow, instance), the instance whose
        signals were just read, may be claimed, and only if they allow it.
        """
        started_any = False
        claimed: Token | None = None
        for look, queued in zip(looks, counts, strict=True):
            if queued < max(look.inputs, 1):
                continue
            claim = (
                claimed is None
                and self._quiet
                and (look.workflow, look.instance) == claim_in
            )
            started, token = self._start_if_ready(
                look.workflow, look.instance, look.job, claim
            )
            started_any = started_any or started
            claimed = claimed or token
        return started_any, claimed

    def _start_if_ready(
        self, workflow: str, instance: str, job_name: str, claim: bool
    ) -> tuple[bool, Token | None]:
        """Start a waiting job whose last event may have come from elsewhere.

        Returns whether this worker started it, and its token if it also
        claimed it.
        """
        tokens = self.client.query_many(
            [
                Query(names.job_name(workflow, instance, names.WAITING, job_name)),
                Query(names.input_prefix(workflow, instance, job_name)),
            ]
        )
        change = transitions.ready_move(
            workflow, instance, job_name, [t for ts in tokens for t in ts]
        )
        if change is None:
            return False, None
        claimed = self._claim_one(change, instance) if claim else None
        try:
            stored = self.client.modify(change.updates, change.deletes)
        except (VersionConflictError, NotFoundError):
            # Another upstream job's worker started it first.
            return False, None
        return True, next((t for t in stored if t.name == claimed), None)

    def _commit_end(
        self,
        token: Token,
        job: Job,
        workflow: str,
        instance: str,
        job_name: str,
        succeeded: bool,
        retry_until: float | None,
    ) -> transitions.Change | None:
        ahead, self._prefetch = self._prefetch, None
        if ahead is not None and (
            ahead.job != token.name
            or time.monotonic() - ahead.read_at >= self.settings.tick_sec
        ):
            # Read longer ago than a tick: its signals may be out of date,
            # and an ABORT or DRAIN must not be missed.
            ahead = None
        for _ in range(_COMPLETION_ATTEMPTS):
            if ahead is not None:
                view, seen = ahead.view, ahead.seen
            else:
                view, seen = self._read_view(workflow, instance, job, job_name, token)
            change = transitions.complete(
                workflow=workflow,
                instance=instance,
                job_name=job_name,
                token=token,
                job=dataclasses.replace(job, history=list(job.history)),
                succeeded=succeeded,
                retry_until=retry_until,
                view=view,
                creator=self.name,
                read_at_start=ahead is not None,
            )
            ahead = None
            self._quiet = not (
                ABORT in seen
                or DRAIN in seen
                or signals.exit_applies(seen, self.settings.generation)
            )
            claimed = self._claim_one(change, instance) if self._quiet else None
            try:
                stored = self.client.modify(change.updates, change.deletes)
            except VersionConflictError:
                current = self.client.query(token.name)
                if not current or current[0].version != token.version:
                    log.warning(
                        "job %s changed while it ran; its end is not recorded",
                        token.name,
                    )
                    return None
                continue
            if claimed is not None:
                change.made_runnable = [t for t in stored if t.name == claimed]
            else:
                change.made_runnable = []
            return change
        log.error(
            "job %s: could not record its end after %d attempts",
            token.name,
            _COMPLETION_ATTEMPTS,
        )
        return None

    def _read_ahead(
        self, workflow: str, instance: str, job: Job, job_name: str, token: Token
    ) -> _Prefetch:
        """Read what the job's end will need, as it starts.

        The looks put off by the last completion go in the same request.
        """
        with self._taking_looks() as looks:
            view, seen = self._read_view(
                workflow, instance, job, job_name, token, looks
            )
        return _Prefetch(token.name, time.monotonic(), view, seen)

    def _read_view(
        self,
        workflow: str,
        instance: str,
        job: Job,
        job_name: str,
        token: Token,
        looks: Sequence["_Look"] = (),
    ) -> tuple[transitions.InstanceView, signals.Signals]:
        """What a completion must know, in one cheap request, two if an
        output may be ready to start."""
        prefixes = transitions.prefixes_to_read(workflow, instance, job, job_name)
        levels = [
            names.signal_prefix(),
            names.signal_prefix(workflow),
            names.signal_prefix(workflow, instance),
        ]
        # The outputs' queued events are counted, not read, in the same
        # request: only an output with enough of them to be complete can
        # start now, and reading a big fan-in's events at each of its
        # upstream jobs' ends would cost the square of the fan.
        outputs = {o: names.input_prefix(workflow, instance, o) for o in job.outputs}
        read, counts = self.client.read(
            [Query(p) for p in prefixes + levels],
            counts=list(outputs.values()) + [look.prefix for look in looks],
        )
        queued = dict(zip(outputs, counts[: len(outputs)], strict=True))
        self._start_ready(looks, counts[len(outputs) :])
        seen = signals.parse_signals(t for ts in read[len(prefixes) :] for t in ts)
        tokens = [t for ts in read[: len(prefixes)] for t in ts if t.name != token.name]
        view = transitions.view_of(workflow, instance, tokens)

        waiting = transitions.outputs_waiting_on_others(
            workflow, instance, job_name, view
        )
        worth = [
            outputs[output]
            for output, others in waiting.items()
            if queued.get(output, 0) >= others
        ]
        if worth:
            more = self.client.query_many([Query(p) for p in worth])
            tokens += [t for ts in more for t in ts]
            view = transitions.view_of(workflow, instance, tokens)
        return view, seen

    def _claim_one(self, change: transitions.Change, instance: str) -> str | None:
        """Take the most urgent job this change makes runnable, in the change.

        Its start is recorded in the same update, so this worker runs it next
        with no request in between.
        """
        free = [t for t in change.made_runnable if not t.owner]
        if not free or self.abort_running.is_set():
            return None
        best = max(free, key=lambda t: t.priority)
        job = Job.from_json(best.data)
        if job.disabled:
            return None
        record = transitions.start_record(job, instance, self.name, time.time())
        record.info = substitute(
            job.command, merge_attributes(record.events), job=best.name
        )
        for index, token in enumerate(change.updates):
            if token.name == best.name:
                change.updates[index] = dataclasses.replace(
                    token,
                    owner=self.name,
                    expiration=time.time() + self.settings.lease_sec,
                    data=job.to_json(),
                )
        return best.name

    def _end_unrun(
        self, token: Token, job: Job, instance: str, why: str
    ) -> Token | None:
        parsed = names.parse_job_name(token.name)
        assert parsed is not None
        now = time.time()
        record = transitions.start_record(job, instance, self.name, now)
        record.end_time, record.exit_code, record.reason = now, 1, why
        return self._record_end(
            token, job, parsed.workflow, instance, parsed.job, retry=False, aborted=True
        )

    def _park(self, token: Token, why: str, until: float) -> None:
        try:
            self.client.modify(
                [
                    dataclasses.replace(
                        token, owner=f"{why}:{self.name}", expiration=until
                    )
                ]
            )
        except MasterError as exc:
            log.warning("could not park %s (%s): %s", token.name, why, exc)

    def _renew(self, token: Token, job: Job) -> Token:
        renewed = dataclasses.replace(
            token,
            owner=self.name,
            expiration=time.time() + self.settings.lease_sec,
            data=job.to_json(),
        )
        (stored,) = self.client.modify([renewed])
        return stored

    # -- Helpers ------------------------------------------------------------

    def _environment(
        self, workflow: str, instance: str, job: str, execution: int, payload: Job
    ) -> dict[str, str]:
        env = {
            "PINBALL_WORKFLOW": workflow,
            "PINBALL_INSTANCE": instance,
            "PINBALL_JOB": job,
            "PINBALL_EXECUTION": str(execution),
        }
        if payload.python_path:
            inherited = os.environ.get("PYTHONPATH")
            folders = [*payload.python_path, *([inherited] if inherited else [])]
            env["PYTHONPATH"] = os.pathsep.join(folders)
        if self.settings.base_url:
            env["PINBALL_BASE_URL"] = self.settings.base_url
        return env

    def _report(
        self, job: Job, workflow: str, instance: str, job_name: str, will_retry: bool
    ) -> None:
        record = job.history[-1]
        execution = len(job.history) - 1
        if record.lost and will_retry:
            # Not the job's failure, and it runs again: nothing to tell anyone
            # (a failure hook would send failure mail).
            log.info(
                "job %s/%s/%s: %s; it runs again",
                workflow,
                instance,
                job_name,
                record.reason,
            )
            return
        if record.succeeded:
            self._call(
                "pinball_job_succeeded",
                workflow=workflow,
                instance=instance,
                job=job_name,
                execution=execution,
                duration=(record.end_time or 0) - record.start_time,
            )
        else:
            self._call(
                "pinball_job_failed",
                workflow=workflow,
                instance=instance,
                job=job_name,
                execution=execution,
                exit_code=record.exit_code,
                reason=record.reason or "",
                will_retry=will_retry,
                payload=job,
            )

    def _call(self, hook_name: str, **kwargs: Any) -> None:
        if self.hook is None:
            return
        try:
            getattr(self.hook, hook_name)(**kwargs)
        except Exception:
            # A plugin's bug must not take the worker or the job down with it.
            log.exception("hook %s failed", hook_name)


def _copy_output(handle: ExecutionHandle, record: Any) -> None:
    snapshot = getattr(handle, "snapshot", None)
    if snapshot is not None:
        attributes, properties = snapshot()
    else:
        attributes, properties = handle.event_attributes, handle.properties
    record.event_attributes = dict(attributes)
    record.properties = {k: list(v) for k, v in properties.items()}
    record.logs = dict(handle.logs)


class _Blank(dict[str, str]):
    """Event attributes where a missing key reads as blank and is noted."""

    def __init__(self, attributes: Mapping[str, str]) -> None:
        super().__init__(attributes)
        self.missing: list[str] = []

    def __missing__(self, key: str) -> str:
        if key not in self.missing:
            self.missing.append(key)
        return ""


@dataclasses.dataclass(frozen=True)
class _Look:
    """A waiting job to look at again, with how many inputs it has."""

    workflow: str
    instance: str
    job: str
    inputs: int

    @property
    def prefix(self) -> str:
        """Where its events queue."""
        return names.input_prefix(self.workflow, self.instance, self.job)


def _expiry(token: Token) -> float:
    """When ``token``'s lease runs out (wall clock); infinite without one."""
    return math.inf if token.expiration is None else token.expiration


def _lease_left(token: Token) -> float:
    """Seconds until ``token``'s lease runs out; infinite without one."""
    return _expiry(token) - time.time()


class _GiveUp:
    """When a running job's requests stop retrying a master that is down:
    at once when the worker must stop its jobs, or when the job's lease
    runs out (:attr:`lease_ends`, wall clock).

    A request still retrying when the lease ran out would keep the worker
    from stopping a job that, once the master is back, another worker may
    take. Passed to :meth:`MasterClient.give_up_when` like an Event.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self.lease_ends = math.inf

    @property
    def deadline(self) -> float | None:
        """When requests must give up: the lease's end, if there is one."""
        return None if math.isinf(self.lease_ends) else self.lease_ends

    def is_set(self) -> bool:
        return self._stop.is_set() or time.time() >= self.lease_ends

    def wait(self, timeout: float | None = None) -> bool:
        left = self.lease_ends - time.time()
        limit = left if timeout is None else min(timeout, left)
        self._stop.wait(None if math.isinf(limit) else max(0.0, limit))
        return self.is_set()


def substitute(command: str, attributes: Mapping[str, str], job: str = "") -> str:
    """``command`` with ``%(key)s`` replaced by event attributes.

    A command without ``%(`` is left alone, so ``date +%Y`` needs no
    doubling; one whose ``%`` signs do not form a template is run as written.
    Missing keys become empty strings, as in the original, with a warning
    that names ``job`` (the command when no job is given) and the keys: an
    upstream job that did not print the attribute is the usual cause.
    """
    if "%(" not in command:
        return command
    values = _Blank(attributes)
    try:
        result = command % values
    except (ValueError, TypeError, KeyError) as exc:
        log.warning(
            "command %r is not a valid template (%s); running it as is", command, exc
        )
        return command
    if values.missing:
        log.warning(
            "%s: no upstream job gave %s, so %s empty; an upstream job "
            "sets one by printing PINBALL:EVENT_ATTR:key=value",
            f"job {job}" if job else f"command {command!r}",
            ", ".join(f"%({key})s" for key in values.missing),
            "it is" if len(values.missing) == 1 else "they are",
        )
    return result
