"""One problem found in a Python workflow definition, and where it was written.

Python definitions are code, so the place to fix is the line that made the
workflow or the job: every definition remembers the file and line of the
call that created it, found by walking out of this package's frames.
"""

import contextlib
import contextvars
import dataclasses
import pathlib
import sys
from collections.abc import Iterator
from typing import Final

#: Frames of this package are skipped to find the user's call site.
_PACKAGE_DIR: Final = str(pathlib.Path(__file__).resolve().parent)


@dataclasses.dataclass(frozen=True, slots=True)
class Site:
    """A file and line; line 0 when there is no single line (a module)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


#: Where definitions made outside any user code (by a test harness) point.
UNKNOWN_SITE: Final = Site("<unknown>")


_written_at: contextvars.ContextVar["Site | None"] = contextvars.ContextVar(
    "written_at", default=None
)


@contextlib.contextmanager
def written_at(site: "Site") -> Iterator[None]:
    """Make :func:`call_site` answer ``site`` for the duration.

    For definitions this package builds on the user's behalf (from the
    original's config model), whose place is where the config was written.
    """
    token = _written_at.set(site)
    try:
        yield
    finally:
        _written_at.reset(token)


def call_site() -> Site:
    """The file and line of the nearest caller outside this package."""
    forced = _written_at.get()
    if forced is not None:
        return forced
    frame = sys._getframe(1)
    while frame is not None:
        file = frame.f_code.co_filename
        if not str(pathlib.Path(file).resolve()).startswith(_PACKAGE_DIR):
            return Site(file, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return UNKNOWN_SITE


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a definition, with the place a person has to fix."""

    site: Site
    reason: str
    workflow: str | None = None
    job: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.workflow is not None:
            parts.append(f"workflow {self.workflow}")
        if self.job is not None:
            parts.append(f"job {self.job}")
        context = f" {', '.join(parts)}:" if parts else ""
        return f"{self.site}:{context} {self.reason}"
