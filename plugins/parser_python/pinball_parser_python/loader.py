"""Importing workflows modules and finding the workflows they list.

A module lists its workflows in ``WORKFLOWS``: a list of
:class:`~pinball_parser_python.api.Workflow`, or a dict of name to
``Workflow`` or to the original's ``WorkflowConfig``. Without
``WORKFLOWS``, every ``Workflow`` at the module's top level counts.

A module is imported anew on every load (reloaded if it was imported
before), so a long-running scheduler sees the file as it is now. An error
while importing is a problem naming the module, the file and line, and the
exception, not a crash.
"""

import dataclasses
import importlib
import importlib.util
import pathlib
import sys
import traceback
import types
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pinball_parser_python import legacy
from pinball_parser_python.api import Workflow
from pinball_parser_python.config import WorkflowConfig
from pinball_parser_python.discovery import on_path
from pinball_parser_python.problems import Problem, Site

#: The module attribute listing its workflows.
LIST_NAME: Final = "WORKFLOWS"


@dataclasses.dataclass(slots=True)
class Loaded:
    """Workflows read from one source, and problems outside any of them."""

    workflows: list[Workflow] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)


def from_module(
    dotted: str, params: Mapping[str, Any], search: Sequence[pathlib.Path]
) -> Loaded:
    """The workflows of module ``dotted`` (``pkg.mod`` or ``pkg.mod:NAME``)."""
    module_name, _, attr = dotted.partition(":")
    site = Site(f"module {module_name}")
    with on_path(*search):
        module = _import(module_name, site)
    if isinstance(module, Problem):
        return Loaded(problems=[module])
    return _collect(module, attr or None, params)


def from_object(
    dotted: str, params: Mapping[str, Any], search: Sequence[pathlib.Path]
) -> Loaded:
    """The workflows of the object ``pkg.mod.NAME`` names (``workflows_config``)."""
    module_name, _, attr = dotted.rpartition(".")
    if ":" in dotted:
        module_name, _, attr = dotted.partition(":")
    if not module_name or not attr:
        site = Site("parser_params.workflows_config")
        return Loaded(
            problems=[
                Problem(
                    site,
                    f"{dotted!r} must be a dotted name like "
                    "'mypackage.workflows.WORKFLOWS'",
                )
            ]
        )
    with on_path(*search):
        module = _import(module_name, Site(f"module {module_name}"))
    if isinstance(module, Problem):
        return Loaded(problems=[module])
    return _collect(module, attr, params)


def from_path(path: pathlib.Path, params: Mapping[str, Any]) -> Loaded:
    """The workflows of one ``.py`` file, or of every one in a folder."""
    if not path.exists():
        return Loaded(
            problems=[
                Problem(
                    Site(str(path)),
                    "no such file or folder; set parser_params.path to a Python "
                    "file or a folder of them",
                )
            ]
        )
    files = sorted(p for p in path.glob("*.py")) if path.is_dir() else [path]
    loaded = Loaded()
    for file in files:
        module = _exec_file(file)
        if isinstance(module, Problem):
            loaded.problems.append(module)
            continue
        found = _collect(module, None, params)
        loaded.workflows += found.workflows
        loaded.problems += found.problems
    return loaded


def _import(module_name: str, site: Site) -> types.ModuleType | Problem:
    try:
        module = sys.modules.get(module_name)
        if module is not None:
            return importlib.reload(module)
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            return Problem(
                site,
                f"cannot import workflows module {module_name!r}: no module named "
                f"{exc.name!r}; put its folder on PYTHONPATH or next to the "
                "config file, or use parser_params.path",
            )
        return _import_problem(module_name, exc, site)
    except Exception as exc:
        return _import_problem(module_name, exc, site)


def _exec_file(file: pathlib.Path) -> types.ModuleType | Problem:
    # A name of its own, so two folders' workflows.py do not collide and
    # nothing a user imports is shadowed.
    module_name = f"_pinball_workflows_{abs(hash(str(file.resolve())))}_{file.stem}"
    site = Site(str(file))
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        return Problem(site, "is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with on_path(file.parent.resolve()):
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        return _import_problem(str(file), exc, site)
    return module


def _import_problem(what: str, exc: BaseException, site: Site) -> Problem:
    """A problem at the line of the workflows code that raised ``exc``."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in frame.filename and not frame.filename.startswith("<")
    ]
    if isinstance(exc, SyntaxError) and exc.filename:
        site = Site(exc.filename, exc.lineno or 0)
    elif frames:
        site = Site(frames[-1].filename, frames[-1].lineno or 0)
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())
    return Problem(site, f"importing workflows module {what} failed: {summary}")


def _collect(
    module: types.ModuleType, attr: str | None, params: Mapping[str, Any]
) -> Loaded:
    file = getattr(module, "__file__", None) or module.__name__
    site = Site(str(file))
    name = attr or LIST_NAME
    if attr is None and not hasattr(module, LIST_NAME):
        workflows = [v for v in vars(module).values() if isinstance(v, Workflow)]
        if not workflows:
            return Loaded(
                problems=[
                    Problem(
                        site,
                        f"defines no workflows: make Workflow objects and list "
                        f"them in {LIST_NAME} = [...]",
                    )
                ]
            )
        return Loaded(workflows)
    if not hasattr(module, name):
        return Loaded(
            problems=[Problem(site, f"module {module.__name__} has no {name!r}")]
        )
    return _listed(getattr(module, name), f"{module.__name__}.{name}", site, params)


def _listed(value: object, where: str, site: Site, params: Mapping[str, Any]) -> Loaded:
    if isinstance(value, Workflow):
        return Loaded([value])
    if isinstance(value, Mapping):
        loaded = Loaded()
        configs = {}
        for key, item in value.items():
            if isinstance(item, WorkflowConfig):
                configs[key] = item
            elif isinstance(item, Workflow):
                if key != item.name:
                    item.problem(
                        item.site, f"is listed in {where} under another name, {key!r}"
                    )
                loaded.workflows.append(item)
            else:
                loaded.problems.append(
                    Problem(
                        site,
                        f"{where}[{key!r}] must be a Workflow or a WorkflowConfig, "
                        f"not {type(item).__name__}",
                    )
                )
        if configs:
            workflows, problems = legacy.from_config(configs, params, site)
            loaded.workflows += workflows
            loaded.problems += problems
        return loaded
    if isinstance(value, Sequence) and not isinstance(value, str):
        loaded = Loaded()
        for index, item in enumerate(value):
            if isinstance(item, Workflow):
                loaded.workflows.append(item)
            else:
                loaded.problems.append(
                    Problem(
                        site,
                        f"{where}[{index}] must be a Workflow, "
                        f"not {type(item).__name__}",
                    )
                )
        return loaded
    return Loaded(
        problems=[
            Problem(
                site,
                f"{where} must be a list of Workflow or a dict of name to Workflow "
                f"or WorkflowConfig, not {type(value).__name__}",
            )
        ]
    )
