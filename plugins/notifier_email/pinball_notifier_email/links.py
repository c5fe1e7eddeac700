"""Where things are in the web UI, as links for mail.

All the UI's paths a mail points at are built here and nowhere else, so
that they change in one place if the UI's routes do. Every name is quoted as
one path segment: a name that holds ``/``, ``?`` or ``#`` still leads to its
own page.
"""

import urllib.parse


def _segment(value: str | int) -> str:
    return urllib.parse.quote(str(value), safe="")


def workflow_path(workflow: str) -> str:
    """The workflow's page: its instances and its schedule."""
    return f"/workflows/{_segment(workflow)}"


def instance_path(workflow: str, instance: str) -> str:
    """An instance's page: its status and the table of its jobs."""
    return f"{workflow_path(workflow)}/instances/{_segment(instance)}"


def job_path(workflow: str, instance: str, job: str) -> str:
    """A job's page in an instance: its definition and every execution."""
    return f"{instance_path(workflow, instance)}/jobs/{_segment(job)}"


def execution_path(workflow: str, instance: str, job: str, execution: int) -> str:
    """One execution of a job, counted from 0 within the job's history."""
    return f"{job_path(workflow, instance, job)}/executions/{_segment(execution)}"


def log_path(workflow: str, instance: str, job: str, execution: int, kind: str) -> str:
    """One log (``stdout``, ``stderr``) of an execution."""
    base = execution_path(workflow, instance, job, execution)
    return f"{base}/logs/{_segment(kind)}"


class UiLinks:
    """Absolute links into the UI at ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def workflow(self, workflow: str) -> str:
        return self.base_url + workflow_path(workflow)

    def instance(self, workflow: str, instance: str) -> str:
        return self.base_url + instance_path(workflow, instance)

    def job(self, workflow: str, instance: str, job: str) -> str:
        return self.base_url + job_path(workflow, instance, job)

    def execution(self, workflow: str, instance: str, job: str, execution: int) -> str:
        return self.base_url + execution_path(workflow, instance, job, execution)

    def log(
        self, workflow: str, instance: str, job: str, execution: int, kind: str
    ) -> str:
        return self.base_url + log_path(workflow, instance, job, execution, kind)
