"""The JSON API under ``/api/v1/``: everything the pages show and do.

The pages are built from these answers by their scripts, so the API is
complete by construction. Errors are ``{"error": {"code": N, "message":
...}}`` with the HTTP status; the message says what is wrong in one line and
never carries a traceback. Every change is a POST that needs the XSRF token
(the ``_xsrf`` cookie sent back in the ``X-XSRFToken`` header).
"""

import asyncio
import json
import logging
import os
import urllib.parse
from typing import Any, Final

from pinball_core.errors import StoreError
from pinball_core.workflow import names
from pinball_core.workflow.graph import GraphRenderError, graphviz_available
from pinball_core.workflow.model import Job

from pinball_ui_tornado import logs
from pinball_ui_tornado.access import Role
from pinball_ui_tornado.actions import ACTIONS, ActionError, level_of
from pinball_ui_tornado.base import (
    BaseHandler,
    Refusal,
    check_word,
    dumps,
    role_problem,
)
from pinball_ui_tornado.paging import PageRequest, PagingError
from pinball_ui_tornado.reads import NotFound

log = logging.getLogger(__name__)

API: Final = "/api/v1"


class ApiHandler(BaseHandler):
    """JSON answers and JSON errors."""

    def refuse_anonymous(self) -> None:
        raise Refusal(401, "log in first: POST /login with user and password")

    def xsrf_refusal(self, problem: str) -> str:
        return (
            f"{problem}. In the UI, reload the page and try again. An API client "
            "gets the _xsrf cookie from any page (GET /login) and sends it back "
            "with its value in the X-XSRFToken header, as the UI's README shows "
            "under Actions"
        )

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        message = self.error_message(status_code, **kwargs)
        self.finish(dumps({"error": {"code": status_code, "message": message}}))

    def page_request(self) -> PageRequest:
        arguments = {k: self.get_argument(k) for k in self.request.arguments}
        try:
            return PageRequest.parse(arguments)
        except PagingError as exc:
            raise Refusal(400, str(exc)) from exc

    async def read(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a reader method in the pool; NotFound is 404, a bad store 503."""
        try:
            return await self.blocking(function, *args, **kwargs)
        except NotFound as exc:
            raise Refusal(404, str(exc)) from exc
        except (PagingError, ValueError) as exc:
            raise Refusal(400, str(exc)) from exc
        except StoreError as exc:
            raise Refusal(503, f"the store cannot be read: {exc}") from exc


class StatusApi(ApiHandler):
    """Banners: signals at the page's level, the master, the user."""

    async def get(self) -> None:
        workflow = self.get_argument("workflow", None)
        instance = self.get_argument("instance", None)
        if workflow is not None:
            check_word("workflow", workflow)
        if instance is not None:
            if workflow is None:
                raise Refusal(400, "instance needs its workflow")
            check_word("instance", instance)
        signals = await self.read(self.pinball.reader.signals, workflow, instance)
        master = await self.blocking(self.pinball.probe.check)
        loaded, known = self.pinball.reader.history.loading
        access = self.pinball.access
        self.send(
            {
                "signals": signals,
                "master": master,
                "user": {"name": self.user.name, "role": self.user.role.label},
                "access": {
                    "open": access.open,
                    "listen": self.pinball.listen,
                    "trusted_header": access.trusted_header,
                },
                "history_loaded": {"workflows": loaded, "of": known},
                "graphviz": graphviz_available(),
            }
        )


class WorkflowsApi(ApiHandler):
    async def get(self) -> None:
        self.send(await self.read(self.pinball.reader.workflows, self.page_request()))


class WorkflowApi(ApiHandler):
    async def get(self, workflow: str) -> None:
        check_word("workflow", workflow)
        self.send(await self.read(self.pinball.reader.workflow, workflow))


class InstancesApi(ApiHandler):
    async def get(self, workflow: str) -> None:
        check_word("workflow", workflow)
        self.send(
            await self.read(
                self.pinball.reader.instances, workflow, self.page_request()
            )
        )


class InstanceApi(ApiHandler):
    async def get(self, workflow: str, instance: str) -> None:
        instance = await self.resolve(workflow, instance)
        self.send(await self.read(self.pinball.reader.instance, workflow, instance))

    async def resolve(self, workflow: str, instance: str) -> str:
        """The instance id from the URL, checked; ``latest`` means the
        workflow's latest instance, so that every path under it works."""
        check_word("workflow", workflow)
        if instance == "latest":
            latest: str = await self.read(self.pinball.reader.latest_instance, workflow)
            return latest
        return check_word("instance", instance)


class JobsApi(InstanceApi):
    async def get(self, workflow: str, instance: str) -> None:
        instance = await self.resolve(workflow, instance)
        self.send(
            await self.read(
                self.pinball.reader.jobs, workflow, instance, self.page_request()
            )
        )


class GraphApi(InstanceApi):
    """The instance's graph as SVG; 503 with a JSON error without Graphviz."""

    async def get(self, workflow: str, instance: str) -> None:
        instance = await self.resolve(workflow, instance)
        reader = self.pinball.reader
        jobs = await self.read(reader.job_definitions, workflow, instance)
        statuses = await self.read(reader.job_statuses, workflow, instance)
        base = f"/workflows/{workflow}/instances/{instance}/jobs/"
        await self.send_svg(jobs, statuses, lambda job: base + job)

    async def send_svg(self, jobs: dict[str, Job], statuses: Any, url_for: Any) -> None:
        try:
            svg = await self.blocking(self.pinball.graphs.svg, jobs, statuses, url_for)
        except GraphRenderError as exc:
            raise Refusal(503, str(exc)) from exc
        self.set_header("Content-Type", "image/svg+xml; charset=utf-8")
        self.finish(svg)


class ExecutionsApi(InstanceApi):
    async def get(self, workflow: str, instance: str, job: str) -> None:
        instance = await self.resolve(workflow, instance)
        check_word("job", job)
        self.send(
            await self.read(self.pinball.reader.executions, workflow, instance, job)
        )


class ExecutionApi(InstanceApi):
    async def get(self, workflow: str, instance: str, job: str, execution: str) -> None:
        instance = await self.resolve(workflow, instance)
        check_word("job", job)
        self.send(
            await self.read(
                self.pinball.reader.execution, workflow, instance, job, int(execution)
            )
        )


class LogApi(InstanceApi):
    """One page of a log, or the whole file as a download."""

    async def get(
        self, workflow: str, instance: str, job: str, execution: str, kind: str
    ) -> None:
        instance = await self.resolve(workflow, instance)
        check_word("job", job)
        path, finished = await self.read(
            self.pinball.reader.log_path, workflow, instance, job, int(execution), kind
        )
        logs_dir = self.pinball.reader.logs_dir
        try:
            resolved = logs.safe_path(logs_dir, path)
        except logs.LogRefused as exc:
            raise Refusal(403, str(exc)) from exc
        if self.get_argument("download", None) is not None:
            await self.download(
                resolved, f"{workflow}.{instance}.{job}.{execution}.{kind}"
            )
            return
        try:
            offset = int(self.get_argument("offset", "0"))
            limit = int(self.get_argument("limit", str(logs.DEFAULT_CHUNK)))
        except ValueError as exc:
            raise Refusal(400, "offset and limit must be whole numbers") from exc
        try:
            chunk = await self.blocking(logs.read_chunk, logs_dir, path, offset, limit)
        except FileNotFoundError as exc:
            raise Refusal(404, f"the {kind} log file {path} does not exist") from exc
        except OSError as exc:
            raise Refusal(503, f"cannot read the {kind} log: {exc.strerror}") from exc
        chunk.update(kind=kind, finished=finished)
        self.send(chunk)

    async def download(self, path: Any, filename: str) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        quoted = urllib.parse.quote(filename + ".log")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quoted}")
        try:
            with open(path, "rb") as file:
                while True:
                    block = await self.blocking(file.read, 256 * 1024)
                    if not block:
                        break
                    self.write(block)
                    await self.flush()
        except FileNotFoundError as exc:
            raise Refusal(
                404, f"the log file {os.path.basename(path)} does not exist"
            ) from exc
        self.finish()


class JobExecutionsApi(ApiHandler):
    async def get(self, workflow: str, job: str) -> None:
        check_word("workflow", workflow)
        check_word("job", job)
        self.send(
            await self.read(
                self.pinball.reader.job_executions, workflow, job, self.page_request()
            )
        )


class SchedulesApi(ApiHandler):
    async def get(self) -> None:
        self.send(await self.read(self.pinball.reader.schedules, self.page_request()))


class ScheduleApi(ApiHandler):
    """One schedule, with its workflow's jobs as the parser defines them now."""

    async def get(self, workflow: str) -> None:
        check_word("workflow", workflow)
        body = await self.read(self.pinball.reader.schedule, workflow)
        try:
            jobs = await self.blocking(definitions, self, workflow)
        except Exception as exc:  # a parser plugin may fail in its own ways
            body["jobs"] = []
            body["parser_error"] = str(exc)
        else:
            body["jobs"] = [_definition_row(job) for job in jobs.values()]
            body["parser_error"] = None
        self.send(body)


class ScheduleGraphApi(GraphApi):
    async def get(self, workflow: str) -> None:  # type: ignore[override]
        check_word("workflow", workflow)
        try:
            jobs = await self.blocking(definitions, self, workflow)
        except NotFound as exc:
            raise Refusal(404, str(exc)) from exc
        except ValueError as exc:
            # The parser contract's refusal: a definition with problems
            # (DefinitionError lists them) or a workflow it cannot build.
            raise Refusal(409, str(exc)) from exc
        except Exception as exc:
            raise Refusal(503, f"the parser cannot give the workflow: {exc}") from exc
        await self.send_svg(jobs, {}, None)


def definitions(handler: BaseHandler, workflow: str) -> dict[str, Job]:
    """The jobs of ``workflow`` as the configured parser defines them now."""
    app = handler.pinball.app
    parser = app.plugins.make_parser(app.config.parser, app.config.parser_params)
    if workflow not in parser.workflow_names():
        raise NotFound(f"the parser does not define workflow {workflow} any more")
    jobs = {}
    for token in parser.instance_tokens(workflow, "definition"):
        parsed = names.parse_job_name(token.name)
        if parsed is not None:
            jobs[parsed.job] = Job.from_json(token.data)
    return jobs


def _definition_row(job: Job) -> dict[str, Any]:
    return {
        "job": job.name,
        "kind": job.kind,
        "command": job.command,
        "condition": job.condition,
        "inputs": [i for i in job.inputs if i != names.WORKFLOW_START],
        "outputs": list(job.outputs),
        "emails": list(job.emails),
        "max_attempts": job.max_attempts,
        "retry_delay_sec": job.retry_delay_sec,
        "warn_timeout_sec": job.warn_timeout_sec,
        "abort_timeout_sec": job.abort_timeout_sec,
        "status": "NEVER_RUN",
    }


class TokenPathsApi(ApiHandler):
    role = Role.ADMIN

    async def get(self) -> None:
        path = self.get_argument("path", "/")
        self.send(
            await self.read(self.pinball.reader.token_paths, path, self.page_request())
        )


class TokenApi(ApiHandler):
    role = Role.ADMIN

    async def get(self) -> None:
        name = self.get_argument("name", "")
        if not name.startswith("/"):
            raise Refusal(400, "name must be a token name starting with '/'")
        self.send(await self.read(self.pinball.reader.token, name))


class ActionApi(ApiHandler):
    """``POST /api/v1/actions/<action>`` with a JSON body naming its target.

    The body is ``{"workflow": W, "instance": I, "jobs": [J...],
    "execution": N}``, each as the action needs; the level is the narrowest
    one named. The answer is the command's outcome: ``ok``, ``exit_code``,
    ``output`` (what the command line would print) and ``error``.
    """

    async def post(self, name: str) -> None:
        action = ACTIONS.get(name)
        if action is None:
            raise Refusal(
                404, f"no action {name!r}; the actions are {', '.join(ACTIONS)}"
            )
        body = self.json_body()
        workflow = _word(body, "workflow")
        instance = _word(body, "instance")
        if instance is not None and workflow is None:
            raise Refusal(400, "instance needs its workflow")
        level = level_of(workflow, instance)
        if level not in action.levels:
            raise Refusal(
                400,
                f"{name} works at the {' or '.join(action.levels)} level, not "
                f"the {level} level",
            )
        needed = action.roles[level]
        if self.user.role < needed:
            raise Refusal(
                403, role_problem(self.user, needed, f"{name} at {level} level")
            )

        jobs = body.get("jobs")
        if action.jobs:
            if (
                not isinstance(jobs, list)
                or not jobs
                or not all(isinstance(j, str) for j in jobs)
            ):
                raise Refusal(400, f"{name} needs 'jobs': a list of job names")
            for job in jobs:
                check_word("job", job)
        elif jobs:
            raise Refusal(400, f"{name} takes no jobs")
        execution = body.get("execution")
        if action.execution and (
            not isinstance(execution, int)
            or isinstance(execution, bool)
            or execution < 0
        ):
            raise Refusal(400, f"{name} needs 'execution': an execution number from 0")
        if not self.pinball.runner.available(name):
            raise Refusal(
                501,
                f"this Pinball has no `pinball workflow {action.command}` command "
                "yet, which this action runs",
            )

        log.info("%s asks for %s at %s level: %s", self.user.name, name, level, body)
        try:
            outcome = await asyncio.wrap_future(
                self.pinball.runner.submit(
                    name,
                    workflow=workflow,
                    instance=instance,
                    jobs=jobs if action.jobs else None,
                    execution=execution if action.execution else None,
                )
            )
        except ActionError as exc:
            raise Refusal(501, str(exc)) from exc
        status = 200
        if outcome.master_unreachable:
            status = 503
        elif outcome.error is not None:
            status = 409
        self.send(outcome.to_json(), status)

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise Refusal(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise Refusal(400, "the body must be a JSON object")
        unknown = sorted(set(body) - {"workflow", "instance", "jobs", "execution"})
        if unknown:
            raise Refusal(400, f"unknown field(s) {', '.join(unknown)}")
        return body


def _word(body: dict[str, Any], kind: str) -> str | None:
    value = body.get(kind)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refusal(400, f"{kind} must be a string")
    return check_word(kind, value)


_W = r"(\w+)"


def routes(ui: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """The API's URL patterns and their handlers."""
    instance = rf"{API}/workflows/{_W}/instances/{_W}"
    execution = rf"{instance}/jobs/{_W}/executions/(\d+)"
    found = [
        (rf"{API}/status", StatusApi),
        (rf"{API}/workflows", WorkflowsApi),
        (rf"{API}/workflows/{_W}", WorkflowApi),
        (rf"{API}/workflows/{_W}/instances", InstancesApi),
        (instance, InstanceApi),
        (rf"{instance}/jobs", JobsApi),
        (rf"{instance}/graph\.svg", GraphApi),
        (rf"{instance}/jobs/{_W}/executions", ExecutionsApi),
        (execution, ExecutionApi),
        (rf"{execution}/logs/{_W}", LogApi),
        (rf"{API}/workflows/{_W}/jobs/{_W}/executions", JobExecutionsApi),
        (rf"{API}/schedules", SchedulesApi),
        (rf"{API}/schedules/{_W}", ScheduleApi),
        (rf"{API}/schedules/{_W}/graph\.svg", ScheduleGraphApi),
        (rf"{API}/tokens", TokenPathsApi),
        (rf"{API}/token", TokenApi),
        (rf"{API}/actions/([^/]+)", ActionApi),
        (rf"{API}/.*", NoSuchApi),
    ]
    return [(pattern, handler, {"ui": ui}) for pattern, handler in found]


class NoSuchApi(ApiHandler):
    def prepare(self) -> None:
        raise Refusal(
            404, f"no API endpoint {self.request.path}; see the plugin README"
        )
