"""Nothing is lost: Stop keeps the partial reply; a refused request keeps the chat and says
why; an empty message is refused with a toast; Undo puts the last message back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

GENERATION_TIMEOUT_MS = 120_000


def send(page: Page, text: str) -> None:
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill(text)
    box.press("Enter")


def test_stop_keeps_the_partial_reply_and_the_chat_goes_on(page: Page, app_server) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    cancelled = app_server.metrics().get("playground_requests_cancelled_total", 0.0)
    max_tokens = page.get_by_role("spinbutton", name="number input for max_tokens")
    max_tokens.fill("1000")
    max_tokens.press("Tab")
    send(page, "Tell me a very long story about a dragon.")
    conversation = page.get_by_role("log", name="chatbot conversation")
    reply = conversation.get_by_test_id("bot").last
    expect(reply).to_have_text(re.compile(r"\S{3}"), timeout=GENERATION_TIMEOUT_MS)
    page.get_by_role("button", name="Stop", exact=True).click()
    # After Stop the partial reply stays and stops growing; no error overlay replaces it.
    partial = reply.inner_text()
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)
    # The cancel reached the engine (before the next message is sent: a Stop still in
    # flight would cancel that one too).
    app_server.wait_for_metric("playground_requests_cancelled_total", cancelled, deadline_s=60)
    settled = reply.inner_text()
    assert settled.startswith(partial.strip()[:3])
    expect(reply).to_have_text(settled)
    # The engine was freed: the next message gets its own reply.
    max_tokens.fill("8")
    max_tokens.press("Tab")
    send(page, "Say hi.")
    expect(conversation.get_by_test_id("bot")).to_have_count(2, timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=GENERATION_TIMEOUT_MS)


def test_refused_request_keeps_the_chat_and_says_why(page: Page) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    page.get_by_label("Stop sequences").fill("\n".join(f"s{i}" for i in range(50)))
    send(page, "Hello there")
    expect(page.get_by_text("`stop` accepts at most 4 items (got 50)")).to_be_visible()
    conversation = page.get_by_role("log", name="chatbot conversation")
    expect(conversation.get_by_test_id("user")).to_have_text("Hello there")
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)


def test_empty_message_is_refused_and_undo_restores_the_last_message(page: Page) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    send(page, "   ")
    expect(page.get_by_text("Type a message first.")).to_be_visible()
    max_tokens = page.get_by_role("spinbutton", name="number input for max_tokens")
    max_tokens.fill("4")
    max_tokens.press("Tab")
    send(page, "First question")
    conversation = page.get_by_role("log", name="chatbot conversation")
    expect(conversation.get_by_test_id("bot")).to_have_count(1, timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=GENERATION_TIMEOUT_MS)
    page.get_by_role("button", name="↶ Undo").click()
    expect(conversation.get_by_test_id("user")).to_have_count(0)
    expect(page.get_by_placeholder("Type a message and press Enter")).to_have_value(
        "First question"
    )
