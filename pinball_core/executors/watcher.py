"""The one thread that watches every local execution of a worker process.

A running job has two pipes to copy into its log files, a process whose end
must be noticed, and deadlines (the SIGKILL of an abort, the wait for output
after the end). Threads of its own for each would cost every job three
thread starts, each a handshake through the interpreter lock, on the path
between one job's end and the next one's start. Instead all executions of the
process are served by one asyncio event loop on one daemon thread, started on
first use: the pipes and a pidfd of each job's process are readers of that
loop and the deadlines are its timers.

What runs on the loop only copies bytes and parses ``PINBALL:`` lines, so one
thread keeps up with many jobs. The cost of sharing is that a log folder on a
disk that stalls stalls the output of every job of the worker, not only one.
"""

import asyncio
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None

# Loops a parent process was running when this process forked from it. The
# thread running each was not copied into this process, so the loop is never
# run or closed here; holding it keeps it from being collected, which would
# close descriptors and warn about a loop that was never closed.
_inherited: list[asyncio.AbstractEventLoop] = []


def loop() -> asyncio.AbstractEventLoop:
    """The loop that watches executions; its thread starts on first use.

    Call its methods from other threads only through
    :meth:`~asyncio.AbstractEventLoop.call_soon_threadsafe`.
    """
    global _loop
    with _lock:
        if _loop is None:
            new = asyncio.new_event_loop()
            new.set_exception_handler(_report)
            threading.Thread(
                target=new.run_forever, name="pinball-executions", daemon=True
            ).start()
            _loop = new
        return _loop


def _report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    log.error(
        "a local execution's watcher failed: %s",
        context.get("message", "no message"),
        exc_info=context.get("exception"),
    )


def _forget_after_fork() -> None:
    """In a forked child: the parent's loop is not ours; make a new one if needed."""
    global _loop, _lock
    _lock = threading.Lock()
    if _loop is not None:
        _inherited.append(_loop)
        _loop = None


os.register_at_fork(after_in_child=_forget_after_fork)
