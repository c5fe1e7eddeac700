"""Copying a child's output stream into its log file, in bounded memory.

The bytes go to the file exactly as they came, whatever their encoding and
however long their lines. Only the lines that may be ``PINBALL:`` lines are
cut out for parsing, and only up to :data:`CHUNK_BYTES` long; a job that
prints gigabytes, or one line of gigabytes, costs the worker one chunk.

:class:`StreamCopier` does the copying one chunk at a time, for whoever
watches the pipe: the local executor's event loop
(:mod:`pinball_core.executors.watcher`) serves all jobs of a worker that way.
"""

import logging
import os
from collections.abc import Callable
from typing import IO, Final

log = logging.getLogger(__name__)

#: The most read from a pipe at once, and the longest line given for parsing.
CHUNK_BYTES: Final = 64 * 1024

#: Reads a stopping reader still makes while output keeps coming, so a
#: process that escaped the job's process group cannot keep it reading forever.
MAX_READS_AFTER_STOP: Final = 16


class LineSplitter:
    """Cuts a byte stream into the lines that start with ``prefix``.

    Feed it chunks as they are read; it returns each complete line (without
    the newline) that starts with ``prefix`` and is at most ``limit`` bytes.
    A line that is longer, or that cannot match the prefix, is skipped as soon
    as that is known, so it holds at most ``limit`` bytes however the stream
    is cut. :meth:`finish` returns the last line if the stream did not end
    with a newline.
    """

    def __init__(self, prefix: bytes = b"", limit: int = CHUNK_BYTES) -> None:
        self._prefix = prefix
        self._limit = limit
        # The start of the current line while it may still be wanted.
        self._partial = bytearray()
        # The current line is not wanted; drop its bytes until the newline.
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        """The wanted lines that ``data`` completes, in order."""
        first = data.find(b"\n")
        if first < 0:
            self._extend(data)
            return []

        lines: list[bytes] = []
        self._extend(data[:first])
        self._end_line(lines)

        # The lines between the first and the last newline are whole; most
        # chunks hold no prefix at all, and are not split.
        last = data.rfind(b"\n")
        if first < last and self._prefix in data:
            for line in data[first + 1 : last].split(b"\n"):
                if len(line) <= self._limit and line.startswith(self._prefix):
                    lines.append(line)

        self._extend(data[last + 1 :])
        return lines

    def finish(self) -> list[bytes]:
        """The last line, if it is wanted and had no newline; then start over."""
        wanted = not self._skipping and self._partial.startswith(self._prefix)
        lines = [bytes(self._partial)] if wanted and self._partial else []
        self._partial.clear()
        self._skipping = False
        return lines

    def _extend(self, piece: bytes) -> None:
        if self._skipping:
            return
        if len(self._partial) + len(piece) > self._limit:
            self._skip()
            return
        self._partial += piece
        known = min(len(self._partial), len(self._prefix))
        if self._partial[:known] != self._prefix[:known]:
            self._skip()

    def _end_line(self, lines: list[bytes]) -> None:
        if not self._skipping and self._partial.startswith(self._prefix):
            lines.append(bytes(self._partial))
        self._partial.clear()
        self._skipping = False

    def _skip(self) -> None:
        self._partial.clear()
        self._skipping = True


class StreamCopier:
    """Copies one output pipe of a child into its log file, a chunk per call.

    Every chunk read is written to ``log_file`` at once, so the log can be
    followed while the job runs, and the lines starting with ``prefix`` are
    passed to ``on_line`` as they complete. The copier owns both files;
    :meth:`close` closes them. It makes no thread and never waits: the caller
    calls :meth:`read` when the pipe is readable, and the pipe is made
    non-blocking so that a read with nothing waiting returns at once.

    :param name: Names the stream in log messages.
    :param source: The read end of the pipe.
    :param log_file: The log file, opened for binary writing.
    :param on_line: Called with each wanted line, on the caller's thread.
    :param prefix: Only lines starting with it are passed to ``on_line``.
    """

    def __init__(
        self,
        name: str,
        source: IO[bytes],
        log_file: IO[bytes],
        on_line: Callable[[bytes], None],
        prefix: bytes = b"",
    ) -> None:
        self.name: Final = name
        self._source = source
        self._fd = source.fileno()
        os.set_blocking(self._fd, False)
        self._log_file = log_file
        self._on_line = on_line
        self._splitter = LineSplitter(prefix)
        self._write_failed = False
        self._closed = False

    def fileno(self) -> int:
        """The pipe's descriptor, to watch for readability."""
        return self._fd

    def read(self) -> bool:
        """Copy the chunk waiting in the pipe, if any; False at its end.

        Nothing waiting is not the end: it returns True without copying.
        """
        return self._copy() >= 0

    def read_waiting(self, limit: int = MAX_READS_AFTER_STOP) -> None:
        """Copy what is waiting in the pipe now, at most ``limit`` chunks."""
        for _ in range(limit):
            if self._copy() <= 0:
                return

    def _copy(self) -> int:
        """Copy one chunk; its size, 0 if nothing was waiting, -1 at the end."""
        try:
            data = os.read(self._fd, CHUNK_BYTES)
        except BlockingIOError:
            return 0
        except OSError as exc:
            log.error(
                "cannot read the output %s, the rest of it is lost: %s", self.name, exc
            )
            return -1
        if not data:
            return -1
        self._write(data)
        self._parse(self._splitter.feed(data))
        return len(data)

    def close(self) -> None:
        """Pass on a last line without newline; close the pipe and the log."""
        if self._closed:
            return
        self._closed = True
        self._parse(self._splitter.finish())
        self._source.close()
        try:
            self._log_file.close()
        except OSError as exc:
            if not self._write_failed:
                log.error(
                    "cannot write the end of the log %s: %s",
                    getattr(self._log_file, "name", "?"),
                    exc,
                )

    def _parse(self, lines: list[bytes]) -> None:
        for line in lines:
            try:
                self._on_line(line)
            except Exception:
                # A bug in parsing must not stop the copying: the job would
                # block on a full pipe, or die of SIGPIPE.
                log.exception("cannot parse a line of %s", self.name)

    def _write(self, data: bytes) -> None:
        # The pipe must be read even when the log cannot be written, or the
        # job would block on a full pipe; a full disk costs the log, not the job.
        if self._write_failed:
            return
        try:
            # An unbuffered file may take part of a chunk per call.
            view = memoryview(data)
            while view:
                written = self._log_file.write(view)
                view = view[written or 0 :]
            self._log_file.flush()
        except OSError as exc:
            self._write_failed = True
            log.error(
                "cannot write the log %s, the rest of it is lost: %s",
                getattr(self._log_file, "name", "?"),
                exc,
            )
