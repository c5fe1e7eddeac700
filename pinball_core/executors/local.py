"""The ``local`` executor: each execution is a process group of the worker.

A ``shell`` job runs as ``/bin/sh -c <command>``; a ``python`` job runs its
``module:function`` in a child interpreter (:mod:`pinball_core.executors.call`),
so a crash or a leak stays in the child. Either way the child starts a new
session, so its process group holds everything the job starts and can be
stopped as one: SIGTERM first, SIGKILL after a grace period. Its stdin is
``/dev/null`` and its environment is the worker's plus the spec's ``env``.

Stdout and stderr are copied into ``<log_dir>/<job>.<execution>.stdout``
and ``.stderr`` as they come, and the ``PINBALL:`` lines in them collected
(:mod:`pinball_core.executors.magic`), by the one thread that watches every
execution of the worker process (:mod:`pinball_core.executors.watcher`); a
pidfd tells that thread when the job's main process ends (where the system
has no pidfds, a thread per execution waits for it instead). The execution
ends once the output is read to the end, or after a bounded wait if something
the job started keeps the output open; whatever the job left running in its
process group is then killed, since nothing would ever wait for it.

Starting a job costs what the process itself costs: the child is made with
vfork (no ``preexec_fn``; the new session is asked for with
``start_new_session``) and no thread is started for it.
"""

import asyncio
import atexit
import io
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Final

from pinball_core import hookimpl
from pinball_core.components import ExecutionSpec, Executor
from pinball_core.errors import ConfigError
from pinball_core.executors import watcher
from pinball_core.executors.magic import PREFIX, MagicLineCollector
from pinball_core.executors.output import StreamCopier

log = logging.getLogger(__name__)

#: The job kinds the local executor runs.
KINDS: Final = ("shell", "python")

#: The log kinds of an execution, each a file and a stream of the child.
LOG_KINDS: Final = ("stdout", "stderr")

#: Seconds the output may stay open after the job's main process has ended.
DEFAULT_DRAIN_TIMEOUT_SEC: Final = 5.0

# Suffixes tried to find log file names that no earlier execution used.
_MAX_LOG_NAME_ATTEMPTS = 100

# Executions whose process group may still hold processes, for the atexit hook.
_running: set["LocalExecution"] = set()
_running_lock = threading.Lock()


class LocalExecutor:
    """Runs job executions as child process groups of the worker.

    :param drain_timeout_sec:
        How long to keep reading a job's output after its main process ended,
        when something it started keeps stdout or stderr open.
    """

    def __init__(self, *, drain_timeout_sec: float = DEFAULT_DRAIN_TIMEOUT_SEC) -> None:
        self.drain_timeout_sec = drain_timeout_sec

    def start(self, spec: ExecutionSpec) -> "LocalExecution":
        """Start one execution of a job; its handle.

        :raises ValueError: if the spec's kind or job name cannot be run here.
        :raises OSError: if the log files or the process cannot be created.
        """
        argv = _command_line(spec)
        log_files = _create_log_files(spec)
        try:
            # Unbuffered: the watcher reads what the pipe holds, never more.
            process = subprocess.Popen(
                argv,
                bufsize=0,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **spec.env},
                start_new_session=True,
            )
        except BaseException:
            _discard(log_files)
            raise

        return LocalExecution(spec, process, log_files, self.drain_timeout_sec)


class LocalExecution(MagicLineCollector):
    """One execution running as a process group; the handle the worker holds.

    Made by :meth:`LocalExecutor.start`, not by hand. Besides the
    :class:`~pinball_core.components.ExecutionHandle` members it has
    :meth:`snapshot`, which copies the event attributes and properties at
    one moment, and :attr:`pid`, the id of the main process and of its
    process group.

    Everything after the start happens on the watcher loop's thread
    (:mod:`pinball_core.executors.watcher`); :meth:`wait` and :meth:`abort`
    are safe from any thread.
    """

    #: Log kind (``stdout``, ``stderr``) to the path of its file.
    logs: dict[str, str]

    def __init__(
        self,
        spec: ExecutionSpec,
        process: "subprocess.Popen[bytes]",
        log_files: Mapping[str, IO[bytes]],
        drain_timeout_sec: float,
    ) -> None:
        """:meta private:"""
        label = (
            f"job {spec.workflow}/{spec.instance}/{spec.job} execution {spec.execution}"
        )
        super().__init__(label)

        #: What was started.
        self.spec: Final = spec
        #: Names the execution in log messages.
        self.label: Final = label
        #: The main process, and its process group (it leads a new session).
        self.pid: Final = process.pid
        self.logs = {kind: str(file.name) for kind, file in log_files.items()}

        self._process = process
        self._drain_timeout_sec = drain_timeout_sec
        self._done = threading.Event()
        self._returncode: int | None = None

        # Guards signalling the group against reaping its leader: the group
        # id is the leader's pid, which the system may reuse once it is reaped.
        self._group_lock = threading.Lock()
        self._reaped = False
        # When an abort sends (or sent) SIGKILL, on the monotonic clock, which
        # is also the loop's clock.
        self._kill_at: float | None = None

        # The rest is used on the loop's thread only.
        self._loop = watcher.loop()
        self._kill_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        # When the main process ended (monotonic), and whether its status was
        # still there to collect.
        self._exited_at: float | None = None
        self._collected = True
        streams = {"stdout": process.stdout, "stderr": process.stderr}
        self._open: list[StreamCopier] = []
        for kind, file in log_files.items():
            source = streams[kind]
            assert source is not None  # both are pipes
            name = f"{kind} of {label}"
            self._open.append(StreamCopier(name, source, file, self.add_line, PREFIX))
        # A descriptor that becomes readable when the main process ends;
        # opened before anything can reap the process, so it is the job's.
        self._pidfd = _open_pidfd(self.pid)

        log.debug("%s started as process group %d", label, self.pid)
        with _running_lock:
            _running.add(self)
        self._loop.call_soon_threadsafe(self._guard, self._attach)

    def __repr__(self) -> str:
        state = "running" if self._returncode is None else f"exit {self._returncode}"
        return f"<LocalExecution {self.label} pid={self.pid} {state}>"

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds; the exit code if it has ended.

        The code comes only once the output is in the log files and every
        ``PINBALL:`` line in it is collected. A process killed by a signal
        ends with the negative signal number.
        """
        if not self._done.wait(timeout):
            return None
        return self._returncode

    def abort(self, grace_sec: float = 10.0) -> None:
        """Stop the execution and everything it started; returns at once.

        Sends SIGTERM to the process group now and SIGKILL after
        ``grace_sec`` seconds. Aborting again can only bring the SIGKILL
        closer; aborting an execution that has ended does nothing.
        """
        grace_sec = max(grace_sec, 0.0)
        kill_at = time.monotonic() + grace_sec
        with self._group_lock:
            if self._reaped or (self._kill_at is not None and self._kill_at <= kill_at):
                return
            first = self._kill_at is None
            self._kill_at = kill_at
            if first:
                self._signal_group(signal.SIGTERM)
        self._loop.call_soon_threadsafe(self._guard, self._arm_kill)
        if first:
            log.info(
                "%s: sent SIGTERM to process group %d, SIGKILL in %g s",
                self.label,
                self.pid,
                grace_sec,
            )
        else:
            log.info("%s: SIGKILL moved to %g s from now", self.label, grace_sec)

    # -- On the loop's thread ---------------------------------------------------

    def _guard(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step; should it fail, end the execution rather than hang it.

        A worker waits on :meth:`wait` while renewing its lease: an execution
        that never ends would hold its job for good.
        """
        try:
            step(*args)
        except Exception:
            log.exception("%s: watching it failed; killing it", self.label)
            self._finish(drained=False, failed=True)

    def _attach(self) -> None:
        for copier in self._open:
            self._loop.add_reader(copier.fileno(), self._guard, self._on_output, copier)
        if self._pidfd is not None:
            self._loop.add_reader(self._pidfd, self._guard, self._on_pidfd)
        else:
            threading.Thread(
                target=self._wait_in_thread,
                name=f"pinball-{self.spec.job}.{self.spec.execution}-wait",
                daemon=True,
            ).start()

    def _on_output(self, copier: StreamCopier) -> None:
        if copier.read():
            return
        self._close_stream(copier)
        if self._exited_at is not None and not self._open:
            self._finish(drained=True)

    def _on_pidfd(self) -> None:
        try:
            # WNOWAIT leaves the process a zombie, so its pid, which is the
            # group id, cannot be reused while the group may still be signalled.
            ended = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            ended, collected = None, False
        else:
            if ended is None:
                return  # not ended after all; the pidfd will say when
            collected = True
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._on_exit(collected)

    def _wait_in_thread(self) -> None:
        """Without pidfds: wait for the main process on a thread of its own."""
        try:
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            collected = True
        except ChildProcessError:
            collected = False
        self._loop.call_soon_threadsafe(self._guard, self._on_exit, collected)

    def _on_exit(self, collected: bool) -> None:
        """The main process ended: finish once its output is read, or in time."""
        self._exited_at = time.monotonic()
        self._collected = collected
        if not collected:
            # Reaped by someone else: the pid may already belong to another
            # process, so the group must not be signalled any more.
            with self._group_lock:
                self._reaped = True
        if not self._open:
            self._finish(drained=True)
        else:
            self._arm_drain()

    def _arm_drain(self) -> None:
        """Time the end of the wait for output that something keeps open.

        The time allowed counts from the end of the main process, or from the
        SIGKILL of an abort if that comes later, so an aborted job's other
        processes get their whole grace period to finish writing.
        """
        assert self._exited_at is not None
        deadline = max(self._exited_at, self._kill_at or 0.0) + self._drain_timeout_sec
        self._drain_timer = self._loop.call_at(deadline, self._guard, self._on_drain)

    def _on_drain(self) -> None:
        self._drain_timer = None
        if self._done.is_set():
            return
        assert self._exited_at is not None
        deadline = max(self._exited_at, self._kill_at or 0.0) + self._drain_timeout_sec
        if time.monotonic() < deadline:
            self._arm_drain()  # an abort moved it
        else:
            self._finish(drained=False)

    def _arm_kill(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        if self._done.is_set() or self._kill_at is None:
            return
        self._kill_timer = self._loop.call_at(
            self._kill_at, self._guard, self._kill_group
        )

    def _finish(self, *, drained: bool, failed: bool = False) -> None:
        """Kill what the job left running, collect the exit code and end."""
        if self._done.is_set():
            return
        for timer in (self._drain_timer, self._kill_timer):
            if timer is not None:
                timer.cancel()
        returncode = self._reap()
        # What is still open is held by something that outlived the job, or
        # by what the SIGKILL just ended: take what it wrote, then stop.
        for copier in list(self._open):
            try:
                if not failed:
                    copier.read_waiting()
            finally:
                self._close_stream(copier)
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        with _running_lock:
            _running.discard(self)

        if failed:
            # Its output may be cut short: not a success, whatever it said.
            returncode = returncode or 1
        elif not self._collected:
            # Popen reports 0 for a status it could not collect; a job whose
            # outcome is unknown must not count as a success.
            log.error(
                "%s: its exit status was collected outside the executor (is "
                "SIGCHLD ignored in the worker?); counting it as exit code 1",
                self.label,
            )
            returncode = 1
        if not drained and not failed:
            log.warning(
                "%s: its main process ended but something it started kept its "
                "output open for %g s more; killed its process group and stopped "
                "reading",
                self.label,
                self._drain_timeout_sec,
            )

        log.debug("%s ended with exit code %d", self.label, returncode)
        self._returncode = returncode
        self._done.set()

    def _close_stream(self, copier: StreamCopier) -> None:
        self._loop.remove_reader(copier.fileno())
        self._open.remove(copier)
        copier.close()

    # -- On any thread -----------------------------------------------------------

    def _kill_group(self) -> None:
        with self._group_lock:
            if not self._reaped:
                self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the job's process group; hold ``_group_lock``."""
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass  # every process of the group has ended
        except OSError as exc:
            log.warning(
                "%s: cannot send %s to process group %d: %s",
                self.label,
                signum.name,
                self.pid,
                exc,
            )

    def _reap(self) -> int:
        """Kill what the job left running, then collect its exit code."""
        with self._group_lock:
            if not self._reaped:
                self._signal_group(signal.SIGKILL)
            returncode = self._process.wait()
            self._reaped = True
        return returncode


class LocalExecutorPlugin:
    """Provides the ``local`` executor to the plugin manager.

    Options: ``drain_timeout_sec``, seconds to keep reading a job's output
    after its main process ended (default 5).
    """

    @hookimpl
    def pinball_make_executor(self, options: Mapping[str, Any]) -> Executor:
        unknown = sorted(set(options) - {"drain_timeout_sec"})
        if unknown:
            raise ConfigError(
                f"the local executor has no option {unknown[0]!r}; "
                f"the one it takes is drain_timeout_sec"
            )
        drain = options.get("drain_timeout_sec", DEFAULT_DRAIN_TIMEOUT_SEC)
        if isinstance(drain, bool) or not isinstance(drain, int | float) or drain < 0:
            raise ConfigError(
                f"the local executor's drain_timeout_sec must be a number of "
                f"seconds, 0 or more; got {drain!r}"
            )
        return LocalExecutor(drain_timeout_sec=float(drain))


def _command_line(spec: ExecutionSpec) -> list[str]:
    if spec.kind == "shell":
        return ["/bin/sh", "-c", spec.command]
    if spec.kind == "python":
        # -u: PINBALL: lines must reach the worker while the job runs, not
        # when a pipe buffer happens to fill.
        module = "pinball_core.executors.call"
        return [sys.executable, "-u", "-m", module, spec.command]
    raise ValueError(
        f"job {spec.job!r} has kind {spec.kind!r}, which the local executor "
        f"cannot run; use one of {', '.join(KINDS)}"
    )


def _create_log_files(spec: ExecutionSpec) -> dict[str, IO[bytes]]:
    """New, empty log files for one execution, under names no other one used.

    The name is ``<job>.<execution>``; should an earlier execution have left
    files of that name (a rerun of a lost execution writes to the same
    folder), a counter is added rather than mixing two runs in one file.
    """
    if not spec.job or spec.job in (".", "..") or "/" in spec.job:
        raise ValueError(f"job name {spec.job!r} cannot be used as a log file name")
    directory = pathlib.Path(spec.log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    # Names joined as text and files made as raw FileIO: pathlib and open()
    # would cost more than creating the file, on the way to every job.
    folder = str(directory)

    base = f"{spec.job}.{spec.execution}"
    for attempt in range(_MAX_LOG_NAME_ATTEMPTS):
        stem = base if attempt == 0 else f"{base}.{attempt}"
        files: dict[str, IO[bytes]] = {}
        try:
            for kind in LOG_KINDS:
                # Kept open: the copier of each stream closes its file at the
                # end. Unbuffered, so each chunk is in the file once read.
                files[kind] = io.FileIO(f"{folder}/{stem}.{kind}", "xb")
        except FileExistsError:
            _discard(files)
            continue
        except BaseException:
            _discard(files)
            raise
        return files
    raise FileExistsError(
        f"{directory} already holds logs {base}.* to {base}.{attempt}.*; "
        f"remove old logs of job {spec.job!r} from it"
    )


def _open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``; None where the system has none (Linux before 5.3,
    other systems, sandboxes that refuse it): a thread waits instead."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError as exc:
        log.debug("no pidfd for process %d (%s); a thread waits for it", pid, exc)
        return None
    return fd


def _discard(files: Mapping[str, IO[bytes]]) -> None:
    """Close and remove log files that no execution wrote."""
    for file in files.values():
        file.close()
        pathlib.Path(str(file.name)).unlink(missing_ok=True)


def _forget_after_fork() -> None:
    """In a forked child: the parent's jobs are the parent's to kill."""
    global _running_lock
    _running_lock = threading.Lock()
    _running.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@atexit.register
def _kill_running() -> None:
    """Kill what is left of the jobs when the worker process exits.

    Runs only on a normal interpreter exit; a worker killed by a signal it
    does not handle leaves its jobs running, which is why the worker should
    turn SIGTERM into an orderly stop.
    """
    with _running_lock:
        running = list(_running)
    if running:
        log.warning("the worker is exiting; killing %d running job(s)", len(running))
    for execution in running:
        execution._kill_group()
