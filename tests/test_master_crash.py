"""Crash tests of the token master: a real ``pinball master`` process, real signals.

Each test runs ``python -m pinball_core -c CONFIG master`` on a SQLite file in
the test's own folder and talks to it over HTTP, as workers do. The master is
killed with SIGKILL while clients are writing, or stopped with SIGTERM, and
started again on the same config. What it acknowledged before must be there
afterwards, exactly; what it did not acknowledge must be there whole or not
at all; and a request repeated with its request id must not apply twice.

Nothing here asserts on durations. Waits have hard limits only so that a
master that hangs fails the test instead of the whole run.
"""

import dataclasses
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pinball_core.client import HttpClient, MasterClient
from pinball_core.config import MASTER_SECRET_ENV
from pinball_core.errors import ErrorCode, MasterUnavailableError, VersionConflictError
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.token import Token

# Hard limits on waiting for a master to start, and for anything else (an exit,
# a writer, a request to be applied); generous, since CI machines are slow.
_START_TIMEOUT_SEC = 60.0
_WAIT_TIMEOUT_SEC = 30.0
_POLL_SEC = 0.05

# The crash test's load: writer threads, tokens each writer owns and rewrites
# in every request, and how many acknowledgements to wait for before the kill.
_WRITERS = 4
_TOKENS_PER_WRITER = 5
_ACKS_BEFORE_SIGNAL = 150
# A cap far above what a writer reaches before the signal, so every writer is
# still writing when it comes.
_MAX_REQUESTS_PER_WRITER = 2000


def _free_port() -> int:
    """A loopback port nobody listened on a moment ago.

    Another process could take it before the master binds it; the master then
    fails to start and the test reports its output.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class MasterProcess:
    """``pinball -c CONFIG master`` as a child process, on one config for good.

    Every :meth:`start` runs a new process on the same config, port and store
    and writes its output to a log file of its own, so a master that does not
    come up, or does not go down, is reported with what it said.
    """

    def __init__(self, home: pathlib.Path) -> None:
        self.home = home
        self.port = _free_port()
        self.config = home / "pinball.yaml"
        self.config.write_text(
            f"home: {json.dumps(str(home))}\n"
            "master_host: 127.0.0.1\n"
            f"master_port: {self.port}\n",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._log = home / "master-0.log"

    @property
    def database(self) -> pathlib.Path:
        """The store file: the config's default, ``<home>/pinball.db``."""
        return self.home / "pinball.db"

    def start(self) -> None:
        """Start a master and wait until it answers its health check."""
        assert self.process is None or self.process.poll() is not None
        self._starts += 1
        self._log = self.home / f"master-{self._starts}.log"

        # A secret in the test's environment would lock our clients out.
        env = {k: v for k, v in os.environ.items() if k != MASTER_SECRET_ENV}
        command = [sys.executable, "-m", "pinball_core", "-c", str(self.config)]
        with self._log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, "master"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                env=env,
            )

        deadline = time.monotonic() + _START_TIMEOUT_SEC
        while not self._answers():
            if self.process.poll() is not None:
                pytest.fail(
                    f"the master exited with {self.process.returncode} before "
                    f"answering on port {self.port}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.kill_leftover()
                pytest.fail(
                    f"the master did not answer on port {self.port} within "
                    f"{_START_TIMEOUT_SEC:.0f} s:\n{self.output()}"
                )
            time.sleep(_POLL_SEC)

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return response.status == 200 and json.loads(body).get("status") == "ok"

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the running master."""
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(
                f"the master exited with {self.process.returncode} before it was "
                f"sent {signum.name}:\n{self.output()}"
            )
        self.process.send_signal(signum)

    def wait(self) -> int:
        """Wait for the master to exit and return its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=_WAIT_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self.kill_leftover()
            pytest.fail(
                f"the master did not exit within {_WAIT_TIMEOUT_SEC:.0f} s:\n"
                f"{self.output()}"
            )

    def crash(self) -> None:
        """Kill the master with SIGKILL: no handler runs, nothing is flushed."""
        self.signal(signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL, self.output()

    def client(self) -> HttpClient:
        """A client that gives up fast, so a dead master fails a request quickly."""
        return HttpClient(
            "127.0.0.1",
            self.port,
            timeout_sec=10.0,
            connect_attempts=2,
            first_backoff_sec=0.05,
            max_backoff_sec=0.2,
        )

    def output(self) -> str:
        """What the current (or last) master process wrote to stdout and stderr."""
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no output)"

    def kill_leftover(self) -> None:
        """Kill and reap the master if it is still running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=_WAIT_TIMEOUT_SEC)


@pytest.fixture
def master_process(tmp_path: pathlib.Path) -> Iterator[MasterProcess]:
    """A running master process on a fresh home folder; killed at teardown."""
    running = MasterProcess(tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.kill_leftover()


def _integrity(database: pathlib.Path) -> list[str]:
    """``PRAGMA integrity_check`` of a SQLite file: ``["ok"]`` when sound."""
    # sqlite3.connect would create a missing file and call it sound.
    assert database.exists(), f"{database} does not exist"
    connection = sqlite3.connect(database)
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


def _crash_image(database: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    """Copy the store as a crash left it (file, log and index) into ``folder``.

    Checking a copy leaves the original exactly as the next master finds it:
    opening the original would recover and checkpoint its log first.
    """
    folder.mkdir()
    for suffix in ("", "-wal", "-shm"):
        part = database.with_name(database.name + suffix)
        if part.exists():
            shutil.copyfile(part, folder / part.name)
    return folder / database.name


def _tokens(answer: dict[str, Any]) -> list[Token]:
    return [Token.from_dict(raw) for raw in answer["updates"]]


def _get(client: MasterClient, name: str) -> Token | None:
    """The token called exactly ``name``; a query matches longer names too."""
    return next((t for t in client.query(name) if t.name == name), None)


def _brief(
    tokens: list[Token | None],
) -> list[tuple[str, int | None, str | None] | None]:
    """Tokens as (name, version, data) for messages; None where there is none."""
    return [None if t is None else (t.name, t.version, t.data) for t in tokens]


def _modify_body(request_id: str, tokens: list[Token]) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "updates": [t.to_dict() for t in tokens],
        "deletes": [],
    }


@dataclasses.dataclass
class _Writer:
    """One client thread rewriting its own tokens, and what became of each write.

    The writer stops at its first failed request, so at most one of its
    requests is unacknowledged: ``unacked``, whose request id lets the test
    send it again. Its tokens are then either as ``acked`` says, or as the
    unacknowledged request would have made them, all of them.
    """

    index: int
    names: list[str]
    #: The last acknowledged state of each token that has one.
    acked: dict[str, Token] = dataclasses.field(default_factory=dict)
    #: Every acknowledged token version, in order.
    history: list[Token] = dataclasses.field(default_factory=list)
    #: The body of the request that failed, if one did.
    unacked: dict[str, Any] | None = None
    #: Why a request failed other than the master being unavailable.
    error: BaseException | None = None

    def next_body(self, sequence: int) -> dict[str, Any]:
        updates = [
            Token(
                name,
                self.acked[name].version if name in self.acked else None,
                data=f"writer {self.index} request {sequence} token {name}",
            )
            for name in self.names
        ]
        return _modify_body(f"w{self.index}-{sequence}-{uuid.uuid4().hex}", updates)


class _AckCounter:
    """Acknowledgements so far across writers, for the thread that sends a signal.

    Writers that stop early are counted too, so the signalling thread does not
    sit out its whole limit when every writer has already failed.
    """

    def __init__(self, writers: int) -> None:
        self._count = 0
        self._running = writers
        self._changed = threading.Condition()

    def add(self) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def writer_stopped(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait for ``count`` acknowledgements; False if they did not come."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._count >= count or not self._running, timeout
            )
            return self._count >= count


def _write_until_failure(
    client: MasterClient, writer: _Writer, acks: _AckCounter
) -> None:
    """Rewrite the writer's tokens until a request fails; record every answer."""
    try:
        for sequence in range(_MAX_REQUESTS_PER_WRITER):
            body = writer.next_body(sequence)
            try:
                answer = client.call("modify", body)
            except MasterUnavailableError:
                # Mid-flight at the signal: it may or may not have committed.
                writer.unacked = body
                return

            for token in _tokens(answer):
                writer.acked[token.name] = token
                writer.history.append(token)
            acks.add()
    except BaseException as exc:  # reported by the test thread
        writer.error = exc
    finally:
        acks.writer_stopped()


def _write_and_signal(
    master: MasterProcess, signum: signal.Signals
) -> tuple[list[_Writer], int]:
    """Run the writers, send ``signum`` mid-run, and return them and the exit code.

    The signal is sent from this thread once enough writes are acknowledged,
    while the writers keep going, so it finds requests on their way: some not
    yet read, some queued for the store, some committed but not answered.
    """
    writers = [
        _Writer(i, [f"/crash/w{i}/t{j}" for j in range(_TOKENS_PER_WRITER)])
        for i in range(_WRITERS)
    ]
    acks = _AckCounter(len(writers))
    with master.client() as client:
        threads = [
            threading.Thread(
                target=_write_until_failure, args=(client, w, acks), daemon=True
            )
            for w in writers
        ]
        for thread in threads:
            thread.start()

        reached = acks.wait_for(_ACKS_BEFORE_SIGNAL, timeout=_WAIT_TIMEOUT_SEC)
        master.signal(signum)
        code = master.wait()

        for thread in threads:
            thread.join(timeout=_WAIT_TIMEOUT_SEC)
        assert not any(t.is_alive() for t in threads), "a writer is still writing"

    for writer in writers:
        if writer.error is not None:
            raise AssertionError(
                f"writer {writer.index} failed; the master said:\n{master.output()}"
            ) from writer.error
    assert reached, (
        f"fewer than {_ACKS_BEFORE_SIGNAL} writes were acknowledged before the "
        f"master went away; it said:\n{master.output()}"
    )
    # Every writer was cut off mid-run, not finished before the signal.
    assert all(w.unacked is not None for w in writers)
    return writers, code


def _check_writers_after_restart(master: MasterProcess, writers: list[_Writer]) -> None:
    """Check a restarted master against what the writers saw before it stopped.

    Every acknowledged token is there with its version and data, unless the
    writer's one unacknowledged request replaced all of its tokens. Sending
    that request again with its request id is then answered (applied once,
    before or after the restart); sending it with a new id is refused. Every
    version issued after the restart is above every version seen before it.
    """
    with master.client() as client:
        loaded = client.query("")
        stored = {t.name: t for t in loaded}
        seen = [t.version for t in loaded]
        seen += [t.version for w in writers for t in w.history]
        highest_before = max(v for v in seen if v is not None)

        expected_names = {name for w in writers for name in w.acked}
        unexpected = {
            name
            for name in stored
            if name.startswith("/crash/") and not any(name in w.names for w in writers)
        }
        assert not unexpected, f"tokens nobody wrote: {sorted(unexpected)}"
        missing = expected_names - set(stored)
        assert not missing, f"acknowledged tokens are gone: {sorted(missing)}"

        issued_after: list[int] = []
        for writer in writers:
            assert writer.unacked is not None
            issued_after += _check_writer(client, writer, stored)

        # Fresh tokens too: the counter did not restart from the stored tokens'
        # versions alone.
        fresh = client.modify([Token(f"/after/{i}", data=str(i)) for i in range(5)])
        issued_after += [t.version for t in fresh if t.version is not None]
        assert issued_after and min(issued_after) > highest_before

        versions = [t.version for t in client.query("")]
        assert len(versions) == len(set(versions)), "two tokens share a version"


def _check_writer(
    client: MasterClient, writer: _Writer, stored: dict[str, Token]
) -> list[int]:
    """Check one writer's tokens and its unacknowledged request.

    Returns the versions the master issued for that request if it applied it
    only now, after the restart.
    """
    assert writer.unacked is not None
    mine = [stored.get(name) for name in writer.names]
    last_acked = [writer.acked.get(name) for name in writer.names]
    wanted = {t["name"]: t["data"] for t in writer.unacked["updates"]}

    if mine == last_acked:
        applied_before = False
    else:
        # Only the unacknowledged request may have changed them, and all of them.
        assert all(t is not None and t.data == wanted[t.name] for t in mine), (
            f"writer {writer.index}: the tokens are neither as last acknowledged, "
            f"{_brief(last_acked)}, nor as the unacknowledged request would leave "
            f"them: {_brief(mine)}"
        )
        for now, then in zip(mine, last_acked, strict=True):
            assert now is not None and now.version is not None
            assert then is None or then.version is None or now.version > then.version
        applied_before = True

    # The client whose reply was lost asks again with the same request id.
    answer = _tokens(client.call("modify", writer.unacked))
    after = [_get(client, name) for name in writer.names]
    assert answer == after
    assert [t.data for t in answer] == [wanted[name] for name in writer.names]
    if applied_before:
        assert answer == mine, "the repeat was applied again"

    # The same change under a new id is a new request, and out of date now.
    fresh = dict(writer.unacked, request_id=uuid.uuid4().hex)
    with pytest.raises(VersionConflictError) as refused:
        client.call("modify", fresh)
    assert refused.value.code == ErrorCode.VERSION_CONFLICT
    assert [_get(client, name) for name in writer.names] == after

    if applied_before:
        return []
    return [t.version for t in answer if t.version is not None]


def test_sigkill_loses_no_acknowledged_write(
    master_process: MasterProcess, tmp_path: pathlib.Path
) -> None:
    """A master killed mid-write keeps every write it acknowledged, and no half."""
    writers, code = _write_and_signal(master_process, signal.SIGKILL)

    assert code == -signal.SIGKILL
    image = _crash_image(master_process.database, tmp_path / "crash-image")
    assert _integrity(image) == ["ok"]

    master_process.start()
    _check_writers_after_restart(master_process, writers)

    # What the master serves is what its store holds, and the file is sound.
    with master_process.client() as client:
        served = client.query("")
    master_process.signal(signal.SIGTERM)
    assert master_process.wait() == 0
    assert _integrity(master_process.database) == ["ok"]
    store = SqliteStore(f"sqlite:///{master_process.database}")
    try:
        assert sorted(store.load_active_tokens(), key=lambda t: t.name) == served
    finally:
        store.close()


def test_sigterm_exits_cleanly_and_keeps_every_write(
    master_process: MasterProcess,
) -> None:
    """SIGTERM under load: exit 0, and the next master has every acknowledged write."""
    writers, code = _write_and_signal(master_process, signal.SIGTERM)

    assert code == 0, master_process.output()
    assert _integrity(master_process.database) == ["ok"]

    master_process.start()
    _check_writers_after_restart(master_process, writers)


def test_sigterm_when_idle_exits_cleanly(master_process: MasterProcess) -> None:
    """SIGTERM with no request in flight: exit 0, and a restart sees everything."""
    with master_process.client() as client:
        written = client.modify([Token(f"/idle/{i}", data=str(i)) for i in range(20)])

    master_process.signal(signal.SIGTERM)
    assert master_process.wait() == 0, master_process.output()

    master_process.start()
    with master_process.client() as client:
        assert client.query("/idle/") == sorted(written, key=lambda t: t.name)


def test_repeat_after_sigkill_is_answered_not_applied(
    master_process: MasterProcess,
) -> None:
    """A request repeated after a crash gets its first answer and changes nothing."""
    body = _modify_body(
        "lost-reply-1",
        [Token("/lost/a", data="first a"), Token("/lost/b", data="first b")],
    )
    with master_process.client() as client:
        first = client.call("modify", dict(body))
    master_process.crash()

    master_process.start()
    with master_process.client() as client:
        again = client.call("modify", dict(body))
        assert again == first
        assert client.query("/lost/") == _tokens(first)

        fresh = dict(body, request_id=uuid.uuid4().hex)
        with pytest.raises(VersionConflictError) as refused:
            client.call("modify", fresh)
        assert refused.value.code == ErrorCode.VERSION_CONFLICT
        assert client.query("/lost/") == _tokens(first)


def _send_and_hang_up(port: int, operation: str, body: dict[str, Any]) -> None:
    """POST a request and close the connection before reading a byte of reply."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/{operation} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode() + payload)


def _wait_for_tokens(client: MasterClient, prefix: str, count: int) -> list[Token]:
    """The tokens under ``prefix`` once there are ``count``; fails after a limit."""
    deadline = time.monotonic() + _WAIT_TIMEOUT_SEC
    while True:
        tokens = client.query(prefix)
        if len(tokens) >= count:
            return tokens
        if time.monotonic() > deadline:
            pytest.fail(f"the master never applied the request; it has {tokens}")
        time.sleep(_POLL_SEC)


@pytest.mark.parametrize("crash", [False, True], ids=["same-master", "after-sigkill"])
def test_repeat_after_lost_http_reply_is_applied_once(
    master_process: MasterProcess, crash: bool
) -> None:
    """A request whose client hung up before the reply is applied once in all."""
    body = _modify_body(
        "hung-up-1",
        [Token("/hung/a", data="only a"), Token("/hung/b", data="only b")],
    )
    _send_and_hang_up(master_process.port, "modify", body)
    with master_process.client() as client:
        applied = _wait_for_tokens(client, "/hung/", 2)
    if crash:
        master_process.crash()
        master_process.start()

    with master_process.client() as client:
        again = client.call("modify", dict(body))
        assert _tokens(again) == applied
        assert client.query("/hung/") == applied

        fresh = dict(body, request_id=uuid.uuid4().hex)
        with pytest.raises(VersionConflictError) as refused:
            client.call("modify", fresh)
        assert refused.value.code == ErrorCode.VERSION_CONFLICT
        assert client.query("/hung/") == applied
