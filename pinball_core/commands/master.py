"""``pinball master``: run the token master on the configured store."""

import argparse
import asyncio
import errno
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any, Final

from pinball_core.client import MasterClient
from pinball_core.errors import MasterError, ServeError
from pinball_core.server import serve
from pinball_core.supervisor import supervised, when_supervisor_gone
from pinball_core.workflow import names

log = logging.getLogger(__name__)

#: Once its ``pinball run`` is gone, the master stops after this long without
#: a leased job: the workers have recorded the jobs they stopped by then.
LAST_RECORDS_QUIET_SEC: Final = 2.5

#: And at the latest this long after ``abort_grace_sec``, the time a job may
#: take to stop; a job leased by a worker that is not coming back (one that
#: was killed, or runs elsewhere) is then left to its lease.
LAST_RECORDS_MARGIN_SEC: Final = 10.0

# How often the master looks at the leased jobs meanwhile.
_LAST_RECORDS_POLL_SEC: Final = 0.5


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "master",
        help="run the token master",
        description="Serve the token master over HTTP on master_port, keeping "
        "every change in the configured store before answering. SIGTERM, "
        "SIGHUP or Ctrl-C stops it once queued changes are stored.",
    )
    parser.add_argument(
        "-p",
        "--port",
        type=port_number,
        help="port to listen on, 0 for any free one (default: master_port from "
        "the config)",
    )
    parser.add_argument(
        "--bind",
        help="address to listen on (default: master_host from the config; "
        "0.0.0.0 for every interface)",
    )
    parser.set_defaults(handler=run)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not between 0 and 65535")
    return port


def run(args: argparse.Namespace, app: Any) -> int:
    config = app.config
    port = args.port if args.port is not None else config.master_port
    host = args.bind or config.master_host
    store = app.open_store()
    # The server stops cleanly on SIGTERM; a closed terminal stops it so too.
    signal.signal(signal.SIGHUP, _stop_as_on_sigterm)
    last_records = None
    if supervised():
        last_records = LastRecords(
            app, host, config.abort_grace_sec + LAST_RECORDS_MARGIN_SEC
        )
        when_supervisor_gone(last_records.begin)
    try:
        asyncio.run(
            serve(
                store,
                host=host,
                port=port,
                secret=config.master_secret,
                request_id_retention_sec=config.request_id_retention_sec,
                ready=None if last_records is None else last_records.serving,
            )
        )
    except ServeError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            raise ServeError(
                f"{exc}; another Pinball master may still be running on port "
                f"{port} (one left behind by an earlier `pinball run`?): stop "
                "it, or choose another port with -p or master_port"
            ) from exc
        raise
    # A clean stop, as asked, whichever signal asked (Ctrl-C included).
    return 0


def _stop_as_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class LastRecords:
    """Serve on after the ``pinball run`` that started this master is gone,
    until its workers have recorded the jobs they stop; then stop as on
    SIGTERM.

    The workers get the news at the same moment and stop their running jobs
    at once (see :mod:`pinball_core.commands.workers`); each job's end, "lost:
    stopped with its worker", needs the master. Stopping at once would leave
    those jobs RUNNING in the store until their leases ran out, and their
    next run counted as lost. The master cannot see its sibling processes,
    but it sees their leases: once no job has been leased for
    :data:`LAST_RECORDS_QUIET_SEC`, or at the latest after ``limit_sec``, it
    stops.

    :param host: The address the master listens on; asked through loopback
        when it is every interface.
    """

    def __init__(self, app: Any, host: str, limit_sec: float) -> None:
        self._app = app
        self._host = "localhost" if host in ("", "0.0.0.0", "::") else host
        self._limit_sec = limit_sec
        self._port: int | None = None
        self._gone = threading.Event()
        # Started now, not from the signal handler that ends the wait.
        threading.Thread(target=self._run, name="last-records", daemon=True).start()

    def serving(self, port: int) -> None:
        """Called once the master answers on ``port``."""
        self._port = port

    def begin(self) -> None:
        """The supervisor is gone; safe from a signal handler."""
        self._gone.set()

    def _run(self) -> None:
        self._gone.wait()
        if self._port is not None:
            self._wait_for_quiet(self._port)
        os.kill(os.getpid(), signal.SIGTERM)

    def _wait_for_quiet(self, port: int) -> None:
        client = self._app.master_client(self._host, port, interactive=True)
        try:
            started = time.monotonic()
            quiet_since = started
            while time.monotonic() - started < self._limit_sec:
                try:
                    leased = _leased_jobs(client)
                except MasterError as exc:
                    log.debug("cannot read the leased jobs: %s; stopping", exc)
                    return
                now = time.monotonic()
                if leased:
                    quiet_since = now
                elif now - quiet_since >= LAST_RECORDS_QUIET_SEC:
                    return
                time.sleep(_LAST_RECORDS_POLL_SEC)
        finally:
            client.close()


def _leased_jobs(client: MasterClient) -> int:
    """How many runnable jobs a worker holds a live lease on."""
    now = time.time()
    tokens = client.query(names.WORKFLOW_PREFIX, contains=names.RUNNABLE_INFIX)
    return sum(
        1
        for token in tokens
        if token.owner is not None
        and token.expiration is not None
        and token.expiration > now
    )
