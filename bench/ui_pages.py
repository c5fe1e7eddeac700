"""How fast the UI answers with a large history: pages and the API behind them.

Builds a SQLite store with WORKFLOWS workflows of INSTANCES archived
instances each (three jobs per instance, each with one finished run), plus
one running instance in every tenth workflow, then serves the UI on it over
HTTP on a loopback port and times, with one keep-alive client:

- the workflows page and ``GET /api/v1/workflows`` (first page, 50 rows);
- a workflow's instances page and ``GET /api/v1/workflows/W/instances``;
- an archived instance's jobs page, ``GET .../instances/I`` and
  ``GET .../instances/I/jobs``.

Each is requested REPEAT times after the UI has read the archive once
(its background warm-up, timed too, as is a workflows request during it);
prints the median and p95 in milliseconds. The target is a median of at
most 200 ms each. No master runs: the UI reads the store directly, and the
status banner's master check fails fast against a closed port.

Usage: python bench/ui_pages.py [--workflows 200] [--instances 1000] [--repeat 30]
(needs pinball-ui-tornado installed: pip install -e plugins/ui_tornado)
"""

import argparse
import asyncio
import http.client
import pathlib
import statistics
import sys
import tempfile
import threading
import time

import tornado.httpserver
import tornado.netutil
import yaml
from pinball_ui_tornado.server import build_ui, close_ui, make_app, start_warm_up

from pinball_core.app import Application
from pinball_core.stores import schema
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.workflow import names
from pinball_core.workflow.model import ExecutionRecord, Job, Signal

JOBS = ("extract", "transform", "load")


def fill(url: str, workflows: int, instances: int) -> int:
    """Write the archive (and a few active instances) straight into the store."""
    store = SqliteStore(url)
    store.initialize()
    engine = store.engine
    version = 1
    rows_written = 0
    base = 1_700_000_000.0
    with engine.begin() as conn:
        for w in range(workflows):
            workflow = f"workflow_{w:03d}"
            rows = []
            templates = [_job_template(workflow, j) for j in range(len(JOBS))]
            archive_signal = Signal(action="ARCHIVE", timestamp=1.5).to_json()
            for i in range(instances):
                instance = str(1_700_000_000_000 + i * 3_600_000)
                start = base + i * 3600
                for j, job in enumerate(JOBS):
                    failed = i % 97 == 0 and job == "load"
                    data = (
                        templates[j]
                        .replace("INSTANCE", instance)
                        .replace("1111.5", repr(start + j * 60))
                        .replace("2222.5", repr(start + j * 60 + 55))
                        .replace(
                            '"exit_code":0',
                            '"exit_code":1' if failed else '"exit_code":0',
                        )
                    )
                    rows.append(
                        {
                            "name": names.job_name(
                                workflow, instance, names.WAITING, job
                            ),
                            "version": version,
                            "owner": None,
                            "expiration": None,
                            "priority": 0.0,
                            "data": data,
                            "archived_at": start + 600,
                        }
                    )
                    version += 1
                rows.append(
                    {
                        "name": names.signal_prefix(workflow, instance) + "ARCHIVE",
                        "version": version,
                        "owner": None,
                        "expiration": None,
                        "priority": 0.0,
                        "data": archive_signal.replace("1.5", repr(start + 200)),
                        "archived_at": start + 600,
                    }
                )
                version += 1
            conn.execute(schema.archived_tokens.insert(), rows)
            rows_written += len(rows)

            if w % 10 == 0:
                instance = str(1_800_000_000_000)
                running = Job(
                    name="extract", command="sleep 1", inputs=[names.WORKFLOW_START]
                )
                running.history.append(
                    ExecutionRecord(instance=instance, start_time=time.time())
                )
                conn.execute(
                    schema.active_tokens.insert(),
                    [
                        {
                            "name": names.job_name(
                                workflow, instance, names.RUNNABLE, "extract"
                            ),
                            "version": version,
                            "owner": "bench",
                            "expiration": time.time() + 3600,
                            "priority": 0.0,
                            "data": running.to_json(),
                        }
                    ],
                )
                version += 1
    store.close()
    return rows_written


def _job_template(workflow: str, j: int) -> str:
    """A job token's JSON with INSTANCE and two times to fill in by text."""
    job = JOBS[j]
    record = ExecutionRecord(
        instance="INSTANCE",
        start_time=1111.5,
        end_time=2222.5,
        exit_code=0,
        info=f"run_{job}.sh --date 2026-01-01",
        worker="host_g1_1_1_abc",
        logs={"stdout": f"/logs/{workflow}/INSTANCE/{job}.0.stdout"},
    )
    payload = Job(
        name=job,
        command=f"run_{job}.sh --date %(date)s",
        inputs=[JOBS[j - 1]] if j else [names.WORKFLOW_START],
        outputs=[JOBS[j + 1]] if j + 1 < len(JOBS) else [],
        history=[record],
    )
    return payload.to_json()


class Served:
    def __init__(self, application: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(
            self._start(application), self.loop
        ).result()

    async def _start(self, application: object) -> int:
        server = tornado.httpserver.HTTPServer(application)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        return int(sockets[0].getsockname()[1])


def timed(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}: {body[:300]!r}")
    return elapsed * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    folder = pathlib.Path(tempfile.mkdtemp(prefix="pinball-ui-bench-"))
    url = f"sqlite:///{folder / 'pinball.db'}"
    started = time.perf_counter()
    rows = fill(url, args.workflows, args.instances)
    print(
        f"store: {args.workflows} workflows x {args.instances} archived instances, "
        f"{rows:,} archived tokens, written in {time.perf_counter() - started:.1f} s "
        f"({(folder / 'pinball.db').stat().st_size / 2**20:.0f} MiB)"
    )

    config = folder / "pinball.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(folder),
                "store": url,
                "master_host": "127.0.0.1",
                "master_port": 1,
            }
        )
    )
    app = Application(config)
    store = app.open_store()
    ui = build_ui(app, store, listen="127.0.0.1")
    served = Served(make_app(ui))
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=600)

    # As `pinball ui` does: the archive is read in the background at start.
    started = time.perf_counter()
    warm_up = start_warm_up(ui, threading.Event())
    first = timed(connection, "/api/v1/workflows")
    print(f"workflows request during the warm-up: {first:.0f} ms")
    warm_up.join()
    took = time.perf_counter() - started
    print(f"warm-up: read {args.workflows} workflows' archives in {took:.1f} s")

    workflow = f"workflow_{args.workflows // 2:03d}"
    instance = str(1_700_000_000_000 + (args.instances // 2) * 3_600_000)
    api = f"/api/v1/workflows/{workflow}"
    paths = {
        "workflows page": "/workflows",
        "GET /api/v1/workflows": "/api/v1/workflows",
        "GET /api/v1/workflows?sort=last_end": "/api/v1/workflows?sort=last_end",
        "instances page": f"/workflows/{workflow}",
        "GET /api/v1/workflows/W": api,
        "GET /api/v1/workflows/W/instances": f"{api}/instances",
        "GET .../instances by run time, p. 7": f"{api}/instances?sort=run_time&page=7",
        "jobs page (archived instance)": f"/workflows/{workflow}/instances/{instance}",
        "GET .../instances/I": f"{api}/instances/{instance}",
        "GET .../instances/I/jobs": f"{api}/instances/{instance}/jobs",
        "GET .../instances/I/graph.svg": f"{api}/instances/{instance}/graph.svg",
    }
    print(f"{'request':48} {'median ms':>10} {'p95 ms':>8}")
    worst = 0.0
    for label, path in paths.items():
        times = sorted(timed(connection, path) for _ in range(args.repeat))
        median = statistics.median(times)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        worst = max(worst, median)
        print(f"{label:48} {median:10.1f} {p95:8.1f}")
    print(f"slowest median: {worst:.1f} ms (target 200 ms)")
    connection.close()
    close_ui(ui)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
