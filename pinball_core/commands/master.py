"""``pinball master``: run the token master on the configured store."""

import argparse
import asyncio
import errno
import logging
import os
import signal
from types import FrameType
from typing import Any

from pinball_core.errors import ServeError
from pinball_core.server import serve

log = logging.getLogger(__name__)


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
    store = app.open_store()
    # The server stops cleanly on SIGTERM; a closed terminal stops it so too.
    signal.signal(signal.SIGHUP, _stop_as_on_sigterm)
    try:
        asyncio.run(
            serve(
                store,
                host=args.bind or config.master_host,
                port=port,
                secret=config.master_secret,
                request_id_retention_sec=config.request_id_retention_sec,
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
