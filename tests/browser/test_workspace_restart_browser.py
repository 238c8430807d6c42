"""A saved conversation survives a server restart (same storage secret, same origin:
localStorage is per origin, port included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.workspace_pages import chat_log, conversation_list, ready, send
from tests.conftest import _free_port, start_app

pytestmark = pytest.mark.browser

SECRET = "a-fixed-secret-for-the-restart-test"


def test_conversation_survives_a_restart(chromium_browser, artifacts_dir: Path) -> None:
    port = _free_port()
    env = {"PLAYGROUND_STORAGE_SECRET": SECRET}
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        with start_app(artifacts_dir / "app-server-restart-1.log", env=env, port=port) as app:
            page.goto(app.url)
            ready(page)
            page.get_by_label("System prompt").fill("You survive restarts.")
            send(page, "Remember me after a restart.", max_tokens=5)
            reply = chat_log(page).get_by_test_id("bot").last.inner_text().strip()
        with start_app(artifacts_dir / "app-server-restart-2.log", env=env, port=port) as app:
            page.goto(app.url)
            ready(page)
            expect(conversation_list(page)).to_contain_text("Remember me after a restart.")
            log = chat_log(page)
            expect(log.get_by_test_id("user")).to_have_text("Remember me after a restart.")
            expect(log.get_by_test_id("bot").last).to_have_text(reply)
            expect(page.get_by_label("System prompt")).to_have_value("You survive restarts.")
    finally:
        context.close()
