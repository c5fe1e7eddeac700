"""A workflows module in the original Pinball's config model.

Written for the original, it imported ``pinball_ext.workflow.config`` and
``pinball_ext.job_templates``; only those two imports changed. The parser
adds the job ``final`` after the jobs nothing depends on.
"""

from datetime import datetime, timedelta

from pinball_parser_python.config import JobConfig, ScheduleConfig, WorkflowConfig
from pinball_parser_python.job_templates import CommandJobTemplate, JobTemplate

FINAL_JOB = CommandJobTemplate("final", "echo success")

WORKFLOWS = {
    "legacy_example": WorkflowConfig(
        jobs={
            "parent_job": JobConfig(JobTemplate("ExamplePythonJob"), []),
            "child_job": JobConfig(JobTemplate("ExampleCommandJob"), ["parent_job"]),
            # %(greeting)s comes from parser_params when the workflow is read;
            # %%(answer)s survives that and takes parent_job's event attribute.
            "greet": JobConfig(
                CommandJobTemplate(
                    "greet", "echo %(greeting)s, the answer is %%(answer)s"
                ),
                ["parent_job"],
            ),
        },
        final_job_config=JobConfig(FINAL_JOB),
        schedule=ScheduleConfig(
            recurrence=timedelta(days=1),
            reference_timestamp=datetime(2026, 1, 1, 0, 0, 1),
        ),
        notify_emails="owner@example.com",
    )
}
