"""The scheduler's loop, around a scheduler that fails as asked."""

import logging
import threading
import time
from typing import Any

import pytest

from pinball_core.errors import MasterUnavailableError
from pinball_core.scheduler.loop import SchedulerLoop


class _Unreachable:
    """A scheduler whose passes find the master gone, as a stop's do once
    the stop ends their retries."""

    name = "test"

    def __init__(self, stop: threading.Event, stop_first: bool) -> None:
        self.stop = stop
        self.stop_first = stop_first

    def run_pass(self) -> None:
        if self.stop_first:
            self.stop.set()
        raise MasterUnavailableError("master unavailable: gave up")

    def clock(self) -> float:
        return time.time()


def test_a_pass_the_stop_cut_short_promises_no_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    scheduler: Any = _Unreachable(stop, stop_first=True)
    loop = SchedulerLoop(scheduler, poll_sec=5.0)

    with caplog.at_level(logging.INFO, logger="pinball_core.scheduler.loop"):
        loop.run(stop)

    assert "trying again" not in caplog.text
    assert "cut short by the stop" in caplog.text
    assert "stopped after 1 passes" in caplog.text


def test_a_failed_pass_says_when_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    scheduler: Any = _Unreachable(stop, stop_first=False)
    loop = SchedulerLoop(scheduler, poll_sec=5.0)
    thread = threading.Thread(target=loop.run, args=(stop,))

    with caplog.at_level(logging.INFO, logger="pinball_core.scheduler.loop"):
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while "trying again in 5 s" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=30)

    assert "cut short" not in caplog.text
