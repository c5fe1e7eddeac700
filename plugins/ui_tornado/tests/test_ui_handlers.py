"""Every page, API endpoint and action through Tornado's test client.

Workflows run for real (worker threads, shell jobs, the master over HTTP);
the UI reads the store they write and sends its actions to the master.
"""

import json
import time
from unittest import mock

from pinball_core.errors import DefinitionError
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import ExecutionRecord, Job
from pinball_core.workflow.signals import read_signals, set_signal
from ui_case import UiCase
from ui_fixtures import StaticParser, wait_for

from pinball_ui_tornado.base import CONTENT_SECURITY_POLICY
from pinball_ui_tornado.history import History


class TestPages(UiCase):
    def run_etl(self) -> str:
        self.env.start_workers(1)
        instance = self.env.start("etl")
        wait_for(
            "etl to succeed",
            lambda: self.env.instance_status("etl", instance) == "SUCCESS",
        )
        return instance

    def test_every_page_renders_with_security_headers(self) -> None:
        instance = self.run_etl()
        self.env.client.modify(
            [
                Token(
                    names.schedule_name("etl"),
                    data=json.dumps({"workflow": "etl", "recurrence_sec": 86400}),
                )
            ]
        )
        base = f"/workflows/etl/instances/{instance}"
        pages = [
            "/workflows",
            "/workflows/etl",
            base,
            f"{base}/jobs/transform",
            f"{base}/jobs/transform/executions/0",
            f"{base}/jobs/transform/executions/0/logs/stdout",
            "/workflows/etl/jobs/transform",
            "/schedules",
            "/schedules/etl",
            "/tokens?path=/workflow/",
            f"/token?name={names.job_name('etl', instance, names.WAITING, 'load')}",
        ]
        for page in pages:
            response = self.get(page)
            assert response.code == 200, (page, response.code)
            assert (
                response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            )
            assert response.headers["X-Frame-Options"] == "DENY"
            assert b'<script src="/static/pinball.js' in response.body
            # No inline script or style: the CSP would block them.
            assert b"<script>" not in response.body and b"style=" not in response.body

    def test_root_and_latest_redirect(self) -> None:
        instance = self.run_etl()
        assert self.get("/").headers["Location"] == "/workflows"
        latest = self.get("/workflows/etl/instances/latest")
        assert latest.code == 302
        assert latest.headers["Location"] == f"/workflows/etl/instances/{instance}"

    def test_latest_redirects_every_page_under_an_instance(self) -> None:
        instance = self.run_etl()
        base = f"/workflows/etl/instances/{instance}"
        for rest in (
            "/jobs/transform",
            "/jobs/transform/executions/0",
            "/jobs/transform/executions/0/logs/stdout?offset=-5",
        ):
            response = self.get(f"/workflows/etl/instances/latest{rest}")
            assert response.code == 302, rest
            assert response.headers["Location"] == base + rest

        missing = self.get("/workflows/nope/instances/latest/jobs/transform")
        assert missing.code == 404

    def test_original_urls_redirect(self) -> None:
        response = self.get("/jobs/?workflow=etl&instance=7")
        assert response.headers["Location"] == "/workflows/etl/instances/7"

    def test_missing_things_are_404_pages(self) -> None:
        for page in ("/workflows/nope", "/workflows/etl/instances/1", "/nothing/here"):
            response = self.get(page)
            assert response.code == 404, page
            assert b"Traceback" not in response.body
        page = self.get("/workflows/nope").body.decode()
        assert "<h1>404 Not Found</h1>" in page
        assert (
            "workflow nope is not known: it has no instance, active or archived, "
            "and no schedule"
        ) in page
        assert '<a href="/workflows">See the list of workflows</a>' in page

    def test_every_page_of_a_missing_thing_is_a_404_saying_what(self) -> None:
        instance = self.env.start("etl")
        base = f"/workflows/etl/instances/{instance}"
        expected = {
            "/workflows/nope": "workflow nope is not known",
            "/workflows/etx": "workflow etx is not known: it has no instance, active "
            "or archived, and no schedule; did you mean &#x27;etl&#x27;?",
            "/workflows/etl/instances/nope": "workflow etl has no instance nope, "
            "active or archived",
            "/workflows/nope/instances/1": "workflow nope is not known",
            f"{base}/jobs/nope": f"instance etl/{instance} has no job nope",
            f"{base}/jobs/transform/executions/0": "job transform of "
            f"etl/{instance} has no execution 0 (it has none)",
            "/workflows/etl/jobs/nope": "workflow etl has no job nope in any "
            "instance, active or archived",
            "/workflows/nope/jobs/transform": "workflow nope is not known",
            "/schedules/etl": "workflow etl has no schedule",
            "/token?name=/nope": "no token, active or archived, is named /nope, "
            "and none is under /nope/",
            "/tokens?path=/nope/": "no token name, active or archived, starts "
            "with /nope/",
        }
        for page, message in expected.items():
            response = self.get(page)
            assert response.code == 404, (page, response.code)
            assert f"<p>{message}" in response.body.decode(), page

        # What a page says is there is there: the job across its instances.
        assert self.get("/workflows/etl/jobs/transform").code == 200
        # The API agrees with the pages.
        for endpoint in (
            "/api/v1/workflows/nope",
            "/api/v1/workflows/nope/instances/1",
            "/api/v1/workflows/etl/jobs/nope/executions",
            "/api/v1/workflows/nope/jobs/transform/executions",
            "/api/v1/tokens?path=/nope/",
        ):
            self.get_json(endpoint, status=404)
        assert (
            self.get_json("/api/v1/workflows/etl/jobs/transform/executions")["items"]
            == []
        )

    def test_bad_names_are_400(self) -> None:
        response = self.get(
            "/api/v1/workflows/etl/instances/1/jobs/x/executions/0/logs/std"
        )
        assert response.code == 404
        assert self.get("/workflows/%3Cb%3E").code in (400, 404)

    def test_html_in_token_names_and_data_is_text(self) -> None:
        name = "/odd/<script>alert(1)</script>"
        self.env.client.modify([Token(name, data="<img src=x onerror=alert(2)>")])
        response = self.get(f"/token?name={name}")
        assert response.code == 200
        assert b"<script>alert(1)" not in response.body
        assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.body
        token = self.get_json(f"/api/v1/token?name={name}")
        assert token["active"][0]["data"] == "<img src=x onerror=alert(2)>"
        raw = self.get(f"/api/v1/token?name={name}").body
        assert b"</script>" not in raw  # JSON never closes a script element


class TestApi(UiCase):
    def test_latest_is_the_latest_instance_in_every_path(self) -> None:
        self.env.start_workers(1)
        self.env.start("fails")
        newest = self.env.start("fails")
        wait_for(
            "fails", lambda: self.env.instance_status("fails", newest) == "FAILURE"
        )
        base = f"/api/v1/workflows/fails/instances/{newest}"
        latest = "/api/v1/workflows/fails/instances/latest"
        assert self.get_json(latest)["instance"] == newest
        for rest in (
            "/jobs",
            "/jobs/broken/executions",
            "/jobs/broken/executions/0",
            "/jobs/broken/executions/0/logs/stderr",
        ):
            assert self.get_json(latest + rest) == self.get_json(base + rest), rest
        download = self.get(f"{latest}/jobs/broken/executions/0/logs/stderr?download=1")
        assert download.body == b"about to fail\n"

        refused = self.get_json(
            "/api/v1/workflows/nope/instances/latest/jobs/broken/executions", 404
        )
        assert "workflow nope" in refused["error"]["message"]

    def test_workflows_instances_jobs_and_executions(self) -> None:
        self.env.start_workers(2)
        ok = self.env.start("etl")
        bad = self.env.start("fails")
        wait_for("etl", lambda: self.env.instance_status("etl", ok) == "SUCCESS")
        wait_for("fails", lambda: self.env.instance_status("fails", bad) == "FAILURE")

        listing = self.get_json("/api/v1/workflows")
        rows = {row["workflow"]: row for row in listing["items"]}
        assert rows["etl"]["status"] == "SUCCESS"
        assert rows["fails"]["status"] == "FAILURE"
        assert rows["slow"]["status"] if "slow" in rows else True
        assert rows["etl"]["last_instance"] == ok

        instances = self.get_json("/api/v1/workflows/fails/instances")
        assert instances["items"][0]["failed_jobs"] == ["broken"]

        jobs = self.get_json(f"/api/v1/workflows/fails/instances/{bad}/jobs")
        by_name = {j["job"]: j for j in jobs["items"]}
        assert by_name["broken"]["status"] == "FAILURE"
        assert by_name["broken"]["last_exit_code"] == 3
        assert by_name["ok"]["command"] == "echo fine"
        assert by_name["broken"]["progress"][-1]["status"] == "FAILURE"

        execution = self.get_json(
            f"/api/v1/workflows/etl/instances/{ok}/jobs/transform/executions/0"
        )
        assert execution["exit_code"] == 0
        assert execution["info"].startswith("echo got 10 rows")
        assert execution["links"] == [
            {
                "text": "report",
                "url": "https://example.com/r/1",
                "raw": "report|https://example.com/r/1",
            }
        ]
        kinds = {log["kind"]: log for log in execution["logs"]}
        assert kinds["stdout"]["readable"] and kinds["stdout"]["size"] > 0

        log = self.get_json(
            f"/api/v1/workflows/fails/instances/{bad}/jobs/broken/executions/0/logs/stderr"
        )
        assert log["text"] == "about to fail\n" and log["eof"] and log["finished"]
        tail = self.get_json(
            f"/api/v1/workflows/fails/instances/{bad}/jobs/broken/executions/0/logs/stderr?offset=-5"
        )
        assert tail["text"] == "fail\n"
        download = self.get(
            f"/api/v1/workflows/fails/instances/{bad}/jobs/broken/executions/0/logs/stderr?download=1"
        )
        assert download.body == b"about to fail\n"
        assert "attachment" in download.headers["Content-Disposition"]

        across = self.get_json("/api/v1/workflows/etl/jobs/transform/executions")
        assert [r["instance"] for r in across["items"]] == [ok]

        svg = self.get(f"/api/v1/workflows/etl/instances/{ok}/graph.svg")
        assert svg.code == 200 and svg.headers["Content-Type"].startswith(
            "image/svg+xml"
        )
        assert b'id="transform"' in svg.body

    def test_paging_sorting_and_filtering(self) -> None:
        for n in range(7):
            self.env.start("etl", instance=str(100 + n))
        first = self.get_json(
            "/api/v1/workflows/etl/instances?per_page=3&sort=instance&order=asc"
        )
        assert [r["instance"] for r in first["items"]] == ["100", "101", "102"]
        assert (first["total"], first["pages"]) == (7, 3)
        last = self.get_json(
            "/api/v1/workflows/etl/instances?per_page=3&page=3&sort=instance"
        )
        assert [r["instance"] for r in last["items"]] == ["106"]
        found = self.get_json("/api/v1/workflows/etl/instances?q=104")
        assert [r["instance"] for r in found["items"]] == ["104"]
        bad = self.get_json("/api/v1/workflows/etl/instances?sort=colour", status=400)
        assert "cannot sort by 'colour'" in bad["error"]["message"]
        assert self.get_json("/api/v1/workflows?per_page=0", status=400)

    def test_archived_instances_are_listed_and_readable(self) -> None:
        self.env.start_workers(1)
        instance = self.env.start("etl")
        wait_for("etl", lambda: self.env.instance_status("etl", instance) == "SUCCESS")
        # Seen active first, then archived: the UI must follow it there.
        assert (
            self.get_json("/api/v1/workflows/etl/instances")["items"][0]["archived"]
            is False
        )
        tokens = self.env.client.query(names.instance_prefix("etl", instance))
        self.env.client.archive(tokens)
        time.sleep(1.1)  # past the one-second reuse of the active tokens' read
        rows = self.get_json("/api/v1/workflows/etl/instances")["items"]
        assert [(r["instance"], r["status"], r["archived"]) for r in rows] == [
            (instance, "SUCCESS", True)
        ]
        jobs = self.get_json(f"/api/v1/workflows/etl/instances/{instance}/jobs")
        assert jobs["archived"] and len(jobs["items"]) == 3

    def test_logs_outside_the_logs_folder_are_refused(self) -> None:
        job = Job(name="sneaky", command="true")
        job.history.append(
            ExecutionRecord(
                instance="1",
                start_time=1.0,
                end_time=2.0,
                exit_code=0,
                logs={
                    "stdout": "/etc/passwd",
                    "stderr": str(self.env.logs_dir / ".." / "pinball.yaml"),
                },
            )
        )
        self.env.client.modify(
            [
                Token(
                    names.job_name("odd", "1", names.WAITING, "sneaky"),
                    data=job.to_json(),
                )
            ]
        )
        base = "/api/v1/workflows/odd/instances/1/jobs/sneaky/executions/0"
        for kind in ("stdout", "stderr"):
            refused = self.get_json(f"{base}/logs/{kind}", status=403)
            assert "outside the logs folder" in refused["error"]["message"]
            assert self.get(f"{base}/logs/{kind}?download=1").code == 403
        execution = self.get_json(base)
        assert all(not log["readable"] for log in execution["logs"])

    def test_unsafe_links_are_not_links(self) -> None:
        job = Job(name="linky", command="true")
        job.history.append(
            ExecutionRecord(
                instance="1",
                start_time=1.0,
                end_time=2.0,
                exit_code=0,
                properties={
                    "kv_job_url": ["bad|javascript:alert(1)", "good|http://x.test/"]
                },
            )
        )
        self.env.client.modify(
            [
                Token(
                    names.job_name("odd", "1", names.WAITING, "linky"),
                    data=job.to_json(),
                )
            ]
        )
        links = self.get_json(
            "/api/v1/workflows/odd/instances/1/jobs/linky/executions/0"
        )["links"]
        assert [(found["text"], found["url"]) for found in links] == [
            ("bad", None),
            ("good", "http://x.test/"),
        ]

    def test_status_reports_signals_and_the_master(self) -> None:
        instance = self.env.start("etl")
        set_signal(self.env.client, "DRAIN")
        set_signal(self.env.client, "ABORT", "etl", instance)
        time.sleep(1.1)
        status = self.get_json(f"/api/v1/status?workflow=etl&instance={instance}")
        assert [(s["action"], s["level"]) for s in status["signals"]] == [
            ("ABORT", f"instance etl/{instance}"),
            ("DRAIN", "global"),
        ]
        assert status["master"]["reachable"] is True
        assert status["user"] == {"name": "local", "role": "admin"}

    def test_unreachable_master_is_reported(self) -> None:
        self.pinball.probe._port = 1  # nothing listens there
        status = self.get_json("/api/v1/status")
        assert status["master"]["reachable"] is False

    def test_schedules_and_tokens(self) -> None:
        body = {
            "workflow": "etl",
            "cron": "30 2 * * 1-5",
            "timezone": "Europe/Berlin",
            "overrun_policy": "DELAY",
            "max_running_instances": 2,
            "emails": ["ana@example.com"],
        }
        self.env.client.modify(
            [Token(names.schedule_name("etl"), data=json.dumps(body))]
        )
        rows = self.get_json("/api/v1/schedules")["items"]
        assert rows[0]["workflow"] == "etl"
        assert "02:30" in rows[0]["recurrence"]
        assert rows[0]["overrun_policy_help"].startswith("the run waits")
        schedule = self.get_json("/api/v1/schedules/etl")
        assert [j["job"] for j in schedule["jobs"]] == ["extract", "transform", "load"]
        assert schedule["parser_error"] is None
        # Next runs as the scheduler computes them: weekdays at 02:30 Berlin.
        runs = schedule["next_runs"]
        assert schedule["next_runs_known"] and len(runs) == 10 and runs == sorted(runs)
        graph = self.get("/api/v1/schedules/etl/graph.svg")
        assert graph.code == 200 and b'id="extract"' in graph.body
        assert self.get_json("/api/v1/workflows")["items"][0]["owners"] == ["ana"]

        paths = self.get_json("/api/v1/tokens?path=/schedule/")
        assert paths["items"] == [
            {"path": "/schedule/workflow", "active": 1, "archived": 0, "count": 1}
        ]
        token = self.get_json("/api/v1/token?name=/schedule/workflow/etl")
        assert token["active"][0]["data_json"]["cron"] == "30 2 * * 1-5"
        assert self.get_json("/api/v1/token?name=/none", status=404)

    def test_schedule_graph_of_a_definition_with_problems_is_409(self) -> None:
        problem = "etl.yaml:4:7: workflow etl, job load: depends on 'nope'"
        refusal = DefinitionError("etl", [problem])
        with mock.patch.object(StaticParser, "instance_tokens", side_effect=refusal):
            error = self.get_json("/api/v1/schedules/etl/graph.svg", status=409)
        assert error["error"]["message"] == str(refusal)

    def test_schedule_graph_of_an_undefined_workflow_is_404(self) -> None:
        error = self.get_json("/api/v1/schedules/nosuch/graph.svg", status=404)
        assert "does not define workflow nosuch" in error["error"]["message"]

    def test_unknown_endpoint(self) -> None:
        error = self.get_json("/api/v1/nothing", status=404)
        assert "no API endpoint" in error["error"]["message"]


class TestActions(UiCase):
    def signals(
        self, workflow: str | None = None, instance: str | None = None
    ) -> set[str]:
        return set(read_signals(self.env.client, workflow, instance))

    def test_signals_at_every_level(self) -> None:
        instance = self.env.start("slow")
        for level in (
            {},
            {"workflow": "slow"},
            {"workflow": "slow", "instance": instance},
        ):
            for action, signal in (
                ("drain", "DRAIN"),
                ("abort", "ABORT"),
                ("exit", "EXIT"),
            ):
                outcome = self.act(action, level)
                assert outcome["ok"] and outcome["output"].startswith(f"set {signal}")
                assert signal in self.signals(
                    level.get("workflow"), level.get("instance")
                )
                undone = self.act(f"un{action}", level)
                assert undone["ok"] and f"removed {signal}" in undone["output"]

    def test_retry_poison_disable_enable_redo(self) -> None:
        self.env.start_workers(2)
        instance = self.env.start("fails")
        wait_for(
            "fails", lambda: self.env.instance_status("fails", instance) == "FAILURE"
        )
        where = {"workflow": "fails", "instance": instance}

        retried = self.act("retry", where)
        assert retried["ok"] and "retried 1 job" in retried["output"]
        wait_for(
            "the retry to fail",
            lambda: self.env.instance_status("fails", instance) == "FAILURE",
        )

        disabled = self.act("disable", {**where, "jobs": ["broken"]})
        assert disabled["ok"] and "disabled 1 job" in disabled["output"]
        enabled = self.act("enable", {**where, "jobs": ["broken"]})
        assert enabled["ok"] and "enabled 1 job" in enabled["output"]

        redone = self.act("redo", {**where, "jobs": ["ok"], "execution": 0})
        assert redone["ok"] and "redoing execution 0 of job ok" in redone["output"]
        wait_for(
            "the redo to end",
            lambda: self.env.instance_status("fails", instance) == "FAILURE",
        )

        poisoned = self.act("poison", {**where, "jobs": ["ok"]})
        assert poisoned["ok"], poisoned

    def test_start_a_new_instance(self) -> None:
        outcome = self.act("start", {"workflow": "etl"})
        assert outcome["ok"] and outcome["output"].startswith(
            "started workflow etl instance"
        )

    def test_start_of_a_definition_with_problems_is_409_with_them(self) -> None:
        # The parser contract's refusal; DefinitionError is one too.
        refusal = ValueError(
            "workflow etl has a problem in its definition; fix it:\n"
            "  etl.yaml:4:7: workflow etl, job load: depends on 'nope'"
        )
        with mock.patch.object(StaticParser, "instance_tokens", side_effect=refusal):
            outcome = self.act("start", {"workflow": "etl"}, status=409)
        assert outcome["ok"] is False and outcome["exit_code"] == 2
        assert outcome["error"] == str(refusal)
        assert self.env.client.query(names.workflow_prefix("etl")) == []

    def test_unschedule(self) -> None:
        body = {"workflow": "etl", "recurrence_sec": 3600, "timezone": "UTC"}
        name = names.schedule_name("etl")
        self.env.client.modify([Token(name, data=json.dumps(body))])
        outcome = self.act("unschedule", {"workflow": "etl"})
        assert outcome["ok"], outcome
        assert [t.name for t in self.env.client.query(name)] == []

    def test_refusals_from_the_command_are_409_with_its_message(self) -> None:
        outcome = self.act(
            "retry", {"workflow": "etl", "instance": "12345"}, status=409
        )
        assert outcome["ok"] is False
        assert "neither active nor archived" in outcome["error"]

    def test_bad_requests(self) -> None:
        assert "no action" in self.act("explode", {}, status=404)["error"]["message"]
        assert (
            "level"
            in self.act("retry", {"workflow": "etl"}, status=400)["error"]["message"]
        )
        assert (
            "needs 'jobs'"
            in self.act("disable", {"workflow": "etl", "instance": "1"}, status=400)[
                "error"
            ]["message"]
        )
        assert (
            "letters, digits"
            in self.act("drain", {"workflow": "<b>"}, status=400)["error"]["message"]
        )
        assert (
            "unknown field"
            in self.act("drain", {"colour": "red"}, status=400)["error"]["message"]
        )
        assert (
            "execution"
            in self.act(
                "redo",
                {"workflow": "a", "instance": "1", "jobs": ["x"], "execution": -1},
                status=400,
            )["error"]["message"]
        )

    def test_no_xsrf_no_action(self) -> None:
        response = self.fetch(
            "/api/v1/actions/drain", method="POST", body="{}", follow_redirects=False
        )
        assert response.code == 403
        assert "DRAIN" not in self.signals()
        assert response.headers["Content-Type"].startswith("application/json")
        message = json.loads(response.body)["error"]["message"]
        assert message.startswith("this POST carries no XSRF token")
        assert "reload the page" in message
        assert "sends it back with its value in the X-XSRFToken header" in message

    def test_an_xsrf_refusal_says_which_part_is_missing(self) -> None:
        token = self.xsrf()["X-XSRFToken"]
        cases = [
            (
                {"Cookie": f"_xsrf={token}"},
                "this POST sent the _xsrf cookie but not its value in the "
                "X-XSRFToken header",
            ),
            (
                {"X-XSRFToken": token},
                "this POST sent an XSRF token but not the _xsrf cookie",
            ),
            (
                {"Cookie": f"_xsrf={token}", "X-XSRFToken": "2|00|11|22"},
                "this POST's XSRF token does not match its _xsrf cookie",
            ),
        ]
        for headers, problem in cases:
            refused = self.act("drain", {}, status=403, headers=headers, xsrf=False)
            assert refused["error"]["message"].startswith(problem), headers
        assert "DRAIN" not in self.signals()

    def test_a_form_without_its_xsrf_token_says_to_reload(self) -> None:
        response = self.fetch("/logout", method="POST", body="", follow_redirects=False)

        assert response.code == 403
        page = response.body.decode()
        assert "<h1>403 Forbidden</h1>" in page
        assert "The form was refused: this POST carries no XSRF token" in page
        assert "Reload the page and try again" in page

    def test_get_never_acts(self) -> None:
        assert self.get("/api/v1/actions/drain").code == 405
        assert "DRAIN" not in self.signals()

    def test_unreachable_master_is_503(self) -> None:
        self.env.stop_master()
        outcome = self.act("drain", {}, status=503)
        assert outcome["master_unreachable"] is True


class TestHistory(UiCase):
    def test_warm_up_reads_every_archived_workflow(self) -> None:
        self.env.start_workers(1)
        instance = self.env.start("etl")
        wait_for("etl", lambda: self.env.instance_status("etl", instance) == "SUCCESS")
        self.env.client.archive(
            self.env.client.query(names.instance_prefix("etl", instance))
        )
        history = History(self.env.ui_store)
        history.warm_up()
        assert history.loading == (1, 1)
        last, count = history.last_and_count("etl")
        assert last is not None and (last.instance, last.status, count) == (
            instance,
            "SUCCESS",
            1,
        )
        listing = self.get_json("/api/v1/workflows")["items"]
        assert [(r["workflow"], r["status"], r["instances"]) for r in listing] == [
            ("etl", "SUCCESS", 1)
        ]
