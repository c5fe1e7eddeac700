"""What every ``pinball workflow`` command uses: its context, prompts, lookups."""

import argparse
import dataclasses
import datetime
import getpass
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Final

from pinball_core.app import Application
from pinball_core.client import MasterClient
from pinball_core.components import Parser
from pinball_core.errors import NotFoundError, PinballError, VersionConflictError
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.definition import did_you_mean, problems_outside
from pinball_core.workflow.instance import new_instance_id
from pinball_core.workflow.model import ABORT, Job, PayloadError, Signal
from pinball_core.workflow.signals import level_of, read_signals
from pinball_core.workflow.status import (
    InstanceSummary,
    instance_status,
    instances_of,
    may_start,
    read_instances,
    running_cap,
)

log = logging.getLogger(__name__)

#: How often a change that met concurrent writers is read and tried again.
ATTEMPTS: Final = 10

#: How many of the parser's problems an unknown workflow's error shows.
SHOWN_PROBLEMS: Final = 5

#: How times are shown: always UTC, whatever the local zone.
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S UTC"


class WorkflowCommandError(PinballError):
    """A ``pinball workflow`` command that cannot do what was asked.

    The message says what is wrong and what to do instead; nothing was
    changed, unless the message says what was.
    """


@dataclasses.dataclass
class Context:
    """One run of one command: its options, the application and a master client."""

    args: argparse.Namespace
    app: Application
    client: MasterClient
    #: The time the command started, in seconds since the epoch.
    now: float = dataclasses.field(default_factory=time.time)

    @property
    def workflow(self) -> str:
        workflow: str = self.args.workflow
        return workflow

    @property
    def instance(self) -> str:
        instance: str = self.args.instance
        return instance

    @property
    def jobs(self) -> list[str]:
        """The ``-j`` job names, split at commas, in order, without repeats."""
        found: list[str] = []
        for part in (self.args.jobs or "").split(","):
            name = part.strip()
            if name and name not in found:
                found.append(name)
        return found

    def where(self) -> str:
        """``workflow W instance I`` for messages."""
        return f"workflow {self.workflow} instance {self.instance}"

    def confirm(self, question: str) -> bool:
        """Whether the operator agrees; always yes with ``-f``.

        :raises WorkflowCommandError: without ``-f`` when stdin is not a
            terminal, since no one could answer.
        """
        if self.args.force:
            return True
        if not sys.stdin.isatty():
            raise WorkflowCommandError(
                f"not changing anything: {question.rstrip('?')} needs a yes, and "
                "stdin is not a terminal; pass -f to go ahead without asking"
            )
        try:
            answer = input(f"{question} [y/N] ")
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    def make_parser(self) -> Parser:
        """The config's workflow parser; a missing plugin is a one-line error."""
        config = self.app.config
        return self.app.plugins.make_parser(config.parser, config.parser_params)


def say(line: str = "") -> None:
    """Print one line of a command's output."""
    print(line)


def operator() -> str:
    """Who runs this command, as ``user@host``, for lease owners."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def format_time(moment: float | None) -> str:
    """``moment`` as a UTC time; ``-`` when there is none."""
    if moment is None:
        return "-"
    try:
        when = datetime.datetime.fromtimestamp(moment, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{moment:g}"
    return when.strftime(TIME_FORMAT)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def listing(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"


def require_defined(
    app: Application, parser: Parser, workflow: str, instead: str = ""
) -> None:
    """Refuse a workflow the parser does not define, naming those it does.

    The parser's own problems are shown too, the first few of them: a file
    that does not parse hides the workflows in it, which would otherwise
    look merely misspelt. ``instead`` says what else the operator can do.
    """
    known = sorted(parser.workflow_names())
    if workflow in known:
        return
    config = app.config
    message = (
        f"workflow {workflow} is not defined by the parser {config.parser!r} "
        f"(parser_params {dict(config.parser_params)}); it knows: {listing(known)}"
    )
    if instead:
        message += f"; {instead}"
    message += did_you_mean(workflow, known)
    # A problem that names a workflow the parser knows is inside what it
    # read, so it cannot be what hides this one.
    problems = problems_outside(_parser_problems(parser), known)
    if problems:
        shown = "".join(f"\n  {line}" for line in problems[:SHOWN_PROBLEMS])
        message += (
            f"\nthe definitions have {plural(len(problems), 'problem')} that may "
            f"hide it:{shown}"
        )
        if len(problems) > SHOWN_PROBLEMS:
            message += (
                f"\n  and {len(problems) - SHOWN_PROBLEMS} more; "
                "`pinball workflow validate` lists them all"
            )
    raise WorkflowCommandError(message)


def _parser_problems(parser: Parser) -> list[str]:
    # Only to explain an error already decided on, so a parser whose
    # validate breaks does not replace that error with its own.
    try:
        return [str(problem) for problem in parser.validate()]
    except Exception:
        log.debug("the parser's validate failed", exc_info=True)
        return []


def definition_tokens(parser: Parser, workflow: str, instance: str) -> list[Token]:
    """The job tokens the parser builds for a new ``instance`` of ``workflow``.

    :raises WorkflowCommandError: with the parser's own message when it
        refuses (a DefinitionError listing the definition's problems, or
        another ValueError, as the parser contract allows), or when it
        gives no tokens.
    """
    try:
        tokens = parser.instance_tokens(workflow, instance)
    except ValueError as exc:
        raise WorkflowCommandError(str(exc)) from exc
    if not tokens:
        raise WorkflowCommandError(
            f"the parser gave no tokens for workflow {workflow}; check its "
            "definition with `pinball workflow validate`"
        )
    return tokens


def instance_tokens(ctx: Context) -> list[Token]:
    """Every active token under the instance's prefix."""
    return ctx.client.query(names.instance_prefix(ctx.workflow, ctx.instance))


def require_active(ctx: Context, tokens: list[Token]) -> None:
    """Refuse an instance the master has no job token of."""
    if not any(names.parse_job_name(t.name) for t in tokens):
        raise WorkflowCommandError(
            f"{ctx.where()} is not active: the master has no job of it. Check "
            f"the names with `pinball workflow status -w {ctx.workflow}`; an "
            "archived instance cannot be changed in place"
        )


def archived_instance(ctx: Context) -> tuple[list[Token], InstanceSummary] | None:
    """The archived tokens and status of the instance, or None if not archived."""
    tokens = _read_archive(ctx, names.instance_prefix(ctx.workflow, ctx.instance))
    summary = instance_status(tokens, ctx.now, archived=True)
    if summary is None:
        return None
    return tokens, summary


def archived_instances(ctx: Context) -> list[InstanceSummary]:
    """The status of every archived instance of the workflow."""
    tokens = _read_archive(ctx, names.workflow_prefix(ctx.workflow))
    return instances_of(tokens, ctx.now, archived=True)


def _read_archive(ctx: Context, prefix: str) -> list[Token]:
    """The archived tokens under ``prefix``, each name's latest version only.

    An instance id used, archived and used again leaves two versions of its
    names; the later one is the instance as it ended.
    """
    store = ctx.app.open_store(read_only=True)
    try:
        rows = store.read_tokens(prefix, archived=True)
    finally:
        store.close()
    latest: dict[str, Token] = {}
    for token in rows:
        kept = latest.get(token.name)
        if kept is None or (token.version or 0) >= (kept.version or 0):
            latest[token.name] = token
    return list(latest.values())


def check_cap(ctx: Context, *, adding_to: str | None = None) -> list[Token]:
    """Refuse to start another instance of the workflow when it is at its cap.

    ``adding_to`` names an instance that would run again; if it is already
    running it is not another one, so the cap does not stop it.

    Returns the guard to send with the start: the workflow's schedule token
    as it was read before the running instances were counted. Written back
    unchanged in the same modify, it makes the master refuse the start if
    anyone else started an instance since (the scheduler writes that token
    with every start), so a start racing the scheduler or another start is
    counted again instead of passing the cap. A workflow without a schedule
    has no such token; only hand starts racing each other can pass its cap.
    """
    schedule = names.schedule_name(ctx.workflow)
    guard = [t for t in ctx.client.query(schedule) if t.name == schedule]
    running = [
        i.instance
        for i in read_instances(ctx.client, ctx.workflow, ctx.now)
        if i.is_running
    ]
    if adding_to is not None and adding_to in running:
        return guard
    default = ctx.app.config.default_max_workflow_running_instances
    cap, source = running_cap(ctx.client, ctx.workflow, default)
    if not may_start(len(running), cap):
        raise WorkflowCommandError(
            f"workflow {ctx.workflow} has {plural(len(running), 'running instance')} "
            f"({listing(running)}) and may run at most {cap} (set by {source}); "
            "wait for one to finish, or stop one with `pinball workflow stop`"
        )
    return guard


def insert_new_instance(
    ctx: Context, build: Callable[[str], list[Token]]
) -> tuple[str, list[Token]]:
    """Insert the tokens ``build(instance_id)`` returns under a fresh instance id.

    The running-instances cap is checked (:func:`check_cap`) before each try
    and its guard goes in the same modify as the tokens, so the instance
    appears whole or not at all, and only while the workflow is under its
    cap. An id that is taken (another instance started in the same
    millisecond) is replaced by the next one. Taken means any token under
    its prefix, not only one of the same name: the new tokens would
    otherwise join the other instance.
    """
    instance = new_instance_id()
    for _ in range(ATTEMPTS):
        guard = check_cap(ctx)
        prefix = names.instance_prefix(ctx.workflow, instance)
        if not ctx.client.group(prefix, None):
            tokens = build(instance)
            try:
                stored = ctx.client.modify(updates=[*tokens, *guard])
            except VersionConflictError:
                # The id was taken, or an instance started, since the check.
                ctx.now = time.time()
            else:
                return instance, stored[: len(tokens)]
        instance = str(max(int(instance) + 1, int(new_instance_id())))
    raise WorkflowCommandError(
        f"could not find a free instance id for workflow {ctx.workflow} in "
        f"{ATTEMPTS} tries; try again"
    )


def modify_with_retries(
    ctx: Context,
    plan: Callable[[], tuple[list[Token], list[Token]] | None],
    what: str,
) -> bool:
    """Send the modify ``plan()`` returns, reading afresh if others wrote first.

    ``plan`` reads what it needs and returns ``(updates, deletes)``, or None
    when there is nothing (left) to do, which returns False. ``what`` names
    the change in the error raised after :data:`ATTEMPTS` conflicts.
    """
    for _ in range(ATTEMPTS):
        change = plan()
        if change is None:
            return False
        updates, deletes = change
        try:
            ctx.client.modify(updates=updates, deletes=deletes)
        except (VersionConflictError, NotFoundError):
            continue
        return True
    raise WorkflowCommandError(
        f"could not {what}: its tokens changed under every one of {ATTEMPTS} "
        "tries; nothing was changed, run the command again"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class JobToken:
    """A job token with its name's parts and its payload parsed."""

    name: str
    state: str
    token: Token
    job: Job


def jobs_of(tokens: Iterable[Token]) -> dict[str, JobToken]:
    """The job tokens among ``tokens`` by job name; bad payloads are an error."""
    found: dict[str, JobToken] = {}
    for token in tokens:
        parsed = names.parse_job_name(token.name)
        if parsed is None:
            continue
        try:
            job = Job.from_json(token.data)
        except PayloadError as exc:
            raise WorkflowCommandError(
                f"job token {token.name} does not hold a job ({exc}); inspect it "
                "with `pinball tokens cat` and repair or remove it"
            ) from exc
        found[parsed.job] = JobToken(parsed.job, parsed.state, token, job)
    return found


def unknown_jobs(ctx: Context, wanted: Iterable[str], known: Iterable[str]) -> None:
    """Refuse job names that are not jobs of the instance, naming the real ones."""
    known = sorted(known)
    missing = [name for name in wanted if name not in known]
    if missing:
        raise WorkflowCommandError(
            f"no job {listing(missing)} in {ctx.where()}; its jobs are: "
            f"{listing(known)}"
        )


def own_signal_tokens(
    ctx: Context, tokens: Iterable[Token], action: str
) -> list[Token]:
    """The instance's own signal tokens of ``action`` among ``tokens``."""
    prefix = names.signal_prefix(ctx.workflow, ctx.instance)
    found = []
    for token in tokens:
        if not token.name.startswith(prefix):
            continue
        try:
            signal = Signal.from_json(token.data)
        except PayloadError:
            continue  # not a signal: not ours to remove
        if signal.action == action:
            found.append(token)
    return found


def renamed(token: Token, old_prefix: str, new_prefix: str) -> Token:
    """A new, unowned token like ``token`` under ``new_prefix`` instead."""
    assert token.name.startswith(old_prefix), token.name
    return Token(
        name=new_prefix + token.name[len(old_prefix) :],
        priority=token.priority,
        data=token.data,
    )


def runnable_token(
    workflow: str, instance: str, name: str, job: Job, priority: float
) -> Token:
    """A new runnable token for ``job``, keeping its priority."""
    return Token(
        names.job_name(workflow, instance, names.RUNNABLE, name),
        priority=priority,
        data=job.to_json(),
    )


def level_options(signal_token_name: str) -> str:
    """The `` -w W -i I`` options naming a signal token's level, for hints."""
    workflow, instance = level_of(signal_token_name)
    return "".join(
        f" {flag} {value}"
        for flag, value in (("-w", workflow), ("-i", instance))
        if value is not None
    )


def refuse_if_aborted(ctx: Context) -> None:
    """Refuse to run jobs of an instance that an ABORT at any level stops."""
    aborted = read_signals(ctx.client, ctx.workflow, ctx.instance).get(ABORT)
    if aborted is not None:
        name = aborted[0].name
        raise WorkflowCommandError(
            f"{ctx.where()} is aborted ({name}), so no job of it would run; "
            f"remove the ABORT first with `pinball workflow unabort"
            f"{level_options(name)}`"
        )
