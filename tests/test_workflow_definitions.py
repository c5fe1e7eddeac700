"""``pinball workflow validate`` and ``graph``, and the graph they draw.

The commands run in-process through :func:`pinball_core.cli.main` with a
config file, as a user runs them; ``graph -i`` asks a real master over HTTP.
"""

import json
import pathlib
import re
import shutil
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml

from pinball_core import cli
from pinball_core.local import MasterThread
from pinball_core.token import Token
from pinball_core.workflow import graph as graphs
from pinball_core.workflow import names
from pinball_core.workflow.model import ExecutionRecord, Job

GOOD = """\
workflows:
  daily:
    jobs:
      extract: {command: "echo PINBALL:EVENT_ATTR:rows=10"}
      transform: {command: "echo %(rows)s", depends_on: [extract]}
      ready: {condition: "test -f /tmp/x"}
      load: {command: "true", depends_on: [transform, ready]}
"""

BAD = """\
workflows:
  daily:
    jobs:
      a: {command: "true", depends_on: [b, missing]}
      b: {command: "true", depends_on: [a], max_attempts: 0}
      c: {comand: "true"}
"""


@pytest.fixture(autouse=True)
def clean_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINBALL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PINBALL_MASTER_SECRET", raising=False)
    monkeypatch.delenv("PINBALL_DISABLE_PLUGINS", raising=False)


def config(tmp_path: pathlib.Path, workflows: str, **extra: Any) -> str:
    (tmp_path / "flows.yaml").write_text(workflows)
    path = tmp_path / "pinball.yaml"
    values = {
        "home": str(tmp_path / "home"),
        "store": f"sqlite:///{tmp_path / 'pinball.db'}",
        "parser": "yaml",
        "parser_params": {"path": "flows.yaml"},
        **extra,
    }
    path.write_text(yaml.safe_dump(values))
    return str(path)


def pinball(*argv: str) -> int:
    return cli.main(list(argv))


# One node or edge statement of the DOT that workflow_graph writes. (pydot's
# own DOT reader is not used: it warns about deprecated pyparsing calls.)
_STATEMENT = re.compile(
    r'^"(?P<src>[^"]+)"(?: -> "(?P<dst>[^"]+)")? \[(?P<attrs>.*)\];$'
)
_ATTRIBUTE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)')

Attributes = dict[str, dict[str, str]]


def read_dot(text: str) -> tuple[Attributes, Attributes]:
    """The nodes and edges (by id) of DOT text, with their attributes."""
    nodes, edges = {}, {}
    for line in text.splitlines():
        match = _STATEMENT.match(line.strip())
        if match is None:
            continue
        attrs = {k: v.strip('"') for k, v in _ATTRIBUTE.findall(match["attrs"])}
        if match["dst"] is None:
            nodes[match["src"]] = attrs
        else:
            edges[attrs["id"]] = attrs
    return nodes, edges


# -- validate ----------------------------------------------------------------------


def test_validate_lists_valid_workflows(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, GOOD), "workflow", "validate")

    assert code == 0
    assert capsys.readouterr().out == "1 workflow valid: daily\n"


def test_validate_lists_every_problem_and_fails(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, BAD), "workflow", "validate")

    captured = capsys.readouterr()
    assert code == 1
    lines = captured.out.splitlines()
    assert len(lines) == 5, lines
    assert all(line.startswith(str(tmp_path / "flows.yaml") + ":") for line in lines)
    joined = "\n".join(lines)
    for expected in ("'missing'", "max_attempts", "did you mean 'command'?", "cycle"):
        assert expected in joined
    assert "5 problems" in captured.err
    # validate never starts anything, so it does not say it started nothing.
    assert "started" not in captured.err


def test_validate_as_json(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, BAD), "workflow", "validate", "--json")

    body = json.loads(capsys.readouterr().out)
    assert code == 1
    assert body["ok"] is False and len(body["problems"]) == 5


def test_validate_names_the_valid_workflows_beside_the_problems(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weekly = GOOD.replace("workflows:\n  daily:", "  weekly:")
    path = config(tmp_path, BAD + weekly)

    assert pinball("-c", path, "workflow", "validate", "--json") == 1

    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is False
    assert body["workflows"] == ["weekly"]
    assert len(body["problems"]) == 5

    assert pinball("-c", path, "workflow", "validate") == 1

    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5
    assert captured.err.splitlines() == [
        "5 problems in the definitions read by parser 'yaml'",
        "1 workflow valid: weekly",
    ]


def test_validate_of_a_file_that_does_not_parse_names_the_others(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, GOOD, parser_params={"path": "flows"})
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "good.yaml").write_text(GOOD)
    (tmp_path / "flows" / "broken.yaml").write_text(
        GOOD.replace("daily", "weekly") + "oops: [\n"
    )

    assert pinball("-c", path, "workflow", "validate", "--json") == 1

    body = json.loads(capsys.readouterr().out)
    assert body["workflows"] == ["daily"]
    [problem] = body["problems"]
    assert problem.startswith(
        f"{tmp_path / 'flows' / 'broken.yaml'}:9:1: not valid YAML"
    )


def test_validate_through_the_original_parser_name(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flows.py").write_text(
        "from pinball_parser_python import Workflow\n"
        "w = Workflow('w')\n"
        "w.shell('a', 'true', depends_on=['nope'])\n"
    )
    path = config(
        tmp_path,
        GOOD,
        parser="pinball_ext.workflows.parser.PyWorkflowParser",
        parser_params={"path": "flows.py"},
    )

    code = pinball("-c", path, "workflow", "validate")

    out = capsys.readouterr().out
    assert code == 1
    assert f"{tmp_path / 'flows.py'}:3: workflow w, job a: depends on 'nope'" in out


def test_validate_reports_a_parser_that_cannot_build_tokens(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A third party's parser whose validate() misses what building finds.
    (tmp_path / "shallow_parser.py").write_text(
        "from pinball_core import hookimpl\n"
        "class Parser:\n"
        "    def workflow_names(self): return ['w']\n"
        "    def instance_tokens(self, workflow, instance):\n"
        "        raise ValueError('job x has no command')\n"
        "    def schedule_token(self, workflow): return None\n"
        "    def validate(self): return []\n"
        "class Plugin:\n"
        "    @hookimpl\n"
        "    def pinball_make_parser(self, params): return Parser()\n"
    )
    path = config(tmp_path, GOOD, parser="shallow_parser:Plugin")

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp_path))
        code = pinball("-c", path, "workflow", "validate")

    assert code == 1
    assert "workflow w: ValueError: job x has no command" in capsys.readouterr().out


def test_validate_lists_the_problems_a_parser_finds_only_when_building(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "late_parser.py").write_text(
        "from pinball_core import hookimpl\n"
        "from pinball_core.errors import DefinitionError\n"
        "class Parser:\n"
        "    def workflow_names(self): return ['w']\n"
        "    def instance_tokens(self, workflow, instance):\n"
        "        raise DefinitionError('w', ['w.cfg:3: job x has no command'])\n"
        "    def schedule_token(self, workflow): return None\n"
        "    def validate(self): return []\n"
        "class Plugin:\n"
        "    @hookimpl\n"
        "    def pinball_make_parser(self, params): return Parser()\n"
    )
    path = config(tmp_path, GOOD, parser="late_parser:Plugin")

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp_path))
        code = pinball("-c", path, "workflow", "validate")

    assert code == 1
    assert capsys.readouterr().out == "w.cfg:3: job x has no command\n"


def test_graph_of_a_workflow_in_a_file_that_does_not_parse(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, 'workflows:\n  daily:\n    jobs: {a: {command: "x}}\n')

    code = pinball("-c", path, "workflow", "graph", "-w", "daily")

    assert code == 2
    err = capsys.readouterr().err
    assert "workflow daily is not defined by the parser 'yaml'" in err
    assert f"{tmp_path / 'flows.yaml'}:3:25: not valid YAML: while scanning" in err


def test_validate_refuses_options_it_does_not_take(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, GOOD), "workflow", "-j", "a", "validate")

    assert code == 2
    assert "validate does not take -j" in capsys.readouterr().err


# -- graph ---------------------------------------------------------------------------


def test_graph_prints_dot(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, GOOD), "workflow", "graph", "-w", "daily")

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"digraph {graphs.GRAPH_ID} {{")
    nodes, edges = read_dot(out)
    assert set(edges) == {"extract/transform", "transform/load", "ready/load"}
    assert set(nodes) == {"extract", "transform", "ready", "load"}
    assert nodes["ready"]["shape"] == "octagon" and nodes["load"]["shape"] == "ellipse"


def test_graph_options_in_the_original_order(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, GOOD), "workflow", "-w", "daily", "graph")

    assert code == 0
    assert "digraph workflow_graph" in capsys.readouterr().out


def test_graph_writes_svg_with_graphviz(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "daily.svg"

    code = pinball(
        "-c", config(tmp_path, GOOD), "workflow", "graph", "-w", "daily", "-o", str(out)
    )

    assert code == 0, capsys.readouterr().err
    svg = ET.parse(out).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    ids = {element.get("id") for element in svg.iter()}
    assert {"extract", "transform", "load", "ready", "extract/transform"} <= ids
    assert f"wrote the graph of 4 jobs to {out} (svg)" in capsys.readouterr().out


def test_graph_without_graphviz_names_the_install_command(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = config(tmp_path, GOOD)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    code = pinball("-c", path, "workflow", "graph", "-w", "daily", "--format", "svg")

    assert code == 2
    assert "apt-get install graphviz" in capsys.readouterr().err


def test_graph_of_an_unknown_workflow(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, GOOD), "workflow", "graph", "-w", "dayly")

    assert code == 2
    err = capsys.readouterr().err
    assert "workflow dayly is not defined by the parser 'yaml'" in err
    assert "it knows: daily; did you mean 'daily'?" in err


def test_graph_of_a_workflow_with_problems(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, BAD), "workflow", "graph", "-w", "daily")

    assert code == 2
    err = capsys.readouterr().err
    assert "pinball: error: workflow daily has 5 problems in its definition" in err
    assert "cannot start" not in err


def test_graph_needs_a_workflow(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pinball("-c", config(tmp_path, GOOD), "workflow", "graph")

    assert code == 2
    assert "graph needs -w WORKFLOW" in capsys.readouterr().err


def test_graph_of_an_instance_is_coloured_by_status(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    master: MasterThread,
) -> None:
    path = config(tmp_path, GOOD, master_host="127.0.0.1", master_port=master.port)
    client = master.client()
    finished = Job(
        name="extract",
        inputs=[names.WORKFLOW_START],
        outputs=["transform"],
        history=[ExecutionRecord("5", 1.0, 2.0, exit_code=0)],
    )
    client.modify(
        [
            Token(
                names.job_name("daily", "5", names.WAITING, "extract"),
                data=finished.to_json(),
            ),
            Token(
                names.job_name("daily", "5", names.RUNNABLE, "transform"),
                data=Job(name="transform", inputs=["extract"]).to_json(),
            ),
        ]
    )

    code = pinball("-c", path, "workflow", "graph", "-w", "daily", "-i", "5")

    out = capsys.readouterr().out
    assert code == 0
    nodes, _ = read_dot(out)
    fills = {name: attrs["fillcolor"] for name, attrs in nodes.items()}
    assert fills == {
        "extract": graphs.STATUS_COLORS["SUCCESS"],
        "transform": graphs.STATUS_COLORS["QUEUED"],
    }


def test_graph_of_an_unknown_instance(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], master: MasterThread
) -> None:
    path = config(tmp_path, GOOD, master_host="127.0.0.1", master_port=master.port)

    code = pinball("-c", path, "workflow", "graph", "-w", "daily", "-i", "404")

    assert code == 2
    assert "no instance 404 of workflow daily" in capsys.readouterr().err


# -- The graph itself ------------------------------------------------------------------


def test_nodes_carry_status_colours_links_and_shapes() -> None:
    jobs = {
        "a": Job(name="a", inputs=[names.WORKFLOW_START], outputs=["b", "node"]),
        "b": Job(name="b", inputs=["a"], condition=True),
        # A DOT keyword as a job name stays a node.
        "node": Job(name="node", inputs=["a"]),
    }
    drawn = graphs.workflow_graph(
        jobs,
        statuses={"a": "FAILURE", "b": "CONDITION_PENDING", "node": "mystery"},
        url_for=lambda job: f"/job/?job={job}",
    )

    nodes, edges = read_dot(graphs.to_dot(drawn))
    assert set(nodes) == {"a", "b", "node"}
    assert nodes["a"]["fillcolor"] == "#ff3333"
    assert nodes["b"]["fillcolor"] == "#ffcc00"
    assert nodes["b"]["shape"] == "octagon"
    # An unknown status is drawn black, as the original drew UNKNOWN.
    assert nodes["node"]["fillcolor"] == "#000000"
    assert nodes["a"]["URL"] == "/job/?job=a"
    assert set(edges) == {"a/b", "a/node"}


def test_the_original_palette() -> None:
    assert {
        status: graphs.STATUS_COLORS[status]
        for status in ("NEVER_RUN", "RUNNING", "SUCCESS", "FAILURE", "DISABLED")
    } == {
        "NEVER_RUN": "#dddddd",
        "RUNNING": "#66ccff",
        "SUCCESS": "#89e894",
        "FAILURE": "#ff3333",
        "DISABLED": "#ffffff",
    }


def test_render_refuses_an_unknown_format() -> None:
    with pytest.raises(graphs.GraphRenderError, match="use one of dot, svg"):
        graphs.render(graphs.workflow_graph({}), "gif")


def test_graphviz_is_installed() -> None:
    # Rendering is tested for real above; this says plainly what is missing.
    assert shutil.which("dot"), f"Graphviz is needed: {graphs.GRAPHVIZ_INSTALL}"
