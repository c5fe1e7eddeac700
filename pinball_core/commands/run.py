"""``pinball run``: master, scheduler, workers and UI from one command.

For a laptop or a small team: every service runs as its own ``pinball``
process, supervised, with their output in one stream. Production runs the
same services as separate commands (``pinball -c CONFIG master`` and so on);
nothing here behaves differently from them.

``run`` refuses to start beside another Pinball on the same config (the
master's port or store, or the UI's port, taken) before it starts or changes
anything. SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) all stop
the services in the reverse of their start order, and ``run`` then exits 0,
as a service stopped as asked does; a second one stops the running jobs too.
Killed outright, ``run`` takes its services with it: the workers stop their
running jobs at once and the master records that before it stops (see
:func:`~pinball_core.supervisor.follow_supervisor`).
"""

import argparse
import concurrent.futures
import errno
import functools
import logging
import signal
import subprocess
from types import FrameType
from typing import Any, Final

import tornado.netutil

from pinball_core.errors import ServeError, StoreError
from pinball_core.supervisor import (
    Service,
    ServiceFailed,
    Supervisor,
    master_ready,
    pinball_argv,
)

log = logging.getLogger(__name__)

#: The services ``run`` can start, in start order; they stop in the reverse
#: order, so the scheduler starts no instance while the workers drain.
SERVICES: Final = ("master", "workers", "scheduler", "ui")

# Exit code when a service cannot start.
_FAILED: Final = 1


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "run",
        help="run master, scheduler, workers and UI together",
        description="Start the master, then the workers, the scheduler and the "
        "UI as child processes, restart any that dies, and stop them all on "
        "Ctrl-C, SIGTERM or SIGHUP: UI and scheduler first, then the workers, "
        "whose running jobs finish first (Ctrl-C again, or --abort-running, "
        "stops them; they run again at the next start), the master last.",
    )
    parser.add_argument(
        "--without",
        action="append",
        choices=SERVICES[1:],
        default=[],
        metavar="SERVICE",
        help="do not start this service (scheduler, workers or ui); repeatable",
    )
    parser.add_argument(
        "--start",
        action="append",
        default=[],
        metavar="WORKFLOW",
        help="start an instance of this workflow once everything runs; 'all' "
        "starts every workflow the parser defines; repeatable",
    )
    parser.add_argument(
        "--no-reschedule",
        action="store_true",
        help="do not write the schedules from the definitions at start (by "
        "default `workflow reschedule` runs once the master is up)",
    )
    parser.add_argument(
        "--abort-running",
        action="store_true",
        help="on stop, stop running jobs instead of letting them finish; they "
        "run again when workers next run, without using up max_attempts",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: Any) -> int:
    config = app.config
    services = _services(args, app)
    _refuse_if_taken(app, {service.name for service in services})
    supervisor = Supervisor(services)
    if not args.no_reschedule and any(s.name == "scheduler" for s in services):
        # Schedules are written once the master answers, before the
        # scheduler starts, so it finds them on its first pass.
        services[0].after_ready = functools.partial(_one_shot, supervisor, app)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        again = "they run again at the next start"
        if supervisor.stopping.is_set():
            supervisor.say("pinball", f"stopping running jobs too; {again}")
        elif args.abort_running:
            supervisor.say("pinball", f"stopping, running jobs too; {again}")
        else:
            supervisor.say(
                "pinball", "stopping; running jobs finish first (again to stop them)"
            )
        supervisor.request_stop(abort_jobs=args.abort_running)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    try:
        supervisor.start()
    except ServiceFailed as exc:
        supervisor.say("pinball", f"cannot run: {exc}")
        return _FAILED
    if supervisor.stopping.is_set():
        return supervisor.watch()

    if "ui" in {service.name for service in services}:
        supervisor.say(
            "pinball", f"UI at http://{config.ui_host or 'localhost'}:{config.ui_port}"
        )
    _start_instances(supervisor, app, _to_start(args.start, app))
    return supervisor.watch()


def _services(args: argparse.Namespace, app: Any) -> list[Service]:
    config = app.config
    available = app.commands or set(SERVICES)
    services = []
    for name in SERVICES:
        if name in args.without:
            continue
        if name not in available:
            log.warning(
                "no %s: no installed plugin adds `pinball %s`; running without it",
                name,
                name,
            )
            continue
        argv = pinball_argv(app.config_path, *_debug(app), name)
        if name == "master":
            ready = master_ready(
                config.master_host, config.master_port, config.master_secret
            )
            services.append(Service(name, argv, ready))
        elif name == "workers":
            services.append(Service(name, argv, stop_signals=2, kill_after_sec=None))
        else:
            services.append(Service(name, argv))
    return services


def _refuse_if_taken(app: Any, names: set[str]) -> None:
    """Refuse to run beside another Pinball on this config, before anything.

    A second ``run`` on the same config would otherwise reschedule and start
    workflows on the first one's master, and its workers and scheduler would
    work for it, before its own master failed to listen. The check and the
    start are not one step: a master started in between is still refused,
    by the master itself, only later.

    :raises ServeError: naming what is taken and how to get past it.
    :raises PluginLoadError: if the store plugin cannot be loaded.
    """
    config = app.config
    where = app.config_path or "the config"

    # The ports first: binding one leaves nothing behind, and a refusal must
    # not leave a home folder or lock file that were not there before.
    if "master" in names:
        _refuse_if_port_taken(
            config.master_host,
            config.master_port,
            "master_port",
            holders="another `pinball run` or `pinball master` on this config",
            fix=f"stop it first, or set another master_port in {where}",
        )
    if "ui" in names:
        _refuse_if_port_taken(
            "localhost",
            config.ui_port,
            "ui_port",
            holders="another `pinball run` or `pinball ui`",
            fix=f"stop it first, set another ui_port in {where}, or leave the UI "
            "out with --without ui",
        )

    if "master" in names:
        store = app.open_store()
        try:
            store.check_master_lock()
        except StoreError as exc:
            raise ServeError(f"cannot run: {exc}") from exc
        finally:
            store.close()


def _refuse_if_port_taken(
    host: str, port: int, key: str, *, holders: str, fix: str
) -> None:
    """Raise ServeError if ``port`` (the config's ``key``) cannot be listened
    on at ``host``.

    Bound the way the services bind theirs, so a port one of them could use
    is never refused; the socket is closed again at once.
    """
    if port == 0:
        return
    try:
        sockets = tornado.netutil.bind_sockets(port, address=host)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"cannot run: {key} {port} on {host} is taken, by {holders} "
                f"perhaps; {fix}"
            ) from exc
        raise ServeError(
            f"cannot run: cannot listen on {host}:{port} ({key}): {exc.strerror or exc}"
        ) from exc
    for sock in sockets:
        sock.close()


def _debug(app: Any) -> list[str]:
    return ["--debug"] if app.debug else []


def _to_start(asked: list[str], app: Any) -> list[str]:
    if "all" not in asked:
        return asked
    config = app.config
    parser = app.plugins.make_parser(config.parser, config.parser_params)
    rest = [name for name in asked if name != "all"]
    return rest + [name for name in parser.workflow_names() if name not in rest]


def _one_shot(
    supervisor: Supervisor, app: Any, *command: str, name: str = "reschedule"
) -> None:
    """Run ``pinball workflow reschedule`` (or ``command``) as a user would."""
    argv = pinball_argv(
        app.config_path, *_debug(app), *(command or ("workflow", "reschedule", "-f"))
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        supervisor.say(name, line)


def _start_instances(supervisor: Supervisor, app: Any, workflows: list[str]) -> None:
    """Start one instance of each workflow through ``pinball workflow start``.

    In parallel: each command is a process of its own that spends most of its
    time starting Python and loading plugins.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for workflow in workflows:
            pool.submit(
                _one_shot,
                supervisor,
                app,
                "workflow",
                "start",
                "-w",
                workflow,
                "-f",
                name="start",
            )
