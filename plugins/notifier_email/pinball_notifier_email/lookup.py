"""What a mail needs from the master beyond what its hook carried.

The hooks carry the job or the instance they are about. Who else to tell
(the workflow's addresses, kept on its schedule token), whether a failure is
the instance's first, and which instances hold a schedule back are read
here, on the notifier's thread, never on a worker's.
"""

import json
import logging
import time
from collections.abc import Callable, Collection

from pinball_core.client import MasterClient
from pinball_core.token import Token
from pinball_core.workflow import names, status
from pinball_core.workflow.model import Job, PayloadError

log = logging.getLogger(__name__)

_FINAL_FAILURE = frozenset({status.Status.FAILURE, status.Status.ABORTED})


class MasterFacts:
    """Reads the master through a client made on first use.

    :param connect:
        Makes the client; called at most once, from the notifier's thread.
    :param default_cap:
        The config's ``default_max_workflow_running_instances``.
    """

    def __init__(self, connect: Callable[[], MasterClient], default_cap: int) -> None:
        self._connect = connect
        self._client: MasterClient | None = None
        self.default_cap = default_cap

    @property
    def client(self) -> MasterClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def workflow_emails(self, workflow: str) -> list[str]:
        """The addresses on the workflow's schedule; none if it has no schedule.

        As in the original Pinball, a workflow's own addresses live on its
        schedule token: a workflow that is only ever started by hand has
        just its jobs' addresses.
        """
        tokens = self.client.query(names.schedule_name(workflow))
        return _schedule_emails(_schedule(tokens, workflow))

    def failure_context(
        self, workflow: str, instance: str, job: str, told: Collection[str]
    ) -> list[str]:
        """The owners to add to ``job``'s failure mail: all of them if it is
        the instance's first failure, else none.

        ``told`` are the addresses the mail goes to anyway (the job's own);
        when they include every owner, as both parsers arrange by giving
        each job the workflow's addresses, the instance is not read at all.

        A failure is the instance's first when no other job of the instance
        had failed for good before it was recorded. Records are ordered by
        the version the master gave the job's token when its end was
        written: versions only grow, so of several jobs failing at the same
        moment on different workers exactly one sees no earlier failure.
        (A failed job's token changed by hand meanwhile, say paused, counts
        from that change; the owners may then be told twice, never zero
        times.)
        """
        already = {address.strip().lower() for address in told}
        owners = self.workflow_emails(workflow)
        if all(owner.strip().lower() in already for owner in owners):
            return []
        now = time.time()
        failed: dict[str, int] = {}
        for token in self.client.query(names.job_prefix(workflow, instance)):
            parsed = names.parse_job_name(token.name)
            if parsed is None or token.version is None:
                continue
            try:
                payload = Job.from_json(token.data)
            except PayloadError:
                continue
            if status.job_status(token, payload, now) in _FINAL_FAILURE:
                failed[parsed.job] = token.version
        mine = failed.get(job)
        return owners if mine is not None and mine == min(failed.values()) else []

    def instance(self, workflow: str, instance: str) -> status.InstanceSummary | None:
        """The instance as the master has it; None once it is archived."""
        return status.read_instance(self.client, workflow, instance, time.time())

    def running(self, workflow: str) -> tuple[list[status.InstanceSummary], int]:
        """The workflow's running instances, oldest first, and its cap."""
        instances = status.read_instances(self.client, workflow, time.time())
        cap, _ = status.running_cap(self.client, workflow, self.default_cap)
        running = [i for i in instances if i.is_running]
        return sorted(running, key=lambda i: (i.start or 0.0, i.instance)), cap


def _schedule(tokens: list[Token], workflow: str) -> Token | None:
    # A prefix query for "daily" also finds "daily_report".
    name = names.schedule_name(workflow)
    return next((t for t in tokens if t.name == name), None)


def _schedule_emails(token: Token | None) -> list[str]:
    if token is None:
        return []
    try:
        data = json.loads(token.data or "{}")
    except ValueError:
        log.warning("schedule %s has data that is not JSON; no addresses", token.name)
        return []
    emails = data.get("emails") if isinstance(data, dict) else None
    if not isinstance(emails, list):
        return []
    return [e for e in emails if isinstance(e, str)]
