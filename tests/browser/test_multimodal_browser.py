"""The chat tab with images and a reasoning model, in a real browser: the chat's remote
target is the scripted loopback endpoint (``tests/server/fake_endpoint.py``: ``vision``
echoes what images it got, ``reasoning`` streams reasoning deltas), set in the Connection
panel; the local text-only model refuses images before any compute."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from backends import vision
from tests.server import fake_endpoint
from tests.server.fake_endpoint import FakeEndpoint

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def scripted() -> FakeEndpoint:
    endpoint = fake_endpoint.start()
    try:
        yield endpoint
    finally:
        fake_endpoint.stop(endpoint)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "stripes.png"
    image = Image.new("RGB", (120, 80), (30, 90, 200))
    for x in range(0, 120, 20):
        image.paste((250, 200, 40), (x, 0, x + 10, 80))
    image.save(path)
    return path


def go_remote(page: Page, url: str) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    chat_tab = page.locator("#chat-tab")
    chat_tab.get_by_text("Connection", exact=True).click()
    chat_tab.get_by_label("Remote endpoint").check()
    chat_tab.get_by_label("Hub model id or endpoint URL").fill(url)
    chat_tab.get_by_label("Hub model id or endpoint URL").press("Tab")


def attach(page: Page, path: Path) -> None:
    page.locator("#chat-input input[type=file]").set_input_files(str(path))
    # The upload finished: its thumbnail shows in the box.
    expect(page.locator("#chat-input img")).to_have_count(1)


def paste(page: Page, path: Path) -> None:
    """Paste the image into the message box, as a clipboard holding a PNG file does."""
    page.get_by_placeholder("Type a message and press Enter").evaluate(
        """(box, b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
          box.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
        }""",
        base64.b64encode(path.read_bytes()).decode(),
    )
    expect(page.locator("#chat-input img")).to_have_count(1)


def drop(page: Page, path: Path, mime: str) -> None:
    """Drag a file onto the message box and drop it there."""
    page.get_by_placeholder("Type a message and press Enter").evaluate(
        """(box, [b64, name, mime]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], name, {type: mime}));
          for (const kind of ['dragenter', 'dragover', 'drop']) {
            box.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true}));
          }
        }""",
        [base64.b64encode(path.read_bytes()).decode(), path.name, mime],
    )


def send(page: Page, text: str) -> None:
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill(text)
    box.press("Enter")


def chat_log(page: Page):
    return page.get_by_role("log", name="chatbot conversation")


def test_an_image_reaches_the_endpoint_shows_in_the_chat_and_is_saved(
    page: Page, scripted: FakeEndpoint, picture: Path, artifacts_dir: Path
) -> None:
    scripted.reset()
    go_remote(page, scripted.url("vision") + "/v1")
    attach(page, picture)
    photo = picture.with_name("photo.jpg")
    Image.new("RGB", (60, 40), (20, 160, 60)).save(photo, format="JPEG")
    drop(page, photo, "image/jpeg")
    expect(page.locator("#chat-input img")).to_have_count(2)
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill("What is in")
    box.press("Shift+Enter")  # a new line, not a send
    box.press_sequentially("this picture?")
    expect(box).to_have_value("What is in\nthis picture?")
    box.press("Enter")
    log = chat_log(page)
    expect(log.get_by_test_id("bot").last).to_have_text(
        "I see 2 images: image/png 120x80, image/jpeg 60x40.", timeout=TIMEOUT_MS
    )
    user = log.get_by_test_id("user")
    expect(user.locator("img")).to_have_count(2)
    expect(user.last).to_contain_text("this picture?")
    expect(page.get_by_placeholder("Type a message and press Enter")).to_have_value("")
    expect(page.locator("#chat-input img")).to_have_count(0)  # the box is empty again
    (post,) = scripted.posts()
    parts = post.body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is in\nthis picture?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": vision.data_url(picture)}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": vision.data_url(photo)}}
    expect(page.locator("#conversation-list")).to_contain_text("What is in this picture?")
    page.screenshot(path=str(artifacts_dir / "multimodal-image-message.png"), full_page=True)

    # The saved conversation keeps the image: after a reload it is shown again.
    page.reload()
    expect(chat_log(page).get_by_test_id("user").locator("img")).to_have_count(2)
    expect(chat_log(page).get_by_test_id("bot").last).to_have_text(
        "I see 2 images: image/png 120x80, image/jpeg 60x40."
    )


def test_a_reasoning_stream_shows_a_collapsed_thinking_block_apart_from_the_answer(
    page: Page, scripted: FakeEndpoint, artifacts_dir: Path
) -> None:
    scripted.reset()
    go_remote(page, scripted.url("reasoning") + "/v1")
    send(page, "Pick a colour.")
    log = chat_log(page)
    expect(page.locator("#chat-stats")).to_contain_text("finish: stop", timeout=TIMEOUT_MS)
    title = log.get_by_text("Thinking · 6 tokens")
    expect(title).to_be_visible()
    answer = log.get_by_test_id("bot").last
    expect(answer).to_have_text("Blue is calm.")
    thought = log.get_by_text("The user asks for a colour.")
    expect(thought).to_be_hidden()  # collapsed once the answer came
    page.screenshot(path=str(artifacts_dir / "multimodal-thinking-collapsed.png"), full_page=True)
    title.click()
    expect(thought).to_be_visible()
    # Opened (its animation done): the thinking lies above the answer, not inside it.
    page.wait_for_function(
        """() => {
          const group = document.querySelector('#chatbot .thought-group');
          const text = group && group.querySelector('.content p');
          const answer = [...document.querySelectorAll('#chatbot p')]
            .find((p) => p.innerText === 'Blue is calm.');
          if (!text || !answer) return false;
          const t = text.getBoundingClientRect(), a = answer.getBoundingClientRect();
          const box = group.getBoundingClientRect();
          return t.height > 0 && t.bottom <= box.bottom && box.bottom <= a.top;
        }"""
    )
    page.screenshot(path=str(artifacts_dir / "multimodal-thinking-open.png"), full_page=True)

    # The next turn sends the answer back, not the thinking.
    send(page, "Why?")
    expect(log.get_by_test_id("bot").last).to_have_text("Blue is calm.", timeout=TIMEOUT_MS)
    expect(log.get_by_text(re.compile(r"Thinking · \d+ tokens"))).to_have_count(2)
    sent = scripted.posts()[-1].body["messages"]
    assert {"role": "assistant", "content": "Blue is calm."} in sent
    assert "asks for a colour" not in str(sent)


def test_the_local_model_says_it_does_not_read_images(
    page: Page, app_server, picture: Path
) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    before = {k: v for k, v in app_server.metrics().items() if k.startswith("playground_requests")}
    paste(page, picture)
    send(page, "Describe this.")
    expect(page.get_by_text(re.compile("does not read images"))).to_be_visible(timeout=TIMEOUT_MS)
    log = chat_log(page)
    # Nothing is lost: the message and its image stay in the chat; no reply was made.
    expect(log.get_by_test_id("user").last).to_contain_text("Describe this.")
    expect(log.get_by_test_id("user").locator("img")).to_have_count(1)
    expect(log.get_by_test_id("bot")).to_have_count(0)
    after = {k: v for k, v in app_server.metrics().items() if k.startswith("playground_requests")}
    assert after == before  # the engine never saw the request


def test_past_the_limit_a_message_stays_in_the_box_with_the_reason(
    page: Page, picture: Path
) -> None:
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    page.locator("#chat-input input[type=file]").set_input_files([str(picture)] * 5)
    expect(page.locator("#chat-input img")).to_have_count(5)
    send(page, "Five at once.")
    expect(page.get_by_text("5 images attached; a message takes at most 4")).to_be_visible()
    # Nothing is lost: text and images stay in the box, nothing went to the chat.
    box = page.get_by_placeholder("Type a message and press Enter")
    expect(box).to_have_value("Five at once.")
    expect(page.locator("#chat-input img")).to_have_count(5)
    expect(chat_log(page).get_by_test_id("user")).to_have_count(0)


def test_a_chat_with_a_4_mb_image_is_still_saved_in_the_browser(
    page: Page, scripted: FakeEndpoint, tmp_path: Path
) -> None:
    """localStorage holds ~5-10 MB per origin: the saved copy of a large image is
    downscaled (the model got the original), so the chat survives a reload."""
    import numpy as np

    big = tmp_path / "noise.png"
    noise = np.random.default_rng(1).integers(0, 255, (1150, 1150, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 3_900_000
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    scripted.reset()
    go_remote(page, scripted.url("vision") + "/v1")
    attach(page, big)
    send(page, "A big one?")
    log = chat_log(page)
    expect(log.get_by_test_id("bot").last).to_have_text(
        "I see 1 image: image/png 1150x1150.", timeout=TIMEOUT_MS
    )
    expect(page.locator("#conversation-list")).to_contain_text("A big one?")
    page.reload()
    expect(chat_log(page).get_by_test_id("user").locator("img")).to_have_count(1)
    expect(chat_log(page).get_by_test_id("bot").last).to_have_text(
        "I see 1 image: image/png 1150x1150."
    )
    assert not [e for e in errors if "quota" in e.lower()], errors
