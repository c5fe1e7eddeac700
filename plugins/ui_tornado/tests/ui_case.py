"""A Tornado test case serving the UI of the ``env`` fixture, with helpers."""

import json
import urllib.parse
from typing import Any

import pytest
import tornado.httpclient
import tornado.testing
import tornado.web
from ui_fixtures import Env

from pinball_ui_tornado.base import Ui
from pinball_ui_tornado.server import make_app


class UiCase(tornado.testing.AsyncHTTPTestCase):
    """Handler tests through Tornado's test client."""

    env: Env
    pinball: Ui

    @pytest.fixture(autouse=True)
    def _environment(self, env: Env, ui: Ui) -> None:
        self.env = env
        self.pinball = ui

    def get_app(self) -> tornado.web.Application:
        return make_app(self.pinball)

    # -- Requests ------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
        return self.fetch(path, follow_redirects=False, **kwargs)

    def get_json(self, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs)
        assert response.code == status, (path, response.code, response.body[:500])
        assert response.headers["Content-Type"].startswith("application/json")
        return json.loads(response.body)

    def xsrf(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        """Headers carrying an XSRF cookie and the matching token."""
        response = self.get("/login", headers=headers)
        cookie = response.headers.get_list("Set-Cookie")
        token = next(
            c.split(";")[0].split("=", 1)[1] for c in cookie if c.startswith("_xsrf=")
        )
        found = dict(headers or {})
        jar = found.get("Cookie", "")
        found["Cookie"] = f"{jar}; _xsrf={token}" if jar else f"_xsrf={token}"
        found["X-XSRFToken"] = token
        return found

    def act(
        self,
        action: str,
        body: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
        xsrf: bool = True,
    ) -> Any:
        sent = self.xsrf(headers) if xsrf else dict(headers or {})
        sent["Content-Type"] = "application/json"
        response = self.fetch(
            f"/api/v1/actions/{action}",
            method="POST",
            body=json.dumps(body),
            headers=sent,
            follow_redirects=False,
        )
        assert response.code == status, (action, response.code, response.body[:800])
        return json.loads(response.body)

    def login(self, user: str, password: str) -> dict[str, str]:
        """Log in through the form; the headers that carry the login cookie."""
        headers = self.xsrf()
        response = self.fetch(
            "/login",
            method="POST",
            body=urllib.parse.urlencode({"user": user, "password": password}),
            headers=headers,
            follow_redirects=False,
        )
        assert response.code == 302, response.body[:500]
        cookies = response.headers.get_list("Set-Cookie")
        login = next(c.split(";")[0] for c in cookies if c.startswith("pinball_user="))
        return {"Cookie": login}
