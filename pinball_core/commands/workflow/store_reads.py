"""Answering a command's reads from the store while the master is down.

The store holds every active token the master has committed (it commits
before it answers) besides the archive, which is how the UI reads it. So
``status`` and ``list`` can still show everything when the master cannot be
reached: active instances as the master last stored them, and a warning
that says so. Commands that change anything still need the master.
"""

from typing import Any

from pinball_core.client import MasterClient
from pinball_core.errors import MasterError
from pinball_core.protocol import Query
from pinball_core.store import Store
from pinball_core.token import Token


class StoreClient(MasterClient):
    """The master's reads (query, group, count), answered by ``store``.

    Requests are answered where the HTTP client would send them, so every
    read method of :class:`MasterClient` works unchanged. Answers follow the
    master's rules: names in order, or the highest priorities first with
    ``max_tokens``. Writes are refused. The client owns the store and
    closes it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def _send(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation == "query":
            found = [self._select(Query.from_dict(q)) for q in body["queries"]]
            answer: dict[str, Any] = {
                "tokens": [[t.to_dict() for t in ts] for ts in found]
            }
            if "counts" in body:
                answer["counts"] = self._count(body["counts"])
            return answer
        if operation == "group":
            prefix, suffix = body["prefix"], body.get("suffix") or ""
            return {"counts": self.store.group_token_names(prefix, suffix)}
        if operation == "count":
            return {"counts": self._count(body["prefixes"])}
        raise MasterError(
            f"{operation} needs the master: the store is only read while it is down"
        )

    def _count(self, prefixes: list[str]) -> list[int]:
        return [self.store.count_tokens(prefix) for prefix in prefixes]

    def _select(self, query: Query) -> list[Token]:
        found = self.store.read_tokens(query.prefix)
        tokens = [token for token in found if query.matches(token.name)]
        if query.max_tokens is None:
            return tokens
        # Read in name order, and the sort is stable: equal priorities stay
        # in name order, as the master gives them.
        tokens.sort(key=lambda token: -token.priority)
        return tokens[: query.max_tokens]

    def close(self) -> None:
        self.store.close()
