"""Checks across the jobs of a workflow, and the priorities they lead to.

Dependencies must name other jobs of the same workflow, and the jobs must
not wait for each other in a circle unless the workflow says ``cyclic:
true`` (a cycle otherwise never starts: every job in it waits for another).
The checks and priorities are the core's, shared with every parser; this
module places what they find in the file.
"""

from pinball_core.workflow import definition
from pinball_core.workflow.definition import find_cycles

from pinball_parser_yaml.definitions import WorkflowDef
from pinball_parser_yaml.problems import Problem

__all__ = ["check", "find_cycles", "priorities"]


def check(workflow: WorkflowDef) -> list[Problem]:
    """Every dependency and cycle problem of ``workflow``, with its place."""
    problems = []
    found = definition.dependency_problems(
        workflow.jobs,
        cyclic=workflow.cyclic,
        allow_cycles="declare the workflow 'cyclic: true'",
    )
    for problem in found:
        job = workflow.jobs[problem.job]
        mark = job.mark
        if problem.upstream is not None:
            mark = job.depends_on_marks[job.depends_on.index(problem.upstream)]
        problems.append(
            Problem(
                workflow.file,
                mark.line,
                mark.column,
                problem.reason,
                workflow.name,
                job.name,
            )
        )
    return problems


def priorities(workflow: WorkflowDef) -> dict[str, float]:
    """Each job's token priority: its own ``priority`` if set, else 1 plus
    the number of jobs downstream of it."""
    return definition.priorities(workflow.jobs)
