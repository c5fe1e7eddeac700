"""The Python API for workflows: a workflow object and its jobs.

A workflows module builds :class:`Workflow` objects and lists them::

    daily = Workflow("daily_report", schedule=Schedule(every=timedelta(days=1)))
    extract = daily.shell("extract", "echo PINBALL:EVENT_ATTR:rows=10")
    daily.shell("transform", "echo %(rows)s", depends_on=[extract])
    WORKFLOWS = [daily]

Nothing here raises for a wrong value: each mistake is recorded with the
file and line of the call that made it, and the parser reports all of them
at once, as ``pinball workflow validate`` does for YAML. Only Python's own
errors (a wrong positional argument) stop the module from loading; unknown
keyword arguments are recorded too, with a suggestion, and are refused by a
type checker since their type is ``Never``.
"""

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Never

from pinball_core.workflow import names
from pinball_core.workflow.definition import (
    CONDITION_MAX_ATTEMPTS,
    CONDITION_RETRY_DELAY_SEC,
    JobSpec,
    did_you_mean,
)
from pinball_core.workflow.model import PYTHON, SHELL

from pinball_parser_python.problems import UNKNOWN_SITE, Problem, Site, call_site
from pinball_parser_python.schedule import Schedule

log = logging.getLogger(__name__)

_CALLABLE: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", re.ASCII)
_NOT_WORD: Final = re.compile(r"\W", re.ASCII)


@dataclasses.dataclass(slots=True)
class DefinedJob(JobSpec):
    """A job of a :class:`Workflow`, as its method made it.

    Pass it in another job's ``depends_on`` to depend on it.
    """

    workflow: str = ""
    site: Site = UNKNOWN_SITE


#: Keyword arguments every job method takes, and their defaults.
_JOB_OPTIONS: Final[Mapping[str, Any]] = {
    "depends_on": (),
    "emails": (),
    "priority": None,
    "max_attempts": 1,
    "retry_delay_sec": 0.0,
    "retry_backoff": 1.0,
    "max_retry_delay_sec": None,
    "warn_timeout_sec": None,
    "abort_timeout_sec": None,
    "disabled": False,
}
_WORKFLOW_OPTIONS: Final = ("schedule", "emails", "cyclic")

Dependency = str | DefinedJob


class Workflow:
    """A workflow: named jobs, their dependencies, and maybe a schedule.

    :param name: letters, digits and underscores.
    :param schedule: when it starts by itself; without one it starts only by
        hand (``pinball workflow start``).
    :param emails: addresses told about its failures; every job gets them.
    :param cyclic: allow jobs to depend on each other in a cycle.
    """

    def __init__(
        self,
        name: str,
        *,
        schedule: Schedule | None = None,
        emails: Iterable[str] | str = (),
        cyclic: bool = False,
        **unknown: Never,
    ) -> None:
        self.site = call_site()
        self.name = name
        self.schedule = schedule
        self.cyclic = cyclic
        self.jobs: dict[str, DefinedJob] = {}
        self.problems: list[Problem] = []
        #: Token priorities by job, when not the default (1 plus the jobs
        #: downstream, or the job's own): the original's config model sets them.
        self.priorities: dict[str, float] | None = None
        #: Job name to the Python job class it runs and where that was
        #: written, for jobs of the original's ``JobTemplate``; ``validate``
        #: looks the classes up.
        self.job_classes: dict[str, tuple[str, Site]] = {}

        _check_name(self, "workflow", name, self.site, None)
        self.emails = self._emails(emails, self.site, None)
        self._unknown(unknown, _WORKFLOW_OPTIONS, self.site, None)
        if not isinstance(cyclic, bool):
            self.problem(self.site, f"cyclic must be True or False, got {cyclic!r}")
            self.cyclic = False
        if schedule is not None and not isinstance(schedule, Schedule):
            self.problem(
                self.site,
                f"schedule must be a Schedule(every=... or cron=...), got {schedule!r}",
            )
            self.schedule = None
        elif schedule is not None:
            for reason in schedule.check():
                self.problem(self.site, f"schedule: {reason}")

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, jobs={list(self.jobs)})"

    # -- Jobs -------------------------------------------------------------------

    def shell(
        self,
        name: str,
        command: str,
        *,
        depends_on: Iterable[Dependency] | Dependency = (),
        emails: Iterable[str] | str = (),
        priority: float | None = None,
        max_attempts: int = 1,
        retry_delay_sec: float = 0.0,
        retry_backoff: float = 1.0,
        max_retry_delay_sec: float | None = None,
        warn_timeout_sec: float | None = None,
        abort_timeout_sec: float | None = None,
        disabled: bool = False,
        **unknown: Never,
    ) -> DefinedJob:
        """Add a job running ``command`` with ``/bin/sh -c``.

        ``%(name)s`` in the command takes the value an upstream job printed
        as ``PINBALL:EVENT_ATTR:name=value``.
        """
        options = {k: v for k, v in locals().items() if k in _JOB_OPTIONS}
        return self.add_job(name, SHELL, command, False, options, unknown)

    def python(
        self,
        name: str,
        target: str,
        *,
        depends_on: Iterable[Dependency] | Dependency = (),
        emails: Iterable[str] | str = (),
        priority: float | None = None,
        max_attempts: int = 1,
        retry_delay_sec: float = 0.0,
        retry_backoff: float = 1.0,
        max_retry_delay_sec: float | None = None,
        warn_timeout_sec: float | None = None,
        abort_timeout_sec: float | None = None,
        disabled: bool = False,
        **unknown: Never,
    ) -> DefinedJob:
        """Add a job calling ``target``, a ``"module:function"``, in a child
        Python process on the worker; the module must be importable there."""
        options = {k: v for k, v in locals().items() if k in _JOB_OPTIONS}
        return self.add_job(name, PYTHON, target, False, options, unknown)

    def condition(
        self,
        name: str,
        command: str,
        *,
        depends_on: Iterable[Dependency] | Dependency = (),
        emails: Iterable[str] | str = (),
        priority: float | None = None,
        max_attempts: int = CONDITION_MAX_ATTEMPTS,
        retry_delay_sec: float = CONDITION_RETRY_DELAY_SEC,
        retry_backoff: float = 1.0,
        max_retry_delay_sec: float | None = None,
        warn_timeout_sec: float | None = None,
        abort_timeout_sec: float | None = None,
        disabled: bool = False,
        **unknown: Never,
    ) -> DefinedJob:
        """Add a condition: ``command`` is run until it exits 0, every
        ``retry_delay_sec``, at most ``max_attempts`` times; the jobs that
        depend on it wait until then."""
        options = {k: v for k, v in locals().items() if k in _JOB_OPTIONS}
        return self.add_job(name, SHELL, command, True, options, unknown)

    def add_job(
        self,
        name: str,
        kind: str,
        command: str,
        condition: bool,
        options: Mapping[str, Any],
        unknown: Mapping[str, Any] | None = None,
        site: Site | None = None,
    ) -> DefinedJob:
        """Add a job from checked-or-not values; what the methods above share.

        ``options`` are the keyword arguments of :meth:`shell`; ``site`` is
        where the job was written, by default the caller's line.
        """
        site = site or call_site()
        job = DefinedJob(name, kind=kind, condition=condition, workflow=self.name)
        job.site = site
        self._unknown(unknown or {}, tuple(_JOB_OPTIONS), site, name)
        if _check_name(self, "job", name, site, name):
            if name in self.jobs:
                earlier = self.jobs[name].site
                self.problem(
                    site,
                    f"is defined twice in this workflow (first at {earlier})",
                    name,
                )
                return job
            self.jobs[name] = job

        what = "a 'module:function'" if kind == PYTHON else "a command"
        if kind == PYTHON and not (
            isinstance(command, str) and _CALLABLE.fullmatch(command)
        ):
            self.problem(
                site,
                f"python target must be 'module:function', e.g. "
                f"'mypackage.jobs:load', got {command!r}",
                name,
            )
        elif not isinstance(command, str) or not command.strip():
            self.problem(site, f"needs {what} as non-empty text, got {command!r}", name)
        else:
            job.command = command

        values = {**_JOB_OPTIONS, **options}
        for key, check in _VALUE_CHECKS.items():
            try:
                checked = check(values[key])
            except ValueError as exc:
                self.problem(site, f"{key} {exc}", name)
                continue
            if checked is not None:
                setattr(job, key, checked)
        job.emails = self._emails(values["emails"], site, name)
        job.depends_on = self._depends_on(values["depends_on"], site, name)
        return job

    # -- Problems ---------------------------------------------------------------

    def problem(self, site: Site, reason: str, job: str | None = None) -> None:
        """Record a problem of this workflow, for the parser to report."""
        self.problems.append(Problem(site, reason, self.name, job))

    def _unknown(
        self,
        unknown: Mapping[str, Any],
        known: tuple[str, ...],
        site: Site,
        job: str | None,
    ) -> None:
        what = "job" if job is not None else "workflow"
        for key in unknown:
            hint = did_you_mean(key, known) or f"; known: {', '.join(known)}"
            self.problem(site, f"unknown {what} option {key!r}{hint}", job)

    def _emails(self, value: object, site: Site, job: str | None) -> list[str]:
        if isinstance(value, str):
            # The original's notify_emails were one comma-separated string.
            value = value.split(",")
        if not isinstance(value, Iterable) or not all(
            isinstance(v, str) for v in value
        ):
            self.problem(
                site, f"emails must be a list of addresses, got {value!r}", job
            )
            return []
        return [v.strip() for v in value if v.strip()]

    def _depends_on(self, value: object, site: Site, job: str) -> list[str]:
        if isinstance(value, str | DefinedJob):
            value = [value]
        if not isinstance(value, Iterable):
            self.problem(
                site, f"depends_on must be a list of job names, got {value!r}", job
            )
            return []
        found: list[str] = []
        for item in value:
            if isinstance(item, DefinedJob):
                if item.workflow != self.name:
                    self.problem(
                        site,
                        f"depends on job {item.name} of workflow {item.workflow}; "
                        "a job can only depend on jobs of its own workflow (use a "
                        "condition job to wait for another workflow's output)",
                        job,
                    )
                    continue
                item = item.name
            if not isinstance(item, str):
                self.problem(site, f"depends_on item {item!r} must be a job name", job)
            elif item in found:
                log.warning(
                    "%s: workflow %s, job %s: dependency %r is listed twice; "
                    "using it once",
                    site,
                    self.name,
                    job,
                    item,
                )
            else:
                found.append(item)
        return found


def _check_name(
    workflow: Workflow, kind: str, name: object, site: Site, job: str | None
) -> bool:
    try:
        if not isinstance(name, str):
            raise ValueError(f"{kind} name {name!r} must be text")
        names.check_word(kind, name)
        return True
    except ValueError as exc:
        suggestion = _NOT_WORD.sub("_", str(name)) or f"{kind}_1"
        workflow.problem(
            site,
            f"{exc}; rename it, e.g. {suggestion!r}",
            job if kind == "job" else None,
        )
        return False


# -- Value checks: each returns the value to keep or raises ValueError ---------


def _number(value: Any, minimum: float = float("-inf"), strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        bound = "more than" if strict else "at least"
        raise ValueError(f"must be {bound} {minimum:g}, got {value!r}")
    return float(value)


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number of at least 1, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be True or False, got {value!r}")
    return value


_VALUE_CHECKS: Final[Mapping[str, Any]] = {
    "priority": _optional(_number),
    "max_attempts": _attempts,
    "retry_delay_sec": lambda v: _number(v, 0.0),
    "retry_backoff": lambda v: _number(v, 1.0),
    "max_retry_delay_sec": _optional(lambda v: _number(v, 0.0)),
    "warn_timeout_sec": _optional(lambda v: _number(v, 0.0, strict=True)),
    "abort_timeout_sec": _optional(lambda v: _number(v, 0.0, strict=True)),
    "disabled": _flag,
}
