"""The chat tab in a real browser: page loads, a message streams a growing reply, stats."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

MAX_TOKENS = 40
GENERATION_TIMEOUT_MS = 120_000  # 40 tokens take ~3-8 s on 2 cores with a browser running


def wait_until_longer(page: Page, selector: str, than: int) -> None:
    """Poll (in the page, no fixed sleep) until the element's text is longer than ``than``."""
    page.wait_for_function(
        "([selector, than]) => {"
        "  const nodes = document.querySelectorAll(selector);"
        "  const last = nodes[nodes.length - 1];"
        "  return !!last && last.innerText.trim().length > than;"
        "}",
        arg=[selector, than],
        timeout=GENERATION_TIMEOUT_MS,
    )


def test_page_loads_with_model_ready(page: Page) -> None:
    expect(page).to_have_title("Inference Playground")
    expect(page.get_by_role("heading", name="Inference Playground")).to_be_visible()
    banner = page.locator("#backend-status")
    expect(banner).to_contain_text("🟢")
    expect(banner).to_contain_text("8192 tokens of context")
    expect(banner).not_to_contain_text("⏳")
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Text generation")).to_be_visible()


def test_chat_reply_streams_and_shows_stats(page: Page) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    # Greedy and short: a deterministic answer that is long enough to watch it stream.
    max_tokens = page.get_by_role("spinbutton", name="number input for max_tokens")
    max_tokens.fill(str(MAX_TOKENS))
    max_tokens.press("Tab")
    temperature = page.get_by_role("spinbutton", name="number input for temperature")
    temperature.fill("0")
    temperature.press("Tab")

    message = "Write a short poem about the sea."
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill(message)
    box.press("Enter")

    conversation = page.get_by_role("log", name="chatbot conversation")
    expect(conversation.get_by_test_id("user")).to_have_text(message)
    expect(box).to_have_value("")  # the textbox clears once the message is sent

    reply = conversation.get_by_test_id("bot").last
    expect(reply).to_have_text(re.compile(r"\S"), timeout=GENERATION_TIMEOUT_MS)
    first_seen = reply.inner_text().strip()
    # One update would leave nothing to wait for: the reply must grow after it was seen.
    wait_until_longer(page, '#chatbot [data-testid="bot"]', len(first_seen))
    assert len(reply.inner_text().strip()) > len(first_seen)

    stats = page.locator("#chat-stats")
    expect(stats).to_contain_text("finish:", timeout=GENERATION_TIMEOUT_MS)
    expect(stats).to_contain_text("tokens/s")
    completion = re.search(r"(\d+) completion tokens", stats.inner_text())
    assert completion, stats.inner_text()
    assert 1 < int(completion.group(1)) <= MAX_TOKENS  # the max_tokens slider was applied
