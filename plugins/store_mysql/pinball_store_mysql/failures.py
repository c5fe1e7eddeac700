"""Which MySQL errors are worth another try, and how long to keep trying.

A transaction that failed before COMMIT was sent is rolled back by the server
(explicitly, or because its connection is gone), so running it again is
safe. Those failures are the ones listed in :data:`TRANSIENT`. Anything else
(a duplicate key, a permission, a value too large) would fail again the same
way and is reported at once.
"""

import logging
import random
import time
from typing import Final

import sqlalchemy as sa

log = logging.getLogger(__name__)

DEADLOCK: Final = 1213
LOCK_WAIT_TIMEOUT: Final = 1205
PACKET_TOO_LARGE: Final = 1153

# The connection is gone: killed (1927), gone away (2006), lost during a
# query (2013, 2055), or closed by the server when idle (4031).
_LOST: Final = frozenset({1927, 2006, 2013, 2055, 4031})

#: Errors after which the transaction did not happen and may be sent again.
TRANSIENT: Final = _LOST | {
    DEADLOCK,  # the server rolled the whole transaction back
    LOCK_WAIT_TIMEOUT,  # the store rolls back what the statement left
    1040,  # too many connections
    1053,  # the server is shutting down
    2002,  # cannot connect to the server's socket
    2003,  # cannot connect to the server
}

# What to do about errors that will not go away by themselves.
_ADVICE: Final = {
    1044: "the user may not use this database; GRANT it the rights",
    1045: "check the user name and password in the store URL",
    1049: "create the database first, with CHARACTER SET utf8mb4",
    1142: "the user lacks a right on the tables; GRANT it the rights",
    1146: "the master creates its tables when it first starts; if it has, "
    "set master_name here to the master's, which names the tables",
    PACKET_TOO_LARGE: "a value is larger than the server's max_allowed_packet; "
    "raise that setting or store less data",
}

_FIRST_DELAY_SEC = 0.05
_MAX_DELAY_SEC = 2.0


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number behind a SQLAlchemy or PyMySQL error, if any."""
    original = getattr(exc, "orig", None) or exc
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether the statement that raised ``exc`` left nothing behind to undo."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    # Every pooled connection was busy for pool_timeout_sec.
    if isinstance(exc, sa.exc.TimeoutError):
        return True
    return error_code(exc) in TRANSIENT


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is gone, not that the server refused.

    A COMMIT that fails this way may or may not have happened.
    """
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = error_code(exc)
        return code is None or code in _LOST
    return True


def describe(exc: BaseException) -> str:
    """One line: the server's message, and advice where there is some."""
    original = getattr(exc, "orig", None) or exc
    code = error_code(exc)
    if code is not None and len(original.args) > 1:
        text = f"({code}) {original.args[1]}"
    else:
        text = str(original) or type(original).__name__
    text = " ".join(text.split())
    if code in _ADVICE:
        text = f"{text}; {_ADVICE[code]}"
    return text


class Attempts:
    """The tries of one operation: a deadline and a growing, jittered delay.

    The delay starts at 50 ms and doubles up to 2 s; each wait is a random
    part of it, so stores that collided (a deadlock) do not collide again.
    """

    def __init__(self, window_sec: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + window_sec
        self.count = 1
        self._delay = _FIRST_DELAY_SEC

    def expired(self) -> bool:
        """Whether the time for tries is spent."""
        return time.monotonic() >= self.deadline

    def wait(self) -> None:
        """Sleep before the next try, never past the deadline."""
        left = max(0.0, self.deadline - time.monotonic())
        time.sleep(min(random.uniform(self._delay / 2, self._delay), left))
        self._delay = min(self._delay * 2, _MAX_DELAY_SEC)
        self.count += 1

    def next_delay(self) -> float:
        """The longest the next :meth:`wait` sleeps, for log messages."""
        return min(self._delay, max(0.0, self.deadline - time.monotonic()))

    def elapsed(self) -> float:
        return time.monotonic() - self.started
