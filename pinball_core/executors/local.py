"""The ``local`` executor: each execution is a process group of the worker.

A ``shell`` job runs as ``/bin/sh -c <command>``; a ``python`` job runs its
``module:function`` in a child interpreter (:mod:`pinball_core.executors.call`),
so a crash or a leak stays in the child. Either way the child starts a new
session, so its process group holds everything the job starts and can be
stopped as one: SIGTERM first, SIGKILL after a grace period. Its stdin is
``/dev/null`` and its environment is the worker's plus the spec's ``env``.

Two threads per execution copy stdout and stderr into
``<log_dir>/<job>.<execution>.stdout`` and ``.stderr`` and collect the
``PINBALL:`` lines (:mod:`pinball_core.executors.magic`); a third waits for
the process. When the job's main process ends, the execution ends once its
output is read to the end, or after a bounded wait if something it started
keeps the output open; whatever the job left running in its process group is
then killed, since nothing would ever wait for it.
"""

import atexit
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, Final

from pinball_core import hookimpl
from pinball_core.components import ExecutionSpec, Executor
from pinball_core.errors import ConfigError
from pinball_core.executors.magic import PREFIX, MagicLineCollector
from pinball_core.executors.output import OutputPump

log = logging.getLogger(__name__)

#: The job kinds the local executor runs.
KINDS: Final = ("shell", "python")

#: The log kinds of an execution, each a file and a stream of the child.
LOG_KINDS: Final = ("stdout", "stderr")

#: Seconds the output may stay open after the job's main process has ended.
DEFAULT_DRAIN_TIMEOUT_SEC: Final = 5.0

# Suffixes tried to find log file names that no earlier execution used.
_MAX_LOG_NAME_ATTEMPTS = 100

# How often the drain checks whether an abort moved its deadline.
_DRAIN_POLL_SEC = 0.25

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
            process = subprocess.Popen(
                argv,
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
        # When an abort sends (or sent) SIGKILL, on the monotonic clock.
        self._kill_at: float | None = None
        self._kill_timer: threading.Timer | None = None

        streams = {"stdout": process.stdout, "stderr": process.stderr}
        self._pumps: list[OutputPump] = []
        for kind, file in log_files.items():
            source = streams[kind]
            assert source is not None  # both are pipes
            name = f"pinball-{spec.job}.{spec.execution}-{kind}"
            self._pumps.append(OutputPump(name, source, file, self.add_line, PREFIX))

        log.debug("%s started as process group %d", label, self.pid)
        with _running_lock:
            _running.add(self)
        for pump in self._pumps:
            pump.start()
        threading.Thread(
            target=self._watch,
            name=f"pinball-{spec.job}.{spec.execution}-wait",
            daemon=True,
        ).start()

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
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self._kill_timer = threading.Timer(grace_sec, self._kill_group)
            self._kill_timer.daemon = True
            self._kill_timer.start()
            if first:
                self._signal_group(signal.SIGTERM)
        if first:
            log.info(
                "%s: sent SIGTERM to process group %d, SIGKILL in %g s",
                self.label,
                self.pid,
                grace_sec,
            )
        else:
            log.info("%s: SIGKILL moved to %g s from now", self.label, grace_sec)

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

    def _watch(self) -> None:
        """Wait for the main process, finish reading its output, then reap it."""
        collected = self._wait_for_exit()
        drained = self._drain(time.monotonic())
        returncode = self._reap()
        with _running_lock:
            _running.discard(self)

        if not collected:
            # Popen reports 0 for a status it could not collect; a job whose
            # outcome is unknown must not count as a success.
            log.error(
                "%s: its exit status was collected outside the executor (is "
                "SIGCHLD ignored in the worker?); counting it as exit code 1",
                self.label,
            )
            returncode = 1
        if not drained:
            log.warning(
                "%s: its main process ended but something it started kept its "
                "output open for %g s more; killed its process group and stopped "
                "reading",
                self.label,
                self._drain_timeout_sec,
            )
        for pump in self._pumps:
            pump.stop()
        for pump in self._pumps:
            pump.join()

        log.debug("%s ended with exit code %d", self.label, returncode)
        self._returncode = returncode
        self._done.set()

    def _wait_for_exit(self) -> bool:
        """Wait until the main process ends; False if its status was lost."""
        try:
            # WNOWAIT leaves the process a zombie, so its pid, which is the
            # group id, cannot be reused while the group may still be signalled.
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            # Reaped by someone else: the pid may already belong to another
            # process, so the group must not be signalled any more.
            with self._group_lock:
                self._reaped = True
            return False
        return True

    def _reap(self) -> int:
        """Kill what the job left running, then collect its exit code."""
        with self._group_lock:
            if not self._reaped:
                self._signal_group(signal.SIGKILL)
            returncode = self._process.wait()
            self._reaped = True
            if self._kill_timer is not None:
                self._kill_timer.cancel()
        return returncode

    def _drain(self, exited_at: float) -> bool:
        """Wait for the pumps to reach the end of the output; False on timeout.

        The time allowed counts from the end of the main process, or from the
        SIGKILL of an abort if that comes later, so an aborted job's other
        processes get their whole grace period to finish writing.
        """
        while True:
            alive = [pump for pump in self._pumps if pump.is_alive()]
            if not alive:
                return True
            deadline = max(exited_at, self._kill_at or 0.0) + self._drain_timeout_sec
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            alive[0].join(min(remaining, _DRAIN_POLL_SEC))


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

    base = f"{spec.job}.{spec.execution}"
    for attempt in range(_MAX_LOG_NAME_ATTEMPTS):
        stem = base if attempt == 0 else f"{base}.{attempt}"
        files: dict[str, IO[bytes]] = {}
        try:
            for kind in LOG_KINDS:
                # Kept open: the pump of each stream closes its file at the end.
                files[kind] = open(directory / f"{stem}.{kind}", "xb")  # noqa: SIM115
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


def _discard(files: Mapping[str, IO[bytes]]) -> None:
    """Close and remove log files that no execution wrote."""
    for file in files.values():
        file.close()
        pathlib.Path(str(file.name)).unlink(missing_ok=True)


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
