"""The HTML pages: a shell per page that its script fills from the API.

A page handler checks that what the URL names exists (so a wrong link is a
404 page, not an empty table) and renders its template; everything in the
tables, banners and graph comes from ``/api/v1/`` and is refreshed every few
seconds while the tab is visible. Templates are autoescaped.
"""

import http.client
import logging
import urllib.parse
from typing import Any

import tornado.web

from pinball_ui_tornado import api
from pinball_ui_tornado.access import Role
from pinball_ui_tornado.base import (
    LOGIN_DAYS,
    USER_COOKIE,
    BaseHandler,
    Refusal,
    check_word,
)
from pinball_ui_tornado.paging import PageRequest
from pinball_ui_tornado.reads import NotFound

log = logging.getLogger(__name__)


class PageHandler(BaseHandler):
    """Renders ``template`` for GET; subclasses check the URL's names."""

    template = ""
    title = ""

    def refuse_anonymous(self) -> None:
        target = "/login?" + urllib.parse.urlencode({"next": self.request.uri or "/"})
        self.redirect(target)

    def xsrf_refusal(self, problem: str) -> str:
        return (
            f"The form was refused: {problem}. That happens when the browser's "
            "cookies were cleared after the page was loaded. Reload the page and "
            "try again; if that does not help, allow cookies for this site."
        )

    def render_page(self, **values: Any) -> None:
        values.setdefault("workflow", None)
        values.setdefault("instance", None)
        values.setdefault("job", None)
        values.setdefault("execution", None)
        values.setdefault("kind", None)
        values.setdefault("title", self.title)
        self.render(self.template, page=self.template.removesuffix(".html"), **values)

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        user = self.current_user
        namespace.update(
            user=user,
            access=self.pinball.access,
            listen=self.pinball.listen,
            is_admin=user is not None and user.role >= Role.ADMIN,
            is_operator=user is not None and user.role >= Role.OPERATOR,
        )
        return namespace

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self.error_message(status_code, **kwargs)
        reason = http.client.responses.get(status_code, "Error")
        self.render(
            "error.html",
            page="error",
            title=f"{status_code} {reason}",
            status_code=status_code,
            reason=reason,
            message=message,
            workflow=None,
            instance=None,
            job=None,
            execution=None,
            kind=None,
        )

    async def exists(self, function: Any, *args: Any) -> Any:
        try:
            return await self.blocking(function, *args)
        except NotFound as exc:
            raise Refusal(404, str(exc)) from exc


class RootPage(PageHandler):
    def get(self) -> None:
        self.redirect("/workflows")


class WorkflowsPage(PageHandler):
    template = "workflows.html"
    title = "Workflows"

    def get(self) -> None:
        self.render_page()


class InstancesPage(PageHandler):
    template = "instances.html"

    async def get(self, workflow: str) -> None:
        check_word("workflow", workflow)
        await self.exists(self.pinball.reader.workflow, workflow)
        self.render_page(title=workflow, workflow=workflow)


class LatestInstancePage(PageHandler):
    """``/workflows/W/instances/latest/...``: a redirect to the same page of
    the workflow's latest instance, query kept, so the address shows which
    instance it is and stays the same when a newer one starts."""

    async def get(self, workflow: str, rest: str | None) -> None:
        check_word("workflow", workflow)
        latest = await self.exists(self.pinball.reader.latest_instance, workflow)
        target = f"/workflows/{workflow}/instances/{latest}{rest or ''}"
        if self.request.query:
            target += f"?{self.request.query}"
        self.redirect(target)


class InstancePage(PageHandler):
    template = "instance.html"

    async def get(self, workflow: str, instance: str) -> None:
        check_word("workflow", workflow)
        check_word("instance", instance)
        await self.exists(self.pinball.reader.instance, workflow, instance)
        self.render_page(
            title=f"{workflow} / {instance}", workflow=workflow, instance=instance
        )


class ExecutionsPage(PageHandler):
    template = "executions.html"

    async def get(self, workflow: str, instance: str, job: str) -> None:
        for kind, value in (
            ("workflow", workflow),
            ("instance", instance),
            ("job", job),
        ):
            check_word(kind, value)
        await self.exists(self.pinball.reader.executions, workflow, instance, job)
        self.render_page(
            title=f"{job} in {workflow} / {instance}",
            workflow=workflow,
            instance=instance,
            job=job,
        )


class ExecutionPage(PageHandler):
    template = "execution.html"

    async def get(self, workflow: str, instance: str, job: str, execution: str) -> None:
        for kind, value in (
            ("workflow", workflow),
            ("instance", instance),
            ("job", job),
        ):
            check_word(kind, value)
        await self.exists(
            self.pinball.reader.execution, workflow, instance, job, int(execution)
        )
        self.render_page(
            title=f"{job} execution {execution}",
            workflow=workflow,
            instance=instance,
            job=job,
            execution=int(execution),
        )


class LogPage(PageHandler):
    template = "log.html"

    async def get(
        self, workflow: str, instance: str, job: str, execution: str, kind: str
    ) -> None:
        for name, value in (
            ("workflow", workflow),
            ("instance", instance),
            ("job", job),
        ):
            check_word(name, value)
        await self.exists(
            self.pinball.reader.log_path, workflow, instance, job, int(execution), kind
        )
        self.render_page(
            title=f"{job} execution {execution} {kind}",
            workflow=workflow,
            instance=instance,
            job=job,
            execution=int(execution),
            kind=kind,
        )


class JobExecutionsPage(PageHandler):
    template = "job_executions.html"

    async def get(self, workflow: str, job: str) -> None:
        check_word("workflow", workflow)
        check_word("job", job)
        await self.exists(self.pinball.reader.check_job, workflow, job)
        self.render_page(title=f"{job} in every instance", workflow=workflow, job=job)


class SchedulesPage(PageHandler):
    template = "schedules.html"
    title = "Schedules"

    def get(self) -> None:
        self.render_page()


class SchedulePage(PageHandler):
    template = "schedule.html"

    async def get(self, workflow: str) -> None:
        check_word("workflow", workflow)
        await self.exists(self.pinball.reader.schedule, workflow)
        self.render_page(title=f"Schedule of {workflow}", workflow=workflow)


class TokensPage(PageHandler):
    template = "tokens.html"
    title = "Tokens"
    role = Role.ADMIN

    async def get(self) -> None:
        path = self.get_argument("path", "/")
        if not path.startswith("/"):
            raise Refusal(400, "a token path starts with '/'")
        await self.exists(self.pinball.reader.token_paths, path, PageRequest())
        self.render_page(path=path)


class TokenPage(PageHandler):
    template = "token.html"
    title = "Token"
    role = Role.ADMIN

    async def get(self) -> None:
        name = self.get_argument("name", "")
        if not name.startswith("/"):
            raise Refusal(400, "a token name starts with '/'")
        try:
            await self.blocking(self.pinball.reader.token, name)
        except NotFound as exc:
            # Perhaps not a token but a folder of them: list what is under it.
            folder = name.rstrip("/") + "/"
            try:
                await self.blocking(
                    self.pinball.reader.token_paths, folder, PageRequest()
                )
            except NotFound:
                raise Refusal(404, f"{exc}, and none is under {folder}") from exc
            self.redirect("/tokens?" + urllib.parse.urlencode({"path": folder}))
            return
        self.render_page(name=name)


class LoginPage(PageHandler):
    """The login form, and its POST that sets the signed login cookie."""

    template = "login.html"
    title = "Log in"
    public = True

    def get(self) -> None:
        # Sets the _xsrf cookie even when there is no form to show: scripts
        # get their token for the API's POSTs here.
        self.xsrf_token  # noqa: B018
        if self.pinball.access.open or self.current_user is not None:
            self.redirect(self._next())
            return
        self.render_page(problem=None, name="", next_url=self._next())

    def post(self) -> None:
        name = self.get_body_argument("user", "")
        password = self.get_body_argument("password", "")
        user = self.pinball.access.check_password(name, password)
        if user is None:
            log.warning("failed UI login for %r from %s", name, self.request.remote_ip)
            self.set_status(401)
            self.render_page(
                problem="Wrong user name or password.", name=name, next_url=self._next()
            )
            return
        self.set_signed_cookie(
            USER_COOKIE,
            user.name,
            expires_days=LOGIN_DAYS,
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
        )
        log.info("%s logged in to the UI from %s", user.name, self.request.remote_ip)
        self.redirect(self._next())

    def _next(self) -> str:
        target = self.get_argument("next", "/")
        # Only a path on this server: never send a user elsewhere.
        parsed = urllib.parse.urlsplit(target)
        if (
            parsed.scheme
            or parsed.netloc
            or not target.startswith("/")
            or target.startswith("//")
        ):
            return "/"
        return target


class LogoutPage(PageHandler):
    public = True

    def post(self) -> None:
        self.clear_cookie(USER_COOKIE)
        self.redirect("/login" if not self.pinball.access.open else "/")


class LegacyRedirect(PageHandler):
    """The original Pinball's page URLs, sent to their pages here."""

    def get(self, page: str) -> None:
        workflow = self.get_argument("workflow", "")
        instance = self.get_argument("instance", "")
        job = self.get_argument("job", "")
        execution = self.get_argument("execution", "")
        targets = {
            "workflows": "/workflows",
            "instances": f"/workflows/{workflow}",
            "jobs": f"/workflows/{workflow}/instances/{instance}",
            "executions": f"/workflows/{workflow}/instances/{instance}/jobs/{job}",
            "job_executions": f"/workflows/{workflow}/jobs/{job}",
            "execution": f"/workflows/{workflow}/instances/{instance}/jobs/{job}"
            f"/executions/{execution}",
            "schedules": "/schedules",
            "schedule": f"/schedules/{workflow}",
        }
        target = targets.get(page)
        if target is None:
            raise tornado.web.HTTPError(404)
        self.redirect(urllib.parse.quote(target))


_W = r"(\w+)"


def routes(ui: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """The pages' URL patterns and their handlers, the API's included."""
    instance = rf"/workflows/{_W}/instances/{_W}"
    execution = rf"{instance}/jobs/{_W}/executions/(\d+)"
    found = [
        (r"/", RootPage),
        (r"/workflows", WorkflowsPage),
        (rf"/workflows/{_W}", InstancesPage),
        # Before the others, which would take "latest" for an instance id.
        (rf"/workflows/{_W}/instances/latest(/.*)?", LatestInstancePage),
        (instance, InstancePage),
        (rf"{instance}/jobs/{_W}", ExecutionsPage),
        (execution, ExecutionPage),
        (rf"{execution}/logs/{_W}", LogPage),
        (rf"/workflows/{_W}/jobs/{_W}", JobExecutionsPage),
        (r"/schedules", SchedulesPage),
        (rf"/schedules/{_W}", SchedulePage),
        (r"/tokens", TokensPage),
        (r"/token", TokenPage),
        (r"/login", LoginPage),
        (r"/logout", LogoutPage),
        (
            r"/(workflows|instances|jobs|executions|job_executions|execution|schedules|schedule)/",
            LegacyRedirect,
        ),
    ]
    return api.routes(ui) + [(p, h, {"ui": ui}) for p, h in found]
