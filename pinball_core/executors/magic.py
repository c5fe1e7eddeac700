"""``PINBALL:`` lines: how a running job passes values back to Pinball.

A job prints ``PINBALL:<key>=<value>`` on stdout or stderr. The text is split
at the first ``=`` and both sides are stripped of whitespace. Two kinds of key
mean something:

- ``EVENT_ATTR:<name>`` sets attribute ``<name>`` of the events the job posts
  when it succeeds; downstream commands substitute it as ``%(name)s``. The
  last value printed wins.
- A property key from :data:`PROPERTY_KEYS` adds a value to that property of
  the execution record (a list, in the order printed, without repeats):
  ``kill_id`` for the cleanup command, ``kv_job_url`` (``anchor|url``),
  ``job_url`` and ``job_id`` for links in the UI.

Anything else is ignored and logged once per key. The keys the worker sets
itself (:data:`RESERVED_KEYS`) are refused the same way, so a job cannot
forge them. The limits below bound what a job can make the worker hold.
"""

import logging
import threading
from collections.abc import Iterable
from typing import Final

log = logging.getLogger(__name__)

#: What every magic line starts with.
PREFIX: Final = b"PINBALL:"

#: The key prefix of an event attribute: ``PINBALL:EVENT_ATTR:<name>=<value>``.
EVENT_ATTR: Final = "EVENT_ATTR:"

#: Property keys a job may set, each read by the worker or the UI.
PROPERTY_KEYS: Final = frozenset({"kill_id", "kv_job_url", "job_url", "job_id"})

#: Property keys the worker writes itself; a job's output never sets them.
RESERVED_KEYS: Final = frozenset({"worker"})

#: Distinct event attribute names kept per execution; later new names are dropped.
MAX_EVENT_ATTRIBUTES: Final = 256

#: Values kept per property key; later new values are dropped.
MAX_PROPERTY_VALUES: Final = 256

# Distinct problems logged per execution, so a job that prints a flood of
# bad lines cannot flood the worker's log as well.
_MAX_WARNINGS = 20

# How much of a bad line a warning quotes.
_QUOTE_CHARS = 200


class MagicLineCollector:
    """Collects the values of one execution's ``PINBALL:`` lines.

    Lines come from the threads reading the job's output; readers are on other
    threads. The two dicts are never changed in place: each change replaces
    the dict (and the changed list), so whatever a reader took from
    :attr:`event_attributes` or :attr:`properties` stays as it was, and
    iterating it is safe. :meth:`snapshot` gives both at one moment.

    :param label:
        Names the execution in log messages, e.g. ``job 'load' of wf/123``.
    :param property_keys:
        The property keys to accept; :data:`PROPERTY_KEYS` by default.
    :raises ValueError:
        if ``property_keys`` includes a key of :data:`RESERVED_KEYS`.
    """

    #: Values of ``PINBALL:EVENT_ATTR:<name>=<value>`` lines; the last one wins.
    event_attributes: dict[str, str]
    #: Values of the accepted property keys, in order, no repeats.
    properties: dict[str, list[str]]

    def __init__(
        self, label: str, property_keys: Iterable[str] = PROPERTY_KEYS
    ) -> None:
        keys = frozenset(property_keys)
        forged = sorted(keys & RESERVED_KEYS)
        if forged:
            raise ValueError(
                f"property keys {', '.join(forged)} are set by the worker and "
                f"cannot be accepted from a job's output; remove them"
            )

        self.event_attributes = {}
        self.properties = {}
        self._label = label
        self._property_keys = keys
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def snapshot(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Copies of the event attributes and the properties, taken together."""
        with self._lock:
            attributes = dict(self.event_attributes)
            properties = {key: list(values) for key, values in self.properties.items()}
        return attributes, properties

    def add_line(self, line: bytes) -> None:
        """Record ``line`` (without its newline) if it is a magic line.

        Bytes that are not UTF-8 are replaced with U+FFFD; nothing here raises
        for what a job prints.
        """
        if not line.startswith(PREFIX):
            return
        text = line[len(PREFIX) :].decode("utf-8", errors="replace")
        key, equals, value = text.partition("=")
        key, value = key.strip(), value.strip()

        if not equals or not key:
            self._warn(
                "malformed", text, "a PINBALL: line must be PINBALL:<key>=<value>"
            )
        elif key.startswith(EVENT_ATTR):
            self._set_event_attribute(key[len(EVENT_ATTR) :].strip(), value, text)
        elif key in self._property_keys:
            self._add_property(key, value)
        elif key in RESERVED_KEYS:
            self._warn(
                f"key:{key}", text, f"{key!r} is set by the worker, not by a job"
            )
        else:
            accepted = ", ".join(sorted(self._property_keys))
            self._warn(
                f"key:{key}",
                text,
                f"{key!r} is not a key Pinball uses (EVENT_ATTR:<name> or "
                f"one of {accepted})",
            )

    def _set_event_attribute(self, name: str, value: str, text: str) -> None:
        if not name:
            self._warn("attr-name", text, "EVENT_ATTR: needs a name before the '='")
            return

        with self._lock:
            current = self.event_attributes
            full = name not in current and len(current) >= MAX_EVENT_ATTRIBUTES
            if not full and current.get(name) != value:
                self.event_attributes = {**current, name: value}
        if full:
            self._warn(
                "attr-limit",
                text,
                f"it already set {MAX_EVENT_ATTRIBUTES} event attributes",
            )

    def _add_property(self, key: str, value: str) -> None:
        with self._lock:
            current = self.properties
            values = current.get(key, [])
            if value in values:
                return
            full = len(values) >= MAX_PROPERTY_VALUES
            if not full:
                self.properties = {**current, key: [*values, value]}
        if full:
            self._warn(
                f"limit:{key}", key, f"{key!r} already has {MAX_PROPERTY_VALUES} values"
            )

    def _warn(self, problem: str, text: str, reason: str) -> None:
        """Log a problem with the job's magic lines, once per kind of problem."""
        with self._lock:
            if problem in self._warned or len(self._warned) >= _MAX_WARNINGS:
                return
            self._warned.add(problem)
            last = len(self._warned) == _MAX_WARNINGS

        quoted = f"PINBALL:{text[:_QUOTE_CHARS]}"
        log.warning("%s: ignored %r in its output: %s", self._label, quoted, reason)
        if last:
            log.warning(
                "%s: further problems with its PINBALL: lines will not be logged",
                self._label,
            )
