"""Checks across the jobs of a workflow, and the priorities they lead to.

Dependencies must name other jobs of the same workflow, and the jobs must
not wait for each other in a circle unless the workflow says ``cyclic:
true`` (a cycle otherwise never starts: every job in it waits for another).
"""

from pinball_parser_yaml.definitions import WorkflowDef
from pinball_parser_yaml.problems import Problem, did_you_mean


def check(workflow: WorkflowDef) -> list[Problem]:
    """Every dependency and cycle problem of ``workflow``."""
    problems = []
    for job in workflow.jobs.values():
        for upstream, mark in zip(job.depends_on, job.depends_on_marks, strict=True):
            reason = None
            if upstream == job.name:
                reason = "depends on itself; remove it from its own depends_on"
            elif upstream not in workflow.jobs:
                hint = did_you_mean(upstream, workflow.jobs)
                reason = (
                    f"depends on {upstream!r}, which is not a job of this "
                    f"workflow{hint}"
                )
            if reason is not None:
                problems.append(
                    Problem(
                        workflow.file,
                        mark.line,
                        mark.column,
                        reason,
                        workflow.name,
                        job.name,
                    )
                )

    if not workflow.cyclic:
        for cycle in find_cycles(_edges(workflow)):
            first = workflow.jobs[cycle[0]]
            path = " -> ".join(cycle + [cycle[0]])
            problems.append(
                Problem(
                    workflow.file,
                    first.mark.line,
                    first.mark.column,
                    f"the jobs depend on each other in a cycle: {path}; break it, "
                    "or declare the workflow 'cyclic: true'",
                    workflow.name,
                    first.name,
                )
            )
    return problems


def _edges(workflow: WorkflowDef) -> dict[str, list[str]]:
    """Each job to the jobs it depends on, without self and unknown edges."""
    return {
        name: [u for u in job.depends_on if u != name and u in workflow.jobs]
        for name, job in workflow.jobs.items()
    }


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One path for each cycle a depth-first search meets, in upstream order.

    Each cycle is reported once, starting at its first job in ``edges``
    order, so the output does not depend on where the search entered it.
    Overlapping cycles may be reported as one, which is enough to fix them
    one at a time.
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


def priorities(workflow: WorkflowDef) -> dict[str, float]:
    """Each job's token priority: 1 plus the jobs downstream of it.

    Workers run the most important runnable job first, and a job with more
    work waiting on it shortens the whole instance most; a job's own
    ``priority`` wins over this.
    """
    downstream: dict[str, list[str]] = {name: [] for name in workflow.jobs}
    for name, upstreams in _edges(workflow).items():
        for upstream in upstreams:
            downstream[upstream].append(name)

    result = {}
    for name, job in workflow.jobs.items():
        if job.priority is not None:
            result[name] = job.priority
            continue
        reached: set[str] = set()
        todo = list(downstream[name])
        while todo:
            current = todo.pop()
            if current not in reached and current != name:
                reached.add(current)
                todo.extend(downstream[current])
        result[name] = 1.0 + len(reached)
    return result
