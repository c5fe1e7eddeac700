"""``pinball master``: run the token master on the configured store."""

import argparse
import asyncio
import logging
from typing import Any

from pinball_core.server import serve

log = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "master",
        help="run the token master",
        description="Serve the token master over HTTP on master_port, keeping "
        "every change in the configured store before answering.",
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
    store = app.open_store()
    asyncio.run(
        serve(
            store,
            host=args.bind or config.master_host,
            port=args.port if args.port is not None else config.master_port,
            secret=config.master_secret,
            request_id_retention_sec=config.request_id_retention_sec,
        )
    )
    return 0
