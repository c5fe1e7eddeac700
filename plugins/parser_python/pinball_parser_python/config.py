"""The original Pinball's workflow config model, for existing workflows modules.

A module written for the original (``pinball_ext.workflow.config``) loads
with only its imports changed::

    from pinball_parser_python.config import JobConfig, ScheduleConfig, WorkflowConfig
    from pinball_parser_python.job_templates import CommandJobTemplate, JobTemplate

    WORKFLOWS = {
        "example_workflow": WorkflowConfig(
            jobs={
                "parent_job": JobConfig(JobTemplate("ExamplePythonJob"), []),
                "child_job": JobConfig(CommandJobTemplate("child", "date"),
                                       ["parent_job"]),
            },
            final_job_config=JobConfig(CommandJobTemplate("final", "echo success")),
            schedule=ScheduleConfig(recurrence=timedelta(days=1),
                                    reference_timestamp=datetime(2015, 2, 1)),
            notify_emails="owner@example.com",
        )
    }

with ``parser_params: {workflows_config: mymodule.WORKFLOWS}``. These
classes only hold values; :mod:`pinball_parser_python.legacy` checks them
and turns them into :class:`~pinball_parser_python.api.Workflow` objects.
"""

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pinball_parser_python.problems import Site, call_site


class OverrunPolicy:
    """The original's overrun policies, as the numbers its configs used.

    A ``ScheduleConfig`` may give either these numbers or the names.
    """

    SKIP: Final = 0
    ABORT_RUNNING: Final = 1
    DELAY: Final = 2
    DELAY_UNTIL_SUCCESS: Final = 3
    START_NEW: Final = 4

    NAMES: Final = {
        0: "SKIP",
        1: "ABORT_RUNNING",
        2: "DELAY",
        3: "DELAY_UNTIL_SUCCESS",
        4: "START_NEW",
    }


class WorkflowConfig:
    """A workflow: ``jobs`` by name, a ``final`` job run after all others,
    a schedule, and ``notify_emails`` (comma-separated addresses).

    The final job depends on every job nothing else depends on, and is
    named ``final``, so no other job may be.
    """

    def __init__(
        self,
        jobs: Mapping[str, "JobConfig"],
        final_job_config: "JobConfig | None" = None,
        schedule: "ScheduleConfig | None" = None,
        notify_emails: str | Sequence[str] | None = None,
    ) -> None:
        self.site: Site = call_site()
        self.jobs = jobs
        self.final_job_config = final_job_config
        self.schedule = schedule
        self.notify_emails = notify_emails


class JobConfig:
    """A job: its ``template`` (what it runs) and the names of the jobs of
    the same workflow it depends on."""

    def __init__(self, template: Any, dependency: Sequence[str] | None = None) -> None:
        self.site: Site = call_site()
        self.template = template
        self.dependency = list(dependency or [])


class ScheduleConfig:
    """Run every ``recurrence`` from ``reference_timestamp`` (a naive time is
    UTC), with an overrun policy (default SKIP) and a cap on instances."""

    def __init__(
        self,
        recurrence: datetime.timedelta,
        reference_timestamp: datetime.datetime,
        overrun_policy: int | str | None = None,
        max_running_instances: int | None = None,
    ) -> None:
        self.site: Site = call_site()
        self.recurrence = recurrence
        self.reference_timestamp = reference_timestamp
        self.overrun_policy = overrun_policy
        self.max_running_instances = max_running_instances
