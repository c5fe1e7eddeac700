"""What every handler shares: the UI's state, logins, roles, errors, headers."""

import concurrent.futures
import dataclasses
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import tornado.ioloop
import tornado.web
from pinball_core.app import Application
from pinball_core.protocol import SECRET_HEADER
from pinball_core.workflow import names

from pinball_ui_tornado.access import Access, Role, User
from pinball_ui_tornado.actions import Runner
from pinball_ui_tornado.graphs import GraphCache
from pinball_ui_tornado.reads import NotFound, Reader

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The login cookie, signed with ``ui_cookie_secret``.
USER_COOKIE: Final = "pinball_user"

#: How long a login lasts, in days.
LOGIN_DAYS: Final = 7

#: Sent with every answer: scripts, styles and images from this server only,
#: no plugins, no framing, forms that post only here.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

#: How long a master health check is believed, in seconds.
MASTER_CHECK_TTL_SEC: Final = 5.0

#: Who is at the keyboard when no users are configured.
LOCAL_USER: Final = User("local", Role.ADMIN)


class MasterProbe:
    """Whether the master answers ``GET /v1/health``, checked at most every
    :data:`MASTER_CHECK_TTL_SEC` however many pages poll."""

    def __init__(self, host: str, port: int, secret: str | None) -> None:
        self.address = f"{host}:{port}"
        self._host = host
        self._port = port
        self._secret = secret
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._answer: dict[str, Any] = {}

    def check(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._checked_at < MASTER_CHECK_TTL_SEC:
                return self._answer
            answer: dict[str, Any] = {"address": self.address, "reachable": True}
            try:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=2
                )
                headers = {SECRET_HEADER: self._secret} if self._secret else {}
                connection.request("GET", "/v1/health", headers=headers)
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status >= 500:
                    answer.update(reachable=False, error=f"HTTP {response.status}")
            except OSError as exc:
                answer.update(reachable=False, error=exc.strerror or str(exc))
            self._answer = answer
            self._checked_at = time.monotonic()
            return answer


@dataclasses.dataclass
class Ui:
    """Everything the handlers of one UI share."""

    app: Application
    reader: Reader
    access: Access
    runner: Runner
    graphs: GraphCache
    probe: MasterProbe
    pool: concurrent.futures.ThreadPoolExecutor
    #: Where the UI listens, to say on the pages.
    listen: str = ""
    debug: bool = False


class BaseHandler(tornado.web.RequestHandler):
    """Logins, roles, security headers and error pages for every handler."""

    #: Pages and endpoints reachable without a login.
    public: bool = False
    #: The least role to read this; actions check their own.
    role: Role = Role.VIEWER

    def initialize(self, ui: Ui) -> None:
        self.pinball = ui

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-store")

    def get_current_user(self) -> User | None:
        access = self.pinball.access
        if access.open:
            return LOCAL_USER
        if access.trusted_header:
            named = self.request.headers.get(access.trusted_header, "").strip()
            if named:
                return access.header_user(named)
        raw = self.get_signed_cookie(USER_COOKIE, max_age_days=LOGIN_DAYS)
        if raw is None:
            return None
        user = access.users.get(raw.decode("utf-8", "replace"))
        # A user removed from the config (or left without a password) is out.
        if user is None or user.password_hash is None:
            return None
        return user

    @property
    def user(self) -> User:
        user = self.current_user
        assert isinstance(user, User), "prepare() lets no anonymous request through"
        return user

    def prepare(self) -> None:
        if self.public:
            return
        if self.current_user is None:
            self.refuse_anonymous()
            return
        if self.user.role < self.role:
            raise Refusal(403, role_problem(self.user, self.role, "this page"))

    def refuse_anonymous(self) -> None:
        """Send to the login page; the API answers 401 instead."""
        raise tornado.web.HTTPError(401)

    def check_xsrf_cookie(self) -> None:
        """Tornado's XSRF check, refused with what is missing and the fix.

        Tornado's own 403 says only "Forbidden" to the person or script that
        sent the POST; :meth:`xsrf_refusal` words it for each of them.
        """
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError as exc:
            raise Refusal(403, self.xsrf_refusal(self._xsrf_problem())) from exc

    def xsrf_refusal(self, problem: str) -> str:
        """The message of a POST refused for its XSRF token; ``problem`` says
        which part was missing or wrong."""
        return f"{problem}; reload the page and try again"

    def _xsrf_problem(self) -> str:
        sent = (
            self.get_argument("_xsrf", None)
            or self.request.headers.get("X-Xsrftoken")
            or self.request.headers.get("X-Csrftoken")
        )
        if self.get_cookie("_xsrf") is None:
            if sent:
                return (
                    "this POST sent an XSRF token but not the _xsrf cookie to "
                    "check it against"
                )
            return (
                "this POST carries no XSRF token (the _xsrf cookie, and its value "
                "in the X-XSRFToken header or the _xsrf form field)"
            )
        if not sent:
            return (
                "this POST sent the _xsrf cookie but not its value in the "
                "X-XSRFToken header or the _xsrf form field"
            )
        return "this POST's XSRF token does not match its _xsrf cookie"

    async def blocking(self, function: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run ``function`` in the UI's thread pool: it reads the database."""
        loop = tornado.ioloop.IOLoop.current()
        return await loop.run_in_executor(
            self.pinball.pool, lambda: function(*args, **kw)
        )

    def error_message(self, status_code: int, **kwargs: Any) -> str:
        """One line for the user; never a traceback unless in debug mode."""
        exc_info = kwargs.get("exc_info")
        if exc_info is not None:
            error = exc_info[1]
            if isinstance(error, Refusal):
                return error.message
            if isinstance(error, tornado.web.HTTPError):
                return str(
                    error.reason or http.client.responses.get(status_code, "error")
                )
            if isinstance(error, NotFound):
                return str(error)
            if self.pinball.debug:
                return f"{type(error).__name__}: {error}"
        return self._reason or http.client.responses.get(status_code, "error")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, NotFound):
            log.debug("%s: %s", self.request.path, value)
            return
        super().log_exception(typ, value, tb)


class Refusal(tornado.web.HTTPError):
    """A request refused with a message meant for the user."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code, log_message=message.replace("%", "%%"))
        self.message = message


def role_problem(user: User, needed: Role, what: str) -> str:
    return f"{what} needs the {needed.label} role; {user.name} is a {user.role.label}"


def dumps(body: Any) -> str:
    """JSON text safe to send: ``</`` is escaped so it cannot end a script."""
    return json.dumps(body, separators=(",", ":")).replace("</", "<\\/")


def check_word(kind: str, value: str) -> str:
    """A workflow, instance or job name from a URL, or 400 naming it."""
    try:
        return names.check_word(kind, value)
    except ValueError as exc:
        raise Refusal(400, str(exc)) from exc
