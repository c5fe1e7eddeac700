"""End to end in a real headless Chromium: what a user sees and does.

Debian's ``chromium`` is driven by Playwright through ``executable_path``
(``apt-get install chromium``; Playwright downloads no browser). The UI is
served over HTTP on a loopback port, workflows run on real workers, and the
page's own scripts fetch the API, draw the graph and send the actions.
"""

import json
import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from pinball_core.token import Token
from pinball_core.workflow import names
from playwright.sync_api import Browser, Page, expect, sync_playwright
from ui_fixtures import Env, ServedUi, wait_for

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not pathlib.Path(CHROMIUM).exists(),
    reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)",
)

# Generous: CI machines are slow, and a page refreshes every 3 s.
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Root (as in CI) cannot use Chromium's sandbox.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"scripts failed in the page: {errors}"


def test_follow_a_workflow_abort_it_and_read_a_log(
    env: Env, served: ServedUi, page: Page
) -> None:
    env.start_workers(2)
    done = env.start("etl")
    wait_for("etl to succeed", lambda: env.instance_status("etl", done) == "SUCCESS")
    slow = env.start("slow")
    wait_for(
        "the slow job to run", lambda: env.job_status("slow", slow, "wait") == "RUNNING"
    )

    # The workflows page lists both, with their statuses.
    page.goto(served.url + "/workflows")
    rows = page.locator("#table tbody tr")
    expect(rows).to_have_count(2)
    slow_row = rows.filter(has_text="slow")
    expect(slow_row.locator(".status")).to_have_text("RUNNING")
    expect(rows.filter(has_text="etl").locator(".status")).to_have_text("SUCCESS")

    # Follow to the instance: its graph shows the running job.
    slow_row.get_by_role("link", name="slow").click()
    expect(page).to_have_url(re.compile(r"/workflows/slow$"))
    page.locator("#table").get_by_role("link", name=slow).click()
    expect(page).to_have_url(re.compile(rf"/workflows/slow/instances/{slow}$"))
    graph = page.locator("#graph svg")
    expect(graph.locator("g.node")).to_have_count(2)
    expect(graph.locator("g.node#wait")).to_have_attribute("data-status", "RUNNING")
    expect(page.locator("#inst-status")).to_have_text("RUNNING")

    # Selecting in the graph selects in the table too.
    graph.locator("g.node#after").click()
    expect(page.locator("#selection")).to_contain_text("after")
    expect(page.locator("tr[data-key=after] input[type=checkbox]")).to_be_checked()

    # Abort, confirmed in the page: the status changes to ABORTED.
    page.get_by_role("button", name="Abort", exact=True).click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text(f"Abort instance slow/{slow}?")
    dialog.get_by_role("button", name="Go ahead").click()
    expect(page.locator("#result")).to_contain_text("set ABORT at instance")
    expect(page.locator("#inst-status")).to_have_text("ABORTED")
    # An aborted instance is archived at once; the page follows it there.
    expect(page.locator("#facts")).to_contain_text("archived")

    # Read a log of the finished workflow, through its pages.
    page.goto(f"{served.url}/workflows/etl/instances/{done}")
    page.locator("#table").get_by_role("link", name="transform").click()
    page.get_by_role("link", name="#0").click()
    page.locator("#logs").get_by_role("link", name="stdout").click()
    expect(page.locator("pre#log")).to_contain_text("got 10 rows")
    expect(page.locator("#log-info")).to_contain_text("Bytes 0–")

    # A global drain from the workflows page shows as a banner on every page.
    page.goto(served.url + "/workflows")
    page.get_by_role("button", name="Drain", exact=True).click()
    page.locator("dialog#confirm").get_by_role("button", name="Go ahead").click()
    expect(page.locator(".banner[data-signal=DRAIN]")).to_contain_text("global level")


def test_html_in_commands_and_logs_shows_as_text(
    env: Env, served: ServedUi, page: Page
) -> None:
    marker = "<img src=x onerror=window.hacked=1><b>bold</b>"
    env.workflows["html"] = {"say": (f"echo '{marker}'", [])}
    env.start_workers(1)
    instance = env.start("html")
    wait_for("it to run", lambda: env.instance_status("html", instance) == "SUCCESS")

    page.goto(f"{served.url}/workflows/html/instances/{instance}")
    expect(page.locator("#table td.info code")).to_have_text(f"echo '{marker}'")
    page.goto(
        f"{served.url}/workflows/html/instances/{instance}/jobs/say/executions/0/logs/stdout"
    )
    expect(page.locator("pre#log")).to_have_text(marker + "\n")
    assert page.evaluate("window.hacked") is None
    assert page.locator("pre#log b").count() == 0


def test_a_schedules_next_runs_show_in_its_own_zone_and_in_utc(
    env: Env, served: ServedUi, page: Page
) -> None:
    body = {"workflow": "etl", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    env.client.modify([Token(names.schedule_name("etl"), data=json.dumps(body))])

    page.goto(f"{served.url}/schedules/etl")

    # 02:30 in Berlin is 01:30 UTC in winter and 00:30 UTC in summer.
    zoned = re.compile(
        r"^\d{4}-\d\d-\d\d 02:30:00 Europe/Berlin "
        r"\(\d{4}-\d\d-\d\d 0[01]:30:00 UTC\)$"
    )
    expect(page.locator("#next-runs li").first).to_have_text(zoned)
    page.goto(f"{served.url}/schedules")
    expect(page.locator("#table td", has_text="Europe/Berlin (")).to_have_count(1)


def test_without_graphviz_the_jobs_are_listed(
    env: Env, served: ServedUi, page: Page, monkeypatch: Any
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    instance = env.start("etl")
    page.goto(f"{served.url}/workflows/etl/instances/{instance}")
    notice = page.locator("#graph [data-graph=unavailable]")
    expect(notice).to_contain_text("apt-get install graphviz")
    expect(page.locator("#graph ul.fallback li")).to_have_count(3)


def test_a_graph_of_500_jobs_lays_out_and_is_usable(
    env: Env, served: ServedUi, page: Page
) -> None:
    # A wide, deep workflow: 500 jobs, each fed by one or two earlier ones.
    jobs: dict[str, tuple[str, list[str]]] = {}
    for n in range(500):
        upstream = [] if n < 5 else [f"j{(n - 5) // 2:03d}", f"j{n - 5:03d}"]
        jobs[f"j{n:03d}"] = ("true", sorted(set(upstream)))
    env.workflows["huge"] = jobs
    instance = env.start("huge")

    page.goto(f"{served.url}/workflows/huge/instances/{instance}")
    graph = page.locator("#graph svg")
    expect(graph).to_have_attribute("data-nodes", "500", timeout=120_000)
    page.fill("#graph-search", "j250")
    page.press("#graph-search", "Enter")
    expect(graph.locator("g.node.found")).to_have_id("j250")
    graph.locator("g.node#j250").click()
    expect(page.locator("#selection")).to_contain_text("j250")
    expect(page.locator("#table .pager")).to_contain_text("of 500")
