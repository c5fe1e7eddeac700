"""Logins, roles and the trusted header; the ``ui`` command's access rules."""

import io
import json
import sys
from typing import Any

import pytest
from pinball_core.app import Application
from pinball_core.cli import main
from pinball_core.errors import ConfigError
from pinball_core.workflow.signals import read_signals
from ui_case import UiCase

from pinball_ui_tornado.access import access_from_config, hash_password

USERS = {
    "ann": {"role": "admin", "password_hash": hash_password("ann-pw")},
    "otto": {"role": "operator", "password_hash": hash_password("otto-pw")},
    "vera": {"role": "viewer", "password_hash": hash_password("vera-pw")},
}


class TestLogins(UiCase):
    @pytest.fixture
    def env_config(self) -> dict[str, Any]:
        return {"ui_users": USERS, "ui_cookie_secret": "x" * 32}

    def test_everything_needs_a_login(self) -> None:
        page = self.get("/workflows")
        assert page.code == 302 and page.headers["Location"].startswith("/login?next=")
        error = self.get_json("/api/v1/workflows", status=401)
        assert "log in" in error["error"]["message"]
        assert self.get("/login").code == 200
        assert self.act("drain", {}, status=401)
        assert "DRAIN" not in read_signals(self.env.client)

    def test_wrong_password_and_unknown_user(self) -> None:
        for user, password in (("ann", "nope"), ("nobody", "ann-pw")):
            headers = self.xsrf()
            response = self.fetch(
                "/login",
                method="POST",
                body=f"user={user}&password={password}",
                headers=headers,
                follow_redirects=False,
            )
            assert response.code == 401
            assert b"Wrong user name or password" in response.body
            assert "pinball_user=" not in "".join(
                response.headers.get_list("Set-Cookie")
            )

    def test_login_must_post_with_xsrf(self) -> None:
        response = self.fetch("/login", method="POST", body="user=ann&password=ann-pw")
        assert response.code == 403

    def test_roles(self) -> None:
        viewer = self.login("vera", "vera-pw")
        assert self.get_json("/api/v1/workflows", headers=viewer)["items"] == []
        refused = self.act("drain", {"workflow": "etl"}, status=403, headers=viewer)
        assert (
            "needs the operator role; vera is a viewer" in refused["error"]["message"]
        )
        assert self.get_json("/api/v1/tokens", status=403, headers=viewer)
        assert self.get("/tokens", headers=viewer).code == 403

        operator = self.login("otto", "otto-pw")
        assert self.act("drain", {"workflow": "etl"}, headers=operator)["ok"]
        for action in ("exit", "drain"):
            refused = self.act(action, {}, status=403, headers=operator)
            assert "needs the admin role" in refused["error"]["message"]
        assert self.act("exit", {"workflow": "etl"}, status=403, headers=operator)

        admin = self.login("ann", "ann-pw")
        assert self.act("exit", {}, headers=admin)["ok"]
        assert self.get_json("/api/v1/tokens?path=/", headers=admin)["total"] >= 1
        status = self.get_json("/api/v1/status", headers=admin)
        assert status["user"] == {"name": "ann", "role": "admin"}

    def test_login_redirects_only_to_this_server(self) -> None:
        headers = self.xsrf()
        for target, expected in (
            ("/schedules", "/schedules"),
            ("https://evil.test/", "/"),
            ("//evil.test", "/"),
        ):
            response = self.fetch(
                f"/login?next={target}",
                method="POST",
                body="user=ann&password=ann-pw",
                headers=headers,
                follow_redirects=False,
            )
            assert response.headers["Location"] == expected

    def test_forged_cookie_is_refused(self) -> None:
        headers = {"Cookie": "pinball_user=ann"}
        assert self.get_json("/api/v1/workflows", status=401, headers=headers)


class TestTrustedHeader(UiCase):
    @pytest.fixture
    def env_config(self) -> dict[str, Any]:
        return {
            "ui_users": {"ann": {"role": "admin"}},
            "ui_trusted_header": "X-Forwarded-User",
        }

    def test_the_proxy_names_the_user(self) -> None:
        as_ann = {"X-Forwarded-User": "ann"}
        assert (
            self.get_json("/api/v1/status", headers=as_ann)["user"]["role"] == "admin"
        )
        as_stranger = {"X-Forwarded-User": "bob"}
        assert self.get_json("/api/v1/status", headers=as_stranger)["user"] == {
            "name": "bob",
            "role": "viewer",
        }
        assert self.act("drain", {"workflow": "etl"}, status=403, headers=as_stranger)
        assert self.get_json("/api/v1/status", status=401)


def test_config_errors_name_the_entry(tmp_path: Any) -> None:
    cases = [
        (
            {"ui_users": {"a": {"role": "boss", "password_hash": hash_password("x")}}},
            "ui_users.a.role",
        ),
        ({"ui_users": {"a": {"role": "admin"}}}, "ui_users.a: needs a password_hash"),
        (
            {"ui_users": {"a": {"role": "admin", "password_hash": "plain"}}},
            "ui_users.a.password_hash",
        ),
        (
            # Cut short when pasted: no password could ever match it.
            {"ui_users": {"a": {"role": "admin", "password_hash": "$argon2id$v=19$"}}},
            "ui_users.a.password_hash",
        ),
        ({"ui_users": {"a": ["admin"]}}, "ui_users.a: must be a mapping"),
        ({"ui_trusted_header": "X Bad"}, "ui_trusted_header"),
        ({"ui_cookie_secret": "short"}, "ui_cookie_secret"),
    ]
    for number, (config, expected) in enumerate(cases):
        path = tmp_path / f"c{number}.yaml"
        path.write_text(json.dumps(config))
        with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
            access_from_config(Application(path).config)


def test_config_check_reports_a_bad_user_with_the_file(
    tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    users = {"bob": {"role": "god", "password_hash": hash_password("x")}}
    (tmp_path / "pinball.yaml").write_text(json.dumps({"ui_users": users}))

    assert main(["-c", "pinball.yaml", "config", "check"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "pinball: error: pinball.yaml: ui_users.bob.role: must be one of viewer, "
        "operator, admin, got 'god'"
    ]


def test_no_users_means_localhost_only(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "pinball.yaml"
    path.write_text(json.dumps({"home": str(tmp_path)}))
    code = main(["-c", str(path), "ui", "--bind", "0.0.0.0", "-p", "0"])
    assert code == 2
    assert "serves localhost only" in capsys.readouterr().err


def test_hash_password_command(monkeypatch: Any, capsys: Any, tmp_path: Any) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    path = tmp_path / "pinball.yaml"
    path.write_text("{}")
    # The original's `-m ui` form reaches the same command.
    assert main(["-c", str(path), "-m", "ui", "--hash-password"]) == 0
    first = capsys.readouterr().out.strip()
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    assert main(["-c", str(path), "ui", "--hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed != first  # salted
    assert printed.startswith("$argon2id$")
    users = {"x": {"role": "admin", "password_hash": printed}}
    path.write_text(json.dumps({"ui_users": users}))
    access = access_from_config(Application(path).config)
    assert access.check_password("x", "s3cret") is not None
    assert access.check_password("x", "wrong") is None
