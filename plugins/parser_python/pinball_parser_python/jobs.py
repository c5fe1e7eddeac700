"""Base classes for Python job classes run by a ``JobTemplate``.

The original Pinball's ``pinball_ext.job.basic_jobs`` equivalents, so job
classes written for it run with only their imports changed. The job runner
(:mod:`pinball_parser_python.job_runner`) makes the class with the job's
parameters and calls :meth:`JobBase.runjob`; an exception from any step
fails the job.

Hadoop, Hive and cluster jobs of the original are not here: they drove
services (EMR, Qubole) through executors that this project does not ship.
A job class can still start such work itself from ``_execute``.
"""

import logging
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class JobBase:
    """A job run in steps by :meth:`runjob`.

    - ``_setup()`` prepares (builds arguments, checks inputs);
    - ``_set_output_dirs()`` may list local folders in ``job_output_dirs``;
    - ``_execute()`` does the work and raises if it failed;
    - ``_complete()`` publishes what ``_execute`` made;
    - ``_cleanup()`` always runs last, even after a failure.

    :param params: the job's parameters (the ``JobTemplate``'s
        ``job_params`` and ``end_date``), as text.
    :param settings: how to run it: ``executor``, ``executor_config``.
    """

    #: Delete ``job_output_dirs`` when the job fails, so no half output
    #: is taken for a result.
    _CLEANUP_AFTER_FAILURE: ClassVar[bool] = False

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.settings: dict[str, Any] = dict(settings or {})
        self.job_name: str = self.params.get("job_name") or type(self).__name__
        self.job_output_dirs: list[str] = []
        self._job_output: Any = None

    def runjob(self, dry_run: bool = False) -> None:
        """Run the steps; with ``dry_run``, set up and print the job only."""
        try:
            self._setup()
            self._set_output_dirs()
            if dry_run:
                print(self)
                return
            if not self._skip_execution():
                self._execute()
            self._complete()
        except Exception:
            log.error("job %s failed", self.job_name)
            if self._CLEANUP_AFTER_FAILURE:
                self._cleanup_output_dirs()
            raise
        finally:
            self._cleanup()

    def _setup(self) -> None:
        """Prepare the job; nothing by default."""

    def _set_output_dirs(self) -> None:
        """Fill ``job_output_dirs``; none by default."""

    def _skip_execution(self) -> bool:
        """Whether the work is already done and ``_execute`` can be skipped."""
        return False

    def _execute(self) -> None:
        """Do the work; raise if it fails."""

    def _complete(self) -> None:
        log.info("job %s succeeded", self.job_name)

    def _cleanup(self) -> None:
        """Remove temporary things; runs after success and failure alike."""

    def _cleanup_output_dirs(self) -> None:
        for directory in self.job_output_dirs:
            log.info(
                "removing the output of failed job %s: %s", self.job_name, directory
            )
            shutil.rmtree(directory, ignore_errors=True)

    def __str__(self) -> str:
        return f"({self.job_name}): ({self.params})"


class PythonJob(JobBase):
    """A job whose ``_execute`` is Python code; override ``_execute``."""

    def _execute(self) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must override _execute with the job's work"
        )


class CommandLineJob(JobBase):
    """A job running ``_get_command()`` in a shell with ``arguments``.

    ``arguments`` defaults to ``--key=value`` for each parameter; set it in
    ``_setup`` for another form. The command's output goes to the job's
    log, so ``PINBALL:`` lines it prints reach the worker.
    """

    arguments: str | None = None

    def _setup(self) -> None:
        if self.arguments is None:
            self.arguments = " ".join(f"--{k}={v}" for k, v in self.params.items())

    def _get_command(self) -> str:
        raise NotImplementedError(
            f"{type(self).__name__} must override _get_command with the command"
        )

    def _execute(self) -> None:
        command = f"{self._get_command()} {self.arguments or ''}".strip()
        log.info("running %s", command)
        sys.stdout.flush()
        completed = subprocess.run(command, shell=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(
                f"command {command!r} of job {self.job_name} exited with "
                f"{completed.returncode}"
            )
