"""Turning one loaded YAML file into workflow definitions, checking every value.

Reading never stops at the first mistake: each wrong key, type, name or
schedule value becomes a :class:`~pinball_parser_yaml.problems.Problem` and
reading goes on, so one run of ``validate`` lists everything to fix. A
workflow or job with problems is still returned, with the bad values left at
their defaults, so that the checks across jobs (dependencies, cycles) can
run on it too.
"""

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import Any, Final

from pinball_core.workflow import definition, names

from pinball_parser_yaml import schedule as schedules
from pinball_parser_yaml.loader import Mark, MarkedDict, MarkedList
from pinball_parser_yaml.problems import Problem, did_you_mean

log = logging.getLogger(__name__)

#: A condition job retries this often unless it says otherwise.
CONDITION_MAX_ATTEMPTS: Final = definition.CONDITION_MAX_ATTEMPTS
#: And waits this long between tries.
CONDITION_RETRY_DELAY_SEC: Final = definition.CONDITION_RETRY_DELAY_SEC

_CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", re.ASCII)
_WHAT = ("command", "python", "condition")
_NOT_WORD = re.compile(r"\W", re.ASCII)


@dataclasses.dataclass(slots=True)
class JobDef:
    """One job as written, checked; ``depends_on`` has no repeats."""

    name: str
    mark: Mark
    kind: str = "shell"
    command: str = ""
    condition: bool = False
    depends_on: list[str] = dataclasses.field(default_factory=list)
    depends_on_marks: list[Mark] = dataclasses.field(default_factory=list)
    emails: list[str] = dataclasses.field(default_factory=list)
    priority: float | None = None
    max_attempts: int = 1
    retry_delay_sec: float = 0.0
    retry_backoff: float = 1.0
    max_retry_delay_sec: float | None = None
    warn_timeout_sec: float | None = None
    abort_timeout_sec: float | None = None
    disabled: bool = False


@dataclasses.dataclass(slots=True)
class WorkflowDef:
    """One workflow as written, checked, with the file it came from."""

    name: str
    file: str
    mark: Mark
    jobs: dict[str, JobDef] = dataclasses.field(default_factory=dict)
    emails: list[str] = dataclasses.field(default_factory=list)
    schedule: schedules.Schedule | None = None
    cyclic: bool = False


# -- Value checks: each returns the value to keep or raises ValueError --------


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be non-empty text, got {value!r}")
    return value


def _callable(value: Any) -> str:
    if not isinstance(value, str) or not _CALLABLE.fullmatch(value):
        raise ValueError(
            f"must be 'module:function', e.g. 'mypackage.jobs:load', got {value!r}"
        )
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _number(value: Any, minimum: float = float("-inf"), strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        bound = "more than" if strict else "at least"
        raise ValueError(f"must be {bound} {minimum:g}, got {value!r}")
    return float(value)


def _seconds(value: Any) -> float:
    return _number(value, 0.0)


def _timeout(value: Any) -> float:
    return _number(value, 0.0, strict=True)


def _backoff(value: Any) -> float:
    return _number(value, 1.0)


def _attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number of at least 1, got {value!r}")
    return value


def _emails(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of addresses, got {value!r}")
    return [v.strip() for v in value if v.strip()]


_Check = Callable[[Any], Any]

_JOB_CHECKS: Final[dict[str, _Check]] = {
    "command": _text,
    "python": _callable,
    "condition": _text,
    "depends_on": lambda v: v,  # checked item by item in _read_job
    "emails": _emails,
    "priority": _number,
    "max_attempts": _attempts,
    "retry_delay_sec": _seconds,
    "retry_backoff": _backoff,
    "max_retry_delay_sec": _seconds,
    "warn_timeout_sec": _timeout,
    "abort_timeout_sec": _timeout,
    "disabled": _flag,
}
_WORKFLOW_KEYS: Final = ("schedule", "emails", "jobs", "cyclic")
_SCHEDULE_KEYS: Final = (
    "recurrence",
    "cron",
    "start",
    "timezone",
    "overrun_policy",
    "max_running_instances",
    "catchup",
    "max_catchup",
)


class _FileReader:
    """Reads one file's workflows, collecting the problems it meets."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.workflow: str | None = None
        self.job: str | None = None

    def problem(self, mark: Mark, reason: str) -> None:
        self.problems.append(
            Problem(self.file, mark.line, mark.column, reason, self.workflow, self.job)
        )

    def mapping(self, value: Any, mark: Mark, what: str) -> MarkedDict | None:
        """``value`` if it is a mapping, else None after reporting it."""
        if isinstance(value, MarkedDict):
            return value
        self.problem(mark, f"{what} must be a mapping of keys to values, got {value!r}")
        return None

    def known_keys(self, data: MarkedDict, allowed: tuple[str, ...], what: str) -> None:
        """Report unknown and repeated keys of ``data``, a ``what``."""
        for key, mark in data.duplicates:
            self.problem(mark, f"{what} key {key!r} is written twice; keep one")
        for key, mark in data.key_marks.items():
            if key not in allowed:
                hint = (
                    did_you_mean(str(key), allowed)
                    or f"; known keys: {', '.join(allowed)}"
                )
                self.problem(mark, f"unknown {what} key {key!r}{hint}")

    def name(self, key: Any, mark: Mark, kind: str) -> str | None:
        """``key`` as a workflow or job name, or None after reporting it."""
        if not isinstance(key, str):
            self.problem(
                mark,
                f"{kind} name {key!r} must be text of letters, digits and "
                "underscores; write it in quotes if it is a number",
            )
            return None
        try:
            checked: str = names.check_word(kind, key)
            return checked
        except ValueError as exc:
            suggestion = _NOT_WORD.sub("_", key) or "job_1"
            self.problem(mark, f"{exc}; rename it, e.g. {suggestion!r}")
            return None

    def value(self, data: MarkedDict, key: str, check: _Check) -> Any:
        """``data[key]`` after ``check``; None if absent or after reporting it."""
        if key not in data:
            return None
        try:
            return check(data[key])
        except ValueError as exc:
            reason = str(exc)
            # Checks shared with other parsers name the key themselves
            # ("cron '61 * * * *' is not ..."); the others say "must be ...".
            if not reason.startswith(f"{key} "):
                reason = f"{key} {reason}"
            self.problem(data.value_marks[key], reason)
            return None

    # -- Whole file -----------------------------------------------------------

    def read(self, data: Any) -> list[WorkflowDef]:
        if data is None:
            self.problems.append(
                Problem(self.file, 0, 0, "the file is empty; expected 'workflows:'")
            )
            return []
        top = self.mapping(data, Mark(1, 1), "the file")
        if top is None:
            return []
        self.known_keys(top, ("workflows",), "top-level")
        if "workflows" not in top:
            self.problem(top.mark, "no 'workflows:' mapping; nothing to run")
            return []
        found = self.mapping(
            top["workflows"], top.value_marks["workflows"], "workflows"
        )
        if found is None:
            return []

        workflows = []
        for key, mark in found.duplicates:
            self.problem(
                mark, f"workflow {key!r} is defined twice in this file; rename one"
            )
        for key, body in found.items():
            name = self.name(key, found.key_marks[key], "workflow")
            if name is None:
                continue
            self.workflow = name
            workflow = self._read_workflow(
                name, found.key_marks[key], body, found.value_marks[key]
            )
            self.workflow = None
            if workflow is not None:
                workflows.append(workflow)
        return workflows

    def _read_workflow(
        self, name: str, mark: Mark, body: Any, body_mark: Mark
    ) -> WorkflowDef | None:
        data = self.mapping(body, body_mark, f"workflow {name}")
        if data is None:
            return None
        self.known_keys(data, _WORKFLOW_KEYS, "workflow")
        workflow = WorkflowDef(name, self.file, mark)
        workflow.emails = self.value(data, "emails", _emails) or []
        workflow.cyclic = bool(self.value(data, "cyclic", _flag))
        if "schedule" in data:
            workflow.schedule = self._read_schedule(
                data["schedule"], data.value_marks["schedule"]
            )

        if "jobs" not in data:
            self.problem(data.mark, "no 'jobs:' mapping; a workflow needs jobs")
            return workflow
        jobs = self.mapping(data["jobs"], data.value_marks["jobs"], "jobs")
        if jobs is None:
            return workflow
        if not jobs:
            self.problem(jobs.mark, "the workflow has no jobs")
        for key, dup in jobs.duplicates:
            self.job = str(key)
            self.problem(
                dup, f"job {key!r} is defined twice in this workflow; rename one"
            )
        for key, job_body in jobs.items():
            job_name = self.name(key, jobs.key_marks[key], "job")
            if job_name is None:
                continue
            self.job = job_name
            job = self._read_job(
                job_name, jobs.key_marks[key], job_body, jobs.value_marks[key]
            )
            if job is not None:
                workflow.jobs[job_name] = job
        self.job = None
        return workflow

    def _read_job(
        self, name: str, mark: Mark, body: Any, body_mark: Mark
    ) -> JobDef | None:
        data = self.mapping(body, body_mark, f"job {name}")
        if data is None:
            return None
        self.known_keys(data, tuple(_JOB_CHECKS), "job")
        job = JobDef(name, mark)

        what = [key for key in _WHAT if key in data]
        if len(what) != 1:
            found = " and ".join(what) if what else "none"
            self.problem(
                data.mark,
                "a job needs exactly one of command, python or condition; "
                f"found {found}",
            )
        if "python" in what:
            job.kind = "python"
        if "condition" in what:
            job.condition = True
            job.max_attempts = CONDITION_MAX_ATTEMPTS
            job.retry_delay_sec = CONDITION_RETRY_DELAY_SEC
        if what:
            job.command = self.value(data, what[0], _JOB_CHECKS[what[0]]) or ""

        for key, check in _JOB_CHECKS.items():
            if key in _WHAT or key == "depends_on":
                continue
            value = self.value(data, key, check)
            if value is not None:
                setattr(job, key, value)

        if "depends_on" in data:
            self._read_depends_on(
                job, data["depends_on"], data.value_marks["depends_on"]
            )
        return job

    def _read_depends_on(self, job: JobDef, value: Any, mark: Mark) -> None:
        if not isinstance(value, MarkedList):
            self.problem(mark, f"depends_on must be a list of job names, got {value!r}")
            return
        for item, item_mark in zip(value, value.item_marks, strict=True):
            if not isinstance(item, str):
                self.problem(item_mark, f"depends_on item {item!r} must be a job name")
            elif item in job.depends_on:
                log.warning(
                    "%s:%d:%d: workflow %s, job %s: dependency %r is listed twice; "
                    "using it once",
                    self.file,
                    item_mark.line,
                    item_mark.column,
                    self.workflow,
                    job.name,
                    item,
                )
            else:
                job.depends_on.append(item)
                job.depends_on_marks.append(item_mark)

    def _read_schedule(self, value: Any, mark: Mark) -> schedules.Schedule | None:
        data = self.mapping(value, mark, "schedule")
        if data is None:
            return None
        self.known_keys(data, _SCHEDULE_KEYS, "schedule")
        schedule = schedules.Schedule()

        if ("recurrence" in data) == ("cron" in data):
            self.problem(
                data.mark, "a schedule needs exactly one of recurrence or cron"
            )
        recurrence = self.value(data, "recurrence", _text)
        if recurrence is not None:
            when = self.value(data, "recurrence", schedules.check_recurrence)
            if when is not None:
                schedule.set_recurrence(when)
        cron = self.value(data, "cron", _text)
        if cron is not None and self.value(data, "cron", _cron) is not None:
            schedule.cron = cron

        start = self.value(data, "start", _text)
        if start is not None:
            schedule.start = self.value(data, "start", schedules.check_start)
        timezone = self.value(data, "timezone", _text)
        if timezone is not None and self.value(
            data, "timezone", schedules.check_timezone
        ):
            schedule.timezone = timezone
        policy = self.value(data, "overrun_policy", _overrun_policy)
        if policy is not None:
            schedule.overrun_policy = policy
        schedule.max_running_instances = self.value(
            data, "max_running_instances", _attempts
        )
        schedule.catchup = bool(self.value(data, "catchup", _flag))
        schedule.max_catchup = self.value(data, "max_catchup", _attempts)
        return schedule


def _cron(value: str) -> str:
    schedules.check_cron(value)
    return value


def _overrun_policy(value: Any) -> str:
    if value not in schedules.OVERRUN_POLICIES:
        choices = ", ".join(schedules.OVERRUN_POLICIES)
        hint = did_you_mean(str(value), schedules.OVERRUN_POLICIES)
        raise ValueError(f"{value!r} is not one of {choices}{hint}")
    return str(value)


def read_workflows(file: str, data: Any) -> tuple[list[WorkflowDef], list[Problem]]:
    """The workflows in one loaded file and every problem found reading them."""
    reader = _FileReader(file)
    workflows = reader.read(data)
    return workflows, reader.problems
