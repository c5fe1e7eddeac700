"""Reading a YAML file into plain values that remember where they were written.

PyYAML's safe loader follows YAML 1.1, where ``on``, ``no``, ``yes`` and
``off`` are booleans, ``12:30`` is the number 750 and ``0755`` is octal. A
workflow named ``on`` or a start time of ``12:30`` would silently change
meaning, so this loader resolves plain scalars with YAML 1.2-like rules:
only ``true``/``false`` are booleans, only decimal digits are integers, and
a number written with a leading zero stays text. Nothing else (dates,
timestamps, merge keys) is resolved implicitly.

Mappings and sequences are built as :class:`MarkedDict` and
:class:`MarkedList`, which keep the line and column of every key and item so
that each problem can name its place. A key written twice is not an error
here: the first one wins and the repeat is kept in
:attr:`MarkedDict.duplicates`, for the caller, who knows whether it was a
workflow, a job or a setting, to report.
"""

import dataclasses
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


@dataclasses.dataclass(frozen=True, slots=True)
class Mark:
    """A place in a file: ``line`` and ``column`` count from 1."""

    line: int
    column: int

    @classmethod
    def of(cls, node: Node) -> "Mark":
        return cls(node.start_mark.line + 1, node.start_mark.column + 1)


class MarkedDict(dict[Any, Any]):
    """A YAML mapping that knows where it and each key and value were written."""

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}
        #: Keys written again after their first time, with where they were.
        self.duplicates: list[tuple[Any, Mark]] = []


class MarkedList(list[Any]):
    """A YAML sequence that knows where it and each item were written."""

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []


class YamlLoadError(Exception):
    """A file that is not YAML the parser accepts; says where and why."""

    def __init__(self, reason: str, line: int = 0, column: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2-like scalars and marked containers.

    Both tables start empty instead of inheriting the YAML 1.1 ones, so only
    what is added below is resolved or constructed.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}
    yaml_constructors: ClassVar[dict[Any, Any]] = {}


def _add_resolver(tag: str, pattern: str, first: str) -> None:
    _Loader.add_implicit_resolver(
        f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first)
    )


_add_resolver("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add_resolver("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789")
_add_resolver(
    "float",
    r"^[-+]?(?:(?:0|[1-9][0-9]*)\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
    r"|^[-+]?(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$",
    "-+0123456789.",
)
_add_resolver("null", r"^(?:~|null|Null|NULL)$", "~nN")
# An empty value (``key:``) is null too; its first character is "".
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


def _construct_map(loader: _Loader, node: MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict(Mark.of(node))
    yield data
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool | None):
            raise ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            )
        if key in data:
            data.duplicates.append((key, Mark.of(key_node)))
            continue
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_marks[key] = Mark.of(key_node)
        data.value_marks[key] = Mark.of(value_node)


def _construct_list(loader: _Loader, node: SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList(Mark.of(node))
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_marks.append(Mark.of(item))


def _construct_int(loader: _Loader, node: ScalarNode) -> int:
    # Only the decimal form reaches here; the YAML 1.1 constructor would read
    # an explicitly tagged "0755" as octal and "1:30" as sexagesimal.
    return int(str(loader.construct_scalar(node)).replace("_", ""))


def _refuse(loader: _Loader, node: Node) -> Any:
    raise ConstructorError(
        None,
        None,
        f"the YAML tag {node.tag!r} is refused: workflow files may hold "
        "plain values only (text, numbers, true/false, lists, mappings)",
        node.start_mark,
    )


# Only the tags a workflow needs; every other tag, python/* and timestamps
# included, is refused.
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_list)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
# The safe loader's own constructors for these; looked up by name because
# the stubs type them for SafeConstructor, not for its subclasses.
for _tag in ("str", "bool", "float", "null"):
    _Loader.add_constructor(
        f"tag:yaml.org,2002:{_tag}", getattr(SafeConstructor, f"construct_yaml_{_tag}")
    )
_Loader.add_constructor(None, _refuse)


def load(text: str) -> Any:
    """The single document in ``text``, or None for an empty one.

    :raises YamlLoadError: for bad syntax, a refused tag, or several
        documents, with the line and column where it went wrong.
    """
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except ConstructorError as exc:
        # Raised by this module's constructors: the text parsed, a value was
        # refused, and the message says which and why.
        raise _marked_error(exc, "") from exc
    except yaml.MarkedYAMLError as exc:
        raise _marked_error(exc, "not valid YAML: ") from exc
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _marked_error(exc: yaml.MarkedYAMLError, prefix: str) -> YamlLoadError:
    """The error placed where the trouble starts, naming where it was found.

    PyYAML notices an unclosed quote or bracket only where the text runs
    out, often at the end of the file. Its context ("while scanning a quoted
    scalar") marks the construct that was left open, where a person has to
    look, so the error points there and says where PyYAML gave up.
    """
    context, problem = exc.context_mark, exc.problem_mark
    opening = str(exc.context or "")
    if (
        opening.startswith("while ")
        and context is not None
        and problem is not None
        and (context.line, context.column) != (problem.line, problem.column)
    ):
        where = f"at line {problem.line + 1}, column {problem.column + 1}"
        found = f"{exc.problem} {where}" if exc.problem else where
        reason = f"{prefix}{opening} that starts here, {found}"
        return YamlLoadError(reason, context.line + 1, context.column + 1)
    mark = problem or context
    reason = prefix + ", ".join(str(p) for p in (exc.context, exc.problem) if p)
    if mark is None:
        return YamlLoadError(reason)
    return YamlLoadError(reason, mark.line + 1, mark.column + 1)
