"""The token: the single unit of state that the master stores and versions.

A token is a named record. Its ``version`` changes on every write, so a client
that read a token can update it only if nobody wrote it in between. Its
``owner`` and ``expiration`` form a lease that claims make and that also serves
as a timer (a token owned until a time in the future cannot be claimed before).
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pinball_core.errors import InputError

#: Longest token name accepted by the master and every store.
MAX_NAME_LENGTH = 1024

#: An expiration that never comes: seconds since the epoch, exact as a double.
FOREVER = float(2**53)

#: The token that holds the master's version counter; it cannot be written.
VERSION_TOKEN_NAME = "/__BLESSED_VERSION__"

#: The owner of the version token.
MASTER_OWNER = "__master__"

DELIMITER = "/"


@dataclasses.dataclass(slots=True)
class Token:
    """One named, versioned record held by the master.

    ``version`` is None for a token that was never stored (an insert).
    ``expiration`` is in seconds since the epoch on the master's clock.
    ``data`` is opaque text to the master; the workflow layer stores JSON.
    """

    name: str
    version: int | None = None
    owner: str | None = None
    expiration: float | None = None
    priority: float = 0.0
    data: str | None = None

    def is_owned(self, now: float) -> bool:
        """Whether a lease on this token is in force at ``now``."""
        return (
            bool(self.owner) and self.expiration is not None and (self.expiration > now)
        )

    def to_dict(self) -> dict[str, Any]:
        """The token as plain JSON-ready values."""
        return {
            "name": self.name,
            "version": self.version,
            "owner": self.owner,
            "expiration": self.expiration,
            "priority": self.priority,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> "Token":
        """Build a token from decoded JSON, refusing wrong types with InputError."""
        if not isinstance(raw, Mapping):
            raise InputError(f"a token must be a JSON object, got {raw!r:.80}")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise InputError(f"unknown token field(s) {sorted(unknown)}")
        name = raw.get("name")
        if not isinstance(name, str):
            raise InputError(f"token name must be a string, got {name!r:.80}")
        version = raw.get("version")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int)
        ):
            raise InputError(f"{name}: version must be an integer, got {version!r}")
        owner = raw.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise InputError(f"{name}: owner must be a string, got {owner!r:.80}")
        expiration = _optional_number(name, "expiration", raw.get("expiration"))
        priority = _optional_number(name, "priority", raw.get("priority"))
        data = raw.get("data")
        for field, text in (("name", name), ("owner", owner), ("data", data)):
            if isinstance(text, str):
                _check_text(name, field, text)
        if data is not None and not isinstance(data, str):
            raise InputError(
                f"{name}: data must be a string (JSON text), got {type(data).__name__}"
            )
        return cls(
            name=name,
            version=version,
            owner=owner,
            expiration=expiration,
            priority=0.0 if priority is None else priority,
            data=data,
        )


_FIELDS = frozenset(f.name for f in dataclasses.fields(Token))


def _optional_number(name: str, field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name}: {field} must be a number, got {value!r:.80}")
    try:
        number = float(value)
    except OverflowError:
        raise InputError(f"{name}: {field} is too large: {value!r:.40}") from None
    if not math.isfinite(number):
        raise InputError(f"{name}: {field} must be finite, got {value!r}")
    return number


def _check_text(name: str, field: str, value: str) -> None:
    # A lone surrogate survives JSON decoding but no store can keep it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{name!r:.80}: {field} is not valid Unicode text (a lone surrogate)"
        ) from None


def validate_name(name: str) -> None:
    """Refuse a token name the master cannot store, with InputError.

    A name starts with ``/``, has no empty parts (so no ``//`` and no trailing
    ``/``) and is at most :data:`MAX_NAME_LENGTH` characters long.
    """
    if not name.startswith(DELIMITER):
        raise InputError(f"token name {name!r:.100} must start with '/'")
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(
            f"token name {name[:60]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_NAME_LENGTH}"
        )
    if "" in name[1:].split(DELIMITER):
        raise InputError(f"token name {name!r:.100} has an empty part")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InputError(
            f"token name {name!r:.100} contains a control character (such as a "
            "newline or NUL)"
        )
    if name.startswith(VERSION_TOKEN_NAME + DELIMITER):
        raise InputError(f"names under {VERSION_TOKEN_NAME} are reserved")


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``.

    Lets a sorted scan or a SQL range query select a prefix with ``>=`` and
    ``<`` instead of LIKE, which needs escaping and ignores indexes. The
    bound is the prefix with its last character raised by one (skipping the
    surrogates, which UTF-8 cannot hold).
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return prefix + "\U0010ffff"
    code = ord(stem[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return stem[:-1] + chr(code)
