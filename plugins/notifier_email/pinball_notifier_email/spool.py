"""The mail spool: composed mails kept on disk until they are sent.

Without it a mail lives only in the memory of the process that composed it,
and a worker or scheduler killed while the SMTP server is down loses its
waiting mail. So the mail thread writes each composed mail to the spool
folder, one JSON file per mail, and removes the file once the mail is sent
or dropped for good.

Several processes on one host share the folder. Each one holds an exclusive
``flock`` on its own lock file for as long as it lives, and names its mail
files after it. A process starting its mail thread takes over (adopts) the
files of every owner whose lock it can take, that is of processes that
died, by renaming them into its own name. A rename succeeds for one process
only, so no mail is sent by two live processes; and the lock of a live
process cannot be taken, so its files are never adopted.

The files, all in the spool folder, with ``<owner>`` as ``<pid>-<random>``:

- ``<owner>.lock``: locked by its owner while it lives;
- ``<owner>.lock.new``: the same while it is being locked, before its rename;
- ``<owner>.<seq>.json``: one mail;
- ``<owner>.<seq>.tmp``: one mail being written;
- ``*.bad``: a mail file that could not be read, moved aside for a person.
"""

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import pathlib
import re
import secrets
from typing import Any, Final

from pinball_notifier_email.compose import Mail

log = logging.getLogger(__name__)

#: The layout of a mail file; a file of another layout is moved aside.
FORMAT: Final = 1

# Names tried for this process's lock file before giving up on the spool.
_LOCK_ATTEMPTS = 3

_OWNER = r"(?P<owner>[0-9]+-[0-9a-f]+)"
_MAIL_FILE = re.compile(rf"{_OWNER}\.(?P<seq>[0-9]+)\.json")
_TEMP_FILE = re.compile(rf"{_OWNER}\.[0-9]+\.tmp")
_LOCK_FILE = re.compile(rf"{_OWNER}\.lock")
_NEW_LOCK_FILE = re.compile(rf"{_OWNER}\.lock\.new")


@dataclasses.dataclass
class _Files:
    """One owner's files in the folder, by kind."""

    mails: list[str] = dataclasses.field(default_factory=list)
    temps: list[str] = dataclasses.field(default_factory=list)
    # Only to know the owner: its lock file is looked up by name.
    locks: list[str] = dataclasses.field(default_factory=list)
    new_locks: list[str] = dataclasses.field(default_factory=list)


_PATTERNS: Final = (
    (_MAIL_FILE, "mails"),
    (_TEMP_FILE, "temps"),
    (_LOCK_FILE, "locks"),
    (_NEW_LOCK_FILE, "new_locks"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class SpooledMail:
    """A mail read back from the spool, with when it was first queued."""

    mail: Mail
    #: Wall-clock time (``time.time()``) the mail was first queued; the
    #: give-up delay counts from it, across restarts.
    queued: float
    #: Its file, now in the name of the process that read it.
    path: pathlib.Path


def check_folder(folder: pathlib.Path) -> None:
    """Check that ``folder`` can hold the spool, without making it.

    Done when the notifier is configured, so that a spool which cannot work
    is reported once at start-up, not with the first failure mail. The
    folder itself is made by the first process that spools, so a command
    that sends no mail (``pinball config check``) leaves no trace.

    :raises OSError: if the folder, or the folder it would be made in, is
        not a folder this process can write to.
    """
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing)
        )
    if existing != folder:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(
                errno.EACCES, os.strerror(errno.EACCES), str(existing)
            )
        return
    # A name no spool file has, so that no other process acts on it.
    probe = folder / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
    probe.write_bytes(b"")
    probe.unlink()


class Spool:
    """This process's share of a spool folder: its lock and its mail files.

    Meant for the mail thread alone: nothing here is thread-safe, and each
    method reads or writes the disk.

    :param folder: The spool folder, checked with :func:`check_folder`.
    """

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        #: This process's name in the folder: its lock file and mail files.
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._lock_fd: int | None = None
        self._seq = 0

    @property
    def lock_path(self) -> pathlib.Path:
        """This process's lock file."""
        return self.folder / f"{self.owner}.lock"

    def claim(self) -> list[SpooledMail]:
        """Lock this process's name, then adopt the mails of dead owners.

        :returns: The adopted mails, oldest first, now in this process's name.
        :raises OSError: if the lock file cannot be made; the spool is then
            of no use to this process.
        """
        self._take_lock()
        return self._adopt()

    def save(self, mail: Mail, queued: float) -> pathlib.Path:
        """Write ``mail``, first queued at wall-clock time ``queued``, to a new
        file of this process; return the file.

        The file is written under a temporary name, flushed to the disk and
        then renamed, so that a crash leaves the whole file or none of it.

        :raises OSError: if the file cannot be written; nothing is left.
        """
        if self._lock_fd is None:
            raise RuntimeError("Spool.claim() must come before Spool.save()")
        self._seq += 1
        name = f"{self.owner}.{self._seq:08d}"
        temp = self.folder / f"{name}.tmp"
        path = self.folder / f"{name}.json"
        data = {
            "format": FORMAT,
            "kind": mail.kind,
            "recipients": list(mail.recipients),
            "subject": mail.subject,
            "text": mail.text,
            "html": mail.html,
            "queued": queued,
        }
        try:
            # Mails quote job logs: readable by their owner only.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                # ASCII: a lone surrogate from a log line is escaped, not an
                # error.
                json.dump(data, file)
                file.flush()
                os.fsync(file.fileno())
            os.rename(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        # Without this the rename itself may not survive a power cut. The
        # file is in place whatever happens here, and must be reported so.
        with contextlib.suppress(OSError):
            _sync_folder(self.folder)
        return path

    def discard(self, path: pathlib.Path) -> None:
        """Remove a mail's file: the mail was sent, or dropped for good.

        :raises OSError: if the file is there but cannot be removed.
        """
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def release(self) -> None:
        """Give up this process's name at a clean stop.

        The lock file goes too, unless mail files of this process are left:
        then it stays, unlocked, for the next process to adopt them.
        """
        fd = self._lock_fd
        if fd is None:
            return
        self._lock_fd = None
        try:
            prefix = f"{self.owner}."
            left = any(
                n.startswith(prefix) and n.endswith(".json")
                for n in os.listdir(self.folder)
            )
            if not left:
                # Removed while still locked, so that nobody adopts it first.
                self.lock_path.unlink()
        except OSError as exc:
            log.debug("spool %s: lock file left behind: %s", self.folder, exc)
        finally:
            os.close(fd)

    # -- Taking over -------------------------------------------------------------

    def _take_lock(self) -> None:
        # Locked under another name and renamed into place: a lock file that
        # anyone can see is always locked while its owner lives, so nobody
        # can take it in the moment between its creation and its lock.
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(_LOCK_ATTEMPTS):
            if attempt:
                self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
            new = self.folder / f"{self.owner}.lock.new"
            fd = os.open(new, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(new, self.lock_path)
            except (BlockingIOError, FileNotFoundError):
                # Another process starting at this moment took the new file
                # for a dead one's, before it was locked: try another name.
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    new.unlink()
                raise
            # os.open makes descriptors that child processes do not inherit,
            # so a job this worker started cannot hold the lock after it.
            self._lock_fd = fd
            return
        raise OSError(f"cannot lock a file in {self.folder}: others keep taking it")

    def _adopt(self) -> list[SpooledMail]:
        owners: dict[str, _Files] = {}
        for name in os.listdir(self.folder):
            for pattern, kind in _PATTERNS:
                match = pattern.fullmatch(name)
                if match is not None:
                    files = owners.setdefault(match["owner"], _Files())
                    getattr(files, kind).append(name)
                    break
        owners.pop(self.owner, None)

        adopted: list[SpooledMail] = []
        for owner, files in sorted(owners.items()):
            try:
                adopted.extend(self._adopt_owner(owner, files))
            except OSError as exc:
                log.warning(
                    "spool %s: cannot take over the mails of %s: %s",
                    self.folder,
                    owner,
                    exc,
                )
        # Stable: the mails of one owner with the same time keep their order.
        adopted.sort(key=lambda spooled: spooled.queued)
        return adopted

    def _adopt_owner(self, owner: str, files: _Files) -> list[SpooledMail]:
        dead, fd = _lock_if_dead(self.folder / f"{owner}.lock")
        if not dead:
            return []
        try:
            # Every mail file of a dead owner, in the order it wrote them.
            adopted = []
            for name in sorted(files.mails, key=_seq):
                spooled = self._adopt_file(self.folder / name)
                if spooled is not None:
                    adopted.append(spooled)
            # Half-written mails of a dead owner: the mail is still in no file.
            for name in files.temps:
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / name).unlink()
            for name in files.new_locks:
                _remove_if_dead(self.folder / name)
            if fd is not None:
                (self.folder / f"{owner}.lock").unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
        if adopted:
            log.info(
                "spool %s: took over %d unsent mail(s) of %s, a process that stopped",
                self.folder,
                len(adopted),
                owner,
            )
        return adopted

    def _adopt_file(self, source: pathlib.Path) -> SpooledMail | None:
        self._seq += 1
        path = self.folder / f"{self.owner}.{self._seq:08d}.json"
        try:
            os.rename(source, path)
        except FileNotFoundError:
            # Another process starting at the same time took it first.
            return None
        try:
            return load(path)
        except (OSError, ValueError) as exc:
            aside = self.folder / f"{source.name}.bad"
            try:
                os.rename(path, aside)
            except OSError as move_error:
                log.error(
                    "spooled mail %s cannot be read (%s) nor moved aside (%s); "
                    "left as %s",
                    source,
                    exc,
                    move_error,
                    path,
                )
                return None
            log.error(
                "spooled mail %s cannot be read (%s); moved aside to %s",
                source,
                exc,
                aside,
            )
            return None


def load(path: pathlib.Path) -> SpooledMail:
    """Read the mail file at ``path``.

    :raises ValueError: if it is not JSON or not a mail file of this layout.
    :raises OSError: if it cannot be read.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a mail file of format {FORMAT}")
    recipients = _field(data, "recipients", list)
    if not recipients or not all(isinstance(r, str) for r in recipients):
        raise ValueError("recipients: must be a list of addresses")
    html = data.get("html")
    if html is not None and not isinstance(html, str):
        raise ValueError("html: must be a string or null")
    queued = _field(data, "queued", (int, float))
    if isinstance(queued, bool):
        raise ValueError("queued: must be a time")
    mail = Mail(
        kind=_field(data, "kind", str),
        recipients=tuple(recipients),
        subject=_field(data, "subject", str),
        text=_field(data, "text", str),
        html=html,
    )
    return SpooledMail(mail, float(queued), path)


# -- Helpers ------------------------------------------------------------------------


def _seq(name: str) -> int:
    match = _MAIL_FILE.fullmatch(name)
    assert match is not None
    return int(match["seq"])


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"{key}: missing or of the wrong type")
    return value


def _lock_if_dead(path: pathlib.Path) -> tuple[bool, int | None]:
    """Whether the owner of the lock file ``path`` is dead, and, if this
    process now holds that lock, its descriptor (to close when done).

    A missing lock file means a dead owner too: it is made before its
    owner's first mail file and removed only by its owner at a clean stop
    with nothing left, or by a process that adopted every mail of it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False, None
    except BaseException:
        os.close(fd)
        raise
    # Another process may have adopted these mails and removed the file
    # between our open and our lock: the lock is then on a file gone from
    # the folder, and protects nothing.
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return True, None
    return True, fd


def _remove_if_dead(path: pathlib.Path) -> None:
    """Remove the lock file of a process that died before it was locked."""
    _, fd = _lock_if_dead(path)
    if fd is None:
        return
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _sync_folder(folder: pathlib.Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
