"""Schedule tokens as people read them: next runs, recurrence in words.

The schedule token's data is the JSON the parser writes (``recurrence_sec``
or ``cron``, ``start``, ``timezone``, ``overrun_policy``,
``max_running_instances``, ``emails``). The next run times are the
scheduler's to compute: they come from :mod:`pinball_core.scheduler`, and
when it cannot read the token the page says the scheduler decides.
"""

import importlib
import json
import logging
from typing import Any, Final

from pinball_core.token import Token

log = logging.getLogger(__name__)

#: What each overrun policy does, for the help text next to it.
POLICY_HELP: Final = {
    "SKIP": "a run due while an instance is still running is skipped",
    "ABORT_RUNNING": "running instances are aborted, then the new one starts",
    "DELAY": "the run waits until no instance is running",
    "DELAY_UNTIL_SUCCESS": "the run waits until the last instance has succeeded",
    "START_NEW": "the new instance starts next to the running ones, up to "
    "max_running_instances",
}

_UNITS: Final = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))


def data_of(token: Token) -> dict[str, Any]:
    """The schedule's JSON body; empty if it is not a JSON object."""
    try:
        body = json.loads(token.data or "{}")
    except ValueError:
        log.warning("schedule %s does not hold JSON", token.name)
        return {}
    return body if isinstance(body, dict) else {}


def emails(token: Token) -> list[str]:
    found = data_of(token).get("emails") or []
    return [str(e) for e in found] if isinstance(found, list) else []


def describe(workflow: str, token: Token, now: float, runs: int = 1) -> dict[str, Any]:
    """A schedule's row: when it runs, in words, and how it handles overruns."""
    body = data_of(token)
    policy = str(body.get("overrun_policy") or "SKIP")
    upcoming = next_runs(token, body, now, runs)
    return {
        "workflow": workflow,
        "token": token.name,
        "recurrence": recurrence_words(body),
        "recurrence_sec": body.get("recurrence_sec"),
        "cron": body.get("cron"),
        "start": body.get("start"),
        "timezone": body.get("timezone") or "UTC",
        "overrun_policy": policy,
        "overrun_policy_help": POLICY_HELP.get(policy, ""),
        "max_running_instances": body.get("max_running_instances"),
        "emails": emails(token),
        "next_run": upcoming[0] if upcoming else None,
        "next_runs": upcoming,
        "next_runs_known": upcoming is not None and bool(upcoming),
        "data": body,
    }


def recurrence_words(body: dict[str, Any]) -> str:
    """``every 2 hours``, or the cron expression described in English."""
    cron = body.get("cron")
    if cron:
        try:
            from cron_descriptor import get_description

            return f"{get_description(str(cron))} (cron {cron})"
        except Exception as exc:  # the library raises its own error classes
            log.debug("cannot describe cron %r: %s", cron, exc)
            return f"cron {cron}"
    seconds = body.get("recurrence_sec")
    if isinstance(seconds, int | float) and seconds > 0:
        return "every " + duration_words(float(seconds))
    recurrence = body.get("recurrence")
    # An ISO 8601 duration such as P1M: every calendar month.
    return f"every {recurrence}" if recurrence else "not recurring"


def duration_words(seconds: float) -> str:
    """``1 day``, ``90 minutes``, ``2 weeks``: the largest whole unit."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
    count = int(seconds)
    return f"{count} second" if count == 1 else f"{count} seconds"


def next_runs(
    token: Token, body: dict[str, Any], now: float, count: int
) -> list[float] | None:
    """The next ``count`` run times as the scheduler will make them.

    They come from :mod:`pinball_core.scheduler` (its ``timeline.upcoming``),
    so the page and the scheduler cannot disagree; None when this Pinball has
    no scheduler or the token is not a schedule it can read.
    """
    try:
        spec = importlib.import_module("pinball_core.scheduler.spec")
        timeline = importlib.import_module("pinball_core.scheduler.timeline")
    except ImportError:
        return None
    try:
        schedule = spec.Schedule.from_token(token)
        return [float(t) for t in timeline.upcoming(schedule, now, count)]
    except Exception as exc:  # a bad token is shown, not fatal to the page
        log.warning("cannot compute the next runs of %s: %s", token.name, exc)
        return None
