"""The local executor: real child processes, real pipes, real signals.

Jobs are small ``/bin/sh`` commands or Python modules written into the test's
folder. What is checked is what the worker relies on: exit codes, every byte
of the output in the right log file, the ``PINBALL:`` lines collected, and no
process of a job left behind after an abort, after the job's end, or after
the worker exits.

Nothing here asserts on durations. Waits have hard limits only so that an
executor that hangs fails the test instead of the whole run.
"""

import logging
import os
import pathlib
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pinball_core.components import ExecutionHandle, ExecutionSpec, Executor
from pinball_core.errors import ConfigError
from pinball_core.executors import call
from pinball_core.executors.local import LocalExecution, LocalExecutor
from pinball_core.executors.magic import (
    MAX_EVENT_ATTRIBUTES,
    MAX_PROPERTY_VALUES,
    MagicLineCollector,
)
from pinball_core.executors.output import CHUNK_BYTES, LineSplitter, StreamCopier
from pinball_core.plugins import DISABLE_ENV, PluginManager

# A hard limit on any wait for a job or a process; generous, CI machines are slow.
_WAIT_SEC = 30.0
_POLL_SEC = 0.02
# A short grace and drain, so that tests which reach them stay quick.
_GRACE_SEC = 0.5
_DRAIN_SEC = 0.5

_MIB = 1024 * 1024

Run = Callable[..., LocalExecution]


@pytest.fixture
def log_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "logs" / "wf" / "123"


@pytest.fixture
def run(log_dir: pathlib.Path) -> Iterator[Run]:
    """Starts a job on a :class:`LocalExecutor`; stops what is left at teardown."""
    started: list[LocalExecution] = []

    def run(
        command: str,
        *,
        kind: str = "shell",
        env: dict[str, str] | None = None,
        job: str = "some_job",
        execution: int = 0,
        executor: LocalExecutor | None = None,
    ) -> LocalExecution:
        spec = ExecutionSpec(
            workflow="wf",
            instance="123",
            job=job,
            execution=execution,
            kind=kind,
            command=command,
            env=env or {},
            log_dir=str(log_dir),
        )
        handle = (executor or LocalExecutor(drain_timeout_sec=_DRAIN_SEC)).start(spec)
        started.append(handle)
        return handle

    yield run

    for handle in started:
        handle.abort(0)
    for handle in started:
        assert handle.wait(_WAIT_SEC) is not None, f"{handle} did not end"


def finish(handle: ExecutionHandle) -> int:
    """The exit code of ``handle``, failing the test if it does not end."""
    code = handle.wait(_WAIT_SEC)
    assert code is not None, f"{handle} did not end within {_WAIT_SEC} s"
    return code


def wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + _WAIT_SEC
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(_POLL_SEC)


def read(handle: ExecutionHandle, kind: str) -> bytes:
    return pathlib.Path(handle.logs[kind]).read_bytes()


def _stat(pid: int) -> tuple[str, int] | None:
    """The state and process group of ``pid`` from /proc; None if it is gone."""
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces.
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie has ended, it only waits to be reaped."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that have not ended."""
    members = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z" and stat[1] == pgid:
                members.append(int(entry.name))
    return members


def assert_group_gone(pgid: int) -> None:
    # A signalled process takes a moment to end after the signal is sent.
    wait_until(lambda: not group_members(pgid), f"process group {pgid} to end")


def python_job(tmp_path: pathlib.Path, name: str, source: str) -> dict[str, str]:
    """Write module ``name`` for a python job; the env that makes it importable."""
    folder = tmp_path / "jobs"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    path = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


pytestmark = pytest.mark.skipif(
    not pathlib.Path("/proc/self/stat").exists(), reason="reads processes from /proc"
)


# -- Exit codes and logs -------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_the_exit_code_is_the_commands(run: Run, code: int) -> None:
    assert finish(run(f"exit {code}")) == code


def test_stdout_and_stderr_go_to_their_own_files(
    run: Run, log_dir: pathlib.Path
) -> None:
    handle = run(r"printf 'line1\nline2\nline3'; printf 'line1\nline2' >&2")

    assert finish(handle) == 0
    assert handle.logs == {
        "stdout": str(log_dir / "some_job.0.stdout"),
        "stderr": str(log_dir / "some_job.0.stderr"),
    }
    assert read(handle, "stdout") == b"line1\nline2\nline3"
    assert read(handle, "stderr") == b"line1\nline2"


def test_every_line_of_a_long_output_is_in_the_log(run: Run) -> None:
    handle = run("seq 1 100000; seq 1 50000 >&2")

    assert finish(handle) == 0
    expected = "".join(f"{n}\n" for n in range(1, 100001)).encode()
    assert read(handle, "stdout") == expected
    assert read(handle, "stderr") == expected[: expected.index(b"\n50001\n") + 1]


def test_the_log_folder_is_created(run: Run, log_dir: pathlib.Path) -> None:
    assert not log_dir.exists()

    assert finish(run("echo hi")) == 0

    assert log_dir.is_dir()


def test_bytes_that_are_not_utf8_are_kept_as_they_came(run: Run) -> None:
    handle = run(
        r"printf 'caf\351 \377\376\n'; printf 'PINBALL:EVENT_ATTR:name=x\377y\n' >&2"
    )

    assert finish(handle) == 0
    assert read(handle, "stdout") == b"caf\xe9 \xff\xfe\n"
    assert read(handle, "stderr") == b"PINBALL:EVENT_ATTR:name=x\xffy\n"
    assert handle.event_attributes == {"name": "x\ufffdy"}


def test_a_mebibyte_line_without_newline_is_logged_whole(run: Run) -> None:
    handle = run(
        f"head -c {_MIB} /dev/zero | tr '\\0' a; "
        f"printf 'PINBALL:EVENT_ATTR:big='; head -c {_MIB} /dev/zero | tr '\\0' b; "
        r"printf '\nPINBALL:job_id=after\n'; "
        f"head -c {_MIB} /dev/zero | tr '\\0' c >&2"
    )

    assert finish(handle) == 0
    stdout = read(handle, "stdout")
    assert stdout == (
        b"a" * _MIB
        + b"PINBALL:EVENT_ATTR:big="
        + b"b" * _MIB
        + b"\nPINBALL:job_id=after\n"
    )
    assert read(handle, "stderr") == b"c" * _MIB
    # The magic line too long to parse is dropped; the one after it is not.
    assert handle.snapshot() == ({}, {"job_id": ["after"]})


def test_two_executions_of_one_job_write_different_logs(run: Run) -> None:
    command = 'echo "$WHICH"; echo "$WHICH" >&2'
    first = run(command, env={"WHICH": "first"})
    second = run(command, env={"WHICH": "second"})

    assert finish(first) == finish(second) == 0
    assert set(first.logs.values()).isdisjoint(second.logs.values())
    assert read(first, "stdout") == read(first, "stderr") == b"first\n"
    assert read(second, "stdout") == read(second, "stderr") == b"second\n"


def test_logs_left_by_an_earlier_run_are_not_appended_to(
    run: Run, log_dir: pathlib.Path
) -> None:
    log_dir.mkdir(parents=True)
    (log_dir / "some_job.0.stderr").write_bytes(b"earlier\n")

    handle = run("echo now >&2")

    assert finish(handle) == 0
    assert handle.logs["stderr"] == str(log_dir / "some_job.0.1.stderr")
    assert read(handle, "stderr") == b"now\n"
    assert sorted(path.name for path in log_dir.iterdir()) == [
        "some_job.0.1.stderr",
        "some_job.0.1.stdout",
        "some_job.0.stderr",
    ]
    assert (log_dir / "some_job.0.stderr").read_bytes() == b"earlier\n"


def test_retries_write_logs_named_after_their_execution(
    run: Run, log_dir: pathlib.Path
) -> None:
    handle = run("echo retry", execution=3)

    assert finish(handle) == 0
    assert handle.logs["stdout"] == str(log_dir / "some_job.3.stdout")


# -- Environment and process -----------------------------------------------------


def test_the_spec_env_is_added_to_the_workers(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINBALL_TEST_INHERITED", "from the worker")
    monkeypatch.setenv("PINBALL_TEST_REPLACED", "old")
    env = {
        "PINBALL_WORKFLOW": "wf",
        "PINBALL_INSTANCE": "123",
        "PINBALL_JOB": "some_job",
        "PINBALL_EXECUTION": "1",
        "PINBALL_TEST_REPLACED": "new value",
    }
    handle = run(
        'echo "$PINBALL_WORKFLOW $PINBALL_INSTANCE $PINBALL_JOB $PINBALL_EXECUTION"; '
        'echo "$PINBALL_TEST_INHERITED"; echo "$PINBALL_TEST_REPLACED"',
        env=env,
    )

    assert finish(handle) == 0
    assert read(handle, "stdout") == b"wf 123 some_job 1\nfrom the worker\nnew value\n"


def test_stdin_is_empty(run: Run) -> None:
    handle = run('if read line; then echo "read $line"; else echo eof; fi')

    assert finish(handle) == 0
    assert read(handle, "stdout") == b"eof\n"


def test_a_job_leads_its_own_session_and_process_group(run: Run) -> None:
    handle = run("sleep 300")

    assert os.getsid(handle.pid) == handle.pid
    assert os.getpgid(handle.pid) == handle.pid
    assert os.getpgid(handle.pid) != os.getpgrp()


def test_an_unknown_kind_is_refused_before_anything_is_created(
    run: Run, log_dir: pathlib.Path
) -> None:
    with pytest.raises(ValueError, match="kind 'docker'.*shell, python"):
        run("echo hi", kind="docker")

    assert not log_dir.exists()


def test_a_job_name_that_is_a_path_is_refused(run: Run) -> None:
    with pytest.raises(ValueError, match="log file name"):
        run("echo hi", job="../escape")


def test_a_process_that_cannot_start_leaves_no_logs(
    run: Run, log_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(log_dir / "no-such-python"))

    with pytest.raises(OSError):
        run("jobs:main", kind="python")

    assert list(log_dir.iterdir()) == []


# -- Magic lines ---------------------------------------------------------------


def test_magic_lines_on_both_streams_are_collected(run: Run) -> None:
    handle = run(
        "echo PINBALL:EVENT_ATTR:akey=first; "
        "echo PINBALL:EVENT_ATTR:akey=last; "
        "echo 'PINBALL:kv_job_url=j_id1|j_url1'; "
        "echo 'PINBALL:kv_job_url=j_id2|j_url2'; "
        "echo 'PINBALL:kv_job_url=j_id2|j_url2'; "
        "echo PINBALL:kill_id=qubole1/123 >&2; "
        "echo PINBALL:kill_id=qubole2/456 >&2; "
        "echo PINBALL:kill_id=qubole1/123 >&2; "
        "echo PINBALL:EVENT_ATTR:other=from stderr >&2"
    )

    assert finish(handle) == 0
    assert handle.event_attributes == {"akey": "last", "other": "from stderr"}
    assert handle.properties == {
        "kv_job_url": ["j_id1|j_url1", "j_id2|j_url2"],
        "kill_id": ["qubole1/123", "qubole2/456"],
    }
    assert handle.snapshot() == (handle.event_attributes, handle.properties)


def test_magic_lines_are_split_at_the_first_equals_and_stripped(run: Run) -> None:
    handle = run(
        r"printf 'PINBALL: job_url = http://x/?a=1&b=2 \r\n"
        r"PINBALL:EVENT_ATTR: spaced =  v  \n"
        r"  PINBALL:job_id=not at the start of the line\n"
        r"PINBALL:job_id=last line without newline'"
    )

    assert finish(handle) == 0
    assert handle.event_attributes == {"spaced": "v"}
    assert handle.properties == {
        "job_url": ["http://x/?a=1&b=2"],
        "job_id": ["last line without newline"],
    }


def test_unknown_and_reserved_keys_and_lines_without_equals_are_ignored(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pinball_core.executors")
    handle = run(
        "echo PINBALL:worker=evil-host; "
        "echo PINBALL:color=red; "
        "echo PINBALL:color=blue >&2; "
        "echo PINBALL:no equals sign; "
        "echo PINBALL:=no key; "
        "echo PINBALL:EVENT_ATTR:=no name; "
        "echo PINBALL:kill_id=kept"
    )

    assert finish(handle) == 0
    assert handle.snapshot() == ({}, {"kill_id": ["kept"]})
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "'worker' is set by the worker" in m]) == 1
    assert len([m for m in messages if "'color' is not a key" in m]) == 1
    assert len([m for m in messages if "PINBALL:<key>=<value>" in m]) == 1
    assert len([m for m in messages if "EVENT_ATTR: needs a name" in m]) == 1
    assert all("some_job" in m for m in messages)


def test_magic_lines_are_collected_while_the_job_runs(run: Run) -> None:
    handle = run("echo PINBALL:kill_id=cluster/42; sleep 300")

    wait_until(lambda: handle.snapshot()[1], "the kill_id line")

    assert handle.wait(0) is None
    assert handle.properties == {"kill_id": ["cluster/42"]}


def test_magic_lines_can_be_read_safely_while_they_change(run: Run) -> None:
    handle = run(
        "i=0; while [ $i -lt 3000 ]; do "
        'echo "PINBALL:EVENT_ATTR:k$((i % 100))=$i"; echo "PINBALL:job_id=$i"; '
        "i=$((i + 1)); done"
    )
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while handle.wait(0) is None:
                sum(len(v) for v in handle.event_attributes.values())
                sum(len(v) for v in handle.properties.get("job_id", []))
                handle.snapshot()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert finish(handle) == 0
    for thread in threads:
        thread.join(_WAIT_SEC)

    assert errors == []
    attributes, properties = handle.snapshot()
    assert attributes == {f"k{n}": str(2900 + n) for n in range(100)}
    assert properties == {"job_id": [str(n) for n in range(MAX_PROPERTY_VALUES)]}


def test_what_a_job_can_make_the_worker_hold_is_bounded(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    names = MAX_EVENT_ATTRIBUTES + 10
    handle = run(
        f"i=0; while [ $i -lt {names} ]; do "
        'echo "PINBALL:EVENT_ATTR:k$i=v"; echo "PINBALL:bad$i=x"; i=$((i + 1)); done'
    )

    assert finish(handle) == 0
    assert len(handle.event_attributes) == MAX_EVENT_ATTRIBUTES
    assert "k0" in handle.event_attributes
    assert f"k{names - 1}" not in handle.event_attributes
    # One warning per problem, up to 20 of them, then one saying so.
    assert len(caplog.records) == 21
    assert "will not be logged" in caplog.records[-1].getMessage()


def test_snapshot_returns_copies() -> None:
    collector = MagicLineCollector("job test")
    collector.add_line(b"PINBALL:EVENT_ATTR:a=1")
    collector.add_line(b"PINBALL:kill_id=x")
    seen_attributes, seen_properties = collector.event_attributes, collector.properties

    attributes, properties = collector.snapshot()
    attributes["a"] = "changed"
    properties["kill_id"].append("changed")
    collector.add_line(b"PINBALL:EVENT_ATTR:a=2")
    collector.add_line(b"PINBALL:kill_id=y")

    assert collector.snapshot() == ({"a": "2"}, {"kill_id": ["x", "y"]})
    # What a reader took earlier does not change under it.
    assert seen_attributes == {"a": "1"}
    assert seen_properties == {"kill_id": ["x"]}


def test_a_collector_cannot_accept_reserved_keys() -> None:
    with pytest.raises(ValueError, match="worker"):
        MagicLineCollector("job test", property_keys={"kill_id", "worker"})

    collector = MagicLineCollector("job test", property_keys={"spark_app_id"})
    collector.add_line(b"PINBALL:spark_app_id=app-1")
    collector.add_line(b"PINBALL:kill_id=x")
    assert collector.properties == {"spark_app_id": ["app-1"]}


# -- Python jobs ---------------------------------------------------------------


def test_a_python_job_runs_its_function(run: Run, tmp_path: pathlib.Path) -> None:
    env = python_job(
        tmp_path,
        "job_ok",
        """
        import os, sys

        def main():
            print("PINBALL:EVENT_ATTR:pid=%d" % os.getpid())
            print("to stderr", file=sys.stderr)
        """,
    )
    handle = run("job_ok:main", kind="python", env=env)

    assert finish(handle) == 0
    assert handle.event_attributes == {"pid": str(handle.pid)}
    assert read(handle, "stderr") == b"to stderr\n"


def test_a_python_job_that_raises_exits_1_with_the_traceback(
    run: Run, tmp_path: pathlib.Path
) -> None:
    env = python_job(
        tmp_path,
        "job_raises",
        """
        def main():
            raise ValueError("the input was bad")
        """,
    )
    handle = run("job_raises:main", kind="python", env=env)

    assert finish(handle) == 1
    stderr = read(handle, "stderr").decode()
    assert stderr.startswith("Traceback (most recent call last):")
    assert 'job_raises.py", line 3, in main' in stderr
    assert stderr.endswith("ValueError: the input was bad\n")


@pytest.mark.parametrize(
    ("returned", "code"), [("3", 3), ("0", 0), ("True", 0), ("'text'", 0), ("256", 1)]
)
def test_a_python_job_returning_an_int_exits_with_it(
    run: Run, tmp_path: pathlib.Path, returned: str, code: int
) -> None:
    env = python_job(tmp_path, "job_returns", f"def main():\n    return {returned}\n")

    assert finish(run("job_returns:main", kind="python", env=env)) == code


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("no_such_module:main", "no module named 'no_such_module'"),
        ("no_such_package.jobs:main", "no module named 'no_such_package'"),
        ("job_exists:missing", "module 'job_exists' has no 'missing'"),
        ("job_exists:VALUE", "'VALUE' is not a function"),
        ("job_exists", "write the command as module:function"),
    ],
)
def test_a_python_job_that_cannot_be_found_fails_with_one_line(
    run: Run, tmp_path: pathlib.Path, command: str, message: str
) -> None:
    env = python_job(tmp_path, "job_exists", "VALUE = 1\n")
    handle = run(command, kind="python", env=env)

    assert finish(handle) == 1
    stderr = read(handle, "stderr").decode()
    assert stderr.count("\n") == 1
    assert stderr.startswith("pinball: cannot run")
    assert message in stderr


def test_a_missing_import_inside_a_python_job_shows_the_traceback(
    run: Run, tmp_path: pathlib.Path
) -> None:
    env = python_job(tmp_path, "job_imports", "import no_such_dependency\n")
    handle = run("job_imports:main", kind="python", env=env)

    assert finish(handle) == 1
    stderr = read(handle, "stderr").decode()
    assert "Traceback" in stderr
    assert "No module named 'no_such_dependency'" in stderr


def test_a_python_job_that_crashes_the_interpreter_does_not_touch_the_worker(
    run: Run, tmp_path: pathlib.Path
) -> None:
    env = python_job(
        tmp_path, "job_crashes", "import os\ndef main():\n    os.abort()\n"
    )

    assert finish(run("job_crashes:main", kind="python", env=env)) == -signal.SIGABRT


def test_call_main_in_process(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    python_job(tmp_path, "job_in_process", "def main():\n    return 4\n")
    monkeypatch.syspath_prepend(str(tmp_path / "jobs"))

    assert call.main(["job_in_process:main"]) == 4
    assert call.main([]) == 1
    assert "expected one argument" in capsys.readouterr().err
    assert call.main(["job_in_process:nothing"]) == 1
    assert "has no 'nothing'" in capsys.readouterr().err


# -- Stopping --------------------------------------------------------------------


def test_wait_returns_none_while_the_job_runs(run: Run) -> None:
    handle = run("sleep 300")

    assert handle.wait(0) is None
    assert handle.wait(0.05) is None

    handle.abort(_GRACE_SEC)
    assert finish(handle) == -signal.SIGTERM
    assert handle.wait() == handle.wait(0) == -signal.SIGTERM


def test_a_job_killed_by_a_signal_has_a_negative_exit_code(run: Run) -> None:
    assert finish(run("kill -s USR1 $$; sleep 300")) == -signal.SIGUSR1


def test_abort_stops_the_job_and_everything_it_started(
    run: Run, tmp_path: pathlib.Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    handle = run(f"sleep 300 & echo $! > {pid_file}; echo ready; sleep 300")
    wait_until(lambda: read(handle, "stdout") == b"ready\n", "the job to start")
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)
    assert handle.pid in group_members(handle.pid)

    handle.abort(_GRACE_SEC)

    assert finish(handle) == -signal.SIGTERM
    assert_group_gone(handle.pid)
    assert not alive(grandchild)


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace(
    run: Run, tmp_path: pathlib.Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    handle = run(
        f"trap '' TERM; sleep 300 & echo $! > {pid_file}; echo ready; sleep 300"
    )
    wait_until(lambda: read(handle, "stdout") == b"ready\n", "the job to start")
    grandchild = int(pid_file.read_text())

    handle.abort(grace_sec=_WAIT_SEC)
    # SIGTERM is ignored and SIGKILL is far off: the job is still there.
    assert handle.wait(0.2) is None
    assert alive(grandchild)
    # Aborting again brings the SIGKILL closer.
    handle.abort(grace_sec=_GRACE_SEC)

    assert finish(handle) == -signal.SIGKILL
    assert_group_gone(handle.pid)
    assert not alive(grandchild)


def test_an_exit_status_collected_elsewhere_counts_as_a_failure(
    run: Run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def reaped_elsewhere(*args: Any) -> None:
        raise ChildProcessError(10, "No child processes")

    monkeypatch.setattr(os, "waitid", reaped_elsewhere)

    assert finish(run("exit 0")) == 1
    assert "exit status was collected outside the executor" in caplog.text


def test_abort_after_the_end_does_nothing(run: Run) -> None:
    handle = run("exit 3")
    assert finish(handle) == 3

    handle.abort(0)

    assert handle.wait(0) == 3
    assert "exit 3" in repr(handle)


def test_output_held_open_by_a_grandchild_does_not_hang_wait(
    run: Run, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    handle = run(f"sleep 300 & echo $! > {pid_file}; echo PINBALL:job_id=done")

    assert finish(handle) == 0
    assert read(handle, "stdout") == b"PINBALL:job_id=done\n"
    assert handle.properties == {"job_id": ["done"]}
    assert_group_gone(handle.pid)
    assert not alive(int(pid_file.read_text()))
    assert "kept its output open" in caplog.text


def test_what_a_finished_job_left_running_is_killed(
    run: Run, tmp_path: pathlib.Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    handle = run(f"sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}")

    assert finish(handle) == 0
    assert_group_gone(handle.pid)
    assert not alive(int(pid_file.read_text()))


@pytest.mark.skipif(not os.path.exists("/usr/bin/setsid"), reason="needs setsid(1)")
def test_output_held_open_outside_the_process_group_does_not_hang_wait(
    run: Run, tmp_path: pathlib.Path
) -> None:
    pid_file = tmp_path / "escaped.pid"
    handle = run(f"/usr/bin/setsid sleep 60 & echo $! > {pid_file}; echo done")
    try:
        assert finish(handle) == 0
        assert read(handle, "stdout") == b"done\n"
    finally:
        wait_until(pid_file.exists, "the pid file")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_jobs_are_killed_when_the_worker_exits(tmp_path: pathlib.Path) -> None:
    worker = textwrap.dedent(
        f"""
        from pinball_core.components import ExecutionSpec
        from pinball_core.executors.local import LocalExecutor

        spec = ExecutionSpec(
            "wf", "1", "job", 0, "shell", "sleep 300 & sleep 300", {{}},
            {str(tmp_path)!r},
        )
        print(LocalExecutor().start(spec).pid, flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", worker],
        capture_output=True,
        text=True,
        timeout=_WAIT_SEC,
    )

    assert result.returncode == 0, result.stderr
    assert "killing 1 running job" in result.stderr
    assert_group_gone(int(result.stdout))


# -- The plugin ------------------------------------------------------------------


def test_the_plugin_is_found_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch, log_dir: pathlib.Path
) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)

    executor = PluginManager().make_executor("local", {})

    assert isinstance(executor, LocalExecutor)
    assert isinstance(executor, Executor)
    spec = ExecutionSpec("wf", "123", "job", 0, "shell", "exit 5", {}, str(log_dir))
    handle = executor.start(spec)
    assert isinstance(handle, ExecutionHandle)
    assert finish(handle) == 5


def test_the_plugin_takes_a_drain_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)

    executor = PluginManager().make_executor("local", {"drain_timeout_sec": 2})

    assert isinstance(executor, LocalExecutor)
    assert executor.drain_timeout_sec == 2.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drain_timeout": 2}, "no option 'drain_timeout'"),
        ({"drain_timeout_sec": -1}, "0 or more; got -1"),
        ({"drain_timeout_sec": "soon"}, "got 'soon'"),
    ],
)
def test_the_plugin_refuses_bad_options(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)

    with pytest.raises(ConfigError, match=message):
        PluginManager().make_executor("local", options)


# -- Reading output in bounded memory ------------------------------------------


def test_a_partial_line_is_returned_at_the_end() -> None:
    splitter = LineSplitter()

    assert splitter.feed(b"no newline") == []
    assert splitter.feed(b" yet") == []
    assert splitter.finish() == [b"no newline yet"]
    assert splitter.finish() == []


def test_complete_lines_are_returned_as_soon_as_they_end() -> None:
    splitter = LineSplitter()

    assert splitter.feed(b"one\n") == [b"one"]
    assert splitter.feed(b"tw") == []
    assert splitter.feed(b"o\nthree\n\nfo") == [b"two", b"three", b""]
    assert splitter.feed(b"ur") == []
    assert splitter.finish() == [b"four"]


def test_a_line_longer_than_the_limit_is_skipped_however_it_is_cut() -> None:
    splitter = LineSplitter(limit=8)

    assert splitter.feed(b"12345678\n123456789\n1234") == [b"12345678"]
    assert splitter.feed(b"56789") == []
    assert splitter.feed(b"0123\nshort\n") == [b"short"]
    assert splitter.feed(b"123456789") == []
    assert splitter.finish() == []


def test_only_lines_with_the_prefix_are_returned() -> None:
    splitter = LineSplitter(prefix=b"PINBALL:")

    assert splitter.feed(b"PIN") == []
    assert splitter.feed(b"BALL:a=1\nPINHEAD\nxPINBALL:b=2\n\nPINBALL:c") == [
        b"PINBALL:a=1"
    ]
    assert splitter.feed(b"=3\nPINBALL:d=4") == [b"PINBALL:c=3"]
    assert splitter.finish() == [b"PINBALL:d=4"]
    # A prefix cut between chunks is found although neither chunk holds it.
    assert splitter.feed(b"x\nPINB") == []
    assert splitter.feed(b"ALL:e=5\nother\nlines\nPIN") == [b"PINBALL:e=5"]
    assert splitter.feed(b"BALL:f=6\n") == [b"PINBALL:f=6"]


def test_the_default_limit_is_one_chunk() -> None:
    splitter = LineSplitter()
    line = b"x" * CHUNK_BYTES

    assert splitter.feed(line + b"\n" + line + b"x\nend\n") == [line, b"end"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_log_that_cannot_be_written_does_not_stop_the_reading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    read_fd, write_fd = os.pipe()
    lines: list[bytes] = []
    copier = StreamCopier(
        "test-stream",
        os.fdopen(read_fd, "rb"),
        open("/dev/full", "wb"),  # noqa: SIM115
        lines.append,
        b"PINBALL:",
    )

    def write() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(b"x" * (4 * CHUNK_BYTES) + b"\nPINBALL:job_id=1\n")

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + _WAIT_SEC
    while time.monotonic() < deadline:
        select.select([copier.fileno()], [], [], 0.1)
        if not copier.read():
            break
    copier.close()
    writer.join(_WAIT_SEC)

    assert not writer.is_alive()
    assert lines == [b"PINBALL:job_id=1"]
    assert "cannot write the log /dev/full" in caplog.text
