"""An app started with the operator's default endpoint (a second app) and no local model:
the Connection panel shows the default endpoint selected, and a chat is answered there."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import GUARDED_API_KEY, AppServer, start_app

pytestmark = pytest.mark.browser

GENERATION_TIMEOUT_MS = 120_000
FINISHED = "playground_requests_finished_total"


@pytest.fixture(scope="module")
def fronted(guarded_app, artifacts_dir) -> Iterator[AppServer]:
    env = {
        "PLAYGROUND_DEFAULT_ENDPOINT": f"{guarded_app.url}api",
        "PLAYGROUND_DEFAULT_TOKEN": GUARDED_API_KEY,
        "PLAYGROUND_NO_LOCAL_MODEL": "1",
    }
    with start_app(artifacts_dir / "app-server-default-browser.log", (), env) as server:
        yield server


def test_the_panel_shows_the_default_endpoint_selected(
    chromium_browser, fronted, guarded_app, artifacts_dir
) -> None:
    remote_api = f"{guarded_app.url}api"
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(fronted.url)
        chat_tab = page.locator("#chat-tab")
        chat_tab.get_by_text("Connection", exact=True).click()
        expect(chat_tab.get_by_label(f"Default endpoint: {remote_api}")).to_be_checked()
        expect(chat_tab.get_by_label("Local model", exact=True)).to_have_count(0)
        expect(chat_tab.get_by_text(re.compile("local model is not loaded"))).to_be_visible()
        expect(chat_tab.get_by_label("Token", exact=True)).to_be_hidden()

        before = guarded_app.metrics(GUARDED_API_KEY).get(FINISHED, 0.0)
        box = page.get_by_placeholder("Type a message and press Enter")
        box.fill("Say hello.")
        box.press("Enter")
        expect(page.locator("#chat-stats")).to_contain_text(
            "finish:", timeout=GENERATION_TIMEOUT_MS
        )
        guarded_app.wait_for_metric(FINISHED, before, api_key=GUARDED_API_KEY)
        page.screenshot(path=str(artifacts_dir / "default-endpoint-panel.png"), full_page=True)
        assert GUARDED_API_KEY not in page.content()
    finally:
        context.close()
