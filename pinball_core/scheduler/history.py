"""What the scheduler reads and leaves about instances: their status now, the
last one that finished, and the slot each scheduled instance was started for.

Running instances and finished ones are judged by
:mod:`pinball_core.workflow.status` on tokens read for the decision at hand,
from the master and, for instances that finished long enough ago to be
archived, from the store: never from a cache.
"""

import dataclasses
import datetime
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from pinball_core.components import FinishedInstance
from pinball_core.errors import PinballError
from pinball_core.scheduler.recurrence import aware_time, zone_of
from pinball_core.store import Store
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.status import InstanceSummary, instances_of

log = logging.getLogger(__name__)

#: The last part of the token that records an instance's slot:
#: ``/workflow/<workflow>/<instance>/__SCHEDULE__``.
SLOT_TOKEN: Final = "__SCHEDULE__"

#: The ``type`` of that token's data.
SLOT_TYPE: Final = "scheduled_run"

#: Archived instances read, newest ids first, to find the last one that ended.
ARCHIVED_INSTANCES_READ: Final = 10


def slot_token_name(workflow: str, instance: str) -> str:
    return f"{names.instance_prefix(workflow, instance)}{SLOT_TOKEN}"


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduledRun:
    """The record a scheduled instance keeps of why it runs.

    ``scheduled_time`` is its slot (seconds since the epoch), ``local_time``
    the same in the schedule's ``timezone``, ``started`` when the scheduler
    started it, ``scheduler`` which one did.
    """

    workflow: str
    instance: str
    scheduled_time: float
    local_time: str
    timezone: str
    started: float
    scheduler: str

    def to_token(self) -> Token:
        body = {"type": SLOT_TYPE, "schema": 1} | dataclasses.asdict(self)
        return Token(
            slot_token_name(self.workflow, self.instance),
            data=json.dumps(body, sort_keys=True, separators=(",", ":")),
        )

    @classmethod
    def make(
        cls,
        workflow: str,
        instance: str,
        slot: float,
        timezone: str,
        started: float,
        scheduler: str,
    ) -> "ScheduledRun":
        local = aware_time(slot, zone_of(timezone)).isoformat()
        return cls(workflow, instance, slot, local, timezone, started, scheduler)


def read_scheduled_run(tokens: Iterable[Token]) -> ScheduledRun | None:
    """The slot record among an instance's tokens; None if it was not
    started by a schedule (or the record is unreadable)."""
    for token in tokens:
        if not token.name.endswith(f"/{SLOT_TOKEN}"):
            continue
        try:
            raw: Any = json.loads(token.data or "")
            if raw.get("type") != SLOT_TYPE:
                continue
            fields = {f.name for f in dataclasses.fields(ScheduledRun)}
            return ScheduledRun(**{k: v for k, v in raw.items() if k in fields})
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable slot record %s", token.name)
    return None


def last_finished(instances: Iterable[InstanceSummary]) -> FinishedInstance | None:
    """The instance that ended last among ``instances``, if any ended."""
    ended = [i for i in instances if not i.is_running]
    if not ended:
        return None
    last = max(ended, key=lambda i: (i.end or i.start or 0.0, _id_order(i.instance)))
    return FinishedInstance(last.instance, str(last.status), last.end)


class ArchiveReader:
    """Reads recently archived instances of a workflow from the store.

    Finished instances leave the master after ``archive_delay_sec`` (aborted
    ones at once), so the one that ended last may be only in the archive.
    The store is opened on first use and kept; when it cannot be read the
    scheduler goes on with what the master has, and says so once.

    :param open_store: Opens the configured store (``Application.open_store``).
    """

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open_store = open_store
        self._store: Store | None = None
        self._warned = False

    def recent(self, workflow: str, now: float) -> list[InstanceSummary]:
        """The newest archived instances of ``workflow`` by id, judged at ``now``.

        Instance ids grow with their start time, so the newest ids hold the
        instances that ended last, but for one that ran far longer than
        :data:`ARCHIVED_INSTANCES_READ` instances after it.
        """
        try:
            store = self._opened()
            prefix = names.workflow_prefix(workflow)
            groups = store.group_token_names(prefix, archived=True)
            ids = sorted(
                (key[len(prefix) :] for key in groups if key.startswith(prefix)),
                key=_id_order,
            )[-ARCHIVED_INSTANCES_READ:]
            tokens: list[Token] = []
            for instance in ids:
                if instance == names.SIGNAL:
                    continue
                rows = store.read_tokens(
                    names.instance_prefix(workflow, instance), archived=True
                )
                tokens.extend(_latest_versions(rows))
        except PinballError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "archived instances cannot be read (%s); deciding from the "
                    "instances the master holds",
                    exc,
                )
            return []
        return instances_of(tokens, now, archived=True)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _opened(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store


def _latest_versions(rows: Iterable[Token]) -> list[Token]:
    """Each name's latest archived version (an id can be archived twice)."""
    latest: dict[str, Token] = {}
    for token in rows:
        kept = latest.get(token.name)
        if kept is None or (token.version or 0) >= (kept.version or 0):
            latest[token.name] = token
    return list(latest.values())


def _id_order(instance: str) -> tuple[int, str]:
    # Ids are times in milliseconds: a longer one is a later one.
    return (len(instance), instance)


def format_slot(slot: float, timezone: str) -> str:
    """A slot as ``2026-03-29 03:00:00 CEST`` in ``timezone``, for messages."""
    moment = aware_time(slot, zone_of(timezone))
    utc = moment.astimezone(datetime.UTC)
    if timezone == "UTC":
        return utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S %Z')} ({utc.strftime('%H:%M UTC')})"
