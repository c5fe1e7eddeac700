"""Job logs: found by the paths in execution records, read in pages.

An execution record names its log files. The UI reads a file only when its
real path (symlinks resolved) lies inside the config's ``logs_dir``; a record
pointing elsewhere, by mistake or by hand, is refused rather than read.
"""

import os
import pathlib
from collections.abc import Mapping
from typing import Any, Final

#: Bytes one page of a log holds unless the request asks for fewer.
DEFAULT_CHUNK: Final = 256 * 1024

#: The most bytes one page may hold.
MAX_CHUNK: Final = 4 * 1024 * 1024


class LogRefused(PermissionError):
    """A log path outside the logs folder."""


def safe_path(logs_dir: str, path: str) -> pathlib.Path:
    """``path`` resolved, if it is inside ``logs_dir``; else LogRefused."""
    root = pathlib.Path(logs_dir).resolve()
    resolved = pathlib.Path(path).resolve()
    if not resolved.is_relative_to(root):
        raise LogRefused(
            f"log {path} is outside the logs folder {root} (logs_dir); the UI "
            "reads logs only from there"
        )
    return resolved


def describe(logs_dir: str, logs: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each log of a record: its kind, its path in the logs folder, its size."""
    found = []
    for kind in sorted(logs):
        entry: dict[str, Any] = {"kind": kind, "size": None, "readable": False}
        try:
            path = safe_path(logs_dir, logs[kind])
        except LogRefused:
            entry["path"] = logs[kind]
            entry["problem"] = "outside the logs folder"
            found.append(entry)
            continue
        root = pathlib.Path(logs_dir).resolve()
        entry["path"] = str(path.relative_to(root))
        try:
            entry["size"] = path.stat().st_size
            entry["readable"] = True
        except OSError as exc:
            entry["problem"] = exc.strerror or str(exc)
        found.append(entry)
    return found


def read_chunk(
    logs_dir: str, path: str, offset: int, limit: int = DEFAULT_CHUNK
) -> dict[str, Any]:
    """One page of a log: ``limit`` bytes from ``offset``.

    A negative ``offset`` counts from the end, so ``-limit`` is the tail.
    The text is UTF-8 with bad bytes replaced; a page never ends inside a
    character, so the next page (from ``next_offset``) starts on one.

    :raises LogRefused: if the file is outside ``logs_dir``.
    :raises FileNotFoundError: if it does not exist (yet).
    """
    limit = max(1, min(limit, MAX_CHUNK))
    resolved = safe_path(logs_dir, path)
    with open(resolved, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        start = max(0, size + offset) if offset < 0 else min(offset, size)
        file.seek(start)
        data = file.read(limit)
    if offset < 0 and start > 0:
        # Begin on a character: skip continuation bytes of a cut one.
        skip = 0
        while skip < len(data) and skip < 4 and data[skip] & 0xC0 == 0x80:
            skip += 1
        data = data[skip:]
        start += skip
    end = start + len(data)
    if end < size:
        # End on a character boundary: hold back a cut multi-byte sequence.
        cut = _incomplete_tail(data)
        data = data[: len(data) - cut]
        end -= cut
    return {
        "offset": start,
        "next_offset": end,
        "size": size,
        "eof": end >= size,
        "text": data.decode("utf-8", errors="replace"),
    }


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a character they lack."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back
        if byte & 0x80 == 0:
            return 0
        needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return back if back < needed else 0
    return 0
