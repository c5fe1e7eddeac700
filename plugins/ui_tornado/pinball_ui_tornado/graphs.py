"""Workflow graphs as SVG, laid out by Graphviz and kept while they are current.

The graph itself comes from :func:`pinball_core.workflow.graph.workflow_graph`,
the one the command line draws, so a workflow looks the same everywhere.
Laying out a large workflow takes Graphviz a while, so each SVG is kept by
what it shows (jobs, edges, statuses) and made again only when that changes;
the pages recolour the nodes themselves as statuses change, without asking
for a new layout.
"""

import collections
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Final

from pinball_core.workflow.graph import (
    GraphRenderError,
    graphviz_available,
    render,
    workflow_graph,
)
from pinball_core.workflow.model import Job

log = logging.getLogger(__name__)

#: How many rendered graphs are kept.
CACHE_SIZE: Final = 64

#: From this many jobs on, Graphviz is told to trade layout polish for time.
LARGE_GRAPH: Final = 150

#: Graphviz settings for large graphs: straight edges instead of splines and
#: bounded crossing minimisation and ranking passes. A dense 500-job graph
#: that takes dot minutes with its defaults lays out in seconds so.
LARGE_GRAPH_SETTINGS: Final = {
    "splines": "line",
    "mclimit": "0.3",
    "nslimit": "2",
    "nslimit1": "2",
    "searchsize": "20",
}

__all__ = ["GraphRenderError", "GraphCache", "graphviz_available"]


class GraphCache:
    """Renders graphs to SVG, keeping the most recent :data:`CACHE_SIZE`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: collections.OrderedDict[str, bytes] = collections.OrderedDict()

    def svg(
        self,
        jobs: Mapping[str, Job],
        statuses: Mapping[str, str],
        url_for: Callable[[str], str] | None = None,
    ) -> bytes:
        """The SVG of ``jobs`` coloured by ``statuses``.

        :raises GraphRenderError: if Graphviz is missing or fails.
        """
        key = _key(jobs, statuses, url_for)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        graph = workflow_graph(jobs, statuses=statuses, url_for=url_for)
        if len(jobs) >= LARGE_GRAPH:
            for key, value in LARGE_GRAPH_SETTINGS.items():
                graph.set(key, value)
        svg = render(graph, "svg")
        with self._lock:
            self._kept[key] = svg
            while len(self._kept) > CACHE_SIZE:
                self._kept.popitem(last=False)
        log.debug("laid out a graph of %d jobs", len(jobs))
        return svg


def _key(
    jobs: Mapping[str, Job],
    statuses: Mapping[str, str],
    url_for: Callable[[str], str] | None,
) -> str:
    digest = hashlib.sha256()
    for name in sorted(jobs):
        job = jobs[name]
        link = url_for(name) if url_for is not None else ""
        line = (
            f"{name}|{int(job.condition)}|{','.join(sorted(job.outputs))}|"
            f"{','.join(sorted(job.inputs))}|{statuses.get(name, '')}|{link}\n"
        )
        digest.update(line.encode())
    return digest.hexdigest()
