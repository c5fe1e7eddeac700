"""``pinball init [FOLDER]``: write a starter config and example workflows."""

import argparse
import importlib.resources
import logging
import pathlib
import shutil
import sys
from typing import Any

from pinball_core.errors import ConfigError

log = logging.getLogger(__name__)

#: The package folder the starter files are copied from.
_STARTER = "pinball_core.starter"


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "init",
        help="write a starter config and example workflows",
        description="Write FOLDER/pinball.yaml, a commented config that runs on "
        "the embedded SQLite store, and example workflows under "
        "FOLDER/workflows. If any of them exists already, nothing is written "
        "unless --force, which overwrites them.",
    )
    parser.add_argument(
        "folder", nargs="?", default=".", help="where to write (default: here)"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite files that already exist"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: Any) -> int:
    folder = pathlib.Path(args.folder)
    files = list(_starter_files())
    targets = [(folder / relative, source) for relative, source in files]

    existing = [str(target) for target, _ in targets if target.exists()]
    if existing and not args.force:
        raise ConfigError(
            f"not overwriting {', '.join(existing)}; remove them or give --force"
        )

    for target, source in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        print(f"wrote {target}")

    config = folder / "pinball.yaml"
    print(
        f"\nnext: {_program()} -c {config} run --start hello\n"
        f"then open http://localhost:8080 (stop with Ctrl-C)"
    )
    return 0


def _program() -> str:
    """How to call this ``pinball``: its bare name if the PATH finds this one.

    Run from a virtual environment that is not activated, the bare name would
    find another installation, or none.
    """
    invoked = pathlib.Path(sys.argv[0])
    on_path = shutil.which("pinball")
    if on_path is not None and invoked.name == "pinball":
        try:
            if pathlib.Path(on_path).samefile(invoked):
                return "pinball"
        except OSError:
            pass
    return str(invoked) if invoked.name == "pinball" else "pinball"


def _starter_files() -> list[tuple[pathlib.PurePosixPath, Any]]:
    """Every starter file as (path relative to the folder, package resource)."""
    found = []
    pending = [(pathlib.PurePosixPath(), importlib.resources.files(_STARTER))]
    while pending:
        relative, node = pending.pop()
        for child in node.iterdir():
            if child.is_dir():
                if child.name != "__pycache__":
                    pending.append((relative / child.name, child))
            elif child.name.endswith(".yaml"):
                found.append((relative / child.name, child))
    return sorted(found, key=lambda pair: str(pair[0]))
