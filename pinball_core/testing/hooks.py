"""A stand-in for the plugin hook relay that records every lifecycle call.

Hand it to a :class:`~pinball_core.workflow.worker.Worker` as its ``hook`` to
see what plugins would see, in order, without registering any plugin.
"""

import threading
from collections.abc import Callable
from typing import Any


class HookRecorder:
    """Records each ``pinball_*`` call made on it, thread-safely."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __getattr__(self, hook: str) -> Callable[..., None]:
        def record(**kwargs: Any) -> None:
            with self._lock:
                self.calls.append((hook, kwargs))

        return record

    def named(self, hook: str) -> list[dict[str, Any]]:
        """The keyword arguments of every call of ``hook`` so far."""
        with self._lock:
            return [kwargs for name, kwargs in self.calls if name == hook]

    def sequence(self) -> list[tuple[str, str | None]]:
        """Every call so far as (hook, job), in the order they came."""
        with self._lock:
            return [(name, kwargs.get("job")) for name, kwargs in self.calls]
