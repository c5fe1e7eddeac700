"""The store contract: where the master makes its tokens durable.

The master is the only writer. It hands the store one :class:`StoreChange` per
group commit and answers its clients only after :meth:`Store.commit` returns.
Readers (the UI, the token tools) open their own store on the same database
and see active and archived tokens without going through the master.
"""

import abc
import dataclasses
import logging

from pinball_core.token import Token

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class AppliedRequest:
    """A write request the master applied, kept so a retry is answered again.

    ``response`` is the JSON text of the first answer.
    """

    request_id: str
    applied_at: float
    response: str


@dataclasses.dataclass(slots=True)
class StoreChange:
    """Everything one group commit writes, applied in one transaction.

    ``updates`` are upserts by name into the active tokens; ``deletes`` are
    names removed from them; ``archives`` move from the active tokens to the
    archive unchanged; ``requests`` remember applied request ids, and
    ``forget_requests_before`` drops those applied before that time.
    """

    updates: list[Token] = dataclasses.field(default_factory=list)
    deletes: list[str] = dataclasses.field(default_factory=list)
    archives: list[Token] = dataclasses.field(default_factory=list)
    requests: list[AppliedRequest] = dataclasses.field(default_factory=list)
    forget_requests_before: float | None = None

    def is_empty(self) -> bool:
        return not (self.updates or self.deletes or self.archives or self.requests)


class Store(abc.ABC):
    """Durable storage of active tokens, archived tokens and applied requests.

    Implementations must make :meth:`commit` all or nothing and durable when it
    returns; on failure they raise :class:`~pinball_core.errors.StoreError`
    and leave what was stored before untouched.
    """

    #: The URL the store was opened with, with any password masked.
    display_url: str = ""

    def lock_for_master(self) -> None:
        """Make sure no other master writes to this store while this one does.

        Two masters on one store would each trust their own memory and
        overwrite each other's acknowledged changes. Raises StoreError naming
        the store when another master holds it. The lock is released by
        :meth:`close` or when the process ends. Stores that cannot lock keep
        this default, which trusts the operator to run one master.
        """
        log.info("the store %s cannot be locked; run one master on it", self)

    def check_master_lock(self) -> None:
        """Raise StoreError if another master holds this store, creating nothing.

        For a check before a master is started, which must leave no trace
        when it refuses. A lock taken here is released by :meth:`close`.
        Stores whose lock leaves nothing behind keep this default, which
        takes the lock as :meth:`lock_for_master` does.
        """
        self.lock_for_master()

    def require_existing(self) -> None:
        """Make sure a store was created here, without creating anything.

        Called by readers, which must not make an empty store where a
        misspelt URL points. Raises
        :class:`~pinball_core.errors.StoreMissingError` when nothing was
        ever initialized here. Stores that cannot tell keep this default,
        and their reads fail on their own.
        """
        log.debug("the store %s cannot tell whether it was created", self)

    @abc.abstractmethod
    def initialize(self) -> None:
        """Create the schema or migrate it to the current version."""

    @abc.abstractmethod
    def load_active_tokens(self) -> list[Token]:
        """Every active token, for the master to load at start."""

    @abc.abstractmethod
    def load_applied_requests(self, since: float) -> list[AppliedRequest]:
        """Requests applied at or after ``since``, oldest first."""

    @abc.abstractmethod
    def commit(self, change: StoreChange) -> None:
        """Apply ``change`` in one durable transaction."""

    @abc.abstractmethod
    def read_tokens(
        self,
        prefix: str = "",
        *,
        archived: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Token]:
        """Tokens whose names start with ``prefix``, in name order, one page."""

    @abc.abstractmethod
    def count_tokens(self, prefix: str = "", *, archived: bool = False) -> int:
        """How many tokens' names start with ``prefix``."""

    @abc.abstractmethod
    def group_token_names(
        self, prefix: str = "", delimiter: str = "/", *, archived: bool = False
    ) -> dict[str, int]:
        """Count names under ``prefix`` by their part up to the next delimiter.

        A name ``<prefix>a/b`` counts under ``<prefix>a``; a name with no
        delimiter after the prefix counts under itself.
        """

    @abc.abstractmethod
    def delete_archived_tokens(self, prefix: str) -> int:
        """Remove archived tokens under ``prefix``; returns how many."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is not used after this."""
