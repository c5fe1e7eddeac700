"""Running Pinball's services as child processes of one command.

``pinball run`` starts the master, then the scheduler, the workers and the UI,
each as its own ``pinball`` process, exactly as an operator would start them
one by one. A :class:`Supervisor` merges their output into one stream, each
line prefixed with the service's name, restarts a service that dies (with a
growing delay, so a service that cannot start does not spin; one that ends
with code 0 on its own, as workers told to leave by an EXIT signal do, is
reported and left ended), and stops them in the reverse of their start order,
which loses no work: the UI and the scheduler first, then the workers (which
finish or abort their running jobs), the master last.

Children run in their own process groups, so a Ctrl-C in the terminal reaches
only the supervisor, which then asks each child once; a worker that received
the terminal's SIGINT and the supervisor's SIGTERM would take the second as
"abort the running jobs". A supervisor that dies without stopping them (``kill
-9``, a crash) must not leave them running, holding their ports: each child
calls :func:`follow_supervisor` at start and gets :data:`SUPERVISOR_GONE`
when it ends (see there for what each service then does).
"""

import contextlib
import ctypes
import dataclasses
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO, Final

from pinball_core.protocol import SECRET_HEADER

log = logging.getLogger(__name__)

#: A child that ran this long before dying restarts without delay growth.
STABLE_AFTER_SEC: Final = 60.0

#: The longest wait before restarting a child that keeps dying.
MAX_RESTART_DELAY_SEC: Final = 30.0

#: Exit code of a ``pinball`` command refused for its usage or config.
USAGE_OR_CONFIG_EXIT: Final = 2

#: Set in each child's environment to the supervisor's pid; read (and removed,
#: so the jobs a worker runs do not inherit it) by :func:`follow_supervisor`.
SUPERVISOR_PID_ENV: Final = "PINBALL_SUPERVISOR_PID"

#: How often a child checks for its supervisor where Linux's parent-death
#: signal is not available.
PARENT_CHECK_SEC: Final = 1.0

#: The signal a child gets when its supervisor has ended. Not SIGTERM, which
#: tells a worker to finish its running jobs: with the supervisor gone nobody
#: waits for them, and the master may be gone before their end is recorded.
SUPERVISOR_GONE: Final = signal.SIGUSR1

# prctl option from <linux/prctl.h>: a signal for when the parent ends.
_PR_SET_PDEATHSIG: Final = 1


@dataclasses.dataclass
class Service:
    """One service to run: its name and the command line that runs it.

    ``ready`` tells whether a freshly started child is serving; the supervisor
    starts the next service only then. ``stop_signals`` is how many SIGTERMs
    a stop sends: the workers take a second one as "abort the running jobs".
    """

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool] | None = None
    stop_signals: int = 1
    #: Seconds after the first SIGTERM before SIGKILL; None waits for ever
    #: (workers finishing their jobs).
    kill_after_sec: float | None = 30.0
    #: Called once the service is first ready, before the next one starts.
    after_ready: Callable[[], None] | None = None


@dataclasses.dataclass
class _Child:
    service: Service
    process: subprocess.Popen[bytes]
    started: float
    reader: threading.Thread
    restarts: int = 0


class ServiceFailed(Exception):
    """A service could not start; its output said why."""


class Supervisor:
    """Start, watch, restart and stop a list of services.

    :param services:
        In start order; they are stopped in the reverse order.
    :param out:
        Where the merged output goes (default ``sys.stderr``).
    :param ready_timeout_sec:
        How long a service may take to become ready before start-up fails.
    """

    def __init__(
        self,
        services: Sequence[Service],
        *,
        out: IO[str] | None = None,
        ready_timeout_sec: float = 60.0,
    ) -> None:
        self.services = list(services)
        self._out = out if out is not None else sys.stderr
        # Reentrant: the signal handler says why it stops, and may run in
        # the main thread while that thread is in the middle of a line.
        self._out_lock = threading.RLock()
        self._ready_timeout = ready_timeout_sec
        self._children: dict[str, _Child] = {}
        # When each dead child may be started again.
        self._restart_at: dict[str, float] = {}
        self._restarts: dict[str, int] = {}
        # Services that ended on their own with code 0: not restarted.
        self._ended: set[str] = set()
        self.stopping = threading.Event()
        self.abort_jobs = threading.Event()

    def start(self) -> None:
        """Start every service in order, each once the previous is ready.

        :raises ServiceFailed: if one exits or is not ready in time; the ones
            already started are stopped again.
        """
        for service in self.services:
            if self.stopping.is_set():
                # Asked to stop while starting: start no more.
                return
            try:
                self._spawn(service)
                self._wait_ready(service)
                if service.after_ready is not None and not self.stopping.is_set():
                    service.after_ready()
            except ServiceFailed:
                self.stop()
                raise
        names = ", ".join(service.name for service in self.services)
        self.say("pinball", f"running: {names}")

    def watch(self, poll_sec: float = 0.5) -> int:
        """Restart dead services until :attr:`stopping` is set, or until none
        is left to run; then stop all.

        :returns: 0, or the exit code of a service that refused its config
            (restarting it could not help).
        """
        code = 0
        while not self.stopping.wait(poll_sec):
            code = self._restart_dead()
            if code:
                break
            if not self._children and not self._restart_at:
                self.say("pinball", "no service is left running; stopping")
                break
        self.stop()
        return code

    def stop(self) -> None:
        """Stop every running service, the last started first."""
        self.stopping.set()
        for service in reversed(self.services):
            child = self._children.get(service.name)
            if child is not None and child.process.poll() is None:
                self.say("pinball", f"stopping {service.name}")
                self._terminate(child)
            self._children.pop(service.name, None)

    def request_stop(self, abort_jobs: bool = False) -> None:
        """Ask :meth:`watch` to stop everything; safe from a signal handler.

        A second request while stopping aborts the workers' running jobs.
        """
        if abort_jobs or self.stopping.is_set():
            self.abort_jobs.set()
        self.stopping.set()

    def say(self, name: str, line: str) -> None:
        """Write one line of the merged stream, prefixed with ``name``.

        A stream that cannot be written any more (the terminal was closed,
        the reader of a pipe went away) drops the line: the stop that
        follows a closed terminal must go on, and the children's output must
        still be drained, or they block on a full pipe.
        """
        with self._out_lock:
            try:
                self._out.write(f"{name:<9} | {line}\n")
                self._out.flush()
            except OSError:
                pass

    # -- one child -------------------------------------------------------------

    def _spawn(self, service: Service) -> None:
        # Called from the main thread only (start, watch): Linux sends the
        # parent-death signal when the thread that started the child ends,
        # and the main thread lasts as long as the supervisor.
        process = subprocess.Popen(
            list(service.argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            env={**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())},
        )
        reader = threading.Thread(
            target=self._copy_output,
            args=(service.name, process),
            name=f"output-{service.name}",
            daemon=True,
        )
        reader.start()
        self._children[service.name] = _Child(
            service, process, time.monotonic(), reader
        )
        log.debug("started %s as pid %d", service.name, process.pid)

    def _copy_output(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.say(name, raw.decode(errors="backslashreplace").rstrip("\n"))
        process.stdout.close()

    def _wait_ready(self, service: Service) -> None:
        child = self._children[service.name]
        deadline = time.monotonic() + self._ready_timeout
        while not self.stopping.is_set():
            code = child.process.poll()
            if code is not None:
                child.reader.join(timeout=5)
                raise ServiceFailed(
                    f"{service.name} exited with code {code} while starting; "
                    "its output above says why"
                )
            if service.ready is None or service.ready():
                return
            if time.monotonic() > deadline:
                self._terminate(child)
                raise ServiceFailed(
                    f"{service.name} was not ready after {self._ready_timeout:.0f} s"
                )
            time.sleep(0.1)

    def _restart_dead(self) -> int:
        now = time.monotonic()
        for service in self.services:
            child = self._children.get(service.name)
            if child is not None:
                code = child.process.poll()
                if code is None:
                    continue
                child.reader.join(timeout=5)
                del self._children[service.name]
                ran = now - child.started
                if code == USAGE_OR_CONFIG_EXIT and ran < STABLE_AFTER_SEC:
                    self.say(
                        "pinball",
                        f"{service.name} refused its command line or config "
                        f"(exit code {code}); stopping everything",
                    )
                    return code
                if code == 0:
                    # A clean end nobody here asked for: the service was told
                    # to leave (workers by an EXIT signal) or stopped by hand.
                    # Started again it would only leave again.
                    self._ended.add(service.name)
                    others = "; the others run on" if self._children else ""
                    self.say(
                        "pinball",
                        f"{service.name} ended with code 0 though not asked to "
                        "stop (its output above says why); not restarting it"
                        f"{others}",
                    )
                    continue
                count = (
                    0
                    if ran >= STABLE_AFTER_SEC
                    else self._restarts.get(service.name, 0)
                )
                delay = min(MAX_RESTART_DELAY_SEC, 2.0**count)
                self._restarts[service.name] = count + 1
                self._restart_at[service.name] = now + delay
                self.say(
                    "pinball",
                    f"{service.name} exited with code {code} after {ran:.0f} s; "
                    f"restarting in {delay:.0f} s",
                )
                continue
            if service.name in self._ended:
                continue
            if now >= self._restart_at.get(service.name, 0.0):
                self._restart_at.pop(service.name, None)
                self._spawn(service)
                self.say("pinball", f"restarted {service.name}")
        return 0

    def _terminate(self, child: _Child) -> None:
        """SIGTERM the child and wait for it, however long it takes.

        Workers may be finishing long jobs. Once :attr:`abort_jobs` is set
        (by the option, or by a second Ctrl-C while waiting here), a service
        with ``stop_signals`` 2 gets its second SIGTERM and stops within its
        grace period.
        """
        process = child.process
        service = child.service
        sent = 0
        kill_at = None
        if service.kill_after_sec is not None:
            kill_at = time.monotonic() + service.kill_after_sec
        while True:
            limit = service.stop_signals if self.abort_jobs.is_set() else 1
            if sent < limit:
                process.send_signal(signal.SIGTERM)
                sent += 1
            try:
                process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if kill_at is not None and time.monotonic() > kill_at:
                    self.say("pinball", f"{service.name} ignored SIGTERM; killing it")
                    process.kill()
        child.reader.join(timeout=5)


@dataclasses.dataclass
class _FollowState:
    """What :func:`follow_supervisor` set up in this process."""

    supervised: bool = False
    #: What to do when the supervisor ends; None sends SIGTERM.
    reaction: Callable[[], None] | None = None
    gone: bool = False


_state = _FollowState()


def follow_supervisor() -> bool:
    """Get :data:`SUPERVISOR_GONE` when the ``pinball run`` that started this
    process ends.

    Every ``pinball`` command calls this at start; it does nothing unless
    :data:`SUPERVISOR_PID_ENV` names the supervisor. On Linux the kernel sends
    the signal (``prctl(PR_SET_PDEATHSIG)``) even when the supervisor was
    killed with SIGKILL; elsewhere a thread checks the parent every
    :data:`PARENT_CHECK_SEC`. The signal points stdout and stderr at
    ``/dev/null``, since the pipe they wrote to has lost its reader and every
    line would fail, and then runs what the command set with
    :func:`when_supervisor_gone`, by default a SIGTERM to this process, so
    that the service stops the way it does when asked.

    :returns: False if the supervisor had already ended when this process
        started; the command should then not run.
    """
    value = os.environ.pop(SUPERVISOR_PID_ENV, None)
    if value is None or not value.isdigit():
        return True
    supervisor = int(value)
    signal.signal(SUPERVISOR_GONE, _on_supervisor_gone)
    if not _signal_on_parent_death(SUPERVISOR_GONE):
        threading.Thread(
            target=_watch_parent,
            args=(supervisor,),
            name="supervisor-watch",
            daemon=True,
        ).start()
    # Checked after the signal is set up, so a supervisor that ends in
    # between is not missed.
    if os.getppid() != supervisor:
        log.warning(
            "the pinball run that started this (pid %d) has ended; not starting",
            supervisor,
        )
        return False
    _state.supervised = True
    return True


def supervised() -> bool:
    """Whether this process follows a live ``pinball run`` (see
    :func:`follow_supervisor`)."""
    return _state.supervised


def when_supervisor_gone(reaction: Callable[[], None]) -> None:
    """Run ``reaction`` instead of a SIGTERM when the supervisor ends.

    It runs in a signal handler, in the main thread, after the output has
    been pointed at ``/dev/null``: it should set events (or send signals),
    not wait. A command that does not call this stops as on SIGTERM.
    """
    _state.reaction = reaction


def _on_supervisor_gone(signum: int, _frame: FrameType | None) -> None:
    if _state.gone:
        return
    _state.gone = True
    _mute_output()
    if _state.reaction is not None:
        _state.reaction()
    else:
        os.kill(os.getpid(), signal.SIGTERM)


def _mute_output() -> None:
    """Point fds 1 and 2 at ``/dev/null``, for good.

    Whatever the Python streams still buffer goes there too, so no write
    fails and logging has no errors to report.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def _signal_on_parent_death(signum: int) -> bool:
    """Ask Linux to send ``signum`` when the parent ends; False if it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    if prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        log.debug("prctl(PR_SET_PDEATHSIG): %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def _watch_parent(supervisor: int) -> None:
    while os.getppid() == supervisor:
        time.sleep(PARENT_CHECK_SEC)
    os.kill(os.getpid(), SUPERVISOR_GONE)


def master_ready(host: str, port: int, secret: str | None) -> Callable[[], bool]:
    """A readiness check: the master answers ``GET /v1/health``."""
    headers = {} if secret is None else {SECRET_HEADER: secret}

    def ready() -> bool:
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", "/v1/health", headers=headers)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    return ready


def pinball_argv(config: str | os.PathLike[str] | None, *command: str) -> list[str]:
    """The command line of a ``pinball`` child with this interpreter."""
    argv = [sys.executable, "-m", "pinball_core"]
    if config is not None:
        argv += ["-c", os.fspath(config)]
    return [*argv, *command]
