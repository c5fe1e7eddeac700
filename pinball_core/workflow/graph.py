"""A workflow's jobs and their dependencies as a Graphviz graph.

The command line (``pinball workflow graph``) and the UI draw the same graph
from here, so a workflow looks the same wherever it is shown. The graph is
built with pydot and laid out as the original Pinball's UI laid it out: one
node per job (its id is the job's name), filled with the colour of the job's
status, conditions drawn as octagons, one edge per dependency with the id
``<upstream>/<downstream>`` and no arrow heads, top to bottom.

Rendering to SVG needs Graphviz's ``dot`` program, which is not a Python
package; :func:`render` says how to install it when it is missing.
"""

import logging
import shutil
from collections.abc import Callable, Mapping
from typing import Final

import pydot

from pinball_core.errors import PinballError
from pinball_core.workflow import names
from pinball_core.workflow.model import Job

log = logging.getLogger(__name__)

#: The id of the graph, which the UI's scripts look the SVG element up by.
GRAPH_ID: Final = "workflow_graph"

#: Fill colour by status name. The first eight are the original UI's; the
#: statuses it did not have get shades between their neighbours: QUEUED a
#: paler RUNNING blue, RETRY_PENDING a red-orange between FAILURE and
#: CONDITION_PENDING.
STATUS_COLORS: Final[Mapping[str, str]] = {
    "UNKNOWN": "#000000",
    "NEVER_RUN": "#dddddd",
    "RUNNING": "#66ccff",
    "SUCCESS": "#89e894",
    "FAILURE": "#ff3333",
    "DISABLED": "#ffffff",
    "ABORTED": "#ff3333",
    "CONDITION_PENDING": "#ffcc00",
    "QUEUED": "#b3e6ff",
    "RETRY_PENDING": "#ff9966",
}

#: Status of jobs that ``statuses`` does not mention, as in a definition
#: that has no instance yet.
DEFAULT_STATUS: Final = "NEVER_RUN"

#: What a Debian or Ubuntu user runs to get ``dot``.
GRAPHVIZ_INSTALL: Final = "apt-get install graphviz"

#: What :func:`render` makes.
FORMATS: Final = ("dot", "svg", "png", "pdf")


class GraphRenderError(PinballError):
    """A graph could not be rendered: Graphviz is missing or failed."""


def workflow_graph(
    jobs: Mapping[str, Job],
    *,
    statuses: Mapping[str, str] | None = None,
    url_for: Callable[[str], str] | None = None,
) -> pydot.Dot:
    """Build the graph of ``jobs`` (job name to its definition or token data).

    ``statuses`` maps job names to status names (a :class:`Status` member or
    its string); jobs it leaves out are drawn as never run, unknown statuses
    in black. ``url_for`` gives each node a link (the UI's job page).

    Edges come from each job's ``outputs`` and, for definitions built by hand,
    its ``inputs``, so either end of an edge is enough; an edge to a job that
    is not in ``jobs`` is left out rather than drawn as a stray node.
    """
    statuses = statuses or {}
    graph = pydot.Dot(
        GRAPH_ID,
        graph_type="digraph",
        id=GRAPH_ID,
        rankdir="TB",
        # A stable layout: the same workflow always draws the same way.
        ordering="out",
    )
    graph.set_node_defaults(style="filled", fontname="Helvetica", fontsize="12")
    graph.set_edge_defaults(arrowhead="none")

    for name in sorted(jobs):
        job = jobs[name]
        status = str(statuses.get(name, DEFAULT_STATUS))
        attributes = {
            "id": name,
            "label": name,
            "shape": "octagon" if job.condition else "ellipse",
            "fillcolor": STATUS_COLORS.get(status, STATUS_COLORS["UNKNOWN"]),
            "tooltip": f"{name}: {status}",
        }
        if status == "UNKNOWN":
            # A black node needs a light label to be readable.
            attributes["fontcolor"] = "#ffffff"
        if url_for is not None:
            attributes["URL"] = url_for(name)
        node = pydot.Node(_quote(name))
        for key, value in attributes.items():
            node.set(key, value)
        graph.add_node(node)

    for upstream, downstream in _edges(jobs):
        graph.add_edge(
            pydot.Edge(
                _quote(upstream),
                _quote(downstream),
                id=f"{upstream}/{downstream}",
            )
        )
    return graph


def _edges(jobs: Mapping[str, Job]) -> list[tuple[str, str]]:
    edges: set[tuple[str, str]] = set()
    for name, job in jobs.items():
        for downstream in job.outputs:
            if downstream in jobs:
                edges.add((name, downstream))
        for upstream in job.inputs:
            if upstream != names.WORKFLOW_START and upstream in jobs:
                edges.add((upstream, name))
    return sorted(edges)


def _quote(name: str) -> str:
    # Quoted always, so a job named like a DOT keyword (node, edge, graph)
    # stays a node id.
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: pydot.Dot) -> str:
    """The graph as DOT source text."""
    return str(graph.to_string())


def graphviz_available() -> bool:
    """Whether Graphviz's ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def render(graph: pydot.Dot, fmt: str = "svg") -> bytes:
    """Lay the graph out with Graphviz and return it in ``fmt`` (svg, png, pdf).

    ``dot`` gives the DOT source without running Graphviz. Raises
    :class:`GraphRenderError` naming the install command when Graphviz is
    missing, and Graphviz's own message when it fails.
    """
    if fmt not in FORMATS:
        raise GraphRenderError(
            f"cannot render a graph as {fmt!r}: use one of {', '.join(FORMATS)}"
        )
    if fmt == "dot":
        return to_dot(graph).encode()
    if not graphviz_available():
        raise GraphRenderError(
            f"rendering a graph as {fmt} needs Graphviz's 'dot' program, which "
            f"is not on the PATH: install it with `{GRAPHVIZ_INSTALL}` (or your "
            "system's graphviz package), or ask for --format dot"
        )
    try:
        output = graph.create(prog="dot", format=fmt)
    except (OSError, AssertionError) as exc:
        # pydot reports a failed Graphviz run with an AssertionError that
        # carries dot's stderr.
        raise GraphRenderError(f"Graphviz could not render the graph: {exc}") from exc
    log.debug("rendered a graph of %d nodes as %s", len(graph.get_nodes()), fmt)
    return output if isinstance(output, bytes) else str(output).encode()
