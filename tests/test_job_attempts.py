"""How a job's history decides whether it may run again."""

from pinball_core.workflow.model import (
    MAX_LOST_ATTEMPTS,
    STOPPED_WITH_WORKER,
    ExecutionRecord,
    Job,
)


def _ended(exit_code: int, reason: str | None = None) -> ExecutionRecord:
    return ExecutionRecord(
        instance="i", start_time=1.0, end_time=2.0, exit_code=exit_code, reason=reason
    )


def _lost() -> ExecutionRecord:
    return _ended(1, "lost: its worker stopped renewing the lease")


def test_an_attempt_lost_with_its_worker_does_not_use_up_max_attempts() -> None:
    job = Job(name="j", max_attempts=1, history=[_lost()])

    assert job.failures_in_a_row("i") == 0
    assert job.can_retry("i")


def test_a_real_failure_after_lost_attempts_still_counts() -> None:
    job = Job(name="j", max_attempts=1, history=[_lost(), _ended(3)])

    assert job.failures_in_a_row("i") == 1
    assert not job.can_retry("i")


def test_a_job_that_keeps_losing_its_worker_stops() -> None:
    job = Job(name="j", max_attempts=5, history=[_lost()] * MAX_LOST_ATTEMPTS)
    assert job.can_retry("i")

    job.history.append(_lost())

    assert not job.can_retry("i")


def test_retries_count_failures_since_the_last_success() -> None:
    job = Job(name="j", max_attempts=2, history=[_ended(1), _ended(0), _ended(1)])

    assert job.failures_in_a_row("i") == 1
    assert job.can_retry("i")


def test_attempts_stopped_with_their_worker_count_as_neither() -> None:
    # An operator stopping the workers says nothing about the job, however
    # often it happens.
    stopped = _ended(-15, STOPPED_WITH_WORKER)
    job = Job(
        name="j",
        max_attempts=1,
        history=[*[_lost()] * MAX_LOST_ATTEMPTS, *[stopped] * 5],
    )

    assert job.failures_in_a_row("i") == 0
    assert job.lost_in_a_row("i") == MAX_LOST_ATTEMPTS
    assert job.can_retry("i")
