"""The ``ui`` plugin: checks the UI's config keys and adds ``pinball ui``.

``pinball -c CONFIG ui [-p PORT] [--bind ADDRESS]`` serves the UI on
``ui_port``. Without users (``ui_users`` with password hashes, or
``ui_trusted_header``) it listens on localhost only and refuses another
address, since anyone reaching it could act as an admin.
``pinball ui --hash-password`` prints an Argon2id hash for ``ui_users``.
"""

import argparse
import asyncio
import getpass
import ipaddress
import logging
import signal
import sys
import threading
from typing import Any

import tornado.httpserver
import tornado.netutil
from pinball_core import hookimpl
from pinball_core.app import Application
from pinball_core.errors import ConfigError, ServeError

from pinball_ui_tornado.access import access_from_config, hash_password
from pinball_ui_tornado.server import build_ui, close_ui, make_app, start_warm_up

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"


class UiPlugin:
    """Adds the ``ui`` command; checks ``ui_users`` when the config loads."""

    @hookimpl
    def pinball_configure(self, config: Any) -> None:
        access_from_config(config)

    @hookimpl
    def pinball_add_commands(
        self, subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]"
    ) -> None:
        parser = subparsers.add_parser(
            "ui",
            help="serve the web UI and its JSON API",
            description="Serve the web UI on ui_port: workflows, instances, "
            "jobs, logs, schedules and tokens, read from the store, and the "
            "actions, sent to the master. Without ui_users or "
            "ui_trusted_header it listens on localhost only.",
        )
        parser.add_argument(
            "-p", "--port", type=int, metavar="PORT", help="listen here, not on ui_port"
        )
        parser.add_argument(
            "--bind",
            metavar="ADDRESS",
            help="the address to listen on (default: localhost without users, "
            "every address with them)",
        )
        parser.add_argument(
            "--hash-password",
            action="store_true",
            help="read a password and print its hash for ui_users, then exit",
        )
        parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: Application) -> int:
    """``pinball ui``: serve until SIGTERM or Ctrl-C."""
    if args.hash_password:
        return _print_hash()

    config = app.config
    access = access_from_config(config)
    port = config.ui_port if args.port is None else args.port
    address = args.bind
    if address is None:
        address = "" if access.password_logins else LOCALHOST
    if access.open and not _is_loopback(address):
        raise ConfigError(
            f"the UI has no users, so it serves localhost only and will not listen "
            f"on {address or 'every address'}; set ui_users (with password hashes "
            "from `pinball ui --hash-password`) or ui_trusted_header first"
        )

    store = app.open_store()
    store.initialize()
    try:
        sockets = tornado.netutil.bind_sockets(port, address or None)
    except OSError as exc:
        store.close()
        raise ServeError(
            f"cannot listen on {address or '*'}:{port} for the UI: {exc.strerror}; "
            "is another UI running there? Choose another with -p or ui_port"
        ) from exc
    bound = sockets[0].getsockname()
    listen = f"{address or '*'}:{bound[1]}"
    ui = build_ui(app, store, access=access, listen=listen)
    if access.open:
        log.warning(
            "no ui_users configured: the UI serves localhost only, and whoever "
            "reaches it is an admin"
        )
    if access.cookie_secret_generated and not access.open:
        log.info("ui_cookie_secret is not set: logins end when the UI restarts")
    log.info(
        "UI at http://%s:%d/ (master %s)", address or "*", bound[1], ui.probe.address
    )

    stop = threading.Event()
    start_warm_up(ui, stop)
    try:
        asyncio.run(_serve(make_app(ui), sockets))
    finally:
        stop.set()
        close_ui(ui)
        store.close()
    return 0


async def _serve(application: Any, sockets: list[Any]) -> None:
    server = tornado.httpserver.HTTPServer(application, xheaders=False)
    server.add_sockets(sockets)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("UI stopping")
    server.stop()
    await server.close_all_connections()


def _is_loopback(address: str) -> bool:
    if address in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _print_hash() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("pinball: error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("pinball: error: the password is empty", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
