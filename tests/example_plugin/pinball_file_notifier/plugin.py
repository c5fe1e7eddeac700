"""The plugin: one class whose methods implement Pinball's hooks.

Pinball makes one instance of the class named by the entry point and
registers it with its plugin manager. Each method marked ``@hookimpl`` and
named after a hook in ``pinball_core.hookspecs`` is called for that hook; it
may take only the arguments it needs, by name.

Options come from the config under the entry-point name::

    plugins:
      file:
        path: events.jsonl    # relative to the folder the config is in
"""

import json
import logging
import pathlib
import threading
import time
from typing import Any

from pinball_core import hookimpl
from pinball_core.components import Notification
from pinball_core.errors import ConfigError

log = logging.getLogger(__name__)


class FileNotifier:
    """Appends one JSON object per event to the file ``plugins.file.path``."""

    def __init__(self) -> None:
        self.path: pathlib.Path | None = None
        # Worker threads of one process report at the same time.
        self._lock = threading.Lock()

    @hookimpl
    def pinball_configure(self, config: Any) -> None:
        """Read the plugin's options; a missing path is the user's to fix."""
        options = config.plugin_options("file")
        path = options.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError(
                "plugins.file.path: the file notifier needs a file to write to, "
                "e.g. plugins: {file: {path: events.jsonl}}"
            )
        self.path = config.resolve_path(path)

    @hookimpl
    def pinball_notify(self, notification: Notification) -> None:
        self._write(
            "notification",
            kind=notification.kind,
            recipients=list(notification.recipients),
            subject=notification.subject,
        )

    @hookimpl
    def pinball_job_started(self, workflow: str, instance: str, job: str) -> None:
        self._write("job_started", workflow=workflow, instance=instance, job=job)

    @hookimpl
    def pinball_job_succeeded(
        self, workflow: str, instance: str, job: str, duration: float
    ) -> None:
        self._write(
            "job_succeeded",
            workflow=workflow,
            instance=instance,
            job=job,
            duration=round(duration, 3),
        )

    @hookimpl
    def pinball_job_failed(
        self,
        workflow: str,
        instance: str,
        job: str,
        exit_code: int | None,
        will_retry: bool,
    ) -> None:
        self._write(
            "job_failed",
            workflow=workflow,
            instance=instance,
            job=job,
            exit_code=exit_code,
            will_retry=will_retry,
        )

    @hookimpl
    def pinball_instance_finished(
        self, workflow: str, instance: str, status: str
    ) -> None:
        self._write(
            "instance_finished", workflow=workflow, instance=instance, status=status
        )

    def _write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            # Not configured: a process that never called pinball_configure.
            return
        line = json.dumps({"event": event, "time": time.time(), **fields})
        # A full disk must not stop the job that reported: log and go on.
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            log.warning("cannot write event %s to %s: %s", event, self.path, exc)
