"""How fast workers push DAGs of `true` jobs through, against Luigi.

Shapes: a chain of 200 jobs, a fan 1 -> 500 -> 1, and a lattice of 20 layers
of 50 where each job depends on two jobs of the layer before. For 2 and 8
worker threads (one process, like `pinball workers`) against a master in its
own process on durable SQLite (WAL, synchronous=FULL), prints the wall time
from inserting the instance to its end, ms per job, and the hop latency
(an upstream job's end to its downstream job's start) p50 and p99.

In the same run it times Luigi's local scheduler in process on the same
shapes (../shared/bench/luigi_dag.py, `true` jobs, 1 worker) and prints our
time over Luigi's. Needs `pip install -e '.[bench]'` for Luigi.

Usage: python bench/dag_throughput.py [--shapes chain,fan,lattice] [--workers 2,8]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from pinball_core.client import HttpClient
from pinball_core.executors.local import LocalExecutor
from pinball_core.server import serve
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.workflow import names
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import Worker, WorkerSettings

LUIGI_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "shared/bench/luigi_dag.py"


def shape(name: str) -> dict[str, list[str]]:
    """Job name -> upstream job names."""
    if name == "chain":
        return {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(200)}
    if name == "fan":
        jobs: dict[str, list[str]] = {"src": []}
        jobs.update({f"m{i}": ["src"] for i in range(500)})
        jobs["sink"] = [f"m{i}" for i in range(500)]
        return jobs
    if name == "lattice":
        layers, width = 20, 50
        return {
            f"l{layer}_{i}": (
                []
                if layer == 0
                else sorted({f"l{layer - 1}_{i}", f"l{layer - 1}_{(i + 1) % width}"})
            )
            for layer in range(layers)
            for i in range(width)
        }
    raise SystemExit(f"unknown shape {name}")


def depth_priorities(graph: dict[str, list[str]]) -> dict[str, float]:
    """Longest path to a sink: jobs with more work behind them go first."""
    children: dict[str, list[str]] = {name: [] for name in graph}
    for name, ups in graph.items():
        for up in ups:
            children[up].append(name)
    memo: dict[str, float] = {}
    for name in reversed(list(graph)):
        memo[name] = 1 + max((memo[c] for c in children[name]), default=0)
    return memo


def run_master(url: str, ports: "multiprocessing.Queue[int]") -> None:
    asyncio.run(serve(SqliteStore(url), host="127.0.0.1", port=0, ready=ports.put))


class Finished:
    """Hook receiver that notes when the instance ends."""

    def __init__(self) -> None:
        self.done = threading.Event()

    def __getattr__(self, hook: str) -> Any:
        if hook == "pinball_instance_finished":
            return lambda **kw: self.done.set()
        return lambda **kw: None


def run_ours(port: int, shape_name: str, workers: int, logs: str) -> dict[str, Any]:
    graph = shape(shape_name)
    workflow = f"{shape_name}_{workers}"
    jobs = {name: Job(command="true", inputs=list(ups)) for name, ups in graph.items()}
    client = HttpClient("127.0.0.1", port)
    settings = WorkerSettings(
        lease_sec=60, poll_sec=5, logs_dir=logs, archive_delay_sec=3600, tick_sec=0.05
    )
    finished = Finished()
    stop = threading.Event()
    pool = [
        Worker(client, LocalExecutor(), settings, hook=finished) for _ in range(workers)
    ]
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in pool]
    for thread in threads:
        thread.start()
    time.sleep(0.5)

    started = time.time()
    client.modify(instance_tokens(workflow, "1", jobs, depth_priorities(graph)))
    if not finished.done.wait(timeout=1800):
        raise SystemExit(f"{workflow} did not finish")
    wall = time.time() - started
    stop.set()

    records = {}
    for token in client.query(names.job_prefix(workflow, "1")):
        job = Job.from_json(token.data)
        records[job.name] = job.history[-1]
    hops = []
    for name, ups in graph.items():
        if ups:
            ready = max(records[u].end_time or 0 for u in ups)
            hops.append((records[name].start_time - ready) * 1000)
    hops.sort()
    for thread in threads:
        thread.join(timeout=30)
    return {
        "jobs": len(graph),
        "wall_s": wall,
        "ms_per_job": wall / len(graph) * 1000,
        "hop_p50_ms": statistics.median(hops),
        "hop_p99_ms": hops[max(0, int(len(hops) * 0.99) - 1)],
    }


def run_luigi(shape_name: str) -> dict[str, Any] | None:
    if not LUIGI_SCRIPT.exists():
        print(f"  (no {LUIGI_SCRIPT}; Luigi not compared)")
        return None
    done = subprocess.run(
        [sys.executable, str(LUIGI_SCRIPT), shape_name, "true", "1"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        print(f"  (Luigi failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="chain,fan,lattice")
    parser.add_argument("--workers", default="2,8")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="pinball_dag_")
    url = f"sqlite:///{folder}/pinball.db"
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    master = multiprocessing.Process(target=run_master, args=(url, ports), daemon=True)
    master.start()
    port = ports.get(timeout=30)
    print(f"master on 127.0.0.1:{port}, store {url}; {os.cpu_count()} CPUs")

    for shape_name in args.shapes.split(","):
        luigi = run_luigi(shape_name)
        if luigi:
            print(
                f"{shape_name:8s} luigi in-process  wall={luigi['wall_s']:7.2f} s  "
                f"{luigi['per_task_ms']:7.2f} ms/job"
            )
        for workers in [int(w) for w in args.workers.split(",")]:
            ours = run_ours(port, shape_name, workers, f"{folder}/logs")
            ratio = (
                f"  ratio to luigi {ours['wall_s'] / luigi['wall_s']:.2f}"
                if luigi
                else ""
            )
            print(
                f"{shape_name:8s} pinball workers={workers}  "
                f"wall={ours['wall_s']:7.2f} s  {ours['ms_per_job']:7.2f} ms/job  "
                f"hop p50={ours['hop_p50_ms']:6.2f} ms  "
                f"p99={ours['hop_p99_ms']:7.2f} ms{ratio}",
                flush=True,
            )
    master.terminate()
    master.join()


if __name__ == "__main__":
    main()
