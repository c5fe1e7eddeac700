"""Hook specifications: every way a plugin can extend Pinball.

A plugin is an object (a module, or an instance of a class named by an entry
point) whose functions are marked with :data:`pinball_core.hookimpl` and named
after the hooks below. Every hook is named ``pinball_*`` and takes keyword
arguments only; an implementation may accept any subset of them. A parameter
added to a hook later has a default, which pluggy passes when a caller
written before it leaves it out.

Hooks come in two shapes:

- *Component* hooks (``pinball_make_*``) are ``firstresult`` factories. They
  are called on exactly one plugin, the one the config selects by name (for
  example ``store: sqlite``), never broadcast. Returning None means "I cannot
  make that", which stops start-up with a
  :class:`~pinball_core.errors.PluginLoadError`.
- *Broadcast* hooks (notifications, configuration, CLI, lifecycle events) are
  called on every loaded plugin that implements them; their results are
  ignored. An exception in one of them propagates to the caller, which decides
  whether it is fatal.

:class:`pinball_core.plugins.PluginManager` loads the plugins and owns the
hook relay (``app.plugins.hook``).
"""

import argparse
from collections.abc import Mapping
from typing import Any

from pinball_core import hookspec
from pinball_core.components import Executor, Notification, OverrunPolicy, Parser
from pinball_core.store import Store
from pinball_core.workflow.model import Job
from pinball_core.workflow.status import InstanceSummary

# -------------------------------------------------------------------------
# Configuration hooks, called on every plugin
# -------------------------------------------------------------------------


@hookspec(historic=True)
def pinball_configure(config: Any) -> None:
    """Give a plugin the application's config once it is loaded.

    Called once per application, after the optional plugins are loaded.
    The call is historic: a plugin loaded later (a component chosen after
    configuration) receives the same call when it is registered, so every
    plugin sees the config exactly once. Call it with
    :meth:`pinball_core.plugins.PluginManager.configure`.

    :param config:
        The validated application config. A plugin reads its own options
        from it and should raise :class:`~pinball_core.errors.ConfigError`
        naming the key if they are wrong.

    The result is ignored.
    """


# -------------------------------------------------------------------------
# Command-line hooks, called on every plugin
# -------------------------------------------------------------------------


@hookspec
def pinball_add_commands(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    """Add sub-commands to the ``pinball`` command line.

    Called once while the command line is built, before arguments are parsed.
    Each parser a plugin adds must call ``set_defaults(handler=func)``, where
    ``func(args: argparse.Namespace, app) -> int`` runs the command and returns
    the process exit code.

    :param subparsers:
        The ``pinball`` parser's sub-command collection; call its
        ``add_parser(name, help=...)``.

    The result is ignored.
    """


# -------------------------------------------------------------------------
# Component hooks, called only on the plugin the config selects
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def pinball_make_store(url: str, options: Mapping[str, Any]) -> Store | None:
    """Open the store the config's ``store`` URL points at.

    Called once per application on the store plugin whose entry-point name
    is the URL's scheme (``sqlite`` for ``sqlite:///x.db``, ``mysql`` for
    ``mysql+pymysql://...``).

    :param url:
        The store URL from the config, with any password in it.
    :param options:
        The config's store options (pool sizes, timeouts), possibly empty.

    :returns:
        An open store, not yet initialized, or None if the plugin cannot
        handle the URL.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def pinball_make_parser(params: Mapping[str, Any]) -> Parser | None:
    """Make the workflow parser the config's ``parser`` names.

    Called once per application, on that parser plugin only.

    :param params:
        The config's ``parser_params``, possibly empty.

    :returns:
        A parser, or None if the plugin cannot make one from ``params``.
    :raises ConfigError:
        For a key of ``params`` it cannot use (unknown, of the wrong type, a
        path that does not exist), with a message that starts with the key,
        ``parser_params.KEY: reason``; the core adds the config file's name.
        ``pinball config check`` makes the parser to run these checks, so it
        should read nothing here that is slow or has effects.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def pinball_make_executor(options: Mapping[str, Any]) -> Executor | None:
    """Make the job executor the config's ``executor`` names.

    Called once per worker process, on that executor plugin only.

    :param options:
        The config's executor options, possibly empty.

    :returns:
        An executor, or None if the plugin cannot make one from ``options``.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def pinball_make_overrun_policy() -> OverrunPolicy | None:
    """Make the overrun policy a schedule names (``SKIP``, ``DELAY``, ...).

    Called by the scheduler the first time a schedule with that policy fires,
    on that policy plugin only.

    :returns:
        An overrun policy, or None if the plugin cannot make one.

    Stops at first non-None result.
    """


# -------------------------------------------------------------------------
# Notification hooks, called on every notifier plugin
# -------------------------------------------------------------------------


@hookspec
def pinball_notify(notification: Notification) -> None:
    """Deliver a message to people (email, chat, a pager).

    Called on every loaded notifier whenever the workflow engine or the
    scheduler has something to tell the workflow's owners, for example a
    failed job. A notifier sends the message or decides it is not for it
    (by ``notification.kind``); it should not raise for delivery problems
    but log them.

    :param notification:
        What to send and to whom.

    The result is ignored.
    """


# -------------------------------------------------------------------------
# Job lifecycle events, called on every plugin; results are ignored
# -------------------------------------------------------------------------


@hookspec
def pinball_job_started(workflow: str, instance: str, job: str, execution: int) -> None:
    """A worker started an execution of a job.

    Called in the worker right after the executor started the job's command.

    :param workflow: The workflow name.
    :param instance: The workflow instance id.
    :param job: The job name within the workflow.
    :param execution: The execution number of this job in this instance,
        counting from 0; retries increase it.
    """


@hookspec
def pinball_job_succeeded(
    workflow: str, instance: str, job: str, execution: int, duration: float
) -> None:
    """An execution of a job ended with exit code 0.

    Called in the worker after the job's outputs were posted to the master.

    :param workflow: The workflow name.
    :param instance: The workflow instance id.
    :param job: The job name within the workflow.
    :param execution: The execution number, as in :func:`pinball_job_started`.
    :param duration: Seconds from start to end of the execution.
    """


@hookspec
def pinball_job_failed(
    workflow: str,
    instance: str,
    job: str,
    execution: int,
    exit_code: int | None,
    reason: str,
    will_retry: bool,
    payload: Job | None = None,
) -> None:
    """An execution of a job failed: a non-zero exit, or it could not run.

    Called in the worker once the failure is recorded in the master, also
    for an execution killed at its ``abort_timeout_sec`` or by an ABORT.

    :param workflow: The workflow name.
    :param instance: The workflow instance id.
    :param job: The job name within the workflow.
    :param execution: The execution number, as in :func:`pinball_job_started`.
    :param exit_code: The command's exit code, or None if it never ran or was
        killed by a signal.
    :param reason: One readable line saying why it failed.
    :param will_retry: Whether the job has retries left and will run again.
    :param payload: The job as recorded: its definition (command, emails,
        timeouts) and history, this execution last. None from callers
        older than this parameter. Read it in the call; the worker goes on
        using it afterwards.
    """


@hookspec
def pinball_job_timed_out(
    workflow: str,
    instance: str,
    job: str,
    execution: int,
    timeout: float,
    payload: Job | None = None,
) -> None:
    """An execution of a job has run longer than its ``warn_timeout_sec``.

    Called once per execution by the worker running it, as soon as it notices;
    the job goes on running. An execution stopped at its ``abort_timeout_sec``
    is reported by :func:`pinball_job_failed`.

    :param workflow: The workflow name.
    :param instance: The workflow instance id.
    :param job: The job name within the workflow.
    :param execution: The execution number, as in :func:`pinball_job_started`.
    :param timeout: The job's warn timeout in seconds.
    :param payload: The job as recorded so far, this execution last, as in
        :func:`pinball_job_failed`.
    """


@hookspec
def pinball_instance_finished(
    workflow: str,
    instance: str,
    status: str,
    summary: InstanceSummary | None = None,
) -> None:
    """A workflow instance ended: no job of it can run any more.

    Called once per end, by the worker that marked the instance finished,
    before its tokens move to the archive. An instance retried afterwards
    ends, and is reported, again.

    :param workflow: The workflow name.
    :param instance: The workflow instance id.
    :param status: How it ended: ``SUCCESS``, ``FAILURE`` or ``ABORTED``.
    :param summary: The instance and each of its jobs as they ended, or None
        from callers older than this parameter.
    """


# -------------------------------------------------------------------------
# Schedule events, called on every plugin; results are ignored
# -------------------------------------------------------------------------


@hookspec
def pinball_schedule_fired(workflow: str, instance: str, scheduled_time: float) -> None:
    """A schedule started a new instance of its workflow.

    Called by the scheduler once the instance's tokens, the record of the
    slot it runs for and the schedule's next run were stored, in one change.
    A scheduler that dies right after that change does not call it: the
    hook is called at most once per run.

    :param workflow: The workflow name.
    :param instance: The id of the new instance.
    :param scheduled_time: The slot the run is for, in seconds since the
        epoch; a run started late (delayed, or after the scheduler was down)
        still has its slot here.
    """


@hookspec
def pinball_schedule_skipped(workflow: str, scheduled_time: float, reason: str) -> None:
    """A run of a schedule was dropped: it will not start.

    Called by the scheduler when the overrun policy decided
    :attr:`~pinball_core.components.OverrunDecision.SKIP` for a run, and
    once for each stretch of runs missed while no scheduler ran (catch-up
    off, or beyond ``max_catchup``), with the first of them. The schedule
    moves on to its next time. A run the policy delays is not reported until
    it fires or is skipped.

    :param workflow: The workflow name.
    :param scheduled_time: The slot of the dropped run (the first one of a
        stretch), in seconds since the epoch.
    :param reason: One readable line, e.g. how many instances were running.
    """


@hookspec
def pinball_schedule_refused(workflow: str, scheduled_time: float, reason: str) -> None:
    """A run of a schedule is due but cannot start; someone should look.

    Called by the scheduler once per run (per slot), however often it asks
    again, when the run is held back by something other than a running
    instance: the workflow is at its ``max_running_instances`` cap, the
    parser cannot build it or no longer defines it, its overrun policy
    cannot be loaded, the policy waits although nothing runs (such as
    DELAY_UNTIL_SUCCESS after a failed instance), or the schedule token
    itself is unusable. The run stays pending (or, if the policy says so at
    the cap, is skipped) and starts by itself once the cause is gone.

    :param workflow: The workflow name.
    :param scheduled_time: The slot of the run, in seconds since the epoch.
    :param reason: One readable line saying why.
    """
