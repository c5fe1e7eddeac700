"""Runs one Python job class: what a ``JobTemplate`` job's command calls.

``python -m pinball_parser_python.job_runner --job_import_dirs_config=NAME
--job_class_name=CLASS --job_params="k=v,..." [--executor=E]
[--executor_config="k=v,..."] [--write_lock=NAME] [--dry_run]``, run in
``job_repo_dir``. It imports the job modules, makes the class with the
parameters (a bare ``k`` means ``True``) and calls ``runjob()``; the exit
code is 0 when it returns, 1 with the traceback when it raises, 2 when the
class cannot be found.
"""

import argparse
import contextlib
import fcntl
import logging
import os
import pathlib
import sys
import tempfile
import traceback
from collections.abc import Iterator
from typing import Any

from pinball_parser_python import discovery

log = logging.getLogger(__name__)

#: Where write locks live unless PINBALL_LOCK_DIR says otherwise.
_LOCK_DIRS = ("/var/lock", tempfile.gettempdir())


def parse_pairs(text: str) -> dict[str, Any]:
    """``"a=1,b,c=x"`` as ``{"a": "1", "b": True, "c": "x"}``."""
    pairs: dict[str, Any] = {}
    for item in text.split(","):
        key, equals, value = item.partition("=")
        if key.strip():
            pairs[key.strip()] = value if equals else True
    return pairs


@contextlib.contextmanager
def write_lock(name: str | None) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (if any) for the duration."""
    if not name:
        yield
        return
    folder = os.environ.get("PINBALL_LOCK_DIR")
    if folder is None:
        folder = next(d for d in _LOCK_DIRS if os.access(d, os.W_OK))
    path = pathlib.Path(folder) / f"{name}.lock"
    with path.open("a") as handle:
        log.info("waiting for write lock %s", path)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pinball_parser_python.job_runner")
    parser.add_argument("--job_import_dirs_config", required=True)
    parser.add_argument("--job_class_name", required=True)
    parser.add_argument("--job_params", default="")
    parser.add_argument("--executor")
    parser.add_argument("--executor_config", default="")
    parser.add_argument("--write_lock", "--write_lock_name", dest="write_lock")
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args(argv)

    repo_dir = pathlib.Path.cwd()
    try:
        folders = discovery.import_dirs(args.job_import_dirs_config, repo_dir)
    except ValueError as exc:
        print(f"pinball: {exc}", file=sys.stderr)
        return 2
    found = discovery.find_classes(folders, repo_dir, {args.job_class_name})
    for problem in found.problems:
        print(f"pinball: {problem}", file=sys.stderr)
    job_class = found.classes.get(args.job_class_name)
    if job_class is None:
        print(
            f"pinball: no job class {args.job_class_name!r} in "
            f"{', '.join(map(str, folders))}",
            file=sys.stderr,
        )
        return 2

    settings: dict[str, Any] = {"executor_config": parse_pairs(args.executor_config)}
    if args.executor:
        settings["executor"] = args.executor
    try:
        job = job_class(parse_pairs(args.job_params), settings=settings)
        with discovery.on_path(repo_dir), write_lock(args.write_lock):
            job.runjob(dry_run=args.dry_run)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
