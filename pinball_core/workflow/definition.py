"""What every parser does with a workflow once it has read it.

A parser reads definitions in its own format (YAML, Python) and reports
mistakes in its own terms (a file and line, a Python call site). What comes
after is the same for every format and lives here, so that the same workflow
written in two formats gives the same tokens: the dependency checks, the
default job priorities, and turning a job definition into the job payload
its token carries.
"""

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol

from pinball_core.token import Token
from pinball_core.workflow import instance as instances
from pinball_core.workflow.model import SHELL, Job

#: A condition job is checked this often unless it says otherwise.
CONDITION_MAX_ATTEMPTS: Final = 10
#: And waits this long between checks.
CONDITION_RETRY_DELAY_SEC: Final = 300.0


class JobDefinition(Protocol):
    """A job as a parser read it: what :func:`job_payload` needs."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def command(self) -> str: ...
    @property
    def condition(self) -> bool: ...
    @property
    def depends_on(self) -> Sequence[str]: ...
    @property
    def emails(self) -> Sequence[str]: ...
    @property
    def priority(self) -> float | None: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def retry_delay_sec(self) -> float: ...
    @property
    def retry_backoff(self) -> float: ...
    @property
    def max_retry_delay_sec(self) -> float | None: ...
    @property
    def warn_timeout_sec(self) -> float | None: ...
    @property
    def abort_timeout_sec(self) -> float | None: ...
    @property
    def disabled(self) -> bool: ...


@dataclasses.dataclass(slots=True)
class JobSpec:
    """A plain :class:`JobDefinition`, for parsers with nothing to add to it."""

    name: str
    kind: str = SHELL
    command: str = ""
    condition: bool = False
    depends_on: list[str] = dataclasses.field(default_factory=list)
    emails: list[str] = dataclasses.field(default_factory=list)
    priority: float | None = None
    max_attempts: int = 1
    retry_delay_sec: float = 0.0
    retry_backoff: float = 1.0
    max_retry_delay_sec: float | None = None
    warn_timeout_sec: float | None = None
    abort_timeout_sec: float | None = None
    disabled: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class DependencyProblem:
    """A wrong edge or a cycle among a workflow's jobs.

    ``upstream`` is the dependency at fault, or None for a cycle, which
    ``job`` (its first job in definition order) stands for.
    """

    job: str
    reason: str
    upstream: str | None = None


# -- Checks across jobs --------------------------------------------------------


def dependency_problems(
    jobs: Mapping[str, JobDefinition],
    *,
    cyclic: bool = False,
    allow_cycles: str = "declare the workflow cyclic",
) -> list[DependencyProblem]:
    """Every self-dependency, unknown dependency and, unless ``cyclic``, cycle.

    A cycle of jobs never starts: every job in it waits for another. Some
    workflows loop on purpose (a job that re-arms an earlier one), so a
    workflow may declare itself cyclic; ``allow_cycles`` says how, in the
    parser's own terms.
    """
    problems = []
    for job in jobs.values():
        for upstream in job.depends_on:
            if upstream == job.name:
                reason = "depends on itself; remove it from its own depends_on"
            elif upstream not in jobs:
                reason = (
                    f"depends on {upstream!r}, which is not a job of this "
                    f"workflow{did_you_mean(upstream, jobs)}"
                )
            else:
                continue
            problems.append(DependencyProblem(job.name, reason, upstream))

    if not cyclic:
        for cycle in find_cycles(upstream_edges(jobs)):
            path = " -> ".join(cycle + [cycle[0]])
            problems.append(
                DependencyProblem(
                    cycle[0],
                    f"the jobs depend on each other in a cycle: {path}; break it, "
                    f"or {allow_cycles}",
                )
            )
    return problems


def upstream_edges(jobs: Mapping[str, JobDefinition]) -> dict[str, list[str]]:
    """Each job to the jobs it depends on, without self and unknown edges."""
    return {
        name: [u for u in job.depends_on if u != name and u in jobs]
        for name, job in jobs.items()
    }


def find_cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One path for each cycle a depth-first search meets, in upstream order.

    ``edges`` maps each job to the jobs it depends on. Each cycle is reported
    once, starting at its first job in ``edges`` order, so the output does
    not depend on where the search entered it. Overlapping cycles may be
    reported as one, which is enough to fix them one at a time.
    """
    order = {name: i for i, name in enumerate(edges)}
    done: set[str] = set()
    seen: set[frozenset[str]] = set()
    cycles = []

    for root in edges:
        if root in done:
            continue
        # Iterative, so a long chain of jobs cannot hit the recursion limit.
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(edges[root])]
        while stack:
            upstream = next(stack[-1], None)
            if upstream is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if upstream in on_path:
                cycle = path[path.index(upstream) :]
                # Edges point upstream; print the cycle in the order jobs run.
                cycle.reverse()
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                    cycles.append(cycle[start:] + cycle[:start])
            elif upstream not in done:
                path.append(upstream)
                on_path.add(upstream)
                stack.append(iter(edges[upstream]))
    return cycles


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` hint for a misspelt ``word``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- Problems ------------------------------------------------------------------


def names_workflow(problem: str, workflow: str) -> bool:
    """Whether a parser's problem line is about ``workflow``.

    Parsers say ``workflow NAME`` in the line of a problem inside a
    workflow's definition, as the YAML and Python parsers do; this is the
    only way to tell from the line, since the parser contract gives problems
    as text.
    """
    return re.search(rf"\bworkflow {re.escape(workflow)}\b", problem) is not None


def problems_outside(problems: Iterable[str], workflows: Iterable[str]) -> list[str]:
    """The problems that name none of ``workflows``, in order.

    A problem outside every workflow the parser read (a file that does not
    parse, a workflow whose name is not valid) may hide a workflow from it,
    so a workflow that seems to be missing may only be unreadable.
    """
    known = list(workflows)
    return [
        problem
        for problem in problems
        if not any(names_workflow(problem, workflow) for workflow in known)
    ]


# -- Priorities ----------------------------------------------------------------


def downstream_weights(
    edges: Mapping[str, Sequence[str]], weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Each job's weight plus the weights of every job downstream of it.

    ``edges`` maps each job to the jobs it depends on; a job missing from
    ``weights`` weighs 1. With every weight 1 this is 1 plus the number of
    jobs that wait, directly or not, for the job: workers run the most
    important runnable job first, and the one with more work waiting on it
    shortens the whole instance most.
    """
    weights = weights or {}
    downstream: dict[str, list[str]] = {name: [] for name in edges}
    for name, upstreams in edges.items():
        for upstream in upstreams:
            if upstream in downstream:
                downstream[upstream].append(name)

    result = {}
    for name in edges:
        reached = {name}
        todo = list(downstream[name])
        while todo:
            current = todo.pop()
            if current not in reached:
                reached.add(current)
                todo.extend(downstream[current])
        result[name] = sum(weights.get(job, 1.0) for job in reached)
    return result


def priorities(jobs: Mapping[str, JobDefinition]) -> dict[str, float]:
    """Each job's token priority: its own ``priority`` if set, else 1 plus
    the number of jobs downstream of it."""
    counted = downstream_weights(upstream_edges(jobs))
    return {
        name: job.priority if job.priority is not None else counted[name]
        for name, job in jobs.items()
    }


# -- Payloads and tokens -------------------------------------------------------


def job_payload(
    job: JobDefinition,
    workflow_emails: Sequence[str] = (),
    python_path: Sequence[str] = (),
) -> Job:
    """A fresh job payload; building tokens fills in its outputs and events.

    The job is told about failures by the workflow's addresses and its own,
    each once, the workflow's first. ``python_path`` lists folders its
    processes import from (see :attr:`Job.python_path`).
    """
    return Job(
        name=job.name,
        kind=job.kind,
        command=job.command,
        condition=job.condition,
        inputs=list(job.depends_on),
        outputs=[],
        emails=list(dict.fromkeys([*workflow_emails, *job.emails])),
        max_attempts=job.max_attempts,
        retry_delay_sec=job.retry_delay_sec,
        retry_backoff=job.retry_backoff,
        max_retry_delay_sec=job.max_retry_delay_sec,
        warn_timeout_sec=job.warn_timeout_sec,
        abort_timeout_sec=job.abort_timeout_sec,
        disabled=job.disabled,
        python_path=list(python_path),
    )


def instance_tokens(
    workflow: str,
    instance: str,
    jobs: Mapping[str, JobDefinition],
    workflow_emails: Sequence[str] = (),
    job_priorities: Mapping[str, float] | None = None,
    python_path: Sequence[str] = (),
) -> list[Token]:
    """The job tokens of a new ``instance`` of a checked workflow.

    ``job_priorities`` defaults to :func:`priorities`; ``python_path`` goes
    to every job (:attr:`Job.python_path`). Raises ValueError naming the job
    when a name or an edge is wrong.
    """
    payloads = {
        name: job_payload(job, workflow_emails, python_path)
        for name, job in jobs.items()
    }
    if job_priorities is None:
        job_priorities = priorities(jobs)
    tokens: list[Token] = instances.instance_tokens(
        workflow, instance, payloads, job_priorities
    )
    return tokens
