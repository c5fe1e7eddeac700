"""``pinball scheduler``: start workflow instances when their schedules say so."""

import argparse
import functools
import logging
import signal
import threading
from types import FrameType
from typing import Any

from pinball_core.app import Application
from pinball_core.scheduler.history import ArchiveReader
from pinball_core.scheduler.loop import SchedulerLoop
from pinball_core.scheduler.scheduler import Scheduler, settings_from_config

log = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "scheduler",
        help="run the scheduler",
        description="Start an instance of each scheduled workflow when its run is "
        "due, through its overrun policy. Schedules are written by `pinball "
        "workflow reschedule`. Several schedulers may run at once; each run "
        "starts once. SIGTERM, SIGHUP or Ctrl-C stops it after the pass under way.",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run one pass over the due schedules, print what it did, and exit",
    )
    parser.set_defaults(handler=run)


def make_scheduler(app: Application) -> Scheduler:
    """A scheduler on the configured master, parser, policies and store.

    The parser is made once here, so a parser that cannot be loaded stops
    the command at once rather than at the first run.
    """
    config = app.config
    plugins = app.plugins

    def make_parser() -> Any:
        return plugins.make_parser(config.parser, config.parser_params)

    make_parser()
    return Scheduler(
        app.master_client(),
        make_parser=make_parser,
        make_policy=plugins.make_overrun_policy,
        settings=settings_from_config(config),
        hook=plugins.hook,
        # The scheduler only reads the archive; the master creates the store.
        archive=ArchiveReader(functools.partial(app.open_store, read_only=True)),
    )


def run(args: argparse.Namespace, app: Application) -> int:
    scheduler = make_scheduler(app)
    try:
        if args.once:
            report = scheduler.run_pass()
            print(report.describe())
            return 0

        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping after the pass under way (signal %d)", signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)
        # A pass stuck retrying a master that is down ends at the stop.
        with scheduler.client.give_up_when(stop):
            SchedulerLoop(scheduler, app.config.scheduler_poll_sec).run(stop)
        return 0
    finally:
        if scheduler.archive is not None:
            scheduler.archive.close()
        scheduler.client.close()
