"""The scheduler: starts workflow instances when their schedules say so.

A scheduler keeps nothing of its own; every schedule lives in its token
``/schedule/workflow/<workflow>``. The token's lease doubles as its timer: it
is held (owner ``scheduler``) until the next run is due, so a pass reads the
schedule tokens and acts on those whose lease has ended. Each of those is
first claimed with a short lease of this scheduler's own, in one
version-checked change, so two schedulers never work on the same schedule
at once; the one that loses the race leaves it.

What follows is one more version-checked change that holds everything the
decision produced: the new instance's tokens, the record of the slot it
runs for, and the schedule moved on to its next run (or an ABORT signal for
each running instance, or the schedule held back until it is asked again).
A scheduler killed at any point leaves either all of it or none of it; its
claim then runs out and another scheduler (or itself, restarted) takes the
schedule up where it was.

Time comes from ``clock``, so tests run days of schedules in milliseconds.
"""

import dataclasses
import enum
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from pinball_core.client import MasterClient
from pinball_core.components import (
    OverrunContext,
    OverrunDecision,
    OverrunPolicy,
    Parser,
)
from pinball_core.errors import (
    DefinitionError,
    MasterUnavailableError,
    NotFoundError,
    PinballError,
    VersionConflictError,
)
from pinball_core.protocol import Query
from pinball_core.scheduler.history import (
    ArchiveReader,
    ScheduledRun,
    format_slot,
    last_finished,
)
from pinball_core.scheduler.recurrence import local_time, zone_of
from pinball_core.scheduler.spec import Schedule, ScheduleError
from pinball_core.scheduler.timeline import Missed, due_slot
from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names
from pinball_core.workflow.instance import new_instance_id
from pinball_core.workflow.model import ABORT, Signal
from pinball_core.workflow.status import InstanceSummary, read_instances

log = logging.getLogger(__name__)

#: Owner of a schedule token between runs: its lease ends when a run is due.
PARKED_OWNER: Final = "scheduler"

#: Owners of schedule tokens that cannot be used begin so, then say why.
INVALID_OWNER_PREFIX: Final = "scheduler: cannot use this schedule: "

#: Owner of a schedule that has no further run.
FINISHED_OWNER: Final = "scheduler: no further runs"

#: An unusable schedule token is looked at again this often; rewriting it
#: (``pinball workflow reschedule``) makes it due at once.
INVALID_RETRY_SEC: Final = 3600.0

#: Instance ids tried when the first one is taken.
_ID_ATTEMPTS: Final = 10

#: Longest owner the master stores.
_MAX_OWNER: Final = 255


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """How a scheduler behaves; :func:`settings_from_config` fills it."""

    #: How often a pass reads the schedules, to see new and changed ones;
    #: between passes the scheduler wakes for each run that comes due.
    poll_sec: float = 30.0
    #: How long a run the overrun policy delays (or the running-instance
    #: cap holds back) waits before it is looked at again.
    delay_sec: float = 60.0
    #: How long a claimed schedule stays this scheduler's while it decides.
    lease_sec: float = 120.0
    #: How often ABORT_RUNNING looks whether the aborted instances stopped.
    abort_poll_sec: float = 10.0
    #: Aborted instances still running after this long are warned about.
    abort_warn_sec: float = 600.0
    #: Running instances allowed when a schedule sets no cap.
    default_max_running_instances: int = 3
    #: Schedule tokens claimed in one change.
    claim_batch: int = 50


def settings_from_config(config: Any) -> SchedulerSettings:
    """Scheduler settings from a :class:`~pinball_core.config.Config`."""
    return SchedulerSettings(
        poll_sec=config.scheduler_poll_sec,
        delay_sec=config.scheduler_delay_sec,
        abort_poll_sec=min(10.0, config.scheduler_delay_sec),
        default_max_running_instances=config.default_max_workflow_running_instances,
    )


def scheduler_name() -> str:
    """A name no other scheduler has: host, process and a random part."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())
    return f"scheduler_{host}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


class Outcome(enum.StrEnum):
    """What one look at a schedule did."""

    STARTED = "started"
    SKIPPED = "skipped"
    DELAYED = "delayed"
    REFUSED = "refused"
    ABORTING = "aborting"
    WAITING = "waiting"
    SCHEDULED = "scheduled"
    FINISHED = "finished"
    INVALID = "invalid"
    LOST = "lost"
    FAILED = "failed"


@dataclasses.dataclass(slots=True)
class PassReport:
    """What one pass found and did."""

    schedules: int = 0
    due: int = 0
    claimed: int = 0
    outcomes: dict[Outcome, int] = dataclasses.field(default_factory=dict)
    #: When the next schedule comes due, if any does.
    next_wake: float | None = None

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def wake_at(self, moment: float | None) -> None:
        if moment is not None and (self.next_wake is None or moment < self.next_wake):
            self.next_wake = moment

    def describe(self) -> str:
        done = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
        return (
            f"{self.schedules} schedule(s), {self.due} due, {self.claimed} claimed"
            + (f": {done}" if done else "")
        )


@dataclasses.dataclass(slots=True)
class _Look:
    """One look at one claimed schedule, as it goes along."""

    token: Token
    schedule: Schedule
    now: float
    #: Hook calls to make once the change is stored.
    events: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    @property
    def workflow(self) -> str:
        return self.schedule.workflow

    def slot_text(self, slot: float) -> str:
        return format_slot(slot, self.schedule.spec.timezone)


class _ParserOnce:
    """The parser, made on first need in a pass, so a pass sees one version
    of the definitions and a pass that starts nothing reads none."""

    def __init__(self, make: Callable[[], Parser]) -> None:
        self._make = make
        self._parser: Parser | None = None
        self._error: PinballError | None = None

    def get(self) -> Parser:
        if self._error is not None:
            raise self._error
        if self._parser is None:
            try:
                self._parser = self._make()
            except PinballError as exc:
                self._error = exc
                raise
        return self._parser


class Scheduler:
    """Runs passes over the schedule tokens; see the module's docstring.

    :param client: The master.
    :param make_parser: Makes the config's workflow parser; called at most
        once per pass, so changed definitions are seen at the next pass.
    :param make_policy: Makes the overrun policy a schedule names
        (``PluginManager.make_overrun_policy``); each name is made once.
    :param settings: Timing and limits.
    :param clock: The time, in seconds since the epoch.
    :param hook: The plugin hook relay, for ``pinball_schedule_*`` calls.
    :param archive: Reads archived instances, for the last finished one.
    :param name: This scheduler's owner name in claims.
    """

    def __init__(
        self,
        client: MasterClient,
        *,
        make_parser: Callable[[], Parser],
        make_policy: Callable[[str], OverrunPolicy],
        settings: SchedulerSettings | None = None,
        clock: Callable[[], float] = time.time,
        hook: Any = None,
        archive: ArchiveReader | None = None,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or SchedulerSettings()
        self.clock = clock
        self.hook = hook
        self.archive = archive
        self.name = name or scheduler_name()
        self._make_parser = make_parser
        self._make_policy = make_policy
        self._policies: dict[str, OverrunPolicy] = {}

    # -- A pass ---------------------------------------------------------------

    def run_pass(self) -> PassReport:
        """Look at every schedule whose run is due, once.

        :raises MasterUnavailableError: if the master cannot be reached; what
            was done before stays done.
        """
        now = self.clock()
        tokens = self.client.query(names.SCHEDULE_PREFIX)
        report = PassReport(schedules=len(tokens))
        due = []
        for token in tokens:
            if token.is_owned(now):
                report.wake_at(token.expiration)
            else:
                due.append(token)
        # The longest overdue first, so a backlog cannot starve anyone.
        due.sort(key=lambda t: (t.expiration or 0.0, t.name))
        report.due = len(due)

        parser = _ParserOnce(self._make_parser)
        batch = max(1, self.settings.claim_batch)
        for start in range(0, len(due), batch):
            chunk = due[start : start + batch]
            claimed = self._claim(chunk)
            report.claimed += len(claimed)
            owners = {t.name: t.owner for t in chunk}
            for token in claimed:
                outcome, until = self._look_safely(token, owners[token.name], parser)
                report.count(outcome)
                report.wake_at(until)
        if report.due:
            log.debug("pass: %s", report.describe())
        return report

    def _claim(self, tokens: Sequence[Token]) -> list[Token]:
        """Lease ``tokens`` to this scheduler; those another one changed since
        they were read are left to it."""
        if not tokens:
            return []
        expiration = self.clock() + self.settings.lease_sec
        leased = [
            dataclasses.replace(t, owner=self.name, expiration=expiration)
            for t in tokens
        ]
        try:
            return self.client.modify(updates=leased)
        except (VersionConflictError, NotFoundError):
            pass
        # Someone else took some of them: claim one by one what is left.
        claimed: list[Token] = []
        for token in leased:
            try:
                claimed.extend(self.client.modify(updates=[token]))
            except (VersionConflictError, NotFoundError):
                log.debug("%s was taken by another scheduler", token.name)
        return claimed

    def _look_safely(
        self, token: Token, owner: str | None, parser: _ParserOnce
    ) -> tuple[Outcome, float | None]:
        try:
            return self._look(token, owner, parser)
        except MasterUnavailableError:
            raise
        except Exception:
            # Left claimed: it is looked at again when the claim runs out,
            # not straight away, so a fault cannot make the scheduler spin.
            log.exception(
                "could not process %s; trying again in %.0f s",
                token.name,
                self.settings.lease_sec,
            )
            return Outcome.FAILED, self.clock() + self.settings.lease_sec

    # -- One schedule ------------------------------------------------------------

    def _look(
        self, token: Token, owner: str | None, parser: _ParserOnce
    ) -> tuple[Outcome, float | None]:
        """Decide about one claimed schedule; ``owner`` is whose it was before."""
        now = self.clock()
        try:
            schedule = Schedule.from_token(token)
            recurrence = schedule.recurrence()
        except (ScheduleError, ValueError) as exc:
            told = (owner or "").startswith(INVALID_OWNER_PREFIX)
            return self._invalid(token, str(exc), now, told=told)
        look = _Look(token, schedule, now)
        spec, state = schedule.spec, schedule.state

        if state.next_run is None:
            # Written by hand or by an older tool: start counting now.
            if spec.needs_anchor and spec.start is None and state.anchor is None:
                look.schedule = schedule.with_state(
                    anchor=anchor_at(now, spec.timezone)
                )
                recurrence = look.schedule.recurrence()
            first = recurrence.next_after(now)
            look.schedule = look.schedule.with_state(next_run=first)
            if first is None:
                return self._finish(look)
            log.info("%s: first run %s", look.workflow, look.slot_text(first))
            return self._commit(look, until=first, outcome=Outcome.SCHEDULED)
        if state.next_run > now:
            # Claimable early (written by hand, or a clock moved back).
            return self._commit(look, until=state.next_run, outcome=Outcome.WAITING)

        due = due_slot(spec, recurrence, state.next_run, now)
        if due.slot != state.next_run:
            assert due.missed is not None
            self._passed_over(look, due.missed, due.slot)
            look.schedule = look.schedule.with_state(
                next_run=due.slot, delayed_since=None
            )
        slot = due.slot

        instances = read_instances(self.client, look.workflow, now)
        aborted = look.schedule.state.aborted
        if aborted:
            waiting = self._still_stopping(look, instances, aborted)
            if waiting is not None:
                return waiting
            look.schedule = look.schedule.with_state(aborted=())

        running = tuple(sorted(i.instance for i in instances if i.is_running))
        cap = spec.max_running_instances or self.settings.default_max_running_instances
        context = OverrunContext(
            workflow=look.workflow,
            scheduled_time=slot,
            now=now,
            running=running,
            max_running_instances=cap,
            find_last_finished=lambda: self._last_finished(
                look.workflow, instances, now
            ),
        )
        try:
            policy = self._policy(spec.overrun_policy)
            decision = OverrunDecision(policy.decide(context))
        except Exception as exc:
            # A missing or faulty policy plugin holds the run back, loudly.
            reason = (
                f"overrun policy {spec.overrun_policy!r} could not decide: "
                f"{_one_line(exc)}"
            )
            return self._refuse(look, slot, reason, OverrunDecision.DELAY)

        if decision is OverrunDecision.ABORT_RUNNING and not running:
            decision = OverrunDecision.START
        if decision is OverrunDecision.START and context.limit_reached:
            reason = (
                f"{_count(running, 'instance')} running ({', '.join(running)}), "
                f"as many as max_running_instances={cap} allows"
            )
            return self._refuse(look, slot, reason, self._at_limit(policy, context))

        if decision is OverrunDecision.START:
            return self._start(look, slot, parser)
        if decision is OverrunDecision.SKIP:
            reason = (
                f"overrun policy {spec.overrun_policy}: "
                f"{_count(running, 'instance')} running ({', '.join(running) or '-'})"
            )
            return self._skip(look, slot, reason)
        if decision is OverrunDecision.ABORT_RUNNING:
            return self._abort(look, slot, running)
        return self._delay(look, slot, context)

    def _start(
        self, look: _Look, slot: float, parser_once: _ParserOnce
    ) -> tuple[Outcome, float | None]:
        workflow = look.workflow
        try:
            parser = parser_once.get()
            known = parser.workflow_names()
        except Exception as exc:
            reason = f"the workflow parser cannot be used: {_one_line(exc)}"
            return self._refuse(look, slot, reason, OverrunDecision.DELAY)
        if workflow not in known:
            reason = (
                f"workflow {workflow} is no longer defined by the parser; run "
                "`pinball workflow reschedule --remove-missing` to drop its schedule"
            )
            return self._refuse(look, slot, reason, OverrunDecision.DELAY)

        following = look.schedule.recurrence().next_after(slot)
        advanced = look.schedule.with_state(
            next_run=following, notified_slot=None, delayed_since=None, aborted=()
        )
        schedule_token = self._token(look.token, advanced, following)
        instance = new_instance_id()
        for _ in range(_ID_ATTEMPTS):
            if self.client.group(names.instance_prefix(workflow, instance), None):
                instance = _next_id(instance)
                continue
            try:
                tokens = parser.instance_tokens(workflow, instance)
            except DefinitionError as exc:
                # It names the workflow and lists the problems itself.
                reason = _one_line(exc)
                return self._refuse(look, slot, reason, OverrunDecision.DELAY)
            except Exception as exc:
                reason = f"the parser cannot build its tokens: {_one_line(exc)}"
                return self._refuse(look, slot, reason, OverrunDecision.DELAY)
            if not tokens:
                reason = "the parser gave no tokens for it"
                return self._refuse(look, slot, reason, OverrunDecision.DELAY)
            record = ScheduledRun.make(
                workflow,
                instance,
                slot,
                look.schedule.spec.timezone,
                look.now,
                self.name,
            )
            try:
                self.client.modify(updates=[*tokens, record.to_token(), schedule_token])
            except NotFoundError:
                return self._lost(look)
            except VersionConflictError:
                if self._claim_lost(look.token):
                    return self._lost(look)
                instance = _next_id(instance)  # the id was taken meanwhile
                continue
            log.info(
                "started %s instance %s for %s; next run %s",
                workflow,
                instance,
                look.slot_text(slot),
                look.slot_text(following) if following is not None else "none",
            )
            look.events.append(
                (
                    "pinball_schedule_fired",
                    {
                        "workflow": workflow,
                        "instance": instance,
                        "scheduled_time": slot,
                    },
                )
            )
            self._fire(look)
            return Outcome.STARTED, following
        reason = f"no free instance id for workflow {workflow} in {_ID_ATTEMPTS} tries"
        return self._refuse(look, slot, reason, OverrunDecision.DELAY)

    def _skip(
        self, look: _Look, slot: float, reason: str
    ) -> tuple[Outcome, float | None]:
        following = look.schedule.recurrence().next_after(slot)
        look.schedule = look.schedule.with_state(
            next_run=following, notified_slot=None, delayed_since=None
        )
        log.info(
            "%s: skipped the run of %s: %s", look.workflow, look.slot_text(slot), reason
        )
        look.events.append(
            (
                "pinball_schedule_skipped",
                {"workflow": look.workflow, "scheduled_time": slot, "reason": reason},
            )
        )
        if following is None:
            return self._finish(look)
        return self._commit(look, until=following, outcome=Outcome.SKIPPED)

    def _delay(
        self, look: _Look, slot: float, context: OverrunContext
    ) -> tuple[Outcome, float | None]:
        if not context.running:
            # Held back with nothing running: only a person can unblock it.
            reason = self._blocked_reason(look, context)
            return self._refuse(look, slot, reason, OverrunDecision.DELAY)
        state = look.schedule.state
        if state.delayed_since is None:
            log.info(
                "%s: delaying the run of %s while %s runs",
                look.workflow,
                look.slot_text(slot),
                ", ".join(context.running),
            )
        look.schedule = look.schedule.with_state(
            delayed_since=state.delayed_since or look.now
        )
        until = look.now + self.settings.delay_sec
        return self._commit(look, until=until, outcome=Outcome.DELAYED)

    def _refuse(
        self,
        look: _Look,
        slot: float,
        reason: str,
        then: OverrunDecision,
    ) -> tuple[Outcome, float | None]:
        """Report that the run of ``slot`` cannot start, once per slot, and
        delay or skip it as ``then`` says."""
        first_time = look.schedule.state.notified_slot != slot
        if first_time:
            log.warning(
                "%s: the run of %s cannot start: %s",
                look.workflow,
                look.slot_text(slot),
                reason,
            )
            look.events.append(
                (
                    "pinball_schedule_refused",
                    {
                        "workflow": look.workflow,
                        "scheduled_time": slot,
                        "reason": reason,
                    },
                )
            )
        else:
            log.debug("%s: still cannot start: %s", look.workflow, reason)
        if then is OverrunDecision.SKIP:
            outcome, until = self._skip(look, slot, reason)
            return (Outcome.LOST if outcome is Outcome.LOST else Outcome.REFUSED), until
        state = look.schedule.state
        look.schedule = look.schedule.with_state(
            notified_slot=slot, delayed_since=state.delayed_since or look.now
        )
        until = look.now + self.settings.delay_sec
        outcome, _ = self._commit(look, until=until, outcome=Outcome.REFUSED)
        return outcome, until

    def _abort(
        self, look: _Look, slot: float, running: tuple[str, ...]
    ) -> tuple[Outcome, float | None]:
        """Set ABORT on each running instance; the run starts once they stopped."""
        workflow = look.workflow
        answers = self.client.query_many(
            [Query(names.signal_prefix(workflow, i)) for i in running]
        )
        signals = []
        for instance, tokens in zip(running, answers, strict=True):
            name = f"{names.signal_prefix(workflow, instance)}{ABORT}"
            current = next((t for t in tokens if t.name == name), None)
            signals.append(
                Token(
                    name,
                    version=current.version if current is not None else None,
                    data=Signal(action=ABORT, timestamp=look.now).to_json(),
                )
            )
        state = look.schedule.state
        look.schedule = look.schedule.with_state(
            aborted=running, delayed_since=state.delayed_since or look.now
        )
        until = look.now + self.settings.abort_poll_sec
        outcome, until_written = self._commit(
            look, until=until, outcome=Outcome.ABORTING, extra=signals
        )
        if outcome is Outcome.ABORTING:
            log.warning(
                "%s: aborting %s for the run of %s (ABORT_RUNNING)",
                workflow,
                ", ".join(running),
                look.slot_text(slot),
            )
        return outcome, until_written

    def _still_stopping(
        self,
        look: _Look,
        instances: list[InstanceSummary],
        aborted: tuple[str, ...],
    ) -> tuple[Outcome, float | None] | None:
        """Hold the run while jobs of the instances it aborted still run."""
        stopping = sorted(
            i.instance for i in instances if i.instance in aborted and i.running_jobs
        )
        if not stopping:
            return None
        since = look.schedule.state.delayed_since or look.now
        if look.now - since >= self.settings.abort_warn_sec:
            log.warning(
                "%s: aborted instance(s) %s still have running jobs after %.0f s; "
                "the new run waits for them",
                look.workflow,
                ", ".join(stopping),
                look.now - since,
            )
        until = look.now + self.settings.abort_poll_sec
        return self._commit(look, until=until, outcome=Outcome.ABORTING)

    def _passed_over(self, look: _Look, missed: Missed, slot: float) -> None:
        """Report runs dropped to get to ``slot``: missed while no scheduler
        ran, or beyond ``max_catchup``."""
        spec = look.schedule.spec
        why = (
            f"catchup keeps the latest {spec.max_catchup}"
            if spec.catchup
            else "catchup is off"
        )
        how = (
            "held back until later runs came due"
            if look.schedule.state.delayed_since is not None
            else "missed"
        )
        reason = (
            f"{missed.describe()} from {look.slot_text(missed.first)} to "
            f"{look.slot_text(missed.last)} {how}, dropped ({why}); the run of "
            f"{look.slot_text(slot)} is due instead"
        )
        log.warning("%s: %s", look.workflow, reason)
        look.events.append(
            (
                "pinball_schedule_skipped",
                {
                    "workflow": look.workflow,
                    "scheduled_time": missed.first,
                    "reason": reason,
                },
            )
        )

    def _invalid(
        self, token: Token, reason: str, now: float, *, told: bool
    ) -> tuple[Outcome, float | None]:
        """Hold an unusable schedule token, untouched, and say why in its owner;
        report it unless ``told`` (it was held so before)."""
        owner = (INVALID_OWNER_PREFIX + reason)[:_MAX_OWNER]
        until = now + INVALID_RETRY_SEC
        first_time = not told
        parked = dataclasses.replace(token, owner=owner, expiration=until)
        try:
            self.client.modify(updates=[parked])
        except (VersionConflictError, NotFoundError):
            return Outcome.LOST, None
        if first_time:
            workflow = token.name.rsplit("/", 1)[-1]
            log.error(
                "%s: %s; fix it with `pinball workflow reschedule`", token.name, reason
            )
            self._call(
                "pinball_schedule_refused",
                workflow=workflow,
                scheduled_time=now,
                reason=f"its schedule token cannot be used: {reason}",
            )
        return Outcome.INVALID, until

    def _finish(self, look: _Look) -> tuple[Outcome, float | None]:
        log.warning("%s: the schedule has no further run", look.workflow)
        token = self._token(look.token, look.schedule, None, owner=FINISHED_OWNER)
        return self._store(look, token, Outcome.FINISHED, None)

    # -- Writing ---------------------------------------------------------------

    def _commit(
        self,
        look: _Look,
        *,
        until: float,
        outcome: Outcome,
        extra: Iterable[Token] = (),
    ) -> tuple[Outcome, float | None]:
        """Store the schedule, held until ``until``, with ``extra`` tokens."""
        token = self._token(look.token, look.schedule, until)
        return self._store(look, token, outcome, until, extra)

    def _store(
        self,
        look: _Look,
        token: Token,
        outcome: Outcome,
        until: float | None,
        extra: Iterable[Token] = (),
    ) -> tuple[Outcome, float | None]:
        try:
            self.client.modify(updates=[*extra, token])
        except (VersionConflictError, NotFoundError):
            return self._lost(look)
        self._fire(look)
        return outcome, until

    def _token(
        self,
        claimed: Token,
        schedule: Schedule,
        until: float | None,
        owner: str = PARKED_OWNER,
    ) -> Token:
        return Token(
            name=claimed.name,
            version=claimed.version,
            owner=owner,
            expiration=FOREVER if until is None else until,
            priority=claimed.priority,
            data=schedule.to_json(),
        )

    def _lost(self, look: _Look) -> tuple[Outcome, float | None]:
        # Rewritten (reschedule), removed (unschedule) or taken over after
        # this scheduler's claim ran out: whoever changed it decides now.
        log.info("%s changed while deciding; leaving it", look.token.name)
        return Outcome.LOST, None

    def _claim_lost(self, claimed: Token) -> bool:
        current = self.client.query(claimed.name)
        return not any(
            t.name == claimed.name and t.version == claimed.version for t in current
        )

    # -- Helpers ---------------------------------------------------------------

    def _policy(self, name: str) -> OverrunPolicy:
        policy = self._policies.get(name)
        if policy is None:
            policy = self._make_policy(name)
            self._policies[name] = policy
        return policy

    @staticmethod
    def _at_limit(policy: OverrunPolicy, context: OverrunContext) -> OverrunDecision:
        at_limit = getattr(policy, "at_limit", None)
        if at_limit is None:
            return OverrunDecision.DELAY
        try:
            decision = OverrunDecision(at_limit(context))
        except Exception:
            log.exception("overrun policy %r failed in at_limit; delaying", policy)
            return OverrunDecision.DELAY
        return decision if decision is OverrunDecision.SKIP else OverrunDecision.DELAY

    def _last_finished(
        self, workflow: str, active: list[InstanceSummary], now: float
    ) -> Any:
        archived = self.archive.recent(workflow, now) if self.archive else []
        seen = {i.instance for i in active}
        return last_finished(
            [*active, *(a for a in archived if a.instance not in seen)]
        )

    def _blocked_reason(self, look: _Look, context: OverrunContext) -> str:
        policy = look.schedule.spec.overrun_policy
        last = context.last_finished
        if last is not None and last.status != "SUCCESS":
            return (
                f"overrun policy {policy} waits for a successful run, and the last "
                f"finished instance, {last.instance}, ended {last.status}; retry "
                f"it (`pinball workflow retry -w {look.workflow} -i {last.instance}`) "
                "or start one by hand"
            )
        return f"overrun policy {policy} holds the run back though no instance runs"

    def _fire(self, look: _Look) -> None:
        events, look.events = look.events, []
        for hook_name, kwargs in events:
            self._call(hook_name, **kwargs)

    def _call(self, hook_name: str, **kwargs: Any) -> None:
        if self.hook is None:
            return
        try:
            getattr(self.hook, hook_name)(**kwargs)
        except Exception:
            # A plugin's bug must not stop the schedules.
            log.exception("hook %s failed", hook_name)


def anchor_at(now: float, timezone: str) -> str:
    """Where counting starts for a schedule without a start: ``now``'s minute,
    as a wall-clock time in ``timezone``."""
    local = local_time(now, zone_of(timezone)).replace(second=0, microsecond=0)
    return local.isoformat()


def _next_id(instance: str) -> str:
    return str(max(int(instance) + 1, int(new_instance_id())))


def _count(items: Sequence[str], word: str) -> str:
    return f"{len(items)} {word}" if len(items) == 1 else f"{len(items)} {word}s"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."
