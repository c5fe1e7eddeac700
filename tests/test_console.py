"""The ``pinball`` executable's entry point: Ctrl-C before the command runs."""

import subprocess
import sys

# A child that receives a real SIGINT at the moment it starts importing the
# command line, the slow first part of every `pinball` run, then runs
# `python -m pinball_core --version` as the executable would.
INTERRUPTED_WHILE_IMPORTING = """\
import os, runpy, signal, sys

class InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "pinball_core.cli":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptOnImport())
sys.argv = ["pinball", "--version"]
runpy.run_module("pinball_core", run_name="__main__")
"""


def test_ctrl_c_while_the_command_line_loads_exits_130_quietly() -> None:
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_IMPORTING],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )

    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_executable_runs_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pinball_core", "--version"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
