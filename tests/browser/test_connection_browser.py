"""Switching a tab to a remote endpoint in the browser: the connection panel, Check, a chat
answered by the second app, and Show code pointing at that endpoint."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import GUARDED_API_KEY

pytestmark = pytest.mark.browser

GENERATION_TIMEOUT_MS = 120_000


def test_chat_tab_switches_to_a_remote_endpoint(page: Page, guarded_app) -> None:
    remote_api = f"{guarded_app.url}api"
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    chat_tab = page.locator("#chat-tab")
    chat_tab.get_by_text("Connection", exact=True).click()
    chat_tab.get_by_label("Remote endpoint").check()
    chat_tab.get_by_label("Hub model id or endpoint URL").fill(remote_api)
    # Without the key, Check explains the refusal; with it, the endpoint's /info shows.
    chat_tab.get_by_role("button", name="Check connection").click()
    expect(chat_tab.get_by_text(re.compile("API key"))).to_be_visible()
    chat_tab.get_by_label("Token", exact=True).fill(GUARDED_API_KEY)
    chat_tab.get_by_role("button", name="Check connection").click()
    expect(chat_tab.get_by_text("healthy")).to_be_visible()
    expect(chat_tab.get_by_role("cell", name="SmolLM2-135M-Instruct")).to_be_visible()
    # The token never comes back to the page in clear.
    assert GUARDED_API_KEY not in chat_tab.locator("#chatbot").inner_text()

    finished = "playground_requests_finished_total"
    before = guarded_app.metrics(GUARDED_API_KEY).get(finished, 0.0)
    max_tokens = page.get_by_role("spinbutton", name="number input for max_tokens")
    max_tokens.fill("8")
    max_tokens.press("Tab")
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill("Say hello.")
    box.press("Enter")
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=GENERATION_TIMEOUT_MS)
    reply = page.get_by_role("log", name="chatbot conversation").get_by_test_id("bot").last
    expect(reply).to_have_text(re.compile(r"\S"))
    assert guarded_app.metrics(GUARDED_API_KEY)[finished] > before  # the second app answered

    chat_tab.get_by_text("Show code", exact=True).click()
    chat_tab.get_by_role("button", name="Show code for the current request").click()
    expect(chat_tab.get_by_text(remote_api).first).to_be_visible()
    assert GUARDED_API_KEY not in chat_tab.inner_text()
