"""Test helpers: a private MariaDB server to kill, and a proxy that loses COMMITs.

Both are real: the server is ``mariadbd`` on a data folder of its own, killed
with real signals; the proxy is a TCP relay between the store and the server
that cuts the connection at exactly the moment a test needs.
"""

import contextlib
import ctypes
import ctypes.util
import os
import pathlib
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

import pymysql
import sqlalchemy as sa

from pinball_store_mysql import MysqlStore

#: Opens a store on the test's database; keyword arguments go to MysqlStore.
StoreMaker = Callable[..., MysqlStore]

# Linux's prctl option that sends the child a signal when its parent dies.
_PR_SET_PDEATHSIG = 1

# A COM_QUERY packet holding exactly "COMMIT", as PyMySQL sends it: a 3-byte
# length, sequence number 0, the command byte 3, then the text.
COMMIT_PACKET = b"\x07\x00\x00\x00\x03COMMIT"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def server_binaries() -> tuple[str, str] | None:
    """The install and server programs, or None if MariaDB is not installed."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = (
        shutil.which("mariadbd")
        or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
        or shutil.which("mysqld", path="/usr/sbin:/usr/local/sbin")
    )
    if install is None or server is None:
        return None
    return install, server


def _die_with_parent() -> None:
    """In the child: be killed when the test process dies, even by SIGKILL,
    so that a cancelled run leaves no server behind."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class PrivateMariadb:
    """A MariaDB server of the test's own on a free port, to stop and kill.

    Root has no password and may connect over TCP from 127.0.0.1.
    """

    def __init__(self, folder: pathlib.Path) -> None:
        binaries = server_binaries()
        assert binaries is not None, "check server_binaries() first"
        self._install, self._server = binaries
        self.folder = folder
        self.datadir = folder / "data"
        # Unix socket paths are limited to about 100 bytes; keep it short.
        self._socket_dir = pathlib.Path(tempfile.mkdtemp(prefix="pbmy"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._user = ["--user=root"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/"

    def install(self) -> None:
        result = subprocess.run(
            [
                self._install,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._user,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed:\n{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - the child's
        self.process = subprocess.Popen(
            [
                self._server,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self._socket_dir / 's'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.folder / 'server.pid'}",
                "--innodb-buffer-pool-size=32M",
                # Every acknowledged commit is on disk: what the test checks.
                "--innodb-flush-log-at-trx-commit=1",
                "--skip-log-bin",
                *self._user,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        wait_for(self._answers, 120, f"the private MariaDB on port {self.port}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            output = (self.folder / "server.log").read_text(errors="replace")
            raise RuntimeError(f"mariadbd exited at start:\n{output[-3000:]}")
        try:
            pymysql.connect(
                host="127.0.0.1", port=self.port, user="root", connect_timeout=2
            ).close()
        except pymysql.err.MySQLError:
            return False
        return True

    def stop(self, signum: signal.Signals) -> None:
        """Send ``signum`` and wait until the server is gone."""
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(timeout=120)
        self.process = None

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=60)
            self.process = None
        shutil.rmtree(self._socket_dir, ignore_errors=True)


class FaultyProxy:
    """A TCP relay to a MySQL server that can lose a COMMIT on purpose.

    Modes, set with :meth:`arm` for the next COMMIT only:

    - ``"after"``: relay the COMMIT, wait for the server's answer, drop the
      answer and cut the connection: the commit happened, the client cannot
      know it;
    - ``"before"``: cut the connection instead of relaying the COMMIT: the
      server rolls the transaction back.

    While :attr:`refusing` is set, new connections are closed at once, as
    if the server were down; ``arm(..., then_refuse=True)`` sets it at the
    moment of the cut, before the client can reconnect.
    """

    def __init__(self, server: sa.URL) -> None:
        self._server = server
        self._target = (server.host or "127.0.0.1", server.port or 3306)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._mode: str | None = None
        self._then_refuse = False
        self._lock = threading.Lock()
        self.cuts = 0
        self.refusing = False
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, database: str) -> str:
        """The URL of ``database`` on the server, through this proxy."""
        proxied = self._server.set(host="127.0.0.1", port=self.port, database=database)
        return proxied.render_as_string(hide_password=False)

    def arm(self, mode: str, *, then_refuse: bool = False) -> None:
        assert mode in ("after", "before")
        with self._lock:
            self._mode = mode
            self._then_refuse = then_refuse

    def _cut(self) -> None:
        with self._lock:
            self.cuts += 1
            if self._then_refuse:
                self.refusing = True

    def _take_mode(self) -> str | None:
        with self._lock:
            mode, self._mode = self._mode, None
            return mode

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            threading.Thread(
                target=self._relay, args=(client, server), daemon=True
            ).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        with contextlib.closing(client), contextlib.closing(server):
            while True:
                readable, _, _ = select.select([client, server], [], [], 1.0)
                if self._closed:
                    return
                for side in readable:
                    data = side.recv(1 << 16)
                    if not data:
                        return
                    if side is client and COMMIT_PACKET in data:
                        mode = self._take_mode()
                        if mode == "before":
                            self._cut()
                            return
                        server.sendall(data)
                        if mode == "after":
                            server.recv(1 << 16)  # the server's OK, dropped
                            self._cut()
                            return
                        continue
                    (server if side is client else client).sendall(data)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def connect(url: sa.URL, **kwargs: object) -> pymysql.connections.Connection:
    """A plain autocommit PyMySQL connection to the server ``url`` names."""
    query = dict(url.query)
    return pymysql.connect(
        host=url.host or "localhost",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database or None,
        unix_socket=query.get("unix_socket"),
        charset="utf8mb4",
        autocommit=True,
        **kwargs,  # type: ignore[arg-type]
    )
