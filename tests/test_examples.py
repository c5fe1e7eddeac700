"""The workflows in ``examples/`` run to SUCCESS on a real master and workers.

Each format's config is read as a user's would be (the YAML files, the
Python module, the original-style module through the original's parser
name); every workflow in it is started at once and run by worker threads
with the local executor, so jobs are real processes. Python jobs find
``pinball_examples`` through the folders their parser records on each job
(no ``PYTHONPATH``), and write under ``PINBALL_EXAMPLES_OUT``.
"""

import json
import pathlib
import threading
import time
from collections.abc import Iterator

import pytest

from pinball_core.app import Application
from pinball_core.client import MasterClient
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.testing.hooks import HookRecorder
from pinball_core.workflow import names
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import Worker, WorkerSettings

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

#: Worker threads: enough that the condition example's waiting does not
#: hold up the others.
WORKERS = 3


@pytest.fixture(autouse=True)
def example_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINBALL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PINBALL_EXAMPLES_OUT", str(tmp_path / "out"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("PINBALL_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def hooks(master: MasterThread, tmp_path: pathlib.Path) -> Iterator[HookRecorder]:
    """Worker threads on ``master``; what they report goes to the recorder."""
    recorder = HookRecorder()
    settings = WorkerSettings(
        lease_sec=30,
        poll_sec=0.2,
        logs_dir=str(tmp_path / "logs"),
        archive_delay_sec=3600,
        abort_grace_sec=1,
        tick_sec=0.1,
    )
    stop = threading.Event()
    workers = [
        Worker(master.client(), LocalExecutor(), settings, hook=recorder)
        for _ in range(WORKERS)
    ]
    threads = [
        threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers
    ]
    for thread in threads:
        thread.start()
    try:
        yield recorder
    finally:
        stop.set()
        for worker in workers:
            worker.abort_running.set()
        for thread in threads:
            thread.join(timeout=30)


def start_all(config_file: pathlib.Path, client: MasterClient) -> list[str]:
    """Start one instance of every workflow the config's parser defines."""
    app = Application(config_file)
    config = app.config
    parser = app.plugins.make_parser(config.parser, config.parser_params)
    assert parser.validate() == []
    workflows = parser.workflow_names()
    for workflow in workflows:
        client.modify(parser.instance_tokens(workflow, "1"))
    return workflows


def wait_all(hooks: HookRecorder, workflows: list[str]) -> dict[str, str]:
    """Each workflow's instance status once every one has finished."""
    deadline = time.time() + 240
    while time.time() < deadline:
        ended = {
            call["workflow"]: str(call["status"])
            for call in hooks.named("pinball_instance_finished")
        }
        if set(workflows) <= set(ended):
            return ended
        time.sleep(0.1)
    raise AssertionError(f"not finished: {set(workflows) - set(ended)}")


def jobs_of(client: MasterClient, workflow: str) -> dict[str, Job]:
    tokens = client.query(names.job_prefix(workflow, "1"))
    return {t.name.rsplit("/", 1)[1]: Job.from_json(t.data) for t in tokens}


@pytest.mark.parametrize("config_name", ["pinball-yaml.yaml", "pinball-python.yaml"])
def test_every_example_runs_to_success(
    config_name: str,
    master: MasterThread,
    hooks: HookRecorder,
    tmp_path: pathlib.Path,
) -> None:
    client = master.client()
    workflows = start_all(EXAMPLES / config_name, client)

    assert set(workflows) == {
        "pass_params_between_jobs",
        "sales_pipeline",
        "wait_for_file",
        "flaky_service",
        "nightly_report",
        "hourly_heartbeat",
    }
    assert wait_all(hooks, workflows) == dict.fromkeys(workflows, "SUCCESS")

    # The child got both parents' values.
    child = jobs_of(client, "pass_params_between_jobs")["child"]
    assert child.history[-1].info.startswith(
        'echo "got a_cmd_value and a_python_value"'
    )

    # The pipeline's result is the revenue of the valid rows of the data file.
    out = tmp_path / "out"
    revenue = json.loads((out / "sales_pipeline" / "1" / "revenue.json").read_text())
    assert revenue == {
        "east": "145.95",
        "north": "104.70",
        "south": "147.40",
        "west": "147.80",
    }
    summary = jobs_of(client, "sales_pipeline")["summary"]
    assert summary.history[-1].info == "echo kept 16 rows, dropped 2"

    # The flaky job failed twice, then succeeded.
    flaky = jobs_of(client, "flaky_service")["call_service"]
    assert [record.exit_code for record in flaky.history] == [1, 1, 0]

    # The condition held only once the file was there, after the producer.
    run = jobs_of(client, "wait_for_file")
    assert run["file_is_there"].history[-1].end_time is not None
    assert run["produce"].history[-1].end_time <= run["consume"].history[0].start_time
    assert (out / "wait_for_file" / "1" / "ready.flag").read_text() == "data is ready\n"


def test_original_style_module_runs_to_success(
    master: MasterThread, hooks: HookRecorder
) -> None:
    client = master.client()
    workflows = start_all(EXAMPLES / "legacy" / "pinball.yaml", client)

    assert workflows == ["legacy_example"]
    assert wait_all(hooks, workflows) == {"legacy_example": "SUCCESS"}
    jobs = jobs_of(client, "legacy_example")
    assert set(jobs) == {"parent_job", "child_job", "greet", "final"}
    assert jobs["greet"].history[-1].info == "echo hello, the answer is 42"
    assert jobs["final"].inputs == ["child_job", "greet"]
