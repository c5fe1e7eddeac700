"""The worked third-party plugin in tests/example_plugin, installed for real.

It is built and installed as its own distribution into a temporary folder,
found through its entry point by ``pinball plugins``, and records the events
of a workflow that ``pinball run`` runs.
"""

import json
import pathlib
import subprocess
import sys

import pytest
from pinball_processes import RunProcess, free_port, wait_for_success

EXAMPLE = pathlib.Path(__file__).parent / "example_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which the example plugin is installed."""
    target = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    # pip leaves build/ and the egg-info in the source folder; keep it clean.
    for leftover in ("build", "pinball_file_notifier.egg-info"):
        subprocess.run(["rm", "-rf", str(EXAMPLE / leftover)], check=True)
    return {"PYTHONPATH": str(target)}


def _config(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "workflows.yaml").write_text(
        "workflows:\n  fine:\n    jobs:\n      ok: {command: 'true'}\n"
    )
    config = tmp_path / "pinball.yaml"
    config.write_text(
        f"home: {tmp_path / 'home'}\n"
        f"master_port: {free_port()}\n"
        "parser: yaml\n"
        "parser_params: {path: workflows.yaml}\n"
        "workers: 2\n"
        "plugins: {file: {path: events.jsonl}}\n"
    )
    return config


def test_pinball_finds_the_plugin_through_its_entry_point(
    installed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", installed["PYTHONPATH"])

    listed = subprocess.run(
        [sys.executable, "-m", "pinball_core", "plugins", "--json"],
        capture_output=True,
        text=True,
    )

    assert listed.returncode == 0, listed.stderr
    plugins = {(p["kind"], p["name"]): p for p in json.loads(listed.stdout)}
    found = plugins[("notifier", "file")]
    assert found["distribution"] == "pinball-file-notifier"
    assert found["version"] == "1.0.0"


def test_the_plugin_records_a_workflows_events(
    installed: dict[str, str],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", installed["PYTHONPATH"])
    config = _config(tmp_path)
    run = RunProcess(config, "--start", "fine", "--without", "ui")
    try:
        run.wait_for("started workflow fine")
        wait_for_success(run, "fine")
        events = tmp_path / "events.jsonl"
        run.stop()
    finally:
        if run.process.poll() is None:
            run.process.kill()

    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [(event["event"], event.get("job")) for event in recorded]
    assert ("job_started", "ok") in kinds
    assert ("job_succeeded", "ok") in kinds
    finished = [e for e in recorded if e["event"] == "instance_finished"]
    assert [e["status"] for e in finished] == ["SUCCESS"]


def test_a_missing_option_is_named(
    installed: dict[str, str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", installed["PYTHONPATH"])
    config = tmp_path / "pinball.yaml"
    config.write_text(f"home: {tmp_path}\n")

    shown = subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), "workers"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert shown.returncode == 2
    assert "plugins.file.path" in shown.stderr
