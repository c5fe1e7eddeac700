"""``pinball workers``: run worker threads that claim and run jobs."""

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from pinball_core.workflow.worker import Worker, settings_from_config

log = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "workers",
        help="run worker threads",
        description="Run `workers` worker threads (from the config) that claim "
        "the most urgent runnable job of any workflow and run it. SIGTERM, "
        "SIGHUP or Ctrl-C lets running jobs finish; a second one stops them, "
        "and they run again when workers are back, without using up "
        "max_attempts.",
    )
    parser.add_argument(
        "-n",
        "--threads",
        type=int,
        help="number of worker threads (default: workers from the config)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: Any) -> int:
    config = app.config
    executor = app.plugins.make_executor(
        config.executor, config.plugin_options(config.executor)
    )
    settings = settings_from_config(config)
    count = args.threads or config.workers
    client = app.master_client()

    stop = threading.Event()
    workers = [
        Worker(client, executor, settings, hook=app.plugins.hook) for _ in range(count)
    ]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("stopping running jobs; they run again when workers are back")
            for worker in workers:
                worker.abort_running.set()
            return
        log.info("finishing running jobs, then stopping; signal again to stop them")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    threads = [
        threading.Thread(target=w.run, args=(stop,), name=f"worker-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    log.info("%d workers of generation %d running", count, settings.generation)
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    # A clean stop, as asked, whichever signal asked (Ctrl-C included).
    return 0
