"""The local executor's shared watcher: one thread serves every execution.

What is checked is what the design promises beyond the executor's own tests
(tests/test_executor_local.py): starting a job starts no thread, many jobs
at once each get exactly their own output, a system without pidfds still
works (a thread waits instead), a failure while watching ends the job
instead of hanging its worker, and a forked child process does not kill its
parent's jobs when it exits.

Nothing here asserts on durations; waits have hard limits only.
"""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from pinball_core.components import ExecutionSpec
from pinball_core.executors import output
from pinball_core.executors.local import LocalExecution, LocalExecutor

_WAIT_SEC = 30.0

pytestmark = pytest.mark.skipif(
    not pathlib.Path("/proc/self/stat").exists(), reason="reads processes from /proc"
)


@pytest.fixture
def started() -> Iterator[list[LocalExecution]]:
    """Executions a test started; whatever is left is stopped at teardown."""
    handles: list[LocalExecution] = []
    yield handles
    for handle in handles:
        handle.abort(0)
    for handle in handles:
        assert handle.wait(_WAIT_SEC) is not None, f"{handle} did not end"


def start(
    started: list[LocalExecution],
    tmp_path: pathlib.Path,
    command: str,
    job: str = "job",
) -> LocalExecution:
    spec = ExecutionSpec(
        "wf", "1", job, 0, "shell", command, {}, str(tmp_path / "logs")
    )
    handle = LocalExecutor(drain_timeout_sec=0.5).start(spec)
    started.append(handle)
    return handle


def finish(handle: LocalExecution) -> int:
    code = handle.wait(_WAIT_SEC)
    assert code is not None, f"{handle} did not end within {_WAIT_SEC} s"
    return code


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + _WAIT_SEC
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_starting_jobs_starts_no_thread_of_their_own(
    started: list[LocalExecution], tmp_path: pathlib.Path
) -> None:
    finish(start(started, tmp_path, "true", job="warm_up"))
    before = threading.active_count()

    handles = [start(started, tmp_path, "sleep 300", job=f"j{n}") for n in range(5)]

    assert threading.active_count() == before
    names = [t.name for t in threading.enumerate()]
    assert names.count("pinball-executions") == 1
    for handle in handles:
        handle.abort(0)
        assert finish(handle) == -signal.SIGTERM


def test_many_jobs_at_once_each_get_their_own_output(
    started: list[LocalExecution], tmp_path: pathlib.Path
) -> None:
    count = 40
    handles = [
        start(
            started,
            tmp_path,
            f"seq 1 {2000 + n}; echo PINBALL:EVENT_ATTR:n={n}; "
            f"seq {n} 3000 >&2; exit {n % 5}",
            job=f"j{n}",
        )
        for n in range(count)
    ]

    for n, handle in enumerate(handles):
        assert finish(handle) == n % 5
        stdout = pathlib.Path(handle.logs["stdout"]).read_bytes()
        stderr = pathlib.Path(handle.logs["stderr"]).read_bytes()
        numbers = "".join(f"{i}\n" for i in range(1, 2001 + n))
        assert stdout == f"{numbers}PINBALL:EVENT_ATTR:n={n}\n".encode()
        assert stderr == "".join(f"{i}\n" for i in range(n, 3001)).encode()
        assert handle.event_attributes == {"n": str(n)}


def test_without_pidfds_a_thread_waits_for_the_job(
    started: list[LocalExecution],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)

    done = start(started, tmp_path, "echo PINBALL:job_id=7; exit 3", job="ends")
    assert finish(done) == 3
    assert done.properties == {"job_id": ["7"]}
    assert pathlib.Path(done.logs["stdout"]).read_bytes() == b"PINBALL:job_id=7\n"

    aborted = start(started, tmp_path, "sleep 300 & sleep 300", job="aborted")
    aborted.abort(0.5)
    assert finish(aborted) == -signal.SIGTERM
    wait_until(lambda: not group_alive(aborted.pid), "the process group to end")


def test_a_failure_while_watching_ends_the_job_instead_of_hanging(
    started: list[LocalExecution],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: output.StreamCopier) -> bool:
        raise RuntimeError("a bug in reading")

    monkeypatch.setattr(output.StreamCopier, "read", broken)

    handle = start(started, tmp_path, "echo hi; sleep 300")

    assert finish(handle) != 0
    wait_until(lambda: not group_alive(handle.pid), "the process group to end")
    assert "watching it failed; killing it" in caplog.text


def test_a_forked_child_does_not_kill_its_parents_jobs(tmp_path: pathlib.Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from pinball_core.components import ExecutionSpec
        from pinball_core.executors.local import LocalExecutor

        def spec(job, command):
            return ExecutionSpec("wf", "1", job, 0, "shell", command, {{}},
                                 {str(tmp_path)!r})

        parent_job = LocalExecutor().start(spec("parent", "sleep 300"))
        child = os.fork()
        if child == 0:
            # The child runs jobs of its own on a watcher of its own.
            code = LocalExecutor().start(spec("child", "exit 4")).wait(30)
            sys.exit(0 if code == 4 else 1)
        _, status = os.waitpid(child, 0)
        # Had the child killed the job on its way out, the job would have
        # ended before the child did; the watcher notices within moments.
        code = parent_job.wait(2)
        print(os.waitstatus_to_exitcode(status), parent_job.pid, code, flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=_WAIT_SEC,
    )

    lines = result.stdout.split()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "0", "the child's own job did not run"
    assert lines[2] == "None", "the child killed its parent's job"
    # The parent's normal exit still kills its job.
    assert "killing 1 running job" in result.stderr
    wait_until(lambda: not group_alive(int(lines[1])), "the parent's job to end")
