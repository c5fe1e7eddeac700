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

On a shared machine one run says little: --repeat N runs every shape N times
(Luigi too) and prints the medians; the load average is printed before and
after. --breakdown also prints where each job's time went, measured at the
boundaries the worker already has: the executor (start() and start to the
end the worker saw), each kind of request to the master (round trip as the
worker saw it) and the store's commits inside the master. For the chain,
where one job runs at a time, what those leave of the wall time is the
worker's own Python (parsing tokens, computing transitions, hooks) and
waits for the interpreter lock. The CPU time the worker process and the
master process used per job is printed too: unlike wall time it hardly moves
when other programs load the machine. --chain-length shows whether the cost
per job grows with the size of the DAG.

Usage: python bench/dag_throughput.py [--shapes chain,fan,lattice] [--workers 2,8]
           [--repeat N] [--breakdown] [--chain-length N]
"""

import argparse
import asyncio
import collections
import json
import multiprocessing
import multiprocessing.sharedctypes
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from pinball_core.client import HttpClient
from pinball_core.components import ExecutionHandle, ExecutionSpec
from pinball_core.executors.local import LocalExecutor
from pinball_core.server import serve
from pinball_core.store import StoreChange
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.workflow import names
from pinball_core.workflow.instance import instance_tokens
from pinball_core.workflow.model import Job
from pinball_core.workflow.worker import Worker, WorkerSettings

LUIGI_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "shared/bench/luigi_dag.py"


def shape(name: str, chain_length: int = 200) -> dict[str, list[str]]:
    """Job name -> upstream job names."""
    if name == "chain":
        return {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(chain_length)}
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


class Tally:
    """Counts and seconds per kind of step, added from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])

    def add(self, step: str, seconds: float) -> None:
        with self._lock:
            entry = self._steps[step]
            entry[0] += 1
            entry[1] += seconds

    def take(self) -> dict[str, tuple[int, float]]:
        """The counts and seconds so far; starts counting anew."""
        with self._lock:
            steps = {k: (int(c), t) for k, (c, t) in self._steps.items()}
            self._steps.clear()
        return steps


class TimedClient(HttpClient):
    """A client that times each round trip to the master by request kind."""

    def __init__(self, tally: Tally, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally = tally

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super()._send(operation, body)
        finally:
            self.tally.add(f"request {operation}", time.perf_counter() - started)


class TimedHandle:
    """An execution handle that notes when the worker first sees its end."""

    def __init__(self, handle: ExecutionHandle, started: float, tally: Tally) -> None:
        self._handle = handle
        self._started = started
        self._tally = tally
        self._seen = False

    def wait(self, timeout: float | None = None) -> int | None:
        code = self._handle.wait(timeout)
        if code is not None and not self._seen:
            self._seen = True
            self._tally.add("executor end", time.perf_counter() - self._started)
        return code

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class TimedExecutor(LocalExecutor):
    """The local executor, timing start() and start to the end the worker saw."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally

    def start(self, spec: ExecutionSpec) -> Any:
        started = time.perf_counter()
        handle = super().start(spec)
        self.tally.add("executor start", time.perf_counter() - started)
        return TimedHandle(handle, started, self.tally)


class TimedStore(SqliteStore):
    """The SQLite store, adding its commits and their seconds to shared memory."""

    def __init__(
        self, url: str, commits: "multiprocessing.sharedctypes.SynchronizedArray[float]"
    ) -> None:
        super().__init__(url)
        self.commits = commits

    def commit(self, change: StoreChange) -> None:
        started = time.perf_counter()
        super().commit(change)
        with self.commits.get_lock():
            self.commits[0] += 1
            self.commits[1] += time.perf_counter() - started


def run_master(
    url: str,
    ports: "multiprocessing.Queue[int]",
    commits: "multiprocessing.sharedctypes.SynchronizedArray[float]",
) -> None:
    store = TimedStore(url, commits)
    asyncio.run(serve(store, host="127.0.0.1", port=0, ready=ports.put))


class Finished:
    """Hook receiver that notes when the instance ends."""

    def __init__(self) -> None:
        self.done = threading.Event()

    def __getattr__(self, hook: str) -> Any:
        if hook == "pinball_instance_finished":
            return lambda **kw: self.done.set()
        return lambda **kw: None


def cpu_seconds(pid: int | None = None) -> float:
    """User and system CPU seconds of this process, or of process ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ours(
    port: int,
    master_pid: int,
    graph: dict[str, list[str]],
    workflow: str,
    workers: int,
    logs: str,
    tally: Tally,
) -> dict[str, Any]:
    jobs = {name: Job(command="true", inputs=list(ups)) for name, ups in graph.items()}
    client = TimedClient(tally, "127.0.0.1", port)
    settings = WorkerSettings(
        lease_sec=60, poll_sec=5, logs_dir=logs, archive_delay_sec=3600, tick_sec=0.05
    )
    finished = Finished()
    stop = threading.Event()
    pool = [
        Worker(client, TimedExecutor(tally), settings, hook=finished)
        for _ in range(workers)
    ]
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in pool]
    for thread in threads:
        thread.start()
    time.sleep(0.5)

    tally.take()
    cpu = cpu_seconds(), cpu_seconds(master_pid)
    started = time.time()
    client.modify(instance_tokens(workflow, "1", jobs, depth_priorities(graph)))
    if not finished.done.wait(timeout=1800):
        raise SystemExit(f"{workflow} did not finish")
    wall = time.time() - started
    worker_cpu = cpu_seconds() - cpu[0]
    master_cpu = cpu_seconds(master_pid) - cpu[1]
    steps = tally.take()
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
        "worker_cpu_ms": worker_cpu / len(graph) * 1000,
        "master_cpu_ms": master_cpu / len(graph) * 1000,
        "steps": steps,
    }


def run_luigi(shape_name: str, chain_length: int) -> dict[str, Any] | None:
    if not LUIGI_SCRIPT.exists():
        print(f"  (no {LUIGI_SCRIPT}; Luigi not compared)")
        return None
    length = ["--chain-n", str(chain_length)] if shape_name == "chain" else []
    done = subprocess.run(
        [sys.executable, str(LUIGI_SCRIPT), shape_name, "true", "1", *length],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        print(f"  (Luigi failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose ``key`` is the median (the lower one of an even count)."""
    ordered = sorted(runs, key=lambda run: run[key])
    return ordered[(len(ordered) - 1) // 2]


def print_breakdown(
    ours: dict[str, Any], commits: tuple[float, float], one_at_a_time: bool
) -> None:
    """Where a job's time went, per job of the run."""
    jobs = ours["jobs"]
    steps: dict[str, tuple[int, float]] = ours["steps"]
    print(
        f"    per job, summed over worker threads (wall {ours['ms_per_job']:.2f} ms):"
    )
    accounted = 0.0
    for step, (count, seconds) in sorted(steps.items()):
        per_job = seconds / jobs * 1000
        note = ""
        if step == "request query_and_own":
            note = "  (claims: long polls, include idle waiting)"
        elif step != "executor start":
            # start() is inside "executor end", which counts from the start.
            accounted += per_job
        print(
            f"      {step:24s} {count / jobs:5.2f} x {seconds / count * 1000:6.2f} ms"
            f" = {per_job:6.2f} ms{note}"
        )
    commit_count, commit_seconds = commits
    if commit_count:
        print(
            f"      {'store commit (master)':24s} {commit_count / jobs:5.2f} x "
            f"{commit_seconds / commit_count * 1000:6.2f} ms = "
            f"{commit_seconds / jobs * 1000:6.2f} ms  (inside the modify round trips)"
        )
    if one_at_a_time:
        rest = ours["ms_per_job"] - accounted
        print(f"      {'rest: worker Python, GIL':24s} {rest:21.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="chain,fan,lattice")
    parser.add_argument("--workers", default="2,8")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--chain-length", type=int, default=200)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="pinball_dag_")
    url = f"sqlite:///{folder}/pinball.db"
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    commits = multiprocessing.Array("d", 2)
    master = multiprocessing.Process(
        target=run_master, args=(url, ports, commits), daemon=True
    )
    master.start()
    port = ports.get(timeout=30)
    print(
        f"master on 127.0.0.1:{port}, store {url}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; median of {args.repeat} run(s)"
    )

    tally = Tally()
    run_number = 0
    for shape_name in args.shapes.split(","):
        graph = shape(shape_name, args.chain_length)
        luigis = [run_luigi(shape_name, args.chain_length) for _ in range(args.repeat)]
        luigi = None
        if all(luigis):
            luigi = median_run([r for r in luigis if r], "wall_s")
            print(
                f"{shape_name:8s} luigi in-process  wall={luigi['wall_s']:7.2f} s  "
                f"{luigi['per_task_ms']:7.2f} ms/job"
            )
        for workers in [int(w) for w in args.workers.split(",")]:
            runs = []
            for _ in range(args.repeat):
                run_number += 1
                with commits.get_lock():
                    commits[0] = commits[1] = 0.0
                workflow = f"{shape_name}_{workers}_{run_number}"
                assert master.pid is not None
                ours = run_ours(
                    port,
                    master.pid,
                    graph,
                    workflow,
                    workers,
                    f"{folder}/logs",
                    tally,
                )
                with commits.get_lock():
                    ours["commits"] = (commits[0], commits[1])
                runs.append(ours)
            ours = median_run(runs, "wall_s")
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
            print(
                f"{'':8s}   CPU per job: worker process "
                f"{ours['worker_cpu_ms']:5.2f} ms, master process "
                f"{ours['master_cpu_ms']:5.2f} ms"
            )
            if args.breakdown:
                print_breakdown(ours, ours["commits"], shape_name == "chain")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    master.terminate()
    master.join()


if __name__ == "__main__":
    main()
