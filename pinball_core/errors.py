"""Errors raised by the token master, its clients, stores, config and plugins.

Master errors carry one of the original's error codes so that a client, local
or remote, can tell a version conflict from a missing token from bad input.
"""

import enum
from collections.abc import Sequence
from typing import Any


class ErrorCode(enum.StrEnum):
    """Why a master request failed; the wire format uses the member names."""

    UNKNOWN = "UNKNOWN"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    NOT_FOUND = "NOT_FOUND"
    INPUT_ERROR = "INPUT_ERROR"
    UNAUTHORIZED = "UNAUTHORIZED"


class PinballError(Exception):
    """Base of every error Pinball raises on purpose."""


class MasterError(PinballError):
    """A master request was refused; nothing it asked for was applied."""

    code: ErrorCode = ErrorCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # A code a tool can act on leads the message; UNKNOWN tells nobody
        # anything, so a master that cannot be reached reads as plain text.
        if self.code is ErrorCode.UNKNOWN:
            return self.message
        return f"{self.code.value}: {self.message}"

    @staticmethod
    def from_code(code: str, message: str) -> "MasterError":
        """Build the typed error for a wire ``code``; unknown codes map to UNKNOWN."""
        for cls in _BY_CODE:
            if cls.code.value == code:
                return cls(message)
        return MasterError(message)


class VersionConflictError(MasterError):
    """A token was sent with a version other than the stored one."""

    code = ErrorCode.VERSION_CONFLICT


class NotFoundError(MasterError):
    """A token sent with a version (an update, delete or archive) does not exist."""

    code = ErrorCode.NOT_FOUND


class InputError(MasterError):
    """The request is malformed: a bad name, a missing version, a duplicate."""

    code = ErrorCode.INPUT_ERROR


class UnauthorizedError(MasterError):
    """The request did not carry the master's shared secret."""

    code = ErrorCode.UNAUTHORIZED


class MasterUnavailableError(MasterError):
    """The master could not be reached, or its store refused the change."""

    code = ErrorCode.UNKNOWN


_BY_CODE: tuple[type[MasterError], ...] = (
    VersionConflictError,
    NotFoundError,
    InputError,
    UnauthorizedError,
)


class StoreError(PinballError):
    """The store could not read or write; what was stored before is intact."""


class StoreMissingError(StoreError):
    """A store that is only to be read has never been created.

    Readers refuse it rather than create an empty store, so a misspelt
    ``store`` reads as a mistake, not as a store with nothing in it.
    ``location`` is where the store was looked for; ``advice`` follows it.
    """

    def __init__(self, location: str, advice: str = "") -> None:
        message = f"no Pinball store at {location}"
        super().__init__(f"{message} {advice}" if advice else message)
        self.location = location


class ServeError(PinballError):
    """A server could not start: its address is taken or invalid, or its store
    is held by another master."""


class ConfigError(PinballError):
    """The config file is missing, unreadable or has a bad key or value.

    The message names the file, the key and the reason. A check that finds
    several problems at once gives them as ``problems``, one ``KEY: reason``
    each, so that ``pinball config check`` can print a line for each; the
    message is then all of them joined with ``"; "``, which keeps every other
    command's report on one line.

    :param message: the whole message; may be left out when ``problems`` is given.
    :param problems: one message each; when left out, the one ``message``.
    """

    def __init__(self, message: str = "", *, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems) or [message]
        super().__init__(message or "; ".join(self.problems))

    def within(self, label: str) -> "ConfigError":
        """The same error with every problem starting ``label: ``, the file."""
        return ConfigError(
            f"{label}: {self}", problems=[f"{label}: {p}" for p in self.problems]
        )

    def __reduce__(self) -> Any:
        # Rebuild from both, so a copy across processes keeps the problems.
        return _config_error, (str(self), self.problems)


def _config_error(message: str, problems: list[str]) -> ConfigError:
    return ConfigError(message, problems=problems)


class PluginLoadError(PinballError):
    """A plugin the config names is missing or failed to load.

    The message names the entry-point group, the plugin name and the cause.
    """


class DefinitionError(PinballError, ValueError):
    """A workflow's definition has problems, so nothing can be built from it.

    Parsers raise it from ``instance_tokens``. It is a ValueError too, since
    the parser contract promised one before this class existed, and callers
    that catch ValueError still see it. The message names the workflow and
    lists each problem on a line of its own, with its place where known.

    :param workflow: the workflow whose definition has the problems.
    :param problems: one readable line each, e.g. ``file:line:column: reason``.
    """

    def __init__(self, workflow: str, problems: Sequence[str]) -> None:
        self.workflow = workflow
        self.problems = list(problems)
        count = len(self.problems)
        what = "a problem" if count == 1 else f"{count} problems"
        fix = "fix it" if count == 1 else "fix them"
        listed = "".join(f"\n  {problem}" for problem in self.problems)
        super().__init__(
            f"workflow {workflow} has {what} in its definition; {fix}:{listed}"
        )

    def __reduce__(self) -> tuple[type["DefinitionError"], tuple[str, list[str]]]:
        # The message is built from the arguments, so rebuild it from them.
        return type(self), (self.workflow, self.problems)
