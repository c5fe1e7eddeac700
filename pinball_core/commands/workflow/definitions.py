"""``validate`` and ``graph``: look at workflow definitions without running them.

Both read the definitions through the config's parser, in this process:
``validate`` needs no master at all, and ``graph`` needs one only to colour
an instance's jobs by status (``-i``).
"""

import argparse
import json
import logging
import pathlib
import sys
from typing import Any, Final

from pinball_core.app import Application
from pinball_core.commands.workflow._shared import (
    Context,
    WorkflowCommandError,
    archived_instance,
    definition_tokens,
    plural,
    require_defined,
    say,
)
from pinball_core.components import Parser
from pinball_core.errors import DefinitionError, PinballError
from pinball_core.workflow import graph as graphs
from pinball_core.workflow import names
from pinball_core.workflow.definition import names_workflow
from pinball_core.workflow.model import Job
from pinball_core.workflow.status import read_instance

log = logging.getLogger(__name__)

#: The instance id the definitions are built under to draw or check them;
#: nothing is sent to the master.
_DRAFT_INSTANCE: Final = "definition"


def register(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add ``validate`` and ``graph`` to ``pinball workflow``."""
    validate_parser = commands.add_parser(
        "validate",
        help="check every workflow definition and list all problems",
        description="Read every workflow definition through the config's parser "
        "and list every problem found, one per line; exit 1 if there are any. "
        "Needs no master.",
    )
    validate_parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    validate_parser.set_defaults(handler=validate)

    graph_parser = commands.add_parser(
        "graph",
        help="draw a workflow's jobs and dependencies (DOT, or SVG with Graphviz)",
        description="Draw a workflow's jobs and their dependencies from its "
        "definition, or an instance's jobs coloured by status with -i (which "
        "asks the master, or the store for an archived instance). DOT needs "
        f"nothing else; svg, png and pdf need Graphviz ({graphs.GRAPHVIZ_INSTALL}).",
    )
    graph_parser.add_argument(
        "-w",
        "--workflow",
        metavar="WORKFLOW",
        default=argparse.SUPPRESS,
        help="the workflow",
    )
    graph_parser.add_argument(
        "-i",
        "--instance",
        metavar="INSTANCE",
        default=argparse.SUPPRESS,
        help="colour the jobs of this instance by their status",
    )
    graph_parser.add_argument(
        "--format",
        choices=graphs.FORMATS,
        help="dot (default), or svg, png, pdf rendered by Graphviz; "
        "by default taken from the -o file's suffix",
    )
    graph_parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output",
    )
    graph_parser.set_defaults(handler=graph)


# -- validate --------------------------------------------------------------------


def validate(args: argparse.Namespace, app: Application) -> int:
    """List every problem of every definition, and the workflows that are
    valid; 1 if there are any problems."""
    _refuse_foreign(args, "validate", allowed=("json",))
    parser = _make_parser(app)
    problems = _problems(parser)
    workflows = _names(parser, listed_problems=bool(problems))
    unbuilt, building = _building_problems(parser, workflows)
    if not problems:
        # Only for parsers whose validate misses them: the others say the
        # same again when asked to build.
        problems = building
    valid = [
        workflow
        for workflow in workflows
        if workflow not in unbuilt
        and not any(names_workflow(problem, workflow) for problem in problems)
    ]
    shown = f"{plural(len(valid), 'workflow')} valid: {', '.join(valid) or '-'}"

    if getattr(args, "json", False):
        body = {"ok": not problems, "workflows": valid, "problems": problems}
        print(json.dumps(body, indent=2))
        return 1 if problems else 0
    if problems:
        for problem in problems:
            print(problem)
        print(
            f"{plural(len(problems), 'problem')} in the definitions read by parser "
            f"{app.config.parser!r}",
            file=sys.stderr,
        )
        print(shown, file=sys.stderr)
        return 1
    say(shown)
    return 0


def _problems(parser: Parser) -> list[str]:
    try:
        return [str(problem) for problem in parser.validate()]
    except PinballError:
        raise
    except Exception as exc:
        # A third party's parser that breaks is itself the problem to report.
        log.debug("the parser's validate failed", exc_info=True)
        return [f"the parser failed to validate: {type(exc).__name__}: {exc}"]


def _names(parser: Parser, *, listed_problems: bool) -> list[str]:
    """The workflows the parser defines; none, when it cannot list them but
    its problems, already listed, may say why."""
    try:
        return sorted(parser.workflow_names())
    except Exception as exc:
        if listed_problems:
            log.debug("the parser cannot list its workflows", exc_info=True)
            return []
        raise WorkflowCommandError(
            f"the parser cannot list its workflows: {type(exc).__name__}: {exc}"
        ) from exc


def _building_problems(
    parser: Parser, workflows: list[str]
) -> tuple[set[str], list[str]]:
    """The workflows whose tokens cannot be built, and what goes wrong.

    A parser may refuse a workflow for a problem that its validate lists
    without naming the workflow (one elsewhere in the same file); and one
    whose validate misses a problem finds it only here.
    """
    unbuilt: set[str] = set()
    problems: list[str] = []
    for workflow in workflows:
        try:
            parser.instance_tokens(workflow, _DRAFT_INSTANCE)
            parser.schedule_token(workflow)
        except DefinitionError as exc:
            unbuilt.add(workflow)
            problems.extend(exc.problems)
        except Exception as exc:
            unbuilt.add(workflow)
            problems.append(f"workflow {workflow}: {type(exc).__name__}: {exc}")
    return unbuilt, problems


# -- graph -----------------------------------------------------------------------


def graph(args: argparse.Namespace, app: Application) -> int:
    """Write the DOT or rendered graph of a workflow or an instance."""
    _refuse_foreign(args, "graph", allowed=("workflow", "instance"))
    workflow = getattr(args, "workflow", None)
    instance = getattr(args, "instance", None)
    if workflow is None:
        raise WorkflowCommandError("graph needs -w WORKFLOW")
    for kind, value in (("workflow", workflow), ("instance", instance)):
        if value is not None:
            try:
                names.check_word(kind, value)
            except ValueError as exc:
                raise WorkflowCommandError(str(exc)) from None
    fmt = args.format or _format_of(args.output)

    if instance is None:
        jobs, statuses = _definition_jobs(app, workflow), None
    else:
        jobs, statuses = _instance_jobs(args, app, workflow, instance)
    drawn = graphs.workflow_graph(jobs, statuses=statuses)
    try:
        output = graphs.render(drawn, fmt)
    except graphs.GraphRenderError as exc:
        raise WorkflowCommandError(str(exc)) from None

    if args.output:
        path = pathlib.Path(args.output)
        try:
            path.write_bytes(output)
        except OSError as exc:
            raise WorkflowCommandError(f"cannot write {path}: {exc}") from None
        say(f"wrote the graph of {plural(len(jobs), 'job')} to {path} ({fmt})")
    elif fmt == "dot":
        sys.stdout.write(output.decode())
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(output)
    return 0


def _format_of(output: str | None) -> str:
    suffix = pathlib.Path(output).suffix.lstrip(".").lower() if output else ""
    if suffix == "gv":
        return "dot"
    return suffix if suffix in graphs.FORMATS else "dot"


def _definition_jobs(app: Application, workflow: str) -> dict[str, Job]:
    parser = _make_parser(app)
    require_defined(app, parser, workflow)
    tokens = definition_tokens(parser, workflow, _DRAFT_INSTANCE)
    jobs = {}
    for token in tokens:
        parsed = names.parse_job_name(token.name)
        if parsed is not None:
            jobs[parsed.job] = Job.from_json(token.data)
    return jobs


def _instance_jobs(
    args: argparse.Namespace, app: Application, workflow: str, instance: str
) -> tuple[dict[str, Job], dict[str, str]]:
    with app.master_client(interactive=True) as client:
        ctx = Context(args=args, app=app, client=client)
        summary = read_instance(client, workflow, instance, ctx.now)
        if summary is None:
            archived = archived_instance(ctx)
            summary = archived[1] if archived is not None else None
    if summary is None:
        raise WorkflowCommandError(
            f"no instance {instance} of workflow {workflow}, active or archived; "
            f"`pinball workflow status -w {workflow}` lists its instances"
        )
    jobs = {job.name: job.job for job in summary.jobs}
    statuses = {job.name: str(job.status) for job in summary.jobs}
    return jobs, statuses


# -- Shared ----------------------------------------------------------------------


def _make_parser(app: Application) -> Parser:
    config = app.config
    return app.plugins.make_parser(config.parser, config.parser_params)


def _refuse_foreign(
    args: argparse.Namespace, command: str, allowed: tuple[str, ...]
) -> None:
    """Refuse options of ``pinball workflow`` given before the command that
    it does not take, rather than ignore them."""
    # Imported here: the package imports this module while it is built.
    from pinball_core.commands.workflow import _FLAG

    given = [
        flag
        for key, flag in _FLAG.items()
        if key not in (*allowed, "force")
        and getattr(args, key, None) not in (None, False)
    ]
    if given:
        raise WorkflowCommandError(f"{command} does not take {', '.join(given)}")
