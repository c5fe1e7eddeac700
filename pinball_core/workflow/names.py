"""Where each workflow token lives in the master's name tree.

The layout is the original Pinball's, so its operators find their way::

    /workflow/<wf>/<instance>/job/waiting/<job>
    /workflow/<wf>/<instance>/job/runnable/<job>
    /workflow/<wf>/<instance>/input/<job>/<upstream or __WORKFLOW_START__>/<event>
    /workflow/__SIGNAL__/<ACTION>                    (every workflow)
    /workflow/<wf>/__SIGNAL__/<ACTION>               (one workflow)
    /workflow/<wf>/<instance>/__SIGNAL__/<ACTION>    (one instance)
    /schedule/workflow/<wf>

Workflow, instance, job and event names are words (letters, digits and
underscores), checked here so that every name built can be read back.
"""

import dataclasses
import re

WORKFLOW_PREFIX = "/workflow/"
SCHEDULE_PREFIX = "/schedule/workflow/"
SIGNAL = "__SIGNAL__"
WORKFLOW_START = "__WORKFLOW_START__"
WAITING = "waiting"
RUNNABLE = "runnable"

#: What every runnable job token's name contains, for claims across workflows.
RUNNABLE_INFIX = f"/job/{RUNNABLE}/"

_WORD = re.compile(r"\w+", re.ASCII)


def check_word(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid name part, else raise ValueError."""
    if not _WORD.fullmatch(value) or value == SIGNAL:
        raise ValueError(
            f"{kind} name {value!r} must be letters, digits and underscores only"
        )
    return value


def workflow_prefix(workflow: str) -> str:
    return f"{WORKFLOW_PREFIX}{workflow}/"


def instance_prefix(workflow: str, instance: str) -> str:
    return f"{WORKFLOW_PREFIX}{workflow}/{instance}/"


def job_prefix(workflow: str, instance: str, state: str | None = None) -> str:
    base = f"{instance_prefix(workflow, instance)}job/"
    return base if state is None else f"{base}{state}/"


def job_name(workflow: str, instance: str, state: str, job: str) -> str:
    return f"{job_prefix(workflow, instance, state)}{job}"


def input_prefix(
    workflow: str, instance: str, job: str, upstream: str | None = None
) -> str:
    base = f"{instance_prefix(workflow, instance)}input/{job}/"
    return base if upstream is None else f"{base}{upstream}/"


def event_name(
    workflow: str, instance: str, job: str, upstream: str, event: str
) -> str:
    return f"{input_prefix(workflow, instance, job, upstream)}{event}"


def signal_prefix(workflow: str | None = None, instance: str | None = None) -> str:
    """The signal folder of the whole system, a workflow, or an instance."""
    if instance is not None:
        assert workflow is not None, "an instance signal needs its workflow"
        return f"{instance_prefix(workflow, instance)}{SIGNAL}/"
    if workflow is not None:
        return f"{workflow_prefix(workflow)}{SIGNAL}/"
    return f"{WORKFLOW_PREFIX}{SIGNAL}/"


def schedule_name(workflow: str) -> str:
    return f"{SCHEDULE_PREFIX}{workflow}"


@dataclasses.dataclass(frozen=True, slots=True)
class JobTokenName:
    """The parts of a job token's name."""

    workflow: str
    instance: str
    state: str
    job: str


def parse_job_name(name: str) -> JobTokenName | None:
    """The parts of a job token's name, or None if it is not one."""
    parts = name.split("/")
    # '', 'workflow', wf, instance, 'job', state, job
    if len(parts) != 7 or parts[1] != "workflow" or parts[4] != "job":
        return None
    if parts[5] not in (WAITING, RUNNABLE) or SIGNAL in (parts[2], parts[3]):
        return None
    return JobTokenName(parts[2], parts[3], parts[5], parts[6])


@dataclasses.dataclass(frozen=True, slots=True)
class EventTokenName:
    """The parts of an event token's name."""

    workflow: str
    instance: str
    job: str
    upstream: str
    event: str


def parse_event_name(name: str) -> EventTokenName | None:
    """The parts of an event token's name, or None if it is not one."""
    parts = name.split("/")
    # '', 'workflow', wf, instance, 'input', job, upstream, event
    if len(parts) != 8 or parts[1] != "workflow" or parts[4] != "input":
        return None
    return EventTokenName(parts[2], parts[3], parts[5], parts[6], parts[7])
