"""What a visitor sees when the local engine is full or they ask for too much at once: their
place in the queue while another visitor's reply holds the only decoding slot, and a clear
message when their session already runs its share.

The app decodes one request at a time (``--max-batch-size 1``) and lets a session run one
generation (``--max-per-session 1``); another visitor's long reply, streamed from the local
API, holds the engine.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import AppServer, start_app

pytestmark = pytest.mark.browser

RUNNING = "playground_running"  # GET /api/metrics: requests decoding now
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def one_slot(artifacts_dir) -> Iterator[AppServer]:
    args = ("--max-batch-size", "1", "--max-per-session", "1")
    with start_app(artifacts_dir / "app-server-queue.log", args) as server:
        yield server


@pytest.fixture
def busy_engine(one_slot: AppServer) -> Iterator[None]:
    """Another visitor's long reply, streaming from the local API, until the test ends."""
    body = {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 2000}}
    request = urllib.request.Request(
        f"{one_slot.url}api/generate_stream",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    response = urllib.request.urlopen(request, timeout=120)
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set() and response.readline():
                pass
        finally:
            response.close()  # the other visitor leaves: the engine drops their request

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    one_slot.wait_for_metric(RUNNING, 0)
    try:
        yield
    finally:
        done.set()
        reader.join(timeout=30)
        deadline = time.monotonic() + 60
        while one_slot.metrics().get(RUNNING, 0.0) > 0:
            assert time.monotonic() < deadline, "the abandoned stream kept its slot"
            time.sleep(0.05)


def test_a_queued_visitor_sees_their_place_and_a_second_job_is_refused_clearly(
    chromium_browser, one_slot, busy_engine, artifacts_dir
) -> None:
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page: Page = context.new_page()
    try:
        page.goto(one_slot.url)
        box = page.get_by_placeholder("Type a message and press Enter")
        box.fill("Hello, are you there?")
        box.press("Enter")
        expect(page.locator("#chat-stats")).to_contain_text(
            "In the local model's queue: position 1", timeout=TIMEOUT_MS
        )
        page.screenshot(path=str(artifacts_dir / "queue-position.png"), full_page=True)

        # The same session asks for a second generation while its chat waits: refused,
        # with what to do, and the waiting chat keeps its place.
        page.get_by_role("tab", name="Text generation").click()
        page.get_by_role("textbox", name="Prompt").fill("The sky is")
        page.get_by_role("button", name="Generate").click()
        refusal = "already have 1 generation running in this browser session"
        expect(page.get_by_text(refusal)).to_be_visible(timeout=TIMEOUT_MS)
        page.screenshot(path=str(artifacts_dir / "per-session-refusal.png"), full_page=True)
        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-stats")).to_contain_text("position 1")
        page.get_by_role("button", name="Stop").first.click()
    finally:
        context.close()
