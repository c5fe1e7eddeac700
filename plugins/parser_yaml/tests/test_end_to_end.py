"""A YAML workflow run by a real master and worker to SUCCESS."""

import pathlib
import threading
import time
from collections.abc import Iterator

import pytest
from pinball_core.executors.local import LocalExecutor
from pinball_core.local import MasterThread
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.testing.hooks import HookRecorder
from pinball_core.workflow import names
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import Worker, WorkerSettings

from pinball_parser_yaml import YamlParser


@pytest.fixture
def master(tmp_path: pathlib.Path) -> Iterator[MasterThread]:
    store = SqliteStore(f"sqlite:///{tmp_path / 'pinball.db'}")
    store.initialize()
    with MasterThread(store, port=0) as running:
        yield running
    store.close()


def wait_finished(hooks: HookRecorder, workflow: str, instance: str) -> str:
    deadline = time.time() + 60
    while time.time() < deadline:
        for call in hooks.named("pinball_instance_finished"):
            if (call["workflow"], call["instance"]) == (workflow, instance):
                return str(call["status"])
        time.sleep(0.05)
    raise AssertionError(f"instance {workflow}/{instance} did not finish")


def test_yaml_workflow_runs_to_success(
    master: MasterThread, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "rows"
    flag = tmp_path / "ready.flag"
    flag.touch()
    definition = tmp_path / "daily.yaml"
    definition.write_text(
        f"""\
workflows:
  daily_report:
    jobs:
      extract: {{command: "echo PINBALL:EVENT_ATTR:rows=10"}}
      transform:
        command: "echo %(rows)s > {out}"
        depends_on: [extract]
        max_attempts: 3
        retry_delay_sec: 1
      wait_for_input: {{condition: "test -f {flag}", retry_delay_sec: 1}}
      load: {{command: "test -s {out}", depends_on: [transform, wait_for_input]}}
"""
    )
    parser = YamlParser(definition)
    assert parser.validate() == []

    client = master.client()
    client.modify(parser.instance_tokens("daily_report", "1"))
    hooks = HookRecorder()
    settings = WorkerSettings(
        lease_sec=30,
        poll_sec=0.5,
        logs_dir=str(tmp_path / "logs"),
        archive_delay_sec=3600,
        abort_grace_sec=1,
        tick_sec=0.1,
    )
    worker = Worker(client, LocalExecutor(), settings, hook=hooks)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_finished(hooks, "daily_report", "1") == "SUCCESS"
    finally:
        stop.set()
        worker.abort_running.set()
        thread.join(timeout=30)

    assert out.read_text() == "10\n"
    tokens = client.query(names.job_prefix("daily_report", "1"))
    finished = {t.name.rsplit("/", 1)[1]: Job.from_json(t.data) for t in tokens}
    assert set(finished) == {"extract", "transform", "wait_for_input", "load"}
    for job in finished.values():
        assert job.last is not None and job.last.exit_code == 0


def test_python_job_imports_a_module_kept_beside_its_workflow_file(
    master: MasterThread, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's own environment does not know the folder: only the job's
    # python_path can make the module importable.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    folder = tmp_path / "flows"
    folder.mkdir()
    out = tmp_path / "called"
    (folder / "beside_jobs.py").write_text(
        "import pathlib\n"
        "def run():\n"
        f"    pathlib.Path({str(out)!r}).write_text('called')\n"
    )
    definition = folder / "flows.yaml"
    definition.write_text(
        "workflows:\n  beside:\n    jobs:\n      call: {python: 'beside_jobs:run'}\n"
    )
    parser = YamlParser(definition)
    assert parser.validate() == []

    client = master.client()
    client.modify(parser.instance_tokens("beside", "1"))
    hooks = HookRecorder()
    settings = WorkerSettings(
        lease_sec=30, poll_sec=0.5, logs_dir=str(tmp_path / "logs"), tick_sec=0.1
    )
    worker = Worker(client, LocalExecutor(), settings, hook=hooks)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_finished(hooks, "beside", "1") == "SUCCESS"
    finally:
        stop.set()
        thread.join(timeout=30)

    assert out.read_text() == "called"
