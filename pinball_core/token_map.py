"""The master's in-memory tokens, with the orders its requests need.

Names are kept sorted, so a prefix is a contiguous range found by bisection.
Tokens free to claim are also kept sorted by priority, so a claim of the
best few tokens does not scan every token under its prefix; leased tokens
wait in a heap keyed by expiration and rejoin the free ones when it passes.
A claim that also asks for names containing some text (such as
``/job/runnable/``) gets a free index of its own, built on first use, so it
does not wade through every other free token to find its kind.
"""

import heapq
from collections.abc import Iterator

from sortedcontainers import SortedDict, SortedList

from pinball_core.token import Token, prefix_upper_bound

# Free indexes kept for ``contains`` filters; past this many, further
# filters walk the main free index instead of growing memory without bound.
_MAX_FILTERED_INDEXES = 16


class TokenMap:
    """Tokens by name, plus priority orders of those no lease holds."""

    def __init__(self) -> None:
        self._tokens: SortedDict = SortedDict()
        # (-priority, name) of tokens unowned when last written or swept,
        # keyed by the text their names contain ("" for all of them).
        self._free: dict[str, SortedList] = {"": SortedList()}
        # (expiration, name, version) of leased tokens; stale entries, whose
        # token has changed since, are dropped when they reach the top.
        self._leases: list[tuple[float, str, int]] = []

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, name: str) -> bool:
        return name in self._tokens

    def get(self, name: str) -> Token | None:
        token: Token | None = self._tokens.get(name)
        return token

    def put(self, token: Token, now: float) -> None:
        """Insert or replace ``token``, filing it as free or leased at ``now``."""
        self.pop(token.name)
        self._tokens[token.name] = token
        if token.is_owned(now):
            assert token.expiration is not None and token.version is not None
            heapq.heappush(self._leases, (token.expiration, token.name, token.version))
        else:
            self._add_free(token)

    def pop(self, name: str) -> Token | None:
        """Remove and return the token called ``name``, if there is one."""
        token: Token | None = self._tokens.pop(name, None)
        if token is not None:
            entry = (-token.priority, name)
            for text, index in self._free.items():
                if text in name:
                    index.discard(entry)
        return token

    def scan(self, prefix: str) -> Iterator[Token]:
        """Tokens whose names start with ``prefix``, in name order."""
        if not prefix:
            yield from self._tokens.values()
            return
        bound = prefix_upper_bound(prefix)
        for name in self._tokens.irange(prefix, bound, inclusive=(True, False)):
            yield self._tokens[name]

    def count(self, prefix: str) -> int:
        """How many names start with ``prefix``, by bisection."""
        if not prefix:
            return len(self._tokens)
        low = self._tokens.bisect_left(prefix)
        return int(self._tokens.bisect_left(prefix_upper_bound(prefix)) - low)

    def free_by_priority(self, now: float, contains: str = "") -> Iterator[Token]:
        """Tokens no lease holds at ``now``, highest priority first, then by name.

        With ``contains``, only those whose names contain it.
        """
        self._release_expired(now)
        index = self._free_index(contains)
        for _, name in index:
            if contains in name:
                yield self._tokens[name]

    def next_expiration(self) -> float | None:
        """When the earliest lease ends, if any lease is held."""
        return self._leases[0][0] if self._leases else None

    def _free_index(self, contains: str) -> SortedList:
        index = self._free.get(contains)
        if index is not None:
            return index
        if len(self._free) > _MAX_FILTERED_INDEXES:
            return self._free[""]

        # First claim of this kind: index the free tokens of the kind once.
        index = SortedList(entry for entry in self._free[""] if contains in entry[1])
        self._free[contains] = index
        return index

    def _add_free(self, token: Token) -> None:
        entry = (-token.priority, token.name)
        for text, index in self._free.items():
            if text in token.name:
                index.add(entry)

    def _release_expired(self, now: float) -> None:
        leases = self._leases
        while leases and leases[0][0] <= now:
            _, name, version = heapq.heappop(leases)
            token = self._tokens.get(name)
            if token is not None and token.version == version:
                self._add_free(token)
