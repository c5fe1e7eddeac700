"""The Python parser: workflows modules in, instance and schedule tokens out."""

import json
import logging
import pathlib
from collections.abc import Mapping
from typing import Any, Final

from pinball_core.errors import DefinitionError
from pinball_core.token import Token
from pinball_core.workflow import definition, names

from pinball_parser_python import discovery, legacy, loader
from pinball_parser_python.api import Workflow
from pinball_parser_python.problems import Problem, Site

log = logging.getLogger(__name__)

#: Where the workflows are: exactly one of these parser_params.
SOURCES: Final = ("module", "path", "workflows_config")

#: Other parser_params this parser reads. With ``workflows_config`` any key
#: is allowed, since the original's command templates take them as ``%``
#: parameters.
OPTIONS: Final = (
    "base_dir",
    legacy.REPO_DIR,
    legacy.IMPORT_DIRS,
    "job_params",
    "end_date",
    "python_executable",
    # Added by the original's tools to say who asked; ignored.
    "caller",
)


class PythonParser:
    """Reads the workflows that a Python module or file lists.

    Modules are imported once, on first use, so a parser made at start-up
    costs nothing until a workflow is needed; make a new parser to see
    changes (a module is then imported anew).

    :param params: the config's ``parser_params``; see :func:`make`.
    :param base_dir: where relative paths start, and a folder modules are
        also imported from: the config file's folder when known.
    """

    def __init__(
        self, params: Mapping[str, Any], base_dir: pathlib.Path | None = None
    ) -> None:
        self.params = dict(params)
        if self.params.get("base_dir") is not None:
            base_dir = pathlib.Path(str(self.params["base_dir"])).expanduser()
        self.base_dir = (base_dir or pathlib.Path.cwd()).resolve()
        if self.params.get(legacy.REPO_DIR):
            # Job commands change to it on the workers, wherever they start.
            repo_dir = pathlib.Path(str(self.params[legacy.REPO_DIR])).expanduser()
            self.params[legacy.REPO_DIR] = str((self.base_dir / repo_dir).resolve())
        self._workflows: dict[str, Workflow] | None = None
        self._problems: list[Problem] = []
        self._source_problems: list[Problem] = []

    @property
    def path(self) -> pathlib.Path | None:
        """The file or folder ``parser_params.path`` names, made absolute;
        None when the workflows come from a module."""
        if not self.params.get("path") or any(
            self.params.get(key) for key in SOURCES if key != "path"
        ):
            return None
        path = pathlib.Path(str(self.params["path"])).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def source(self) -> str:
        """What the workflows are read from, for messages."""
        for key in SOURCES:
            if self.params.get(key):
                return f"{key} {self.params[key]}"
        return "nothing"

    # -- The parser contract --------------------------------------------------

    def workflow_names(self) -> list[str]:
        """Every workflow defined, sorted, including ones with problems."""
        return sorted(self._load())

    def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
        """The job tokens of a new ``instance`` of ``workflow``.

        :raises DefinitionError: if its definition has problems; the
            message lists every one of them.
        :raises ValueError: if the workflow is unknown.
        """
        found = self.workflow(workflow)
        problems = self.problems_of(workflow)
        if problems:
            raise DefinitionError(workflow, [str(p) for p in problems])
        return definition.instance_tokens(
            workflow,
            instance,
            found.jobs,
            found.emails,
            found.priorities,
            python_path=self.python_path,
        )

    @property
    def python_path(self) -> list[str]:
        """Where the jobs' processes import from: where the parser does.

        The job repository first, then the base folder, so a callable named
        by a workflow imports on a worker as it did here.
        """
        folders = [str(self.base_dir)]
        repo_dir = self.params.get(legacy.REPO_DIR)
        if repo_dir:
            folders.insert(0, str(repo_dir))
        return list(dict.fromkeys(folders))

    def schedule_token(self, workflow: str) -> Token | None:
        """The unowned schedule token of ``workflow``, or None if unscheduled."""
        found = self.workflow(workflow)
        if found.schedule is None or self.problems_of(workflow):
            return None
        data = found.schedule.token_data(workflow, found.emails)
        return Token(
            names.schedule_name(workflow), data=json.dumps(data, sort_keys=True)
        )

    def validate(self) -> list[str]:
        """Every problem of every workflow, one line each.

        Besides what loading finds, this imports the Python job classes that
        jobs of the original's ``JobTemplate`` run, and reports those that
        are missing or fail to import.
        """
        self._load()
        return [str(p) for p in [*self._problems, *self._job_class_problems()]]

    # -- More than the contract -------------------------------------------------

    def workflow(self, name: str) -> Workflow:
        """The definition of workflow ``name``; ValueError if there is none."""
        workflows = self._load()
        if name not in workflows:
            hint = definition.did_you_mean(name, workflows)
            message = (
                f"no workflow {name!r} in {self.source}{hint}; "
                f"known: {', '.join(sorted(workflows)) or 'none'}"
            )
            # A module that fails to import hides every workflow it lists:
            # say so, or the workflow merely looks misspelt.
            unread = [str(p) for p in self._problems if p.workflow is None]
            if unread:
                listed = "".join(f"\n  {line}" for line in unread)
                message += f"; problems outside any workflow may hide it:{listed}"
            raise ValueError(message)
        return workflows[name]

    def problems_of(self, workflow: str) -> list[Problem]:
        """The problems that stop ``workflow`` from starting.

        A problem outside any workflow (a module that failed to import) may
        have hidden part of it, so it blocks every workflow.
        """
        self._load()
        return [p for p in self._problems if p.workflow in (workflow, None)]

    # -- Reading ------------------------------------------------------------------

    def _load(self) -> dict[str, Workflow]:
        if self._workflows is not None:
            return self._workflows
        loaded = self._read()
        workflows: dict[str, Workflow] = {}
        problems = list(loaded.problems)
        for workflow in loaded.workflows:
            earlier = workflows.get(workflow.name)
            if earlier is not None:
                problems.append(
                    Problem(
                        workflow.site,
                        f"is also defined at {earlier.site}; rename one",
                        workflow.name,
                    )
                )
                continue
            workflows[workflow.name] = workflow
            problems += workflow.problems
            problems += _dependency_problems(workflow)
        if not workflows and not problems:
            problems.append(Problem(Site(self.source), "defines no workflows"))

        log.debug("read %d workflow(s) from %s", len(workflows), self.source)
        self._workflows = workflows
        self._problems = problems
        return workflows

    def _read(self) -> loader.Loaded:
        search = [self.base_dir]
        if self.params.get("module"):
            return loader.from_module(str(self.params["module"]), self.params, search)
        if self.params.get("workflows_config"):
            return loader.from_object(
                str(self.params["workflows_config"]), self.params, search
            )
        path = self.path
        if path is None:
            raise ValueError("parser_params names no module, path or workflows_config")
        return loader.from_path(path, self.params)

    def _job_class_problems(self) -> list[Problem]:
        wanted = {
            (workflow.name, job): spec
            for workflow in (self._workflows or {}).values()
            for job, spec in workflow.job_classes.items()
        }
        if not wanted:
            return []
        repo_dir = pathlib.Path(str(self.params[legacy.REPO_DIR]))
        site = Site(f"parser_params.{legacy.IMPORT_DIRS}")
        try:
            folders = discovery.import_dirs(
                str(self.params[legacy.IMPORT_DIRS]), repo_dir
            )
        except ValueError as exc:
            return [Problem(site, str(exc))]
        found = discovery.find_classes(
            folders, repo_dir, {name for name, _ in wanted.values()}
        )
        problems = [Problem(site, text) for text in found.problems]
        for (workflow, job), (class_name, class_site) in wanted.items():
            if class_name not in found.classes:
                problems.append(
                    Problem(
                        class_site,
                        f"JobTemplate names job class {class_name!r}, which no module "
                        f"under {', '.join(map(str, folders))} defines"
                        f"{definition.did_you_mean(class_name, found.seen)}",
                        workflow,
                        job,
                    )
                )
        return problems


def _dependency_problems(workflow: Workflow) -> list[Problem]:
    found = definition.dependency_problems(
        workflow.jobs,
        cyclic=workflow.cyclic,
        allow_cycles="pass cyclic=True to its Workflow",
    )
    return [
        Problem(workflow.jobs[p.job].site, p.reason, workflow.name, p.job)
        for p in found
    ]


def make(params: Mapping[str, Any], base_dir: pathlib.Path | None) -> PythonParser:
    """A parser from the config's ``parser_params``, checked.

    Exactly one of ``module`` (a dotted module, ``pkg.workflows`` or
    ``pkg.workflows:NAME``), ``path`` (a ``.py`` file or a folder of them)
    or ``workflows_config`` (the original's dotted name of its dict). Every
    problem with them is a line of a ValueError, starting with the key,
    ``parser_params.path: ...``; the plugin turns it into the config error
    that ``pinball config check`` and every command report. Nothing is
    imported yet, but a ``path`` must exist: one that does not is a mistake
    in the config, not in a workflow.
    """
    problems = []
    given = [key for key in SOURCES if params.get(key)]
    if len(given) != 1:
        found = " and ".join(given) if given else "none"
        problems.append(
            "parser_params: the python parser needs exactly one of module (a "
            "dotted module listing WORKFLOWS), path (a .py file or folder) or "
            f"workflows_config (the original's dotted name); found {found}"
        )
    if given != ["workflows_config"]:
        unknown = [str(key) for key in params if key not in (*SOURCES, *OPTIONS)]
        problems += [_unknown_key(key) for key in unknown]
    if problems:
        raise ValueError("\n".join(problems))

    made = PythonParser(params, base_dir)
    path = made.path
    if path is not None and not path.exists():
        raise ValueError(
            f"parser_params.path: {path} does not exist; set it to a Python file "
            "or a folder of them"
        )
    return made


def _unknown_key(key: str) -> str:
    known = (*SOURCES, *OPTIONS)
    hint = definition.did_you_mean(key, known) or f"; it takes {', '.join(known)}"
    return f"parser_params.{key}: unknown key for the python parser{hint}"
