"""Finding the job classes a ``JobTemplate`` names.

``parser_params.job_import_dirs_config`` is the dotted name of a list of
folders (relative ones under ``job_repo_dir``); every Python module in them
is imported and searched for classes by name. The job runner does this on
the worker to run a job; ``validate`` does it too, so a missing class or a
module that fails to import is reported before anything runs.
"""

import contextlib
import dataclasses
import importlib
import pathlib
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any


@dataclasses.dataclass(slots=True)
class Found:
    """The classes found by name, and every problem met finding them."""

    classes: dict[str, type] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    #: Every class name the modules define, for did-you-mean hints.
    seen: set[str] = dataclasses.field(default_factory=set)


@contextlib.contextmanager
def on_path(*folders: pathlib.Path) -> Iterator[None]:
    """Put ``folders`` first on ``sys.path`` for the duration."""
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def forget_elsewhere(module_name: str, root: pathlib.Path) -> None:
    """Drop ``module_name`` and its packages from the module cache if they
    were imported from outside ``root``, so the next import finds root's."""
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        name = ".".join(parts[:end])
        file = getattr(sys.modules.get(name), "__file__", None)
        if file is not None and not pathlib.Path(file).resolve().is_relative_to(
            root.resolve()
        ):
            for cached in [
                m for m in sys.modules if m == name or m.startswith(name + ".")
            ]:
                del sys.modules[cached]
            return


def load_object(dotted: str, root: pathlib.Path | None = None) -> Any:
    """The object ``package.module.NAME`` (or ``package.module:NAME``) names.

    The module is reloaded if it was imported before, so a long-running
    process sees the file as it is now, as the original did; with ``root``,
    a module of that name imported from elsewhere is imported anew from it.
    """
    module_name, colon, attr = dotted.partition(":")
    if not colon:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{dotted!r} is not a dotted name like 'package.module.NAME'")
    if root is not None:
        forget_elsewhere(module_name, root)
    module = sys.modules.get(module_name)
    module = (
        importlib.reload(module) if module else importlib.import_module(module_name)
    )
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no {attr!r}") from None


def import_dirs(config_name: str, repo_dir: pathlib.Path) -> list[pathlib.Path]:
    """The folders that the list named ``config_name`` holds, made absolute.

    :raises ValueError: naming the setting and the fix.
    """
    with on_path(repo_dir):
        try:
            value = load_object(config_name, repo_dir)
        except ImportError as exc:
            raise ValueError(
                f"job_import_dirs_config {config_name!r} cannot be imported from "
                f"job_repo_dir {str(repo_dir)!r}: {exc}"
            ) from exc
    if isinstance(value, str | pathlib.Path) or not isinstance(value, Sequence):
        raise ValueError(
            f"job_import_dirs_config {config_name!r} must name a list of folders, "
            f"not {type(value).__name__}"
        )
    return [(repo_dir / pathlib.Path(str(d)).expanduser()).resolve() for d in value]


def find_classes(
    folders: Sequence[pathlib.Path], repo_dir: pathlib.Path, wanted: set[str]
) -> Found:
    """Import every module under ``folders`` and pick the ``wanted`` classes.

    A module under ``repo_dir`` is imported by its dotted path from there
    (``jobs/daily.py`` is ``jobs.daily``), so its own imports of sibling
    packages work; one elsewhere by its path from its folder.
    """
    found = Found()
    for folder in folders:
        if not folder.is_dir():
            found.problems.append(
                f"job import folder {str(folder)!r} does not exist; fix "
                "job_import_dirs_config or job_repo_dir"
            )
            continue
        root = repo_dir if folder.is_relative_to(repo_dir) else folder
        with on_path(root):
            for file in sorted(folder.rglob("*.py")):
                parts = file.relative_to(root).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                if not parts or not all(p.isidentifier() for p in parts):
                    continue
                _import(".".join(parts), file, root, wanted, found)
    return found


def _import(
    module_name: str,
    file: pathlib.Path,
    root: pathlib.Path,
    wanted: set[str],
    found: Found,
) -> None:
    try:
        # A long-running process (the scheduler, the UI) sees the file as it
        # is now, and never a module of the same name from another folder.
        forget_elsewhere(module_name, root)
        existing = sys.modules.get(module_name)
        module = (
            importlib.reload(existing)
            if existing is not None
            else importlib.import_module(module_name)
        )
    except Exception as exc:
        # The innermost frame in the failing file says which line to fix.
        frames = traceback.extract_tb(exc.__traceback__)
        line = next(
            (f.lineno for f in reversed(frames) if f.filename == str(file)), None
        )
        where = f"{file}:{line}" if line else str(file)
        found.problems.append(
            f"{where}: job module {module_name} failed to import: "
            f"{type(exc).__name__}: {exc}"
        )
        return
    found.seen.update(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__
    )
    for name in wanted:
        candidate = getattr(module, name, None)
        if isinstance(candidate, type) and name not in found.classes:
            found.classes[name] = candidate
