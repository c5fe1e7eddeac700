"""Requests per second and latency of the master over HTTP on a durable store.

Starts a master in its own process on a fresh SQLite file (WAL, synchronous
FULL), or on each store given with --store, then for 1, 2 and 8 client
processes runs two phases of fixed length:

- modify: each client updates its own token again and again, sending the
  version it got back, so every request is a real versioned write;
- claim: each client claims one token at a time (query_and_own, max 1, with
  a lease) from a pool of unowned tokens shared by all clients.

Prints one line per phase and client count: requests/s, p50 and p99 latency.
A last phase measures the ceiling of the transport itself: the same client
against a Tornado server whose handler answers `{}` at once, with no master
and no store behind it.
Usage: python bench/master_ops.py [--seconds 5] [--clients 1,2,8] [--store URL]...

--store may be repeated to compare stores in one run. ``sqlite`` (the
default) is a fresh SQLite file; a MySQL URL without a database, such as
mysql+pymysql://root@127.0.0.1/, gets a fresh database dropped afterwards
(it needs pinball-store-mysql installed).
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import sqlalchemy as sa
import tornado.httpserver
import tornado.httputil
import tornado.netutil

from pinball_core.client import HttpClient
from pinball_core.plugins import PluginManager, mask_url
from pinball_core.server import serve
from pinball_core.token import Token


def run_master(url: str, port_queue: "multiprocessing.Queue[int]") -> None:
    store = PluginManager().make_store(url)
    asyncio.run(serve(store, host="127.0.0.1", port=0, ready=port_queue.put))


def modify_client(
    port: int, index: int, seconds: float, out: "multiprocessing.Queue[list[float]]"
) -> None:
    client = HttpClient("127.0.0.1", port, connect_attempts=3)
    (token,) = client.modify([Token(f"/bench/modify/{os.getpid()}/{index}", data="0")])
    latencies = []
    end = time.perf_counter() + seconds
    counter = 0
    while (start := time.perf_counter()) < end:
        counter += 1
        (token,) = client.modify([Token(token.name, token.version, data=str(counter))])
        latencies.append(time.perf_counter() - start)
    out.put(latencies)


def claim_client(
    port: int, index: int, seconds: float, out: "multiprocessing.Queue[list[float]]"
) -> None:
    client = HttpClient("127.0.0.1", port, connect_attempts=3)
    latencies = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        claimed = client.query_and_own(
            f"bench-{index}", "/bench/pool/", 1, lease_sec=600
        )
        latencies.append(time.perf_counter() - start)
        if not claimed:
            break
    out.put(latencies)


def run_empty_server(port_queue: "multiprocessing.Queue[int]") -> None:
    async def main() -> None:
        server = tornado.httpserver.HTTPServer(_empty_answer)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        port_queue.put(sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def _empty_answer(request: tornado.httputil.HTTPServerRequest) -> None:
    body = b'{"tokens": []}'
    assert request.connection is not None
    request.connection.write_headers(
        tornado.httputil.ResponseStartLine("HTTP/1.1", 200, "OK"),
        tornado.httputil.HTTPHeaders({"Content-Length": str(len(body))}),
        body,
    )
    request.connection.finish()


def empty_client(
    port: int, index: int, seconds: float, out: "multiprocessing.Queue[list[float]]"
) -> None:
    client = HttpClient("127.0.0.1", port, connect_attempts=3)
    latencies = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        client.call("query", {"queries": []})
        latencies.append(time.perf_counter() - start)
    out.put(latencies)


def run_phase(
    name: str, target, port: int, clients: int, seconds: float
) -> tuple[float, float, float, int]:
    out: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=target, args=(port, i, seconds, out))
        for i in range(clients)
    ]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r)
    # Rate over the clients' own measured windows, not process start-up.
    window = max(sum(r) for r in results) if results else elapsed
    rate = len(latencies) / window
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"{name:7s} clients={clients}  {rate:8.0f} req/s  p50={p50:6.2f} ms  "
        f"p99={p99:6.2f} ms  ({len(latencies)} requests)",
        flush=True,
    )
    return rate, p50, p99, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,2,8")
    parser.add_argument(
        "--store",
        action="append",
        metavar="URL",
        help="store URL, or sqlite for a fresh SQLite file (the default); repeat "
        "to compare stores",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")

    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    for store in args.store or ["sqlite"]:
        with fresh_store(store) as url:
            bench_master(url, ports, counts, args.seconds)

    empty = multiprocessing.Process(target=run_empty_server, args=(ports,), daemon=True)
    empty.start()
    empty_port = ports.get(timeout=30)
    for clients in counts:
        run_phase("empty", empty_client, empty_port, clients, args.seconds)
    empty.terminate()
    empty.join()


def bench_master(
    url: str, ports: "multiprocessing.Queue[int]", counts: list[int], seconds: float
) -> None:
    master = multiprocessing.Process(target=run_master, args=(url, ports), daemon=True)
    master.start()
    port = ports.get(timeout=60)
    print(f"master on 127.0.0.1:{port}, store {mask_url(url)}", flush=True)

    setup = HttpClient("127.0.0.1", port)
    for clients in counts:
        run_phase("modify", modify_client, port, clients, seconds)
    for clients in counts:
        # More than any client count can claim in the phase's time.
        pool = [
            Token(f"/bench/pool/{clients}/{i}", priority=i % 10) for i in range(30000)
        ]
        for start in range(0, len(pool), 5000):
            setup.modify(pool[start : start + 5000])
        run_phase("claim", claim_client, port, clients, seconds)
        stale = setup.query(f"/bench/pool/{clients}/")
        for start in range(0, len(stale), 5000):
            setup.modify(deletes=stale[start : start + 5000])

    master.terminate()
    master.join()


@contextlib.contextmanager
def fresh_store(store: str) -> Iterator[str]:
    """The URL to bench: a new SQLite file, or a new MySQL database, dropped after."""
    if store == "sqlite":
        folder = tempfile.mkdtemp(prefix="pinball_bench_")
        # WAL with synchronous=FULL, as the SQLite store always opens it.
        yield f"sqlite:///{folder}/pinball.db"
        return
    url = sa.make_url(store)
    if url.get_backend_name() not in ("mysql", "mariadb") or url.database:
        yield store
        return
    name = f"pinball_bench_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(url.set(drivername=f"{url.get_backend_name()}+pymysql"))
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        server.dispose()


if __name__ == "__main__":
    main()
