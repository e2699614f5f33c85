"""The interactive docs really render in chromium under the site's strict CSP (no inline script)."""

import os
import shutil

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop here

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

CHROMIUM = "/usr/bin/chromium"


def test_swagger_ui_renders_every_operation_without_csp_violations(live_server):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            outside: list[str] = []
            page.on("request", lambda req: None if req.url.startswith(live_server.url) else outside.append(req.url))
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector(".opblock", timeout=15_000)
            paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
        finally:
            browser.close()
    assert not problems, problems  # a CSP violation shows up as a console error
    assert not outside, outside  # vendored assets only: nothing from a CDN
    assert "/api/v1/rounds/{id}/next/" in paths and "/api/v1/judgments/" in paths
