"""The original Pinball's job templates: what a ``JobConfig`` runs.

- :class:`CommandJobTemplate` runs a shell command. The parser's
  ``parser_params`` are substituted into it with ``%`` when the workflow is
  parsed, so a literal ``%`` is written ``%%`` and an upstream job's event
  attribute ``%%(name)s``; the ``final`` job gets no parameters.
- :class:`JobTemplate` runs a Python job class (a subclass of
  :class:`pinball_parser_python.jobs.JobBase`) found in the folders that
  ``parser_params.job_import_dirs_config`` lists, under
  ``parser_params.job_repo_dir``, through
  :mod:`pinball_parser_python.job_runner`.
- :class:`CommandConditionTemplate` is a condition job running a command
  until it exits 0.

Templates only hold values; :mod:`pinball_parser_python.legacy` turns them
into jobs.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from pinball_parser_python.problems import Site, call_site


class JobTemplateBase:
    """What every job template has: a name and the job's run settings."""

    def __init__(
        self,
        name: str,
        write_lock: str | None = None,
        max_attempts: int | None = 1,
        emails: Sequence[str] | None = None,
        priority: float | None = None,
        warn_timeout_sec: float | None = None,
        abort_timeout_sec: float | None = None,
    ) -> None:
        self.site: Site = call_site()
        self.name = name
        self.write_lock = write_lock
        self.max_attempts = 1 if max_attempts is None else max_attempts
        self.emails = list(emails or [])
        self.priority = priority
        self.warn_timeout_sec = warn_timeout_sec
        self.abort_timeout_sec = abort_timeout_sec

    # Templates are equal by name, as the original's were.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobTemplateBase) and self.name == other.name

    def __hash__(self) -> int:
        return hash(("template", self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class JobTemplate(JobTemplateBase):
    """Runs the Python job class ``name`` with the job runner.

    ``executor`` and ``executor_config`` are handed to the job class (the
    original used them for Hadoop clusters); ``write_lock`` names a lock the
    runner holds while the job runs, so jobs sharing it run one at a time
    on a machine.
    """

    def __init__(
        self,
        name: str,
        executor: str | None = None,
        executor_config: Mapping[str, Any] | None = None,
        write_lock: str | None = None,
        max_attempts: int = 1,
        emails: Sequence[str] | None = None,
        priority: float | None = None,
        warn_timeout_sec: float | None = None,
        abort_timeout_sec: float | None = None,
    ) -> None:
        super().__init__(
            name,
            write_lock,
            max_attempts,
            emails,
            priority,
            warn_timeout_sec,
            abort_timeout_sec,
        )
        self.executor = executor
        self.executor_config = dict(executor_config or {})


class CommandJobTemplate(JobTemplateBase):
    """Runs ``command`` (after ``%`` substitution of the parser params)."""

    def __init__(
        self,
        name: str,
        command: str,
        write_lock: str | None = None,
        max_attempts: int | None = None,
        emails: Sequence[str] | None = None,
        priority: float | None = None,
        warn_timeout_sec: float | None = None,
        abort_timeout_sec: float | None = None,
    ) -> None:
        super().__init__(
            name,
            write_lock,
            max_attempts,
            emails,
            priority,
            warn_timeout_sec,
            abort_timeout_sec,
        )
        self.command = command


class ConditionTemplateBase:
    """What every condition template has: its name and how it retries."""

    def __init__(
        self,
        name: str,
        max_attempts: int = 10,
        retry_delay_sec: float = 5 * 60,
        emails: Sequence[str] | None = None,
        priority: float | None = None,
    ) -> None:
        self.site: Site = call_site()
        self.name = name
        self.max_attempts = max_attempts
        self.retry_delay_sec = retry_delay_sec
        self.emails = list(emails or [])
        self.priority = priority

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConditionTemplateBase) and self.name == other.name

    def __hash__(self) -> int:
        return hash(("condition", self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class CommandConditionTemplate(ConditionTemplateBase):
    """A condition running ``command`` until it exits 0, by default every 20
    minutes for a day (72 attempts).

    The original read the command from the parser params only; here it is
    the keyword argument ``command``, falling back to
    ``parser_params.command``.
    """

    def __init__(
        self,
        name: str,
        max_attempts: int = 72,
        retry_delay_sec: float = 20 * 60,
        emails: Sequence[str] | None = None,
        priority: float | None = None,
        *,
        command: str | None = None,
    ) -> None:
        super().__init__(name, max_attempts, retry_delay_sec, emails, priority)
        self.command = command
