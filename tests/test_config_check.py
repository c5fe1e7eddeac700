"""``pinball config check`` lists every problem of a config, one line each."""

import os
import pathlib
import subprocess
import sys

BAD_CONFIG = """\
workers: five
worker_lease_sec: -1
parser: yaml
parser_params: {pth: workflows, foo: 1}
ui_users:
  bob: {role: boss, password_hash: nope}
  alice: {role: viewer}
  carol: admin
"""


def check(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``pinball ARGS config check`` in the current folder and env."""
    return subprocess.run(
        [sys.executable, "-m", "pinball_core", *args, "config", "check"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )


def test_every_problem_is_a_line_of_its_own(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pinball.yaml").write_text(BAD_CONFIG)

    result = check("-c", "pinball.yaml")

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith("pinball: error: pinball.yaml: ") for line in lines)
    keys = [line.split(": ")[3] for line in lines]
    # The core keys first; the plugins still check their keys in the rest.
    assert keys == [
        "workers",
        "worker_lease_sec",
        "ui_users.bob.role",
        "ui_users.bob.password_hash",
        "ui_users.carol",
        "ui_users.alice",
        "parser_params.pth",
        "parser_params.foo",
        "parser_params.path",
    ], result.stderr


def test_a_bad_parser_leaves_parser_params_unchecked(
    home: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pinball.yaml").write_text("parser: 3\nparser_params: {pth: x}\n")

    result = check("-c", "pinball.yaml")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pinball: error: pinball.yaml: parser: must be a string, got 3"
    ]
