"""Signals: DRAIN, ABORT, ARCHIVE and EXIT flags kept as tokens in the master.

A signal lives at one of three levels, and its level is its scope: a global
signal applies to every workflow, a workflow signal to every instance of that
workflow, an instance signal to that instance only. Readers therefore look at
every level above them too, while writers change exactly one level. The
action is read from the token's payload, not from its name, so a signal
written by hand under another name still counts.
"""

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping

from pinball_core.client import MasterClient
from pinball_core.errors import NotFoundError, VersionConflictError
from pinball_core.protocol import Query
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import ABORT, ACTIONS, EXIT, PayloadError, Signal

log = logging.getLogger(__name__)

#: A signal by its action, with the token that holds it.
Signals = Mapping[str, tuple[Token, Signal]]

# Deleting retries this often when the signal changes under it.
_REMOVE_ATTEMPTS = 5


def read_signals(
    client: MasterClient, workflow: str | None = None, instance: str | None = None
) -> dict[str, tuple[Token, Signal]]:
    """Every signal that applies at a level, by action.

    With neither name that is the global signals; with ``workflow`` also that
    workflow's; with ``instance`` too, that instance's. All levels are read
    in one request, so they are seen as of the same moment. When an action is
    set at several levels the most specific one is returned, since its
    attributes (an ABORT's time, an EXIT's generation) are the ones meant for
    this reader. Tokens whose data is not a signal are skipped with a warning.
    """
    prefixes = _visible_prefixes(workflow, instance)
    answers = client.query_many([Query(prefix) for prefix in prefixes])

    # From the widest level to the narrowest, so narrower ones overwrite.
    return parse_signals(token for tokens in answers for token in tokens)


def parse_signals(tokens: Iterable[Token]) -> dict[str, tuple[Token, Signal]]:
    """The signals held by ``tokens``, by action; a later token wins a tie.

    Give the tokens from the widest level to the narrowest to get the most
    specific signal of each action, as :func:`read_signals` does.
    """
    return {signal.action: (token, signal) for token, signal in _parse_level(tokens)}


def exit_applies(signals: Signals, generation: int) -> bool:
    """Whether an EXIT among ``signals`` tells a worker of ``generation`` to go.

    An EXIT without a generation (or with 0) stops every worker; otherwise
    only workers older than its generation stop, so the new ones started for
    an upgrade keep running.
    """
    entry = signals.get(EXIT)
    if entry is None:
        return False
    wanted = entry[1].generation
    return not wanted or wanted > generation


def set_signal(
    client: MasterClient,
    action: str,
    workflow: str | None = None,
    instance: str | None = None,
    *,
    generation: int | None = None,
    timestamp: float | None = None,
    replace: bool = False,
) -> Token | None:
    """Set ``action`` at exactly one level; the new token, or None if it was set.

    ABORT is stamped with the current time unless ``timestamp`` is given, so
    that readers know when it was asked for. Whether the signal is already
    set is decided at this level only: a DRAIN set globally does not stop
    setting one on a workflow. A concurrent writer that sets the same signal
    first makes this call return None too.

    With ``replace``, a signal already set at this level whose generation
    differs from ``generation`` (or whose timestamp differs from a
    ``timestamp`` given) is rewritten with them, as ``exit`` does to move the
    EXIT generation on; the rewritten token is returned.
    """
    _check_action(action)
    compare_timestamp = timestamp is not None
    if action == ABORT and timestamp is None:
        timestamp = time.time()
    wanted = Signal(action=action, generation=generation, timestamp=timestamp)
    prefix = names.signal_prefix(workflow, instance)
    name = f"{prefix}{action}"

    tokens = client.query(prefix)
    for token, signal in _parse_level(tokens):
        if signal.action != action:
            continue
        unchanged = signal.generation == generation and (
            not compare_timestamp or signal.timestamp == timestamp
        )
        if not replace or unchanged:
            return None
        return _write(client, _same_token(token), wanted)

    # A token under the action's name that is not this signal (bad data, or
    # another action written under this name by hand) would make the insert
    # fail forever; it is replaced instead.
    current = next((t for t in tokens if t.name == name), None)
    version = current.version if current is not None else None
    return _write(client, Token(name=name, version=version), wanted)


def stamp_signal(
    client: MasterClient,
    action: str,
    workflow: str | None = None,
    instance: str | None = None,
    *,
    generation: int | None = None,
    timestamp: float | None = None,
) -> Token | None:
    """Add attributes to the signal at one level, but only those it lacks.

    For the first of several workers to record, say, when a finished
    instance is due for archiving: the others find the timestamp already
    there and leave it. Returns the updated token, or None when the signal
    is absent at this level, has every attribute given already, or another
    writer changed it first.
    """
    _check_action(action)
    prefix = names.signal_prefix(workflow, instance)
    for token, signal in _parse_level(client.query(prefix)):
        if signal.action != action:
            continue
        stamped = Signal(
            action=action,
            generation=signal.generation,
            timestamp=signal.timestamp,
        )
        if generation is not None and signal.generation is None:
            stamped.generation = generation
        if timestamp is not None and signal.timestamp is None:
            stamped.timestamp = timestamp
        if stamped == signal:
            return None
        return _write(client, _same_token(token), stamped)
    return None


def remove_signal(
    client: MasterClient,
    action: str,
    workflow: str | None = None,
    instance: str | None = None,
) -> bool:
    """Remove ``action`` at exactly one level; False if it was not set there.

    The same action at a wider level still applies afterwards: callers that
    report to people should read the signals again and say so.
    """
    _check_action(action)
    prefix = names.signal_prefix(workflow, instance)
    for _ in range(_REMOVE_ATTEMPTS):
        tokens = [
            t for t, s in _parse_level(client.query(prefix)) if s.action == action
        ]
        if not tokens:
            return False
        try:
            client.modify(deletes=tokens)
        except (VersionConflictError, NotFoundError):
            # Someone changed or removed it meanwhile; look again.
            log.debug("signal %s under %s changed while removing it", action, prefix)
            continue
        return True
    # The signal keeps changing; one more read settles whether it is still set.
    return not any(s.action == action for _, s in _parse_level(client.query(prefix)))


def level_name(workflow: str | None = None, instance: str | None = None) -> str:
    """A level in words, for messages: ``global``, ``workflow W``, ``instance W/I``."""
    if instance is not None:
        return f"instance {workflow}/{instance}"
    if workflow is not None:
        return f"workflow {workflow}"
    return "global"


def level_of(token_name: str) -> tuple[str | None, str | None]:
    """The level of a signal token, ``(workflow, instance)``, from its name.

    ``(None, None)`` is the global level; a name that is not a signal's
    also gives it, as the widest guess.
    """
    parts = token_name.split("/")
    # '', 'workflow', then '__SIGNAL__' or wf, then '__SIGNAL__' or instance
    if len(parts) > 4 and parts[3] == names.SIGNAL:
        return parts[2], None
    if len(parts) > 5 and parts[4] == names.SIGNAL:
        return parts[2], parts[3]
    return None, None


def _visible_prefixes(workflow: str | None, instance: str | None) -> list[str]:
    if instance is not None and workflow is None:
        raise ValueError(f"instance {instance!r} needs its workflow to read signals")
    prefixes = [names.signal_prefix()]
    if workflow is not None:
        prefixes.append(names.signal_prefix(workflow))
    if instance is not None:
        prefixes.append(names.signal_prefix(workflow, instance))
    return prefixes


def _parse_level(tokens: Iterable[Token]) -> list[tuple[Token, Signal]]:
    parsed = []
    for token in tokens:
        try:
            parsed.append((token, Signal.from_json(token.data)))
        except PayloadError as exc:
            log.warning("ignoring signal token %s: %s", token.name, exc)
    return parsed


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(
            f"unknown signal action {action!r}; expected one of {', '.join(ACTIONS)}"
        )


def _same_token(token: Token) -> Token:
    """A copy of ``token`` to overwrite its data with; a lease on it stays."""
    return dataclasses.replace(token)


def _write(client: MasterClient, token: Token, signal: Signal) -> Token | None:
    """Insert or update ``token`` with ``signal``; None if someone wrote first."""
    token.data = signal.to_json()
    try:
        [stored] = client.modify(updates=[token])
    except (VersionConflictError, NotFoundError):
        log.debug("signal %s was written concurrently", token.name)
        return None
    return stored
