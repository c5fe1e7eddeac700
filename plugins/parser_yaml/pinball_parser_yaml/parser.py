"""The YAML parser: workflow files in, instance and schedule tokens out."""

import json
import logging
import pathlib
from collections.abc import Mapping, Sequence
from typing import Final

from pinball_core.errors import DefinitionError
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.definition import instance_tokens

from pinball_parser_yaml import graph, loader
from pinball_parser_yaml.definitions import WorkflowDef, read_workflows
from pinball_parser_yaml.problems import Problem, did_you_mean

log = logging.getLogger(__name__)

#: File name endings read from a folder.
SUFFIXES = (".yaml", ".yml")

#: The parser_params the yaml parser takes.
PARAMS: Final = ("path", "base_dir", "python_path")

# What parser_params.path must be, for its errors.
_PATH_IS = "a YAML file or a folder of them"


class YamlParser:
    """Reads the workflows in one YAML file or every YAML file of a folder.

    Files are read once, on first use, so a parser made at start-up costs
    nothing until a workflow is needed; make a new parser to see changes.

    :param path:
        The file or folder; a relative path is taken from ``base_dir``.
    :param base_dir:
        Where relative paths start: the config file's folder when known,
        otherwise the current folder.
    :param python_path:
        Folders the jobs' Python callables import from, after the folder of
        their workflow's file; relative ones are taken from ``base_dir``.
    """

    def __init__(
        self,
        path: str | pathlib.Path,
        base_dir: pathlib.Path | None = None,
        python_path: Sequence[str | pathlib.Path] = (),
    ):
        base = base_dir or pathlib.Path.cwd()
        path = pathlib.Path(path).expanduser()
        self.path = path if path.is_absolute() else base / path
        self.python_path = [
            str((base / pathlib.Path(folder).expanduser()).resolve())
            for folder in python_path
        ]
        self._workflows: dict[str, WorkflowDef] | None = None
        self._problems: list[Problem] = []

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
        definition = self._definition(workflow)
        problems = self._problems_of(definition)
        if problems:
            raise DefinitionError(workflow, [str(p) for p in problems])

        # Python jobs import from the folder of their workflow's file, as
        # scripts kept beside it are found there, then from python_path.
        folder = str(pathlib.Path(definition.file).resolve().parent)
        return instance_tokens(
            workflow,
            instance,
            definition.jobs,
            definition.emails,
            python_path=list(dict.fromkeys([folder, *self.python_path])),
        )

    def schedule_token(self, workflow: str) -> Token | None:
        """The unowned schedule token of ``workflow``, or None if unscheduled."""
        definition = self._definition(workflow)
        if definition.schedule is None:
            return None
        data = definition.schedule.token_data(workflow, definition.emails)
        return Token(
            names.schedule_name(workflow), data=json.dumps(data, sort_keys=True)
        )

    def validate(self) -> list[str]:
        """Every problem in every file, one line each, in file order."""
        self._load()
        return [str(p) for p in self._problems]

    # -- Reading --------------------------------------------------------------

    def _definition(self, workflow: str) -> WorkflowDef:
        workflows = self._load()
        if workflow not in workflows:
            hint = did_you_mean(workflow, workflows)
            message = (
                f"no workflow {workflow!r} in {self.path}{hint}; "
                f"known: {', '.join(sorted(workflows)) or 'none'}"
            )
            # A file that does not parse hides every workflow in it: say so,
            # or the workflow merely looks misspelt.
            unread = [str(p) for p in self._problems if p.workflow is None]
            if unread:
                listed = "".join(f"\n  {line}" for line in unread)
                message += f"; problems outside any workflow may hide it:{listed}"
            raise ValueError(message)
        return workflows[workflow]

    def _problems_of(self, definition: WorkflowDef) -> list[Problem]:
        # A problem outside any workflow of the same file (a duplicate name, a
        # bad top-level key) may change what the workflow means, and a second
        # definition elsewhere makes it ambiguous, so both block it too.
        return [
            p
            for p in self._problems
            if p.workflow == definition.name
            or (p.workflow is None and p.file == definition.file)
        ]

    def _files(self) -> list[pathlib.Path]:
        if self.path.is_dir():
            return sorted(
                p for p in self.path.iterdir() if p.suffix in SUFFIXES and p.is_file()
            )
        return [self.path]

    def _load(self) -> dict[str, WorkflowDef]:
        if self._workflows is not None:
            return self._workflows
        workflows: dict[str, WorkflowDef] = {}
        problems: list[Problem] = []

        if not self.path.exists():
            problems.append(
                Problem(
                    str(self.path),
                    0,
                    0,
                    "no such file or folder; set parser_params.path to a YAML "
                    "file or a folder of them",
                )
            )
        for file in self._files() if self.path.exists() else []:
            found, file_problems = _read_file(file)
            problems.extend(file_problems)
            for definition in found:
                earlier = workflows.get(definition.name)
                if earlier is not None:
                    problems.append(
                        Problem(
                            definition.file,
                            definition.mark.line,
                            definition.mark.column,
                            f"is also defined in {earlier.file}:{earlier.mark.line}; "
                            "rename one",
                            definition.name,
                        )
                    )
                    continue
                workflows[definition.name] = definition
                problems.extend(graph.check(definition))

        log.debug("read %d workflow(s) from %s", len(workflows), self.path)
        self._workflows = workflows
        self._problems = problems
        return workflows


def _read_file(file: pathlib.Path) -> tuple[list[WorkflowDef], list[Problem]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(str(file), 0, 0, f"cannot be read: {exc}")]
    try:
        data = loader.load(text)
    except loader.YamlLoadError as exc:
        return [], [Problem(str(file), exc.line, exc.column, exc.reason)]
    return read_workflows(str(file), data)


def make(params: Mapping[str, object], base_dir: pathlib.Path | None) -> YamlParser:
    """A parser from the config's ``parser_params``, checked.

    Problems with them make a ValueError with a line for each, starting with
    the key, ``parser_params.path: ...``; the plugin turns it into the config
    error that ``pinball config check`` and every command report. Nothing
    is read yet, but ``path`` must exist: a path that does not is a mistake
    in the config, not in a workflow.
    """
    problems = [_unknown_key(str(key)) for key in params if key not in PARAMS]
    path = params.get("path")
    if path is None:
        problems.append(f"parser_params.path: is required: {_PATH_IS}")
    elif not isinstance(path, str | pathlib.Path) or not str(path):
        problems.append(f"parser_params.path: must be {_PATH_IS}, got {path!r}")
    if params.get("base_dir") is not None:
        base_dir = pathlib.Path(str(params["base_dir"]))
    python_path = params.get("python_path", [])
    if isinstance(python_path, str):
        python_path = [python_path]
    if not isinstance(python_path, list) or not all(
        isinstance(folder, str) and folder for folder in python_path
    ):
        problems.append(
            "parser_params.python_path: must be a folder or a list of folders, "
            f"got {params.get('python_path')!r}"
        )
    if problems:
        raise ValueError("\n".join(problems))

    made = YamlParser(str(path), base_dir, python_path)
    if not made.path.exists():
        raise ValueError(
            f"parser_params.path: {made.path.absolute()} does not exist; "
            f"set it to {_PATH_IS}"
        )
    return made


def _unknown_key(key: str) -> str:
    hint = did_you_mean(key, PARAMS) or f"; it takes {', '.join(PARAMS)}"
    return f"parser_params.{key}: unknown key for the yaml parser{hint}"
