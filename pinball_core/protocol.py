"""The master's requests and how they travel as JSON.

The same dataclasses serve the in-process master, the HTTP server and the
client, so a request means the same thing wherever it is made. Decoding
checks types and refuses anything malformed with InputError.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

from pinball_core.errors import InputError
from pinball_core.token import Token

#: The longest a claim may wait for work; clients time out after longer.
MAX_WAIT_SEC = 60.0

#: The HTTP header that carries the master's shared secret.
SECRET_HEADER = "X-Pinball-Secret"


@dataclasses.dataclass(slots=True)
class Query:
    """Tokens whose names start with ``prefix`` (and contain ``contains``).

    With ``max_tokens`` the result is the highest-priority matches, at most
    that many; without it, every match in name order. ``contains`` picks one
    kind of token out of a mixed tree, as ``/job/runnable/`` picks the jobs
    ready to run out of every workflow's tokens.
    """

    prefix: str = ""
    max_tokens: int | None = None
    contains: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "max_tokens": self.max_tokens,
            "contains": self.contains,
        }

    def matches(self, name: str) -> bool:
        """Whether a token called ``name`` answers this query."""
        if not name.startswith(self.prefix):
            return False
        return self.contains is None or self.contains in name

    @classmethod
    def from_dict(cls, raw: Any) -> "Query":
        body = _mapping(raw, "query")
        prefix = body.get("prefix", "")
        if not isinstance(prefix, str):
            raise InputError(f"query prefix must be a string, got {prefix!r:.80}")
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (
            isinstance(max_tokens, bool)
            or not isinstance(max_tokens, int)
            or max_tokens < 0
        ):
            raise InputError(
                f"max_tokens must be a non-negative integer, got {max_tokens!r:.80}"
            )
        contains = body.get("contains")
        if contains is not None and (not isinstance(contains, str) or not contains):
            raise InputError(
                f"contains must be a non-empty string, got {contains!r:.80}"
            )
        return cls(prefix=prefix, max_tokens=max_tokens, contains=contains)


@dataclasses.dataclass(slots=True)
class ModifyRequest:
    """Inserts (no version), updates (current version) and deletes, all or none."""

    updates: list[Token] = dataclasses.field(default_factory=list)
    deletes: list[Token] = dataclasses.field(default_factory=list)
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "updates": [t.to_dict() for t in self.updates],
            "deletes": [t.to_dict() for t in self.deletes],
        }

    @classmethod
    def from_dict(cls, raw: Any) -> "ModifyRequest":
        body = _mapping(raw, "modify request")
        return cls(
            updates=_tokens(body, "updates"),
            deletes=_tokens(body, "deletes"),
            request_id=_request_id(body),
        )


@dataclasses.dataclass(slots=True)
class QueryAndOwnRequest:
    """Claim unowned tokens under a prefix, highest priority first.

    The lease ends at ``expiration`` (seconds since the epoch) or, if
    ``lease_sec`` is given instead, that long after the master receives the
    request, which keeps the client's clock out of it. With ``wait_sec``, a
    claim that finds nothing waits up to that long for a token to become
    free instead of answering empty, so a worker hears of new work at once
    rather than at its next poll.
    """

    owner: str
    query: Query
    expiration: float | None = None
    lease_sec: float | None = None
    request_id: str | None = None
    wait_sec: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "owner": self.owner,
            "expiration": self.expiration,
            "lease_sec": self.lease_sec,
            "wait_sec": self.wait_sec,
            "query": self.query.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> "QueryAndOwnRequest":
        body = _mapping(raw, "query_and_own request")
        owner = body.get("owner")
        if not isinstance(owner, str) or not owner:
            raise InputError(f"owner must be a non-empty string, got {owner!r:.80}")
        expiration = _number(body, "expiration")
        lease_sec = _number(body, "lease_sec")
        if (expiration is None) == (lease_sec is None):
            raise InputError("give exactly one of expiration and lease_sec")
        if lease_sec is not None and lease_sec < 0:
            raise InputError(f"lease_sec must not be negative, got {lease_sec:g}")
        wait_sec = _number(body, "wait_sec")
        if wait_sec is not None and not 0 <= wait_sec <= MAX_WAIT_SEC:
            raise InputError(f"wait_sec must be between 0 and {MAX_WAIT_SEC}")
        return cls(
            owner=owner,
            query=Query.from_dict(body.get("query", {})),
            expiration=expiration,
            lease_sec=lease_sec,
            request_id=_request_id(body),
            wait_sec=wait_sec,
        )


@dataclasses.dataclass(slots=True)
class GroupRequest:
    """Count token names under ``prefix`` by their part up to ``suffix``."""

    prefix: str = ""
    suffix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "suffix": self.suffix}

    @classmethod
    def from_dict(cls, raw: Any) -> "GroupRequest":
        body = _mapping(raw, "group request")
        prefix = body.get("prefix", "")
        suffix = body.get("suffix")
        if not isinstance(prefix, str) or not (
            suffix is None or isinstance(suffix, str)
        ):
            raise InputError("group prefix and suffix must be strings")
        return cls(prefix=prefix, suffix=suffix)


@dataclasses.dataclass(slots=True)
class ArchiveRequest:
    """Move tokens, each with its current version, out of the master."""

    tokens: list[Token] = dataclasses.field(default_factory=list)
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tokens": [t.to_dict() for t in self.tokens],
        }

    @classmethod
    def from_dict(cls, raw: Any) -> "ArchiveRequest":
        body = _mapping(raw, "archive request")
        return cls(tokens=_tokens(body, "tokens"), request_id=_request_id(body))


def _mapping(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError(f"a {what} must be a JSON object, got {raw!r:.80}")
    return raw


def _tokens(body: Mapping[str, Any], key: str) -> list[Token]:
    raw = body.get(key) or []
    if not isinstance(raw, list):
        raise InputError(f"{key} must be a list of tokens")
    return [Token.from_dict(item) for item in raw]


def _request_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("request_id")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise InputError(
            f"request_id must be a string of 1 to 128 characters, got {value!r:.80}"
        )
    return value


def _number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{key} must be a number, got {value!r:.80}")
    try:
        return float(value)
    except OverflowError:
        raise InputError(f"{key} is too large: {value!r:.40}") from None
