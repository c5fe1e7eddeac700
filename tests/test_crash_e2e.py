"""Crash safety of the whole system: services SIGKILLed while 500 jobs run.

The master and two worker processes run as separate ``pinball`` processes on
one SQLite store. While five workflows of 100 jobs each run, one service at a
time is killed with SIGKILL at a random moment and started again, as a
process supervisor would. At the end every instance must have succeeded,
every job's last execution must have succeeded, and no job may have run on
two workers at once (each execution writes its start and end to a file).
"""

import json
import pathlib
import random
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from pinball_processes import ServiceProcess, free_port

WORKFLOWS = 5
LAYERS = 10
WIDTH = 10
KILLS = 5


def _workflows_yaml(runs: pathlib.Path) -> str:
    """Lattices of LAYERS x WIDTH jobs; each job needs two of the layer above.

    Every execution appends ``start TIME PID`` and ``end TIME PID`` to a file
    named after its workflow and job, so overlapping runs can be found.
    """
    record = f"{runs}/$PINBALL_WORKFLOW.$PINBALL_JOB"
    command = (
        f'echo "start $(date +%s.%N) $$" >> {record}; sleep 0.2; '
        f'echo "end $(date +%s.%N) $$" >> {record}'
    )
    lines = ["workflows:"]
    for w in range(WORKFLOWS):
        lines += [f"  crash_{w}:", "    jobs:"]
        for layer in range(LAYERS):
            for i in range(WIDTH):
                needs = ""
                if layer:
                    above = sorted({i, (i + 1) % WIDTH})
                    needs = (
                        ", depends_on: ["
                        + ", ".join(f"j{layer - 1}_{a}" for a in above)
                        + "]"
                    )
                lines.append(f"      j{layer}_{i}: {{command: '{command}'{needs}}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def system(tmp_path: pathlib.Path) -> Iterator[dict[str, ServiceProcess]]:
    runs = tmp_path / "runs"
    runs.mkdir()
    logs = tmp_path / "service-logs"
    logs.mkdir()
    (tmp_path / "workflows.yaml").write_text(_workflows_yaml(runs))
    config = tmp_path / "pinball.yaml"
    config.write_text(
        f"home: {tmp_path / 'home'}\n"
        f"master_port: {free_port()}\n"
        "parser: yaml\n"
        "parser_params: {path: workflows.yaml}\n"
        "workers: 4\n"
        "worker_lease_sec: 3\n"
        "worker_poll_time_sec: 1\n"
        "client_timeout_sec: 5\n"
        "max_backoff_client_reconnect_sec: 1\n"
        "client_connect_attempts: 100\n"
    )
    services = {
        "master": ServiceProcess(config, "master", logs),
        "worker_a": ServiceProcess(config, "workers", logs, "worker_a"),
        "worker_b": ServiceProcess(config, "workers", logs, "worker_b"),
    }
    for service in services.values():
        service.start()
    yield services
    for service in reversed(list(services.values())):
        service.stop()


def _pinball(config: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _statuses(config: pathlib.Path) -> dict[str, str]:
    """Each workflow's last instance status; empty while the master is down."""
    shown = _pinball(config, "workflow", "list", "--json")
    if shown.returncode != 0:
        return {}
    return {w["workflow"]: w["status"] for w in json.loads(shown.stdout)}


def test_no_work_is_lost_or_doubled_when_services_are_killed(
    system: dict[str, ServiceProcess], tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "pinball.yaml"
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    print(f"random seed {seed}")

    deadline = time.monotonic() + 60
    for w in range(WORKFLOWS):
        while _pinball(
            config, "workflow", "start", "-w", f"crash_{w}", "-f"
        ).returncode:
            assert time.monotonic() < deadline, system["master"].output()
            time.sleep(0.5)

    # Kill moments are drawn before the run, inside the time it takes, and
    # the master is among the victims.
    started = time.monotonic()
    victims = ["master"] + [chance.choice(sorted(system)) for _ in range(KILLS - 1)]
    chance.shuffle(victims)
    moments = sorted(chance.uniform(1.0, 15.0) for _ in victims)
    plan = list(zip(moments, victims, strict=True))
    print(f"kills: {[(round(m, 1), v) for m, v in plan]}")

    deadline = started + 240
    while plan:
        moment, victim = plan.pop(0)
        time.sleep(max(0.0, started + moment - time.monotonic()))
        system[victim].kill()
        system[victim].start()

    while True:
        statuses = _statuses(config)
        if len(statuses) == WORKFLOWS and set(statuses.values()) == {"SUCCESS"}:
            break
        assert time.monotonic() < deadline, (
            f"not finished (seed {seed}): {statuses}\n"
            + "\n".join(s.output()[-3000:] for s in system.values())
        )
        time.sleep(1.0)

    finished_after = time.monotonic() - started
    assert finished_after > moments[-1], "the run ended before the last kill"
    for w in range(WORKFLOWS):
        shown = _pinball(config, "workflow", "status", "-w", f"crash_{w}", "--json")
        instance = json.loads(shown.stdout)["instances"][0]["instance"]
        detail = _pinball(
            config, "workflow", "status", "-w", f"crash_{w}", "-i", instance, "--json"
        )
        jobs = json.loads(detail.stdout)["jobs"]
        assert len(jobs) == LAYERS * WIDTH
        failed = [job["name"] for job in jobs if job["last_exit_code"] != 0]
        assert not failed, f"crash_{w}: last executions failed: {failed}"

    overlaps = _overlapping_runs(tmp_path / "runs")
    assert not overlaps, f"jobs ran twice at once (seed {seed}): {overlaps}"


def _overlapping_runs(runs: pathlib.Path) -> list[str]:
    """Jobs with an execution that started before the previous one ended.

    An execution whose worker was killed may have no end line; the next one
    is then only known to have started after it began.
    """
    found = []
    for record in sorted(runs.iterdir()):
        starts: dict[str, float] = {}
        spans = []
        for line in record.read_text().splitlines():
            what, moment, pid = line.split()
            if what == "start":
                starts[pid] = float(moment)
            else:
                spans.append((starts.pop(pid), float(moment)))
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                found.append(record.name)
    return found
