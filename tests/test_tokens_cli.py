"""``pinball tokens`` run as a real process against a master in the test."""

import json
import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from pinball_core.local import MasterThread
from pinball_core.stores.sqlite import SqliteStore
from pinball_core.token import FOREVER, VERSION_TOKEN_NAME, Token

SECRET = "s3cret"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's Pinball settings out of the child processes."""
    monkeypatch.setenv("PINBALL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PINBALL_MASTER_SECRET", raising=False)
    monkeypatch.delenv("PINBALL_DISABLE_PLUGINS", raising=False)


def write_config(tmp_path: pathlib.Path, port: int, **extra: Any) -> pathlib.Path:
    """A config file pointing at the master on ``port``, plus ``extra`` keys."""
    path = tmp_path / "pinball.yaml"
    values = {
        "master_host": "127.0.0.1",
        "master_port": port,
        "home": str(tmp_path / "home"),
        "client_connect_attempts": 1,
        # A master that stops answering fails the command instead of the test.
        "client_timeout_sec": 20,
        **extra,
    }
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def config(tmp_path: pathlib.Path, master: MasterThread) -> pathlib.Path:
    assert master.port is not None
    return write_config(tmp_path, master.port)


def pinball(
    config: pathlib.Path, *args: str, stdin: int = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pinball_core -c CONFIG tokens ARGS``; stdin is no TTY."""
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", "-c", str(config), "tokens", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )


def insert(master: MasterThread, *tokens: Token) -> list[Token]:
    return master.client().modify(updates=tokens)


def stored(master: MasterThread, prefix: str) -> list[Token]:
    return master.client().query(prefix)


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- cat


def test_cat_with_no_match(config: pathlib.Path) -> None:
    result = pinball(config, "cat", "/some_path")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["total 0"]


@pytest.mark.parametrize("command", [["cat"], ["cat", "-r"], ["ls"], ["rm", "-f"]])
def test_a_name_without_its_slash_is_refused_not_empty(
    config: pathlib.Path, command: list[str]
) -> None:
    result = pinball(config, *command, "workflow")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "pinball: error: 'workflow' cannot start a token name: every name starts "
        "with '/' (did you mean '/workflow'?)"
    ]


def test_cat_recursive_shows_utc_time_and_priority(
    config: pathlib.Path, master: MasterThread
) -> None:
    [token] = insert(
        master,
        Token("/some_path/some_token", owner="some_owner", expiration=10, data="x"),
    )

    result = pinball(config, "cat", "-r", "/some_path")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "total 1",
        f"Token(version={token.version}, owner=some_owner, "
        "expiration=1970-01-01 00:00:10 UTC, priority=0.000000, "
        "name=/some_path/some_token, data=x)",
    ]


def test_cat_without_recursive_shows_only_the_named_token(
    config: pathlib.Path, master: MasterThread
) -> None:
    insert(master, Token("/a"), Token("/a/b"), Token("/ab"))

    result = pinball(config, "cat", "/a")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "total 1"
    assert lines[1].endswith("name=/a, data=None)")


def test_cat_shows_forever_as_inf_and_keeps_one_line_per_token(
    config: pathlib.Path, master: MasterThread
) -> None:
    insert(master, Token("/t", owner="me", expiration=FOREVER, data="one\ntwo"))

    result = pinball(config, "cat", "/t")

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert "expiration=inf" in result.stdout
    assert "data=one\\ntwo)" in result.stdout


def test_cat_json_is_the_exact_tokens(
    config: pathlib.Path, master: MasterThread
) -> None:
    [token] = insert(master, Token("/j/1", priority=2.5, data='{"k": "a\\nb"}'))

    result = pinball(config, "cat", "-r", "/j", "--json")

    assert result.returncode == 0, result.stderr
    assert [Token.from_dict(t) for t in json.loads(result.stdout)] == [token]


# -- ls


def test_ls_with_no_groups(config: pathlib.Path) -> None:
    result = pinball(config, "ls", "/nothing/")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["total 0"]


def test_ls_groups_by_the_next_slash(
    config: pathlib.Path, master: MasterThread
) -> None:
    insert(master, *(Token(f"/some_path/t{i}") for i in range(10)), Token("/other/x"))

    result = pinball(config, "ls", "/")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "total 3",
        f"{VERSION_TOKEN_NAME} [1 token]",
        "/other [1 token]",
        "/some_path [10 tokens]",
    ]


def test_ls_recursive_lists_full_names_with_counts(
    config: pathlib.Path, master: MasterThread
) -> None:
    insert(master, Token("/some_path/b/deep"), Token("/some_path/a"))

    result = pinball(config, "ls", "-r", "/some_path/")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "total 2",
        "/some_path/a [1 token]",
        "/some_path/b/deep [1 token]",
    ]


def test_ls_json_is_names_to_counts(config: pathlib.Path, master: MasterThread) -> None:
    insert(master, Token("/w/1/a"), Token("/w/1/b"), Token("/w/2/a"))

    result = pinball(config, "ls", "/w/", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"/w/1": 2, "/w/2": 1}


# -- rm


def test_rm_with_nothing(config: pathlib.Path) -> None:
    result = pinball(config, "rm", "-r", "-f", "/some_path")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["no tokens found", "removed 0 tokens"]


def test_rm_recursive_one_token(config: pathlib.Path, master: MasterThread) -> None:
    insert(master, Token("/some_path/some_token"), Token("/kept"))

    result = pinball(config, "rm", "-r", "-f", "/some_path")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["/some_path/some_token", "removed 1 token"]
    assert [t.name for t in stored(master, "/")] == [VERSION_TOKEN_NAME, "/kept"]


def test_rm_never_removes_the_version_token(
    config: pathlib.Path, master: MasterThread
) -> None:
    insert(master, Token("/a"), Token("/b"))

    result = pinball(config, "rm", "-r", "-f", "/")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"skipping {VERSION_TOKEN_NAME}")
    assert lines[1:] == ["/a", "/b", "removed 2 tokens"]
    assert [t.name for t in stored(master, "/")] == [VERSION_TOKEN_NAME]


def test_rm_without_force_and_no_terminal_refuses(
    config: pathlib.Path, master: MasterThread
) -> None:
    insert(master, Token("/some_path/some_token"))

    result = pinball(config, "rm", "-r", "/some_path")

    assert result.returncode == 2
    [error] = result.stderr.splitlines()
    assert error.startswith("pinball: error: not removing anything")
    assert "pass -f" in error
    assert [t.name for t in stored(master, "/some_path")] == ["/some_path/some_token"]


@pytest.mark.parametrize(("answer", "left"), [(b"y\n", 0), (b"n\n", 1)])
def test_rm_asks_on_a_terminal(
    config: pathlib.Path, master: MasterThread, answer: bytes, left: int
) -> None:
    pty = pytest.importorskip("pty")
    insert(master, Token("/some_path/some_token"))
    leader, follower = pty.openpty()
    try:
        # Typed ahead: the terminal keeps it until the prompt reads it.
        os.write(leader, answer)
        result = pinball(config, "rm", "-r", "/some_path", stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)

    assert result.returncode == 0, result.stderr
    assert "remove 1 token? [y/N]" in result.stdout
    assert len(stored(master, "/some_path")) == left


def test_rm_fails_whole_when_a_token_changed(
    config: pathlib.Path, master: MasterThread
) -> None:
    """The deletes carry the versions read, so a stale one refuses them all."""
    pty = pytest.importorskip("pty")
    insert(master, Token("/r/1"), Token("/r/2"))
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "pinball_core", "-c", str(config)]
            + ["tokens", "rm", "-r", "/r/"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        # While the prompt waits, another client changes one of the tokens.
        read_until(process, "[y/N] ")
        [first, _] = stored(master, "/r/")
        insert(master, Token(first.name, version=first.version, data="new"))
        os.write(leader, b"y\n")
        _, stderr = process.communicate(timeout=60)
    finally:
        os.close(follower)
        os.close(leader)

    assert process.returncode == 1
    [error] = stderr.splitlines()
    assert error.startswith("pinball: error: VERSION_CONFLICT:")
    assert len(stored(master, "/r/")) == 2


def read_until(process: "subprocess.Popen[str]", text: str) -> str:
    """Read the process's output up to and including ``text``."""
    assert process.stdout is not None
    seen = ""
    while not seen.endswith(text):
        char = process.stdout.read(1)
        if not char:
            pytest.fail(f"the process ended before printing {text!r}: {seen!r}")
        seen += char
    return seen


# -- update


def test_update_without_version_inserts(
    config: pathlib.Path, master: MasterThread
) -> None:
    result = pinball(config, "update", "-n", "/some_path/new")

    assert result.returncode == 0, result.stderr
    [token] = stored(master, "/some_path/new")
    assert token == Token("/some_path/new", version=token.version)
    assert result.stdout.splitlines() == [
        "inserted",
        f"Token(version={token.version}, owner=None, expiration=none, "
        "priority=0.000000, name=/some_path/new, data=None)",
    ]


def test_update_with_every_field(config: pathlib.Path, master: MasterThread) -> None:
    [old] = insert(master, Token("/some_path/t", data="old"))

    result = pinball(
        config,
        "update",
        "-n",
        "/some_path/t",
        "-v",
        str(old.version),
        "-o",
        "some_owner",
        "-t",
        "10.5",
        "-i",
        "1.25",
        "-d",
        "some_data",
    )

    assert result.returncode == 0, result.stderr
    [token] = stored(master, "/some_path/t")
    assert token == Token(
        "/some_path/t",
        version=token.version,
        owner="some_owner",
        expiration=10.5,
        priority=1.25,
        data="some_data",
    )
    assert token.version != old.version
    assert result.stdout.splitlines() == [
        "updated",
        f"Token(version={token.version}, owner=some_owner, "
        "expiration=1970-01-01 00:00:10 UTC, priority=1.250000, "
        "name=/some_path/t, data=some_data)",
    ]


def test_update_takes_forever_as_expiration(
    config: pathlib.Path, master: MasterThread
) -> None:
    result = pinball(config, "update", "-n", "/t", "-o", "me", "-t", "FOREVER")

    assert result.returncode == 0, result.stderr
    [token] = stored(master, "/t")
    assert token.expiration == FOREVER
    assert "expiration=inf" in result.stdout


def test_update_owner_without_expiration_is_refused(
    config: pathlib.Path, master: MasterThread
) -> None:
    result = pinball(config, "update", "-n", "/t", "-o", "me")

    assert result.returncode == 2
    [error] = result.stderr.splitlines()
    assert "owner (-o) and the expiration time (-t) together" in error
    assert stored(master, "/t") == []


def test_update_takes_no_positional_arguments(
    config: pathlib.Path, master: MasterThread
) -> None:
    result = pinball(config, "update", "-n", "/t", "/extra")

    assert result.returncode == 2
    assert "unrecognized arguments: /extra" in result.stderr
    assert stored(master, "/t") == []


def test_update_with_a_stale_version_is_a_conflict(
    config: pathlib.Path, master: MasterThread
) -> None:
    [old] = insert(master, Token("/t"))
    assert old.version is not None

    result = pinball(config, "update", "-n", "/t", "-v", str(old.version - 1))

    assert result.returncode == 1
    [error] = result.stderr.splitlines()
    assert error.startswith("pinball: error: VERSION_CONFLICT:")
    assert stored(master, "/t") == [old]


def test_update_with_a_bad_name_is_refused(config: pathlib.Path) -> None:
    result = pinball(config, "update", "-n", "no_slash")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pinball: error: INPUT_ERROR: token name 'no_slash' must start with '/'"
    ]


# -- Reaching the master


def test_master_down_is_one_line_naming_the_address(tmp_path: pathlib.Path) -> None:
    port = closed_port()
    config = write_config(tmp_path, port)

    result = pinball(config, "ls", "/")

    assert result.returncode == 1
    [error] = result.stderr.splitlines()
    assert error.startswith("pinball: error:")
    assert f"127.0.0.1:{port}" in error


def test_host_and_port_options_override_the_config(
    tmp_path: pathlib.Path, master: MasterThread
) -> None:
    assert master.port is not None
    config = write_config(tmp_path, closed_port(), master_host="192.0.2.1")
    insert(master, Token("/t"))

    result = pinball(
        config, "cat", "-s", "127.0.0.1", "-p", str(master.port), "--json", "/t"
    )

    assert result.returncode == 0, result.stderr
    assert [t["name"] for t in json.loads(result.stdout)] == ["/t"]


@pytest.fixture
def guarded(store: SqliteStore) -> Iterator[MasterThread]:
    """A master that wants :data:`SECRET` with every request."""
    with MasterThread(store, port=0, secret=SECRET) as running:
        yield running


def test_secret_from_the_config_is_sent(
    tmp_path: pathlib.Path, guarded: MasterThread
) -> None:
    assert guarded.port is not None
    config = write_config(tmp_path, guarded.port, master_secret=SECRET)

    result = pinball(config, "update", "-n", "/t")

    assert result.returncode == 0, result.stderr
    assert [t.name for t in stored(guarded, "/t")] == ["/t"]


def test_missing_secret_is_unauthorized(
    tmp_path: pathlib.Path, guarded: MasterThread
) -> None:
    assert guarded.port is not None
    config = write_config(tmp_path, guarded.port)

    result = pinball(config, "ls", "/")

    assert result.returncode == 1
    [error] = result.stderr.splitlines()
    assert error.startswith("pinball: error: UNAUTHORIZED:")
    assert "master_secret" in error
