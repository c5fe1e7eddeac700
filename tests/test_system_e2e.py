"""The whole system as an operator runs it: every service its own process.

Master, scheduler, two worker processes and the UI start from one temporary
config, as the original's four start commands did. The workflows are
imported with ``workflow reschedule``; a scheduled workflow runs on its own
and another is started by hand, and both are seen to succeed through
``workflow status --json`` and through the UI's JSON API.
"""

import json
import pathlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pinball_processes import ServiceProcess, free_port

pytest.importorskip(
    "pinball_ui_tornado", reason="the UI plugin (plugins/ui_tornado) is not installed"
)

WORKFLOWS = """\
workflows:
  every_minute:
    schedule: {recurrence: 1M, start: "2026-01-01T00:00:00", timezone: UTC}
    jobs:
      tick: {command: "echo PINBALL:EVENT_ATTR:at=$(date +%s)"}
      tock: {command: "echo ticked at %(at)s", depends_on: [tick]}
  by_hand:
    jobs:
      first: {command: "echo one"}
      second: {command: "echo two", depends_on: [first]}
      third: {command: "echo three", depends_on: [first]}
"""


@pytest.fixture
def system(tmp_path: pathlib.Path) -> Iterator[dict[str, Any]]:
    (tmp_path / "workflows.yaml").write_text(WORKFLOWS)
    ui_port = free_port()
    config = tmp_path / "pinball.yaml"
    config.write_text(
        f"home: {tmp_path / 'home'}\n"
        f"master_port: {free_port()}\n"
        "master_secret: e2e-secret\n"
        f"ui_port: {ui_port}\n"
        "parser: yaml\n"
        "parser_params: {path: workflows.yaml}\n"
        "workers: 2\n"
        "scheduler_poll_sec: 1\n"
        "max_backoff_client_reconnect_sec: 1\n"
    )
    logs = tmp_path / "service-logs"
    logs.mkdir()
    services = [
        ServiceProcess(config, "-m master", logs, "master"),
        ServiceProcess(config, "-m scheduler", logs, "scheduler"),
        ServiceProcess(config, "-m workers", logs, "workers_1"),
        ServiceProcess(config, "-m workers", logs, "workers_2"),
        ServiceProcess(config, "-m ui", logs, "ui"),
    ]
    for service in services:
        service.start()
    yield {"config": config, "ui": f"http://127.0.0.1:{ui_port}", "services": services}
    for service in reversed(services):
        service.stop()


def _pinball(config: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _eventually(what: str, check: Any, system: dict[str, Any], timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            outputs = "\n".join(s.output()[-2000:] for s in system["services"])
            pytest.fail(f"{what} did not happen in {timeout} s:\n{outputs}")
        time.sleep(0.5)


def _succeeded_by_cli(config: pathlib.Path, workflow: str) -> dict[str, Any] | None:
    shown = _pinball(config, "workflow", "status", "-w", workflow, "--json")
    if shown.returncode != 0:
        return None
    instances = json.loads(shown.stdout)["instances"]
    return next((i for i in instances if i["status"] == "SUCCESS"), None)


def _ui_json(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as answer:
        return json.load(answer)


def _succeeded_in_ui(base: str, workflow: str) -> dict[str, Any] | None:
    try:
        listed = _ui_json(base, f"/api/v1/workflows/{workflow}/instances")
    except OSError:
        return None
    return next((i for i in listed["items"] if i["status"] == "SUCCESS"), None)


def test_scheduled_and_manual_workflows_succeed_across_processes(
    system: dict[str, Any],
) -> None:
    config = system["config"]

    imported = _eventually(
        "reschedule",
        lambda: _pinball(config, "workflow", "reschedule", "-f").returncode == 0,
        system,
    )
    assert imported
    started = _pinball(config, "workflow", "start", "-w", "by_hand", "-f")
    assert started.returncode == 0, started.stderr

    scheduled = _eventually(
        "a scheduled run", lambda: _succeeded_by_cli(config, "every_minute"), system
    )
    manual = _eventually(
        "the manual run", lambda: _succeeded_by_cli(config, "by_hand"), system
    )

    for workflow, instance in (("every_minute", scheduled), ("by_hand", manual)):
        seen = _eventually(
            f"{workflow} in the UI",
            lambda w=workflow: _succeeded_in_ui(system["ui"], w),
            system,
        )
        assert seen["instance"] == instance["instance"]
        jobs = _ui_json(
            system["ui"],
            f"/api/v1/workflows/{workflow}/instances/{seen['instance']}/jobs",
        )
        assert {job["status"] for job in jobs["items"]} == {"SUCCESS"}

    # Both worker processes took part in the work.
    workers = [s for s in system["services"] if s.name.startswith("workers")]
    assert all("started (generation 1)" in w.output() for w in workers)
