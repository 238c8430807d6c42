"""The Compare tab in Chromium: two panes — the local model and a second app's API as a
remote target — stream at once (both visibly grow before either finishes), and a pane whose
target refuses the connection fails alone while the other's answer completes."""

from __future__ import annotations

import socket

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import GUARDED_API_KEY

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000
BOTH_GROWING = """() => {
  const text = (id) => (document.querySelector(id)?.innerText || "");
  const bots = (i) => [...document.querySelectorAll(`#compare-chat-${i} [data-testid=bot]`)]
    .map((e) => e.innerText.trim()).join("");
  const finished = (i) => text(`#compare-stats-${i}`).includes("finish:");
  return bots(0).length > 0 && bots(1).length > 0 && !finished(0) && !finished(1);
}"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released: nothing listens there now


def _target(page: Page, pane: int, url: str, token: str = "") -> None:
    box = page.locator(f"#compare-pane-{pane}")
    box.get_by_text("Connection", exact=True).click()
    box.get_by_label("Remote endpoint").check()
    box.get_by_label("Hub model id or endpoint URL").fill(url)
    box.get_by_label("Token", exact=True).fill(token)
    box.get_by_label("Token", exact=True).press("Tab")


def _max_tokens(page: Page, pane: int, value: int) -> None:
    box = page.locator(f"#compare-pane-{pane}")
    box.get_by_text("Parameters", exact=True).click()
    field = box.get_by_role("spinbutton", name="number input for max_tokens")
    field.fill(str(value))
    field.press("Tab")


def _send(page: Page, text: str) -> None:
    box = page.locator("#compare-input textarea")
    box.fill(text)
    box.press("Enter")


def test_two_panes_stream_at_once_local_and_remote(page: Page, guarded_app, artifacts_dir) -> None:
    page.get_by_role("tab", name="Compare").click()
    _target(page, 1, f"{guarded_app.url}api", GUARDED_API_KEY)
    for pane in (0, 1):
        _max_tokens(page, pane, 40)
    _send(page, "Write a short poem about the sea.")
    page.wait_for_function(BOTH_GROWING, timeout=TIMEOUT_MS, polling=50)
    for pane in (0, 1):
        expect(page.locator(f"#compare-stats-{pane}")).to_contain_text(
            "finish:", timeout=TIMEOUT_MS
        )
    page.get_by_role("button", name="Highlight differences (A → B)").click()
    expect(page.locator("#compare-diff")).to_contain_text("e")  # the diff is drawn
    page.screenshot(path=str(artifacts_dir / "compare-two-panes.png"), full_page=True)


def test_a_refused_target_fails_in_its_pane_only(page: Page, artifacts_dir) -> None:
    page.get_by_role("tab", name="Compare").click()
    _target(page, 1, f"http://127.0.0.1:{_closed_port()}")
    _max_tokens(page, 0, 12)
    _send(page, "Say hello.")
    expect(page.locator("#compare-stats-1")).to_contain_text("🔴", timeout=TIMEOUT_MS)
    expect(page.locator("#compare-stats-0")).to_contain_text("finish:", timeout=TIMEOUT_MS)
    answer = page.locator("#compare-chat-0 [data-testid=bot]").last
    expect(answer).not_to_be_empty()
    page.screenshot(path=str(artifacts_dir / "compare-refused-pane.png"), full_page=True)
