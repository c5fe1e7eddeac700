"""What the pages and the API show, read straight from the store.

The store holds the active tokens (committed before the master answers, so
they are as current as the master's) and the archive. Statuses come from
:mod:`pinball_core.workflow.status`, the same rules the command line uses.
Every method here blocks on the database: the web handlers call them in a
thread pool. Answers are plain JSON-ready dicts; times are seconds since the
epoch, run times are seconds.
"""

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from pinball_core.store import Store
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.definition import did_you_mean
from pinball_core.workflow.model import (
    ABORT,
    DRAIN,
    EXIT,
    ExecutionRecord,
    Job,
    PayloadError,
)
from pinball_core.workflow.signals import level_name, level_of, parse_signals
from pinball_core.workflow.status import (
    InstanceSummary,
    JobSummary,
    Status,
    instance_status,
    instances_of,
    workflow_summary,
)

from pinball_ui_tornado import logs, schedules
from pinball_ui_tornado.history import History, latest_versions
from pinball_ui_tornado.paging import PageRequest, paginate

log = logging.getLogger(__name__)

#: How long one read of the active tokens serves every request: the most a
#: page can lag behind the store.
ACTIVE_TTL_SEC: Final = 1.0

#: Banners in the order they matter: exiting over aborting over draining.
BANNER_ACTIONS: Final = (EXIT, ABORT, DRAIN)


class NotFound(LookupError):
    """A workflow, instance, job, execution or token that is not there."""


@dataclasses.dataclass(frozen=True)
class _Active:
    """One read of the active tokens, with the statuses worked out."""

    read_at: float
    #: Workflow name to the summaries of its active instances.
    instances: Mapping[str, list[InstanceSummary]]
    #: Signal tokens by level prefix (global, workflow, instance).
    signal_tokens: Mapping[str, list[Token]]
    #: Schedule tokens by workflow.
    schedule_tokens: Mapping[str, Token]


class Reader:
    """Reads and summarises what the store holds, for one UI process.

    :param store: An initialised store, shared by the handler threads.
    :param logs_dir: The config's ``logs_dir``: logs are read only inside it.
    """

    def __init__(
        self,
        store: Store,
        logs_dir: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.logs_dir = logs_dir
        self.history = History(store, clock)
        self._clock = clock
        self._active: _Active | None = None
        self._active_lock = threading.Lock()

    # -- Active tokens -----------------------------------------------------

    def _read_active(self) -> _Active:
        with self._active_lock:
            now = self._clock()
            cached = self._active
            if cached is not None and now - cached.read_at < ACTIVE_TTL_SEC:
                return cached
            tokens = self.store.read_tokens(names.WORKFLOW_PREFIX)
            schedule_tokens = self.store.read_tokens(names.SCHEDULE_PREFIX)
            active = _summarise_active(tokens, schedule_tokens, now)
            self._active = active
        self.history.note_active(
            (summary.workflow, summary.instance)
            for found in active.instances.values()
            for summary in found
        )
        return active

    def signals(
        self, workflow: str | None = None, instance: str | None = None
    ) -> list[dict[str, Any]]:
        """The DRAIN, ABORT and EXIT signals that apply at a level, widest first."""
        active = self._read_active()
        prefixes = [names.signal_prefix()]
        if workflow is not None:
            prefixes.append(names.signal_prefix(workflow))
        if instance is not None and workflow is not None:
            prefixes.append(names.signal_prefix(workflow, instance))
        found = []
        for prefix in prefixes:
            for token, signal in parse_signals(
                active.signal_tokens.get(prefix, ())
            ).values():
                if signal.action not in BANNER_ACTIONS:
                    continue
                level_workflow, level_instance = level_of(token.name)
                found.append(
                    {
                        "action": signal.action,
                        "level": level_name(level_workflow, level_instance),
                        "workflow": level_workflow,
                        "instance": level_instance,
                        "token": token.name,
                        "generation": signal.generation,
                        "timestamp": signal.timestamp,
                    }
                )
        found.sort(key=lambda s: BANNER_ACTIONS.index(s["action"]))
        return found

    # -- Workflows ---------------------------------------------------------

    def workflows(self, request: PageRequest) -> dict[str, Any]:
        """The workflows table: one row per workflow known anywhere."""
        active = self._read_active()
        known = (
            set(active.instances) | set(active.schedule_tokens)
        ) | self.history.workflow_names()
        rows = [self._workflow_row(active, workflow) for workflow in sorted(known)]
        loaded, total = self.history.loading
        answer = paginate(
            rows,
            request,
            {
                "workflow": lambda r: r["workflow"],
                "status": lambda r: r["status"],
                "last_start": lambda r: r["last_start"],
                "last_end": lambda r: r["last_end"],
                "run_time": lambda r: r["run_time"],
                "running_instances": lambda r: r["running_instances"],
                "owners": lambda r: ",".join(r["owners"]),
            },
            default_sort="workflow",
            search_field="workflow",
        )
        answer["history_loaded"] = {"workflows": loaded, "of": total}
        return answer

    def workflow(self, workflow: str) -> dict[str, Any]:
        """One workflow's row; NotFound if nothing knows it."""
        active = self._read_active()
        if workflow not in self._known_workflows(active):
            raise self._unknown_workflow(workflow, active)
        return self._workflow_row(active, workflow)

    def _known_workflows(self, active: _Active) -> set[str]:
        """Every workflow with an instance, active or archived, or a schedule."""
        return {
            *active.instances,
            *active.schedule_tokens,
            *self.history.workflow_names(),
        }

    def _unknown_workflow(self, workflow: str, active: _Active) -> NotFound:
        hint = did_you_mean(workflow, self._known_workflows(active))
        return NotFound(
            f"workflow {workflow} is not known: it has no instance, active or "
            f"archived, and no schedule{hint}"
        )

    def _workflow_row(self, active: _Active, workflow: str) -> dict[str, Any]:
        self.history.recheck(workflow)
        running = active.instances.get(workflow, [])
        last, archived = self.history.last_and_count(workflow)
        seen = {s.instance for s in running}
        # The archived instance that ended last stands for the whole archive:
        # no archived instance runs, so only it can be the workflow's last.
        candidates = [*running, *([last] if last and last.instance not in seen else [])]
        summary = workflow_summary(workflow, candidates)
        now = self._clock()
        schedule = active.schedule_tokens.get(workflow)
        emails = schedules.emails(schedule) if schedule is not None else []
        return {
            "workflow": workflow,
            "status": str(summary.status),
            "last_instance": summary.last_instance,
            "last_start": summary.start,
            "last_end": summary.end,
            "run_time": _run_time(summary.start, summary.end, now),
            "running_instances": summary.running_instances,
            "instances": len(running) + archived,
            "owners": sorted({email.split("@")[0] for email in emails}),
            "scheduled": schedule is not None,
        }

    def _all_instances(self, active: _Active, workflow: str) -> list[InstanceSummary]:
        self.history.recheck(workflow)
        running = active.instances.get(workflow, [])
        seen = {s.instance for s in running}
        archived = [
            found.summary
            for instance, found in self.history.instances(workflow).items()
            if instance not in seen
        ]
        return [*running, *archived]

    # -- Instances ---------------------------------------------------------

    def instances(self, workflow: str, request: PageRequest) -> dict[str, Any]:
        """The instances table of ``workflow``, newest first by default."""
        active = self._read_active()
        failed = {
            instance: list(found.failed_jobs)
            for instance, found in self.history.instances(workflow).items()
        }
        summaries = self._all_instances(active, workflow)
        if not summaries and workflow not in active.schedule_tokens:
            raise self._unknown_workflow(workflow, active)
        now = self._clock()
        rows = []
        for summary in summaries:
            row = _instance_row(summary, now)
            if summary.archived:
                row["failed_jobs"] = failed.get(summary.instance, [])
            rows.append(row)
        return paginate(
            rows,
            request,
            {
                "instance": lambda r: _numeric_first(r["instance"]),
                "status": lambda r: r["status"],
                "start": lambda r: r["start"],
                "end": lambda r: r["end"],
                "run_time": lambda r: r["run_time"],
            },
            default_sort="start",
            default_descending=True,
            search_field="instance",
        )

    def instance(self, workflow: str, instance: str) -> dict[str, Any]:
        """One instance: its status, times and the signals that apply."""
        summary = self._instance_summary(workflow, instance)
        row = _instance_row(summary, self._clock())
        row["signals"] = [] if summary.archived else self.signals(workflow, instance)
        row["jobs"] = len(summary.jobs)
        row["running_jobs"] = summary.running_jobs
        return row

    def latest_instance(self, workflow: str) -> str:
        """The instance the workflows page calls the last one."""
        row = self.workflow(workflow)
        if row["last_instance"] is None:
            raise NotFound(f"workflow {workflow} has no instance yet")
        return str(row["last_instance"])

    def _instance_summary(self, workflow: str, instance: str) -> InstanceSummary:
        tokens = self._instance_tokens(workflow, instance)
        summary, _ = tokens
        return summary

    def _instance_tokens(
        self, workflow: str, instance: str
    ) -> tuple[InstanceSummary, list[Token]]:
        """The instance's summary (with jobs) and tokens, active or archived."""
        now = self._clock()
        prefix = names.instance_prefix(workflow, instance)
        tokens = self.store.read_tokens(prefix)
        if any(names.parse_job_name(t.name) for t in tokens):
            active = self._read_active()
            wider = [
                *active.signal_tokens.get(names.signal_prefix(), ()),
                *active.signal_tokens.get(names.signal_prefix(workflow), ()),
                *(
                    t
                    for t in tokens
                    if t.name.startswith(names.signal_prefix(workflow, instance))
                ),
            ]
            summary = instance_status(tokens, now, signals=parse_signals(wider))
            if summary is not None:
                return summary, tokens
        archived = latest_versions(self.store.read_tokens(prefix, archived=True))
        summary = instance_status(archived, now, archived=True)
        if summary is None:
            self.history.forget(workflow, instance)
            active = self._read_active()
            if workflow not in self._known_workflows(active):
                raise self._unknown_workflow(workflow, active)
            raise NotFound(
                f"workflow {workflow} has no instance {instance}, active or archived"
            )
        return summary, archived

    # -- Jobs --------------------------------------------------------------

    def jobs(
        self, workflow: str, instance: str, request: PageRequest | None = None
    ) -> dict[str, Any]:
        """The jobs table of an instance, in name order by default."""
        summary = self._instance_summary(workflow, instance)
        now = self._clock()
        span_end = summary.end if summary.end is not None else now
        rows = [
            _job_row(workflow, instance, job, summary.start, span_end, now)
            for job in summary.jobs
        ]
        request = request or PageRequest(per_page=10**6)
        answer = paginate(
            rows,
            request,
            {
                "job": lambda r: r["job"],
                "status": lambda r: r["status"],
                "start": lambda r: r["start"],
                "end": lambda r: r["end"],
                "run_time": lambda r: r["run_time"],
                "priority": lambda r: r["priority"],
                "attempts": lambda r: r["attempts"],
            },
            default_sort="job",
            search_field="job",
        )
        answer["instance_status"] = str(summary.status)
        answer["archived"] = summary.archived
        return answer

    def job_definitions(self, workflow: str, instance: str) -> dict[str, Job]:
        """The jobs of an instance by name, for its graph."""
        summary = self._instance_summary(workflow, instance)
        return {job.name: job.job for job in summary.jobs}

    def job_statuses(self, workflow: str, instance: str) -> dict[str, str]:
        summary = self._instance_summary(workflow, instance)
        return {job.name: str(job.status) for job in summary.jobs}

    # -- Executions --------------------------------------------------------

    def executions(self, workflow: str, instance: str, job: str) -> dict[str, Any]:
        """Every execution of one job in one instance, in order."""
        found = self._job(workflow, instance, job)
        now = self._clock()
        items = [
            self._execution_row(workflow, instance, job, index, record, now)
            for index, record in enumerate(found.job.history)
        ]
        return {
            "job": _job_row(workflow, instance, found, None, now, now),
            "items": items,
            "total": len(items),
        }

    def execution(
        self, workflow: str, instance: str, job: str, execution: int
    ) -> dict[str, Any]:
        """One execution record of a job, with its links and logs."""
        found = self._job(workflow, instance, job)
        history = found.job.history
        if not 0 <= execution < len(history):
            have = f"0 to {len(history) - 1}" if history else "none"
            raise NotFound(
                f"job {job} of {workflow}/{instance} has no execution {execution} "
                f"(it has {have})"
            )
        row = self._execution_row(
            workflow, instance, job, execution, history[execution], self._clock()
        )
        row["last"] = execution == len(history) - 1
        row["job_state"] = found.state
        row["job_status"] = str(found.status)
        return row

    def job_executions(
        self, workflow: str, job: str, request: PageRequest
    ) -> dict[str, Any]:
        """Executions of ``job`` across every instance, active and archived.

        A retried instance starts with a copy of the history it came from;
        each run is listed once, under the instance it ran in when that
        instance still has it, else under the first copy found.
        """
        names.check_word("job", job)
        prefix = names.workflow_prefix(workflow)
        tokens = [
            *self.store.read_tokens(prefix),
            *latest_versions(self.store.read_tokens(prefix, archived=True)),
        ]
        now = self._clock()
        seen: dict[tuple[str, float], dict[str, Any]] = {}
        has_job = False
        for token in tokens:
            parsed = names.parse_job_name(token.name)
            if parsed is None or parsed.job != job:
                continue
            has_job = True
            try:
                payload = Job.from_json(token.data)
            except PayloadError:
                continue
            for index, record in enumerate(payload.history):
                key = (record.instance, record.start_time)
                kept = seen.get(key)
                if kept is not None and kept["instance"] == record.instance:
                    continue
                seen[key] = self._execution_row(
                    workflow, parsed.instance, job, index, record, now
                )
        if not has_job:
            raise self._unknown_job(workflow, job)
        rows = list(seen.values())
        return paginate(
            rows,
            request,
            {
                "start": lambda r: r["start"],
                "end": lambda r: r["end"],
                "instance": lambda r: _numeric_first(r["instance"]),
                "exit_code": lambda r: r["exit_code"],
                "run_time": lambda r: r["run_time"],
            },
            default_sort="start",
            default_descending=True,
        )

    def check_job(self, workflow: str, job: str) -> None:
        """NotFound unless an instance of ``workflow``, active or archived,
        has ``job``; the running instances are looked at first, as the job
        is usually there, and the archive is read only if it is not."""
        names.check_word("job", job)
        active = self._read_active()
        for summary in active.instances.get(workflow, []):
            if any(found.name == job for found in summary.jobs):
                return
        prefix = names.workflow_prefix(workflow)
        for token in self.store.read_tokens(prefix, archived=True):
            parsed = names.parse_job_name(token.name)
            if parsed is not None and parsed.job == job:
                return
        raise self._unknown_job(workflow, job)

    def _unknown_job(self, workflow: str, job: str) -> NotFound:
        active = self._read_active()
        if workflow not in self._known_workflows(active):
            return self._unknown_workflow(workflow, active)
        return NotFound(
            f"workflow {workflow} has no job {job} in any instance, active or archived"
        )

    def _job(self, workflow: str, instance: str, job: str) -> JobSummary:
        summary = self._instance_summary(workflow, instance)
        for found in summary.jobs:
            if found.name == job:
                return found
        raise NotFound(f"instance {workflow}/{instance} has no job {job}")

    def _execution_row(
        self,
        workflow: str,
        instance: str,
        job: str,
        index: int,
        record: ExecutionRecord,
        now: float,
    ) -> dict[str, Any]:
        return {
            "workflow": workflow,
            "instance": instance,
            "job": job,
            "execution": index,
            "ran_in": record.instance,
            "start": record.start_time,
            "end": record.end_time,
            "run_time": _run_time(record.start_time, record.end_time, now),
            "exit_code": record.exit_code,
            "finished": record.finished,
            "info": record.info,
            "worker": record.worker,
            "reason": record.reason,
            "event_attributes": dict(record.event_attributes),
            "properties": {k: list(v) for k, v in record.properties.items()},
            "links": links_of(record.properties),
            "logs": logs.describe(self.logs_dir, record.logs),
        }

    def log_path(
        self, workflow: str, instance: str, job: str, execution: int, kind: str
    ) -> tuple[str, bool]:
        """The file of one log of an execution, and whether the run ended."""
        record = self._job(workflow, instance, job).job.history
        if not 0 <= execution < len(record):
            raise NotFound(
                f"job {job} of {workflow}/{instance} has no execution {execution}"
            )
        path = record[execution].logs.get(kind)
        if path is None:
            raise NotFound(
                f"execution {execution} of job {job} has no {kind} log; it has "
                f"{', '.join(sorted(record[execution].logs)) or 'none'}"
            )
        return path, record[execution].finished

    # -- Schedules ---------------------------------------------------------

    def schedules(self, request: PageRequest) -> dict[str, Any]:
        active = self._read_active()
        now = self._clock()
        rows = [
            schedules.describe(workflow, token, now)
            for workflow, token in sorted(active.schedule_tokens.items())
        ]
        return paginate(
            rows,
            request,
            {
                "workflow": lambda r: r["workflow"],
                "next_run": lambda r: r["next_run"],
                "overrun_policy": lambda r: r["overrun_policy"],
            },
            default_sort="workflow",
            search_field="workflow",
        )

    def schedule(self, workflow: str) -> dict[str, Any]:
        active = self._read_active()
        token = active.schedule_tokens.get(workflow)
        if token is None:
            raise NotFound(f"workflow {workflow} has no schedule")
        return schedules.describe(workflow, token, self._clock(), runs=10)

    # -- Tokens ------------------------------------------------------------

    def token_paths(self, path: str, request: PageRequest) -> dict[str, Any]:
        """The children of ``path`` with counts, active and archived;
        NotFound if no name starts with it (the store's root always lists)."""
        if not path.startswith("/"):
            raise ValueError(f"a token path starts with '/', got {path!r}")
        active = self.store.group_token_names(path, "/")
        archived = self.store.group_token_names(path, "/", archived=True)
        if path != "/" and not active and not archived:
            raise NotFound(f"no token name, active or archived, starts with {path}")
        rows = []
        for key in sorted(set(active) | set(archived)):
            rows.append(
                {
                    "path": key,
                    "active": active.get(key, 0),
                    "archived": archived.get(key, 0),
                    "count": active.get(key, 0) + archived.get(key, 0),
                }
            )
        answer = paginate(
            rows,
            request,
            {"path": lambda r: r["path"], "count": lambda r: r["count"]},
            default_sort="path",
            search_field="path",
        )
        answer["path"] = path
        return answer

    def token(self, name: str) -> dict[str, Any]:
        """A token by exact name: the active one and any archived versions."""
        active = [t for t in self.store.read_tokens(name) if t.name == name]
        archived = [
            t for t in self.store.read_tokens(name, archived=True) if t.name == name
        ]
        if not active and not archived:
            raise NotFound(f"no token, active or archived, is named {name}")
        return {
            "name": name,
            "active": [_token_json(t) for t in active],
            "archived": [_token_json(t) for t in archived],
        }


# -- Helpers ------------------------------------------------------------------


def _summarise_active(
    tokens: list[Token], schedule_tokens: list[Token], now: float
) -> _Active:
    by_workflow: dict[str, list[Token]] = {}
    signal_tokens: dict[str, list[Token]] = {}
    for token in tokens:
        if f"/{names.SIGNAL}/" in token.name:
            prefix = token.name[: token.name.rindex("/") + 1]
            signal_tokens.setdefault(prefix, []).append(token)
        parts = token.name.split("/", 3)
        if len(parts) > 3 and parts[2] != names.SIGNAL:
            by_workflow.setdefault(parts[2], []).append(token)

    global_signals = signal_tokens.get(names.signal_prefix(), [])
    instances: dict[str, list[InstanceSummary]] = {}
    for workflow, found in by_workflow.items():
        wider = parse_signals(
            [*global_signals, *signal_tokens.get(names.signal_prefix(workflow), [])]
        )
        summaries = instances_of(found, now, signals=wider)
        if summaries:
            instances[workflow] = summaries

    schedules_by_workflow = {}
    for token in schedule_tokens:
        workflow = token.name[len(names.SCHEDULE_PREFIX) :]
        if workflow and "/" not in workflow:
            schedules_by_workflow[workflow] = token
    return _Active(now, instances, signal_tokens, schedules_by_workflow)


def _instance_row(summary: InstanceSummary, now: float) -> dict[str, Any]:
    return {
        "workflow": summary.workflow,
        "instance": summary.instance,
        "status": str(summary.status),
        "start": summary.start,
        "end": summary.end,
        "run_time": _run_time(summary.start, summary.end, now),
        "archived": summary.archived,
        "failed_jobs": summary.failed_jobs,
    }


def _job_row(
    workflow: str,
    instance: str,
    summary: JobSummary,
    span_start: float | None,
    span_end: float,
    now: float,
) -> dict[str, Any]:
    job = summary.job
    row: dict[str, Any] = {
        "workflow": workflow,
        "instance": instance,
        "job": summary.name,
        "kind": job.kind,
        "command": job.command,
        "condition": job.condition,
        "inputs": [i for i in job.inputs if i != names.WORKFLOW_START],
        "outputs": list(job.outputs),
        "emails": list(job.emails),
        "max_attempts": job.max_attempts,
        "retry_delay_sec": job.retry_delay_sec,
        "retry_backoff": job.retry_backoff,
        "max_retry_delay_sec": job.max_retry_delay_sec,
        "warn_timeout_sec": job.warn_timeout_sec,
        "abort_timeout_sec": job.abort_timeout_sec,
        "priority": summary.priority,
        "disabled": job.disabled,
        "status": str(summary.status),
        "state": summary.state,
        "owner": summary.owner,
        "attempts": summary.attempts,
        "last_exit_code": summary.last_exit_code,
        "start": summary.start,
        "end": None if summary.status is Status.RUNNING else summary.end,
        "run_time": _run_time(
            summary.start,
            None if summary.status is Status.RUNNING else summary.end,
            now,
        ),
    }
    if span_start is not None:
        row["progress"] = progress(job.history, span_start, span_end, now)
    return row


def progress(
    history: list[ExecutionRecord], span_start: float, span_end: float, now: float
) -> list[dict[str, Any]]:
    """A job's runs as segments of its instance's time span.

    First the wait before the job first ran, then one segment per run
    (SUCCESS, FAILURE or RUNNING), each its share of the span in percent, at
    least 1 so a short run stays visible. Runs copied from an earlier
    instance, before the span, are left out.
    """
    span = max(span_end - span_start, 1e-9)
    segments: list[dict[str, Any]] = []
    records = [r for r in history if r.start_time >= span_start]
    if not records:
        return segments
    wait = records[0].start_time - span_start
    if wait > 0:
        segments.append({"status": "WAIT", "percent": round(100 * wait / span, 1)})
    for record in records:
        end = record.end_time if record.end_time is not None else now
        if record.end_time is None:
            status = "RUNNING"
        elif record.exit_code == 0:
            status = "SUCCESS"
        else:
            status = "FAILURE"
        share = max(1.0, round(100 * (end - record.start_time) / span, 1))
        segments.append({"status": status, "percent": share})
    return segments


#: The link properties a job prints: ``PINBALL:kv_job_url=text|url`` and
#: ``PINBALL:job_url=url``.
_LINK_PROPERTIES: Final = ("kv_job_url", "job_url")


def links_of(properties: Mapping[str, Iterable[str]]) -> list[dict[str, Any]]:
    """The links a job printed, each with its text and, if safe, its URL.

    Only ``http`` and ``https`` URLs become links; anything else (a
    ``javascript:`` URL a job printed, say) is shown as text only.
    """
    found = []
    for key in _LINK_PROPERTIES:
        for value in properties.get(key, ()):
            text, _, url = (
                value.partition("|") if key == "kv_job_url" else ("", "", value)
            )
            if not url:
                text, url = value, value
            url = url.strip()
            safe = url.lower().startswith(("http://", "https://"))
            found.append(
                {"text": text or url, "url": url if safe else None, "raw": value}
            )
    return found


def _run_time(start: float | None, end: float | None, now: float) -> float | None:
    if start is None:
        return None
    return max(0.0, (end if end is not None else now) - start)


def _numeric_first(text: str) -> tuple[int, int | str]:
    # Instance ids are times in milliseconds; compare them as numbers.
    return (0, int(text)) if text.isdigit() else (1, text)


def _token_json(token: Token) -> dict[str, Any]:
    body = token.to_dict()
    try:
        body["data_json"] = json.loads(token.data) if token.data else None
    except ValueError:
        body["data_json"] = None
    return body
