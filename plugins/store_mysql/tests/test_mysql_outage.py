"""A master on MySQL keeps serving while its MariaDB server is killed and restarted.

The server is a private ``mariadbd`` on a data folder of the test's own, so
the shared server is never disturbed. Writers keep inserting tokens through
HTTP while the server is killed (SIGKILL, then SIGTERM) and started again:
impatient ones, which give up on the first refusal, and a patient one, which
sends the same request again until it is answered. Afterwards every answered
write is in the database, no refused one is, the master's memory equals the
database, and the master was never restarted.
"""

import pathlib
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from mysql_testing import PrivateMariadb, connect, server_binaries, wait_for
from pinball_core.client import HttpClient
from pinball_core.errors import MasterError
from pinball_core.local import MasterThread
from pinball_core.token import Token

from pinball_store_mysql import MysqlStore

pytestmark = pytest.mark.skipif(
    server_binaries() is None,
    reason="the MariaDB server programs (mariadb-install-db, mariadbd) are not "
    "installed, so no private server can be killed; apt-get install mariadb-server",
)

# Short, so that the outage outlasts the store's retries and requests fail.
_OPTIONS = {"retry_sec": 1.5, "read_retry_sec": 1.5, "pool_timeout_sec": 5}


@pytest.fixture
def private_server(tmp_path: pathlib.Path) -> Iterator[PrivateMariadb]:
    server = PrivateMariadb(tmp_path)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.close()


class _Writer(threading.Thread):
    """Inserts ``/outage/<index>/<n>`` tokens one request at a time."""

    def __init__(self, port: int, index: int, *, patient: bool) -> None:
        super().__init__(daemon=True)
        self.index = index
        # The patient writer sends each request again, with the same request
        # id, for as long as the outage lasts; the others give up at once.
        self._client = HttpClient(
            "127.0.0.1",
            port,
            connect_attempts=200 if patient else 1,
            first_backoff_sec=0.05,
            max_backoff_sec=0.5,
            timeout_sec=60,
        )
        self.acked: list[Token] = []
        self.refused: list[str] = []
        self.errors: list[BaseException] = []
        self.pending_since: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        sequence = 0
        while not self._halt.is_set():
            sequence += 1
            name = f"/outage/{self.index}/{sequence:06d}"
            self.pending_since = time.monotonic()
            try:
                (token,) = self._client.modify([Token(name, data=str(sequence))])
            except MasterError:  # a 503: the store refused the batch
                self.refused.append(name)
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                self.errors.append(exc)
                return
            else:
                self.acked.append(token)
            finally:
                self.pending_since = None
        self._client.close()

    def stop(self) -> None:
        self._halt.set()

    def waited(self, seconds: float) -> bool:
        """Whether the request now in flight has waited ``seconds`` or more."""
        since = self.pending_since
        return since is not None and time.monotonic() - since >= seconds


def test_master_keeps_serving_through_server_restarts(
    private_server: PrivateMariadb,
) -> None:
    admin = connect(sa.make_url(private_server.url))
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE pinball CHARACTER SET utf8mb4")
    admin.close()
    url = private_server.url + "pinball"
    store = MysqlStore(url, master_name="outage", options=_OPTIONS)
    store.initialize()

    with MasterThread(store, port=0) as master:
        assert master.port is not None
        writers = [_Writer(master.port, i, patient=(i == 0)) for i in range(3)]
        for writer in writers:
            writer.start()

        _wait_for_acks(writers, 10, "writes before the outage")
        for signum in (signal.SIGKILL, signal.SIGTERM):
            _outage(private_server, writers, signum)

        for writer in writers:
            writer.stop()
        for writer in writers:
            writer.join(timeout=120)
        _raise_writer_errors(writers)
        served = master.client().query("/")

    reader = MysqlStore(url, master_name="outage")
    stored = reader.read_tokens("/")
    reader.close()

    # The master's memory and the database agree, version counter included.
    assert served == stored
    by_name = {t.name: t for t in stored}
    for writer in writers:
        for token in writer.acked:
            assert by_name.get(token.name) == token, f"lost acknowledged {token}"
        for name in writer.refused:
            assert name not in by_name, f"{name} was refused but stored"
    assert writers[0].refused == [], "the patient writer should only wait"


def _outage(
    server: PrivateMariadb, writers: list[_Writer], signum: signal.Signals
) -> None:
    """Stop the server with ``signum``, start it once the outage shows, and
    wait until every writer is answered again."""
    refused_before = sum(len(w.refused) for w in writers)
    server.stop(signum)

    # The outage shows as a request refused, or one waiting (a commit cut off
    # during COMMIT waits to learn whether it happened).
    def felt() -> bool:
        refused = sum(len(w.refused) for w in writers) > refused_before
        return refused or any(w.waited(3 * _OPTIONS["retry_sec"]) for w in writers)

    wait_for(felt, 60, f"requests to fail or wait after {signum.name}")
    server.start()
    _wait_for_acks(writers, 10, f"writes to resume after {signum.name}")


def _wait_for_acks(writers: list[_Writer], count: int, what: str) -> None:
    """Wait until every writer has ``count`` more answered writes than now."""
    since = [len(w.acked) for w in writers]

    def acked() -> bool:
        _raise_writer_errors(writers)
        return all(
            len(w.acked) >= s + count for w, s in zip(writers, since, strict=True)
        )

    wait_for(acked, 120, what)


def _raise_writer_errors(writers: list[_Writer]) -> None:
    for writer in writers:
        if writer.errors:
            raise writer.errors[0]
