"""Turning the original's config model into workflows of the Python API.

A ``WORKFLOWS`` dict of :class:`~pinball_parser_python.config.WorkflowConfig`
becomes :class:`~pinball_parser_python.api.Workflow` objects, as the
original's ``PyWorkflowParser`` read it:

- each ``JobConfig``'s template makes the job; ``CommandJobTemplate``
  commands have the parser params substituted with ``%``;
- a job ``final`` built from ``final_job_config`` depends on every job that
  nothing depends on, and gets no parameters;
- ``notify_emails`` (comma-separated) go to every job and the schedule;
- a job's token priority is the sum of the template priorities (1 when
  unset) of the job and every job downstream of it; conditions get 0.

Problems are recorded on the workflows with the line of the config that
caused them, like those of the Python API.
"""

import datetime
import logging
import shlex
import sys
from collections.abc import Mapping
from typing import Any, Final

from pinball_core.workflow.definition import downstream_weights, upstream_edges
from pinball_core.workflow.model import SHELL

from pinball_parser_python.api import Workflow
from pinball_parser_python.config import JobConfig, OverrunPolicy, WorkflowConfig
from pinball_parser_python.job_templates import (
    CommandConditionTemplate,
    CommandJobTemplate,
    ConditionTemplateBase,
    JobTemplate,
    JobTemplateBase,
)
from pinball_parser_python.problems import Problem, Site, written_at
from pinball_parser_python.schedule import Schedule

log = logging.getLogger(__name__)

#: The name of the job every workflow of the original model ends with.
FINAL_JOB: Final = "final"

#: parser_params a JobTemplate needs.
REPO_DIR: Final = "job_repo_dir"
IMPORT_DIRS: Final = "job_import_dirs_config"

RUNNER: Final = "pinball_parser_python.job_runner"


def from_config(
    workflows_config: object, params: Mapping[str, Any], site: Site
) -> tuple[list[Workflow], list[Problem]]:
    """The workflows of a ``{name: WorkflowConfig}`` dict, and problems
    found outside any one workflow."""
    if not isinstance(workflows_config, Mapping):
        return [], [
            Problem(
                site,
                "workflows_config must name a dict of workflow name to "
                f"WorkflowConfig, not {type(workflows_config).__name__}",
            )
        ]
    workflows = []
    problems = []
    for name, config in workflows_config.items():
        if not isinstance(config, WorkflowConfig):
            problems.append(
                Problem(
                    site,
                    f"must be a WorkflowConfig, not {type(config).__name__}",
                    str(name),
                )
            )
            continue
        workflows.append(_workflow(str(name), config, params))
    return workflows, problems


def _workflow(name: str, config: WorkflowConfig, params: Mapping[str, Any]) -> Workflow:
    with written_at(config.site):
        schedule = _schedule(config)
        workflow = Workflow(name, emails=config.notify_emails or ())
    if isinstance(schedule, str):
        workflow.problem(_site(config.schedule, config.site), schedule)
    else:
        workflow.schedule = schedule
        if schedule is not None:
            for reason in schedule.check():
                workflow.problem(
                    _site(config.schedule, config.site), f"schedule: {reason}"
                )

    jobs = config.jobs if isinstance(config.jobs, Mapping) else {}
    if not isinstance(config.jobs, Mapping):
        workflow.problem(
            config.site, f"jobs must be a dict of job name to JobConfig, got {jobs!r}"
        )
    weights: dict[str, float] = {}
    for job_name, job_config in jobs.items():
        if job_name == FINAL_JOB and config.final_job_config is not None:
            workflow.problem(
                _site(job_config, config.site),
                "a job may not be named 'final': the workflow's final job has "
                "that name; rename it",
                FINAL_JOB,
            )
            continue
        _job(workflow, str(job_name), job_config, params, weights)

    if config.final_job_config is not None:
        children = {d for job in workflow.jobs.values() for d in job.depends_on}
        leaves = [n for n in workflow.jobs if n not in children]
        # It depends on the leaves whatever its config says, and gets no
        # parameters, as in the original.
        _job(workflow, FINAL_JOB, config.final_job_config, {}, weights, leaves)

    counted = downstream_weights(upstream_edges(workflow.jobs), weights)
    workflow.priorities = {
        n: 0.0 if job.condition else counted[n] for n, job in workflow.jobs.items()
    }
    return workflow


def _site(thing: object, default: Site) -> Site:
    site = getattr(thing, "site", None)
    return site if isinstance(site, Site) else default


def _schedule(config: WorkflowConfig) -> Schedule | str | None:
    """The schedule of ``config``, or a problem's reason."""
    schedule = config.schedule
    if schedule is None:
        return None
    recurrence = getattr(schedule, "recurrence", None)
    start = getattr(schedule, "reference_timestamp", None)
    if not isinstance(recurrence, datetime.timedelta):
        return f"schedule recurrence must be a datetime.timedelta, got {recurrence!r}"
    if not isinstance(start, datetime.datetime):
        return f"schedule reference_timestamp must be a datetime, got {start!r}"
    policy = getattr(schedule, "overrun_policy", None)
    if policy is None:
        policy = "SKIP"
    elif isinstance(policy, int) and not isinstance(policy, bool):
        if policy not in OverrunPolicy.NAMES:
            return (
                f"schedule overrun_policy {policy!r} is not one of the original's "
                f"numbers {sorted(OverrunPolicy.NAMES)}"
            )
        policy = OverrunPolicy.NAMES[policy]
    timezone = "UTC"
    if start.tzinfo is not None:
        # An aware time keeps its own offset; the scheduler reads it as given.
        start = start.astimezone(datetime.UTC).replace(tzinfo=None)
    return Schedule(
        every=recurrence,
        start=start,
        timezone=timezone,
        overrun_policy=str(policy),
        max_running_instances=getattr(schedule, "max_running_instances", None),
    )


def _job(
    workflow: Workflow,
    name: str,
    config: object,
    params: Mapping[str, Any],
    weights: dict[str, float],
    depends_on: list[str] | None = None,
) -> None:
    site = _site(config, workflow.site)
    if not isinstance(config, JobConfig):
        workflow.problem(
            site, f"must be a JobConfig, not {type(config).__name__}", name
        )
        return
    template = config.template
    site = _site(template, site) if name == FINAL_JOB else site
    options: dict[str, Any] = {
        "depends_on": config.dependency if depends_on is None else depends_on
    }

    if isinstance(template, ConditionTemplateBase):
        command = getattr(template, "command", None) or params.get("command")
        if not isinstance(template, CommandConditionTemplate) or command is None:
            workflow.problem(
                site,
                f"condition template {template!r} needs a command: "
                "CommandConditionTemplate(name, command='...')",
                name,
            )
            command = ""
        options |= {
            "max_attempts": template.max_attempts,
            "retry_delay_sec": template.retry_delay_sec,
            "emails": template.emails,
            "priority": None,
        }
        with written_at(site):
            workflow.add_job(name, SHELL, command, True, options)
        return

    if not isinstance(template, JobTemplateBase):
        workflow.problem(
            site,
            f"template must be a JobTemplate, CommandJobTemplate or "
            f"CommandConditionTemplate, got {template!r}",
            name,
        )
        return
    weights[name] = float(template.priority) if template.priority else 1.0
    options |= {
        "max_attempts": template.max_attempts,
        "emails": template.emails,
        "warn_timeout_sec": template.warn_timeout_sec,
        "abort_timeout_sec": template.abort_timeout_sec,
    }
    if isinstance(template, CommandJobTemplate):
        command = _interpolate(workflow, site, name, template.command, params)
    elif isinstance(template, JobTemplate):
        command = _runner_command(workflow, site, name, template, params)
        if command:
            workflow.job_classes[name] = (template.name, _site(template, site))
    else:
        workflow.problem(site, f"unknown job template {template!r}", name)
        command = ""
    with written_at(site):
        workflow.add_job(name, SHELL, command, False, options)


def _interpolate(
    workflow: Workflow, site: Site, job: str, command: object, params: Mapping[str, Any]
) -> str:
    if not isinstance(command, str):
        workflow.problem(site, f"command must be text, got {command!r}", job)
        return ""
    try:
        return command % dict(params)
    except KeyError as exc:
        workflow.problem(
            site,
            f"command uses %({exc.args[0]})s, which parser_params does not set; "
            f"write %%({exc.args[0]})s for an upstream job's event attribute",
            job,
        )
    except (ValueError, TypeError) as exc:
        workflow.problem(
            site,
            f"command is not a valid %-template ({exc}); write %% for a literal %",
            job,
        )
    return command


def _runner_command(
    workflow: Workflow,
    site: Site,
    job: str,
    template: JobTemplate,
    params: Mapping[str, Any],
) -> str:
    """The shell command that runs the job class on a worker."""
    if job == FINAL_JOB:
        workflow.problem(
            site,
            "the final job gets no parser params, so it cannot be a JobTemplate; "
            "use a CommandJobTemplate",
            job,
        )
        return ""
    missing = [key for key in (REPO_DIR, IMPORT_DIRS) if not params.get(key)]
    if missing:
        workflow.problem(
            site,
            f"JobTemplate({template.name!r}) needs parser_params "
            f"{' and '.join(missing)}: where the job classes are",
            job,
        )
        return ""
    if not isinstance(template.name, str) or not template.name.isidentifier():
        workflow.problem(
            site, f"JobTemplate name {template.name!r} must be a class name", job
        )
        return ""

    job_params = dict(params.get("job_params") or {})
    yesterday = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
    job_params["end_date"] = params.get("end_date", str(yesterday))
    python = str(params.get("python_executable") or sys.executable)
    words = [
        "cd",
        shlex.quote(str(params[REPO_DIR])),
        "&&",
        shlex.quote(python),
        "-m",
        RUNNER,
        f"--job_import_dirs_config={shlex.quote(str(params[IMPORT_DIRS]))}",
        f"--job_class_name={template.name}",
        f"--job_params={shlex.quote(_pairs(job_params))}",
    ]
    if template.executor:
        words.append(f"--executor={shlex.quote(template.executor)}")
    if template.executor_config:
        words.append(
            f"--executor_config={shlex.quote(_pairs(template.executor_config))}"
        )
    if template.write_lock:
        words.append(f"--write_lock={shlex.quote(template.write_lock)}")
    command = " ".join(words)
    if "%(" in command:
        # The worker substitutes %(name)s event attributes into commands; a
        # parameter value that looks like one must reach the job as written.
        command = command.replace("%", "%%")
    return command


def _pairs(values: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())
