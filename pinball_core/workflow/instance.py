"""Building a new workflow instance as tokens, for parsers and tools.

An instance starts as one token per job: the top-level jobs already runnable,
having consumed their start event, the rest waiting for events from
upstream. Workers take it from there, with no scan needed to notice it.
"""

import time
from collections.abc import Mapping

from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Job

START_EVENT = "workflow_start_event"


def new_instance_id() -> str:
    """A fresh instance id: the time in milliseconds, as the original made."""
    return str(int(time.time() * 1000))


def instance_tokens(
    workflow: str,
    instance: str,
    jobs: Mapping[str, Job],
    priorities: Mapping[str, float] | None = None,
    *,
    creator: str = "parser",
) -> list[Token]:
    """The tokens of a new ``instance`` of ``workflow`` made of ``jobs``.

    ``jobs`` maps each job's name to its definition, with ``inputs`` and
    ``outputs`` naming each other; a job with no inputs starts the workflow.
    Raises ValueError naming the job when a name or an edge is wrong.
    """
    names.check_word("workflow", workflow)
    names.check_word("instance", instance)
    priorities = priorities or {}
    # Edges are kept on both ends; fill in outputs the definitions left out.
    for job_name, job in jobs.items():
        for upstream in job.inputs:
            if upstream in jobs and job_name not in jobs[upstream].outputs:
                jobs[upstream].outputs.append(job_name)
    tokens = []
    for job_name, job in jobs.items():
        names.check_word("job", job_name)
        for upstream in job.inputs:
            if upstream != names.WORKFLOW_START and upstream not in jobs:
                raise ValueError(
                    f"job {job_name} of workflow {workflow}: input {upstream!r} "
                    "is not a job of the workflow"
                )
        inputs = job.inputs or [names.WORKFLOW_START]
        job.inputs = list(inputs)
        job.name = job.name or job_name
        top_level = inputs == [names.WORKFLOW_START]
        if top_level:
            job.events = [{"name": START_EVENT, "creator": creator, "attributes": {}}]
        state = names.RUNNABLE if top_level else names.WAITING
        tokens.append(
            Token(
                names.job_name(workflow, instance, state, job_name),
                priority=priorities.get(job_name, 0.0),
                data=job.to_json(),
            )
        )
    return tokens
