"""The master's in-memory tokens, with the two orders its requests need.

Names are kept sorted, so a prefix is a contiguous range found by bisection.
Tokens free to claim are also kept sorted by priority, so a claim of the
best few tokens does not scan every token under its prefix; leased tokens
wait in a heap keyed by expiration and rejoin the free ones when it passes.
"""

import heapq
from collections.abc import Iterator

from sortedcontainers import SortedDict, SortedList

from pinball_core.token import Token, prefix_upper_bound


class TokenMap:
    """Tokens by name, plus a priority order of those no lease holds."""

    def __init__(self) -> None:
        self._tokens: SortedDict = SortedDict()
        # (-priority, name) of tokens unowned when last written or swept.
        self._free: SortedList = SortedList()
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
            self._free.add((-token.priority, token.name))

    def pop(self, name: str) -> Token | None:
        """Remove and return the token called ``name``, if there is one."""
        token: Token | None = self._tokens.pop(name, None)
        if token is not None:
            self._free.discard((-token.priority, name))
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

    def free_count(self) -> int:
        return len(self._free)

    def free_by_priority(self, now: float) -> Iterator[Token]:
        """Tokens no lease holds at ``now``, highest priority first, then by name."""
        self._release_expired(now)
        for _, name in self._free:
            yield self._tokens[name]

    def _release_expired(self, now: float) -> None:
        leases = self._leases
        while leases and leases[0][0] <= now:
            _, name, version = heapq.heappop(leases)
            token = self._tokens.get(name)
            if token is not None and token.version == version:
                self._free.add((-token.priority, name))
