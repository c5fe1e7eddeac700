"""``pinball workers``: run worker threads that claim and run jobs."""

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from pinball_core.client import MasterClient
from pinball_core.errors import MasterError
from pinball_core.supervisor import when_supervisor_gone
from pinball_core.workflow import signals
from pinball_core.workflow.model import EXIT
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
        "max_attempts. Started by `pinball run`, they stop running jobs at "
        "once if it ends without stopping them (killed). An EXIT signal for a "
        "newer generation makes them leave, with exit code 0.",
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

    def stop_running_jobs() -> None:
        stop.set()
        for worker in workers:
            worker.abort_running.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("stopping running jobs; they run again when workers are back")
            stop_running_jobs()
            return
        log.info("finishing running jobs, then stopping; signal again to stop them")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    # With the `pinball run` that started them gone, nobody waits for the
    # running jobs and the master stays only briefly to record their end: they
    # stop at once, as on a second signal, and run again at the next start.
    when_supervisor_gone(stop_running_jobs)

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
    if not stop.is_set():
        # Nobody asked: the threads left because an EXIT signal applies.
        log.warning("%s", _why_left(client, settings.generation))
    # A clean stop, as asked, whichever signal asked (Ctrl-C included), and
    # a clean leave too: a supervisor has no reason to start them again.
    return 0


def _why_left(client: MasterClient, generation: int) -> str:
    """The line that says which EXIT made the workers leave, and what next."""
    try:
        entry = signals.read_signals(client).get(EXIT)
    except MasterError as exc:
        log.debug("cannot read the EXIT signal: %s", exc)
        entry = None
    wanted = entry[1].generation if entry is not None else None
    if wanted:
        return (
            f"workers left: EXIT signal for generation {wanted} (these are of "
            f"generation {generation}); start workers of generation {wanted} "
            "or newer, or run `pinball workflow unexit` and start these again"
        )
    return (
        "workers left: EXIT signal for every generation; run `pinball workflow "
        "unexit`, then start workers again"
    )
