"""Summaries of archived instances, kept in memory so lists stay fast.

An archived instance never changes: its tokens left the master for good. Its
status is therefore worked out once, with the core's status rules, and kept
as a slim :class:`~pinball_core.workflow.status.InstanceSummary` without its
jobs (the instance's own page reads its tokens again, which is one indexed
range read). Nothing is written anywhere: the cache is rebuilt from the
store whenever the UI starts.

How it stays current:

- An instance that leaves the active tokens was archived (or removed by
  hand): :meth:`History.note_active` sees it go and reads its archived
  tokens at once, so a list never lags behind the store.
- Each workflow's archived token count is compared with the cached one at
  most every :data:`RECOUNT_SEC`; a difference (``workflow cleanup``
  removed instances, or one was archived while the UI was down) reloads
  that workflow.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from pinball_core.store import Store
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.status import InstanceSummary, instance_status

log = logging.getLogger(__name__)

#: How often, at most, a workflow's archived token count is checked.
RECOUNT_SEC: Final = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class ArchivedInstance:
    """What lists show of an archived instance."""

    summary: InstanceSummary
    failed_jobs: tuple[str, ...]


@dataclasses.dataclass
class _Workflow:
    instances: dict[str, ArchivedInstance] = dataclasses.field(default_factory=dict)
    token_count: int = 0
    loaded: bool = False
    checked_at: float = 0.0
    #: The instance that ended last, which the workflows list shows when
    #: nothing runs; kept so the list needs no pass over every instance.
    last: InstanceSummary | None = None

    def update_last(self, found: Iterable[ArchivedInstance]) -> None:
        for item in found:
            if self.last is None or _ended(item.summary) > _ended(self.last):
                self.last = item.summary


class History:
    """Archived instance summaries by workflow, filled from ``store``.

    Thread-safe: readers get copies, loads run in whichever thread asks.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._workflows: dict[str, _Workflow] = {}
        self._scanned = False
        self._active: set[tuple[str, str]] | None = None
        self._warm_done = 0
        self._warm_total = 0
        self._warming = False

    # -- Reading -------------------------------------------------------------

    def workflow_names(self) -> set[str]:
        """Every workflow with archived instances (scans names once)."""
        self._scan()
        with self._lock:
            return set(self._workflows)

    def instances(self, workflow: str) -> dict[str, ArchivedInstance]:
        """The archived instances of ``workflow`` by id, loading it if need be."""
        self._scan()
        self._ensure(workflow)
        with self._lock:
            entry = self._workflows.get(workflow)
            return dict(entry.instances) if entry is not None else {}

    def last_and_count(self, workflow: str) -> tuple[InstanceSummary | None, int]:
        """The archived instance that ended last, and how many there are.

        While the warm-up runs, a workflow it has not read yet answers
        ``(None, 0)`` at once rather than making a list wait for it.
        """
        self._scan()
        with self._lock:
            warming = self._warming
        if not warming:
            self._ensure(workflow)
        with self._lock:
            entry = self._workflows.get(workflow)
            if entry is None:
                return None, 0
            return entry.last, len(entry.instances)

    @property
    def loading(self) -> tuple[int, int]:
        """``(read, to read)`` workflows of the warm-up; equal once it is done."""
        with self._lock:
            return self._warm_done, self._warm_total

    # -- Keeping current -----------------------------------------------------

    def warm_up(self, stop: threading.Event | None = None) -> None:
        """Load every workflow's archive; run in a background thread at start."""
        started = self._clock()
        with self._lock:
            self._warming = True
        try:
            self._warm(stop)
        finally:
            with self._lock:
                self._warming = False
        log.info(
            "read the archived instances of %d workflows in %.1f s",
            self._warm_total,
            self._clock() - started,
        )

    def _warm(self, stop: threading.Event | None) -> None:
        workflows = sorted(self.workflow_names())
        with self._lock:
            self._warm_total = len(workflows)
        for workflow in workflows:
            if stop is not None and stop.is_set():
                return
            try:
                self._ensure(workflow)
            except Exception:
                log.exception("cannot read the archive of workflow %s", workflow)
            with self._lock:
                self._warm_done += 1

    def note_active(self, active: Iterable[tuple[str, str]]) -> None:
        """Tell the cache which instances are active now.

        Instances active before and gone now were archived or removed; their
        archived tokens, if any, are read at once.
        """
        current = set(active)
        with self._lock:
            gone = set() if self._active is None else self._active - current
            self._active = current
            for workflow, _ in current:
                self._workflows.setdefault(workflow, _Workflow())
        for workflow, instance in sorted(gone):
            self._load_instance(workflow, instance)

    def recheck(self, workflow: str) -> None:
        """Reload ``workflow`` if its archived token count changed.

        Checked at most every :data:`RECOUNT_SEC` per workflow.
        """
        now = self._clock()
        with self._lock:
            entry = self._workflows.get(workflow)
            if (
                entry is None
                or not entry.loaded
                or now - entry.checked_at < RECOUNT_SEC
            ):
                return
            entry.checked_at = now
            expected = entry.token_count
        count = self._store.count_tokens(names.workflow_prefix(workflow), archived=True)
        if count != expected:
            log.debug("archive of %s changed (%d -> %d)", workflow, expected, count)
            self._load(workflow)

    def forget(self, workflow: str, instance: str) -> None:
        """Drop an instance found to be gone from the store."""
        with self._lock:
            entry = self._workflows.get(workflow)
            if entry is not None and entry.instances.pop(instance, None) is not None:
                entry.last = None
                entry.update_last(entry.instances.values())

    # -- Loading -------------------------------------------------------------

    def _scan(self) -> None:
        with self._lock:
            if self._scanned:
                return
        groups = self._store.group_token_names(names.WORKFLOW_PREFIX, archived=True)
        found = {key[len(names.WORKFLOW_PREFIX) :] for key in groups}
        found.discard(names.SIGNAL)
        with self._lock:
            for workflow in found:
                if workflow:
                    self._workflows.setdefault(workflow, _Workflow())
            self._scanned = True

    def _ensure(self, workflow: str) -> None:
        with self._lock:
            entry = self._workflows.get(workflow)
            if entry is not None and entry.loaded:
                return
        self._load(workflow)

    def _load(self, workflow: str) -> None:
        prefix = names.workflow_prefix(workflow)
        tokens = self._store.read_tokens(prefix, archived=True)
        summaries = _summaries(tokens, self._clock())
        with self._lock:
            entry = self._workflows.setdefault(workflow, _Workflow())
            entry.instances = summaries
            entry.last = None
            entry.update_last(summaries.values())
            entry.token_count = len(tokens)
            entry.loaded = True
            entry.checked_at = self._clock()

    def _load_instance(self, workflow: str, instance: str) -> None:
        prefix = names.instance_prefix(workflow, instance)
        try:
            tokens = self._store.read_tokens(prefix, archived=True)
        except Exception:
            log.exception("cannot read archived instance %s/%s", workflow, instance)
            return
        summaries = _summaries(tokens, self._clock())
        with self._lock:
            entry = self._workflows.setdefault(workflow, _Workflow())
            if not entry.loaded:
                return  # the whole workflow is read when first asked for
            entry.instances.update(summaries)
            entry.update_last(summaries.values())
            entry.token_count += len(tokens)


def latest_versions(tokens: Iterable[Token]) -> list[Token]:
    """Each name's latest archived version, in name order.

    An instance id archived, used again and archived again leaves two
    versions of its names; the later one is the instance as it ended.
    """
    latest: dict[str, Token] = {}
    for token in tokens:
        kept = latest.get(token.name)
        if kept is None or (token.version or 0) >= (kept.version or 0):
            latest[token.name] = token
    return [latest[name] for name in sorted(latest)]


def _ended(summary: InstanceSummary) -> tuple[float, str]:
    # The order of status.workflow_summary: an instance that never ended
    # counts by its start.
    return (summary.end or summary.start or 0.0, summary.instance)


def _summaries(tokens: list[Token], now: float) -> dict[str, ArchivedInstance]:
    # Grouped here rather than with status.instances_of, which parses each
    # token twice to find the signals of every level: an archived instance
    # has only its own, which instance_status finds itself.
    groups: dict[str, list[Token]] = {}
    for token in latest_versions(tokens):
        parts = token.name.split("/", 4)
        if len(parts) == 5 and names.SIGNAL not in (parts[2], parts[3]):
            groups.setdefault(parts[3], []).append(token)
    found = {}
    for group in groups.values():
        summary = instance_status(group, now, archived=True)
        if summary is not None:
            slim = dataclasses.replace(summary, jobs=())
            found[summary.instance] = ArchivedInstance(slim, tuple(summary.failed_jobs))
    return found
