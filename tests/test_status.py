"""Job, instance and workflow status from tokens alone."""

from typing import Any

import pytest

from pinball_core.token import FOREVER, Token
from pinball_core.workflow import names
from pinball_core.workflow.model import (
    ABORT,
    ARCHIVE,
    DRAIN,
    STOPPED_WITH_WORKER,
    ExecutionRecord,
    Job,
    Signal,
)
from pinball_core.workflow.status import (
    PAUSE_OWNER_PREFIX,
    InstanceSummary,
    Status,
    instance_status,
    instances_of,
    job_status,
    workflow_summary,
)

WF = "wf"
INST = "1"
NOW = 1000.0


def record(
    start: float = 10.0,
    end: float | None = 20.0,
    exit_code: int | None = 0,
    instance: str = INST,
    **fields: Any,
) -> ExecutionRecord:
    if end is None:
        exit_code = None
    return ExecutionRecord(
        instance=instance, start_time=start, end_time=end, exit_code=exit_code, **fields
    )


def job_token(
    name: str,
    state: str = names.WAITING,
    *,
    history: list[ExecutionRecord] | None = None,
    owner: str | None = None,
    expiration: float | None = None,
    instance: str = INST,
    **fields: Any,
) -> Token:
    fields.setdefault("inputs", [names.WORKFLOW_START])
    job = Job(name=name, history=list(history or []), **fields)
    return Token(
        names.job_name(WF, instance, state, name),
        version=1,
        owner=owner,
        expiration=expiration,
        data=job.to_json(),
    )


def event_token(
    job: str, upstream: str, event: str = "e", instance: str = INST
) -> Token:
    return Token(names.event_name(WF, instance, job, upstream, event), version=1)


def signal_token(
    action: str, timestamp: float | None = None, instance: str | None = INST
) -> Token:
    workflow = WF if instance is not None else None
    return Token(
        names.signal_prefix(workflow, instance) + action,
        version=1,
        data=Signal(action, timestamp=timestamp).to_json(),
    )


def status_of(token: Token, abort_time: float | None = None) -> Status:
    return job_status(token, Job.from_json(token.data), NOW, abort_time=abort_time)


def summary(tokens: list[Token], **kwargs: Any) -> InstanceSummary:
    found = instance_status(tokens, NOW, **kwargs)
    assert found is not None
    return found


# -- Jobs


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (job_token("j"), Status.NEVER_RUN),
        (job_token("j", disabled=True), Status.DISABLED),
        (job_token("j", names.RUNNABLE), Status.QUEUED),
        (
            job_token("j", names.RUNNABLE, owner="drained:w", expiration=NOW + 60),
            Status.QUEUED,
        ),
        (
            job_token(
                "j",
                names.RUNNABLE,
                history=[record(end=None)],
                owner="worker",
                expiration=NOW + 60,
            ),
            Status.RUNNING,
        ),
        (job_token("j", history=[record()]), Status.SUCCESS),
        (job_token("j", history=[record(exit_code=3)]), Status.FAILURE),
        (job_token("j", history=[record(exit_code=3)], disabled=True), Status.DISABLED),
    ],
    ids=[
        "never-run",
        "disabled",
        "queued",
        "parked",
        "running",
        "success",
        "failure",
        "disabled-after-failing",
    ],
)
def test_job_status(token: Token, expected: Status) -> None:
    assert status_of(token) is expected


def test_failed_job_with_retries_left_is_retry_pending_even_while_leased() -> None:
    history = [record(exit_code=1)]
    free = job_token("j", names.RUNNABLE, history=history, max_attempts=2)
    timer = job_token(
        "j",
        names.RUNNABLE,
        history=history,
        max_attempts=2,
        owner="worker",
        expiration=NOW + 300,
    )

    assert status_of(free) is Status.RETRY_PENDING
    assert status_of(timer) is Status.RETRY_PENDING


def test_failed_condition_retried_is_condition_pending() -> None:
    token = job_token(
        "c",
        names.RUNNABLE,
        history=[record(exit_code=1)],
        condition=True,
        max_attempts=5,
    )

    assert status_of(token) is Status.CONDITION_PENDING


def test_failed_job_retried_by_hand_is_queued() -> None:
    token = job_token("j", names.RUNNABLE, history=[record(exit_code=1)])

    assert status_of(token) is Status.QUEUED


@pytest.mark.parametrize(
    "reason", [STOPPED_WITH_WORKER, "lost: its worker stopped renewing the lease"]
)
def test_job_lost_with_its_worker_is_queued_not_pending_a_retry(reason: str) -> None:
    # A lost attempt was no failure of the job's: it runs again at once.
    token = job_token(
        "j",
        names.RUNNABLE,
        history=[record(exit_code=-15, reason=reason)],
        max_attempts=3,
    )

    assert status_of(token) is Status.QUEUED


def test_paused_job_is_queued_not_running() -> None:
    token = job_token(
        "j", names.RUNNABLE, owner=f"{PAUSE_OWNER_PREFIX}me", expiration=FOREVER
    )

    assert status_of(token) is Status.QUEUED


def test_run_whose_lease_lapsed_is_queued_to_be_claimed_again() -> None:
    token = job_token(
        "j",
        names.RUNNABLE,
        history=[record(end=None)],
        owner="worker",
        expiration=NOW - 1,
    )

    assert status_of(token) is Status.QUEUED


def test_job_stopped_by_abort_is_aborted() -> None:
    by_reason = job_token(
        "j", history=[record(exit_code=-9, reason="aborted by an ABORT signal")]
    )
    after_abort = job_token("j", history=[record(end=50, exit_code=-9)])
    before_abort = job_token("j", history=[record(end=20, exit_code=1)])
    queued = job_token("j", names.RUNNABLE)

    assert status_of(by_reason) is Status.ABORTED
    assert status_of(after_abort, abort_time=40) is Status.ABORTED
    assert status_of(before_abort, abort_time=40) is Status.FAILURE
    assert status_of(queued, abort_time=40) is Status.ABORTED


# -- Instances


def test_no_job_tokens_is_no_instance() -> None:
    assert instance_status([signal_token(DRAIN)], NOW) is None


def test_instance_with_a_runnable_job_is_running() -> None:
    tokens = [
        job_token("a", names.RUNNABLE),
        job_token("b", inputs=["a"]),
    ]

    found = summary(tokens)

    assert (found.workflow, found.instance) == (WF, INST)
    assert found.status is Status.RUNNING
    assert found.end is None
    assert [(j.name, j.status) for j in found.jobs] == [
        ("a", Status.QUEUED),
        ("b", Status.NEVER_RUN),
    ]


def test_waiting_job_with_every_input_satisfied_keeps_it_running() -> None:
    tokens = [
        job_token("a", history=[record()]),
        job_token("b", inputs=["a"]),
        event_token("b", "a"),
    ]

    assert summary(tokens).status is Status.RUNNING


def test_waiting_job_with_one_input_of_two_satisfied_does_not() -> None:
    tokens = [
        job_token("a", history=[record(start=10, end=20)]),
        job_token("b", history=[record(start=15, end=30, exit_code=2)]),
        job_token("c", inputs=["a", "b"]),
        event_token("c", "a"),
    ]

    found = summary(tokens)

    assert found.status is Status.FAILURE
    assert found.failed_jobs == ["b"]
    assert (found.start, found.end) == (10, 30)


def test_all_jobs_succeeded_is_success() -> None:
    tokens = [
        job_token("a", history=[record(start=10, end=20)]),
        job_token("b", inputs=["a"], history=[record(start=21, end=40)]),
    ]

    found = summary(tokens)

    assert found.status is Status.SUCCESS
    assert (found.start, found.end) == (10, 40)
    assert [j.attempts for j in found.jobs] == [1, 1]


def test_failed_instance_keeps_running_independent_branches() -> None:
    tokens = [
        job_token("a", history=[record(exit_code=1)]),
        job_token(
            "b",
            names.RUNNABLE,
            history=[record(end=None)],
            owner="w",
            expiration=NOW + 9,
        ),
    ]

    found = summary(tokens)

    assert found.status is Status.RUNNING
    assert found.failed_jobs == ["a"]
    assert found.running_jobs == ["b"]


def test_instance_copied_from_another_starts_with_its_own_first_run() -> None:
    # ``workflow retry`` of an archived instance copies the jobs with their
    # history; the copy started when its own first job did, not the original.
    earlier = record(start=10, end=20, instance="0")
    copied = [
        job_token("a", history=[earlier]),
        job_token("b", names.RUNNABLE, inputs=["a"], history=[earlier]),
    ]
    ran = [
        copied[0],
        job_token(
            "b",
            names.RUNNABLE,
            inputs=["a"],
            history=[earlier, record(start=500, end=None)],
            owner="w",
            expiration=NOW + 9,
        ),
    ]

    assert summary(copied).start is None
    assert summary(ran).start == 500


def test_stamped_archive_signal_means_finished() -> None:
    tokens = [
        job_token("a", history=[record()]),
        job_token("b", inputs=["a"]),
        event_token("b", "a"),
        signal_token(ARCHIVE, timestamp=NOW + 10),
    ]

    assert summary(tokens).status is Status.SUCCESS


def test_archived_instance_is_finished_whatever_its_tokens_say() -> None:
    tokens = [job_token("a", names.RUNNABLE, history=[record(exit_code=1)])]

    found = summary(tokens, archived=True)

    assert found.status is Status.FAILURE
    assert found.archived


def test_aborted_instance_that_never_ran_ends_at_the_abort() -> None:
    tokens = [job_token("a", names.RUNNABLE), signal_token(ABORT, timestamp=500)]

    found = summary(tokens)

    assert found.status is Status.ABORTED
    assert (found.start, found.end) == (500, 500)
    assert found.jobs[0].status is Status.ABORTED


def test_aborted_instance_with_a_job_still_running_has_no_end() -> None:
    tokens = [
        job_token(
            "a",
            names.RUNNABLE,
            history=[record(end=None)],
            owner="w",
            expiration=NOW + 9,
        ),
        signal_token(ABORT, timestamp=500),
    ]

    found = summary(tokens)

    assert found.status is Status.ABORTED
    assert found.end is None
    assert found.running_jobs == ["a"]


def test_abort_at_a_wider_level_applies_when_given() -> None:
    tokens = [job_token("a", names.RUNNABLE)]
    workflow_abort = signal_token(ABORT, timestamp=5, instance=None)
    signals = {ABORT: (workflow_abort, Signal(ABORT, timestamp=5))}

    assert summary(tokens).status is Status.RUNNING
    assert summary(tokens, signals=signals).status is Status.ABORTED


def test_instances_of_splits_tokens_by_instance() -> None:
    tokens = [
        job_token("a", names.RUNNABLE, instance="1"),
        job_token("a", history=[record(instance="2")], instance="2"),
        Token(names.signal_prefix(WF) + DRAIN, data=Signal(DRAIN).to_json()),
    ]

    found = {i.instance: i.status for i in instances_of(tokens, NOW)}

    assert found == {"1": Status.RUNNING, "2": Status.SUCCESS}


# -- Workflows


def instance(
    name: str, status: Status, start: float | None, end: float | None
) -> InstanceSummary:
    return InstanceSummary(WF, name, status, start, end, jobs=())


def test_workflow_without_instances_never_ran() -> None:
    found = workflow_summary(WF, [])

    assert found.status is Status.NEVER_RUN
    assert found.last_instance is None


def test_running_workflow_shows_its_latest_running_instance() -> None:
    found = workflow_summary(
        WF,
        [
            instance("22346", Status.ABORTED, 12346, 54321),
            instance("22345", Status.RUNNING, 12345, None),
            instance("22347", Status.SUCCESS, 12347, 12390),
            instance("22348", Status.RUNNING, 12348, None),
        ],
    )

    assert found.status is Status.RUNNING
    assert (found.last_instance, found.start, found.end) == ("22348", 12348, None)
    assert found.running_instances == 2
    # Newest first, so the instance the header names heads a long list.
    assert [i.instance for i in found.instances] == [
        "22348",
        "22347",
        "22346",
        "22345",
    ]


def test_instances_that_have_not_started_are_listed_first() -> None:
    found = workflow_summary(
        WF,
        [
            instance("22345", Status.SUCCESS, 12345, 12390),
            instance("9", Status.RUNNING, None, None),
            instance("22347", Status.RUNNING, None, None),
            instance("22346", Status.RUNNING, 12346, None),
        ],
    )

    assert [i.instance for i in found.instances] == ["22347", "9", "22346", "22345"]
    assert found.last_instance == "22346"


def test_instance_being_aborted_does_not_count_as_running() -> None:
    found = workflow_summary(
        WF,
        [
            instance("22355", Status.ABORTED, 12355, None),
            instance("22365", Status.SUCCESS, 12365, 12390),
            instance("22345", Status.RUNNING, 12345, None),
        ],
    )

    assert (found.status, found.last_instance) == (Status.RUNNING, "22345")
    assert found.running_instances == 1


def test_finished_workflow_shows_the_instance_that_ended_last() -> None:
    found = workflow_summary(
        WF,
        [
            instance("22345", Status.ABORTED, 12345, 12392),
            instance("22346", Status.SUCCESS, 12346, 12393),
            instance("22347", Status.FAILURE, 12347, 12391),
        ],
    )

    assert found.status is Status.SUCCESS
    assert (found.last_instance, found.start, found.end) == ("22346", 12346, 12393)
    assert found.running_instances == 0


def test_instance_without_an_end_counts_by_its_start() -> None:
    found = workflow_summary(
        WF,
        [
            instance("22346", Status.SUCCESS, 12346, 12393),
            instance("22347", Status.ABORTED, 12391, None),
        ],
    )

    assert (found.status, found.last_instance) == (Status.SUCCESS, "22346")
