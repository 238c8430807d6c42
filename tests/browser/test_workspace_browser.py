"""Saved conversations in a real browser: reload, isolation, switching, export/import, a
bad file, Esc, an interrupted reply, and screenshots (sidebar, dark, phone)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.workspace_pages import (
    GENERATION_TIMEOUT_MS,
    chat_log,
    conversation_list,
    export_file,
    import_file,
    new_chat,
    new_page,
    ready,
    send,
    set_number,
)

pytestmark = pytest.mark.browser


def test_send_reload_still_there(page: Page, artifacts_dir: Path) -> None:
    ready(page)
    send(page, "Name a colour.")
    reply = chat_log(page).get_by_test_id("bot").last.inner_text()
    page.reload()
    ready(page)
    expect(chat_log(page).get_by_test_id("user")).to_have_text("Name a colour.")
    expect(chat_log(page).get_by_test_id("bot").last).to_have_text(reply.strip())
    expect(conversation_list(page)).to_contain_text("Name a colour.")
    expect(page.locator("#chat-stats")).to_contain_text("completion tokens")
    expect(page.locator("#chat-stats")).to_contain_text("· local transformers engine")  # kept
    page.screenshot(path=str(artifacts_dir / "workspace-sidebar.png"), full_page=True)


def test_two_contexts_never_share(chromium_browser, app_url: str) -> None:
    first = new_page(chromium_browser, app_url)
    second = new_page(chromium_browser, app_url)
    try:
        send(first, "Secret of context one.")
        second.reload()
        ready(second)
        expect(conversation_list(first)).to_contain_text("Secret of context one.")
        expect(conversation_list(second)).not_to_contain_text("Secret of context one.")
        expect(chat_log(second).get_by_test_id("user")).to_have_count(0)
    finally:
        first.context.close()
        second.context.close()


def test_switch_restores_system_prompt_and_parameters(page: Page) -> None:
    ready(page)
    system = page.get_by_label("System prompt")
    system.fill("You are a pirate.")
    send(page, "Say hi, pirate.", max_tokens=5)
    new_chat(page)
    expect(chat_log(page).get_by_test_id("user")).to_have_count(0)
    system.fill("You are terse.")
    send(page, "Say hi, tersely.", max_tokens=7)
    conversation_list(page).locator("label", has_text="Say hi, pirate.").click()
    expect(chat_log(page).get_by_test_id("user")).to_have_text("Say hi, pirate.")
    expect(system).to_have_value("You are a pirate.")
    expect(page.get_by_role("spinbutton", name="number input for max_tokens")).to_have_value("5")
    conversation_list(page).locator("label", has_text="Say hi, tersely.").click()
    expect(system).to_have_value("You are terse.")
    expect(page.get_by_role("spinbutton", name="number input for max_tokens")).to_have_value("7")
    # Search narrows the list; rename changes the title.
    page.locator("#conversation-search textarea, #conversation-search input").fill("pirate")
    expect(conversation_list(page).locator("label")).to_have_count(1)


def test_export_then_import_in_a_fresh_context(
    page: Page, chromium_browser, app_url: str, tmp_path: Path
) -> None:
    ready(page)
    page.get_by_label("System prompt").fill("Answer in French.")
    send(page, "Export me please.", max_tokens=6)
    path = export_file(page, "#export-one", tmp_path / "one.json")
    data = json.loads(path.read_text())
    assert data["format"] == "inference-playground.conversations"
    assert data["version"] == 1
    (exported,) = data["conversations"]
    assert exported["system_prompt"] == "Answer in French."
    assert exported["parameters"]["max_tokens"] == 6
    assert exported["messages"][0]["content"] == "Export me please."
    assert exported["messages"][1]["stats"]
    assert "token" not in json.dumps(exported["target"])

    fresh = new_page(chromium_browser, app_url)
    try:
        import_file(fresh, path)
        expect(fresh.locator("#workspace-note")).to_contain_text("Imported 1 conversation")
        expect(chat_log(fresh).get_by_test_id("user")).to_have_text("Export me please.")
        expect(fresh.get_by_label("System prompt")).to_have_value("Answer in French.")
        bot = exported["messages"][1]["content"].strip()
        expect(chat_log(fresh).get_by_test_id("bot").last).to_have_text(bot)
        again = export_file(fresh, "#export-one", tmp_path / "again.json")
        round_trip = json.loads(again.read_text())["conversations"][0]
        exported.pop("updated"), round_trip.pop("updated")
        assert round_trip == exported
    finally:
        fresh.context.close()


def test_bad_import_changes_nothing(page: Page, tmp_path: Path) -> None:
    ready(page)
    send(page, "Keep me safe.", max_tokens=4)
    before = conversation_list(page).inner_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{ this is not json")
    import_file(page, bad)
    expect(page.locator("#workspace-note")).to_contain_text("Import refused")
    expect(page.locator("#workspace-note")).to_contain_text("not JSON")
    assert conversation_list(page).inner_text() == before
    expect(chat_log(page).get_by_test_id("user")).to_have_text("Keep me safe.")
    other = tmp_path / "v2.json"
    other.write_text(json.dumps({"format": "inference-playground.conversations",
                                 "version": 2, "conversations": []}))  # fmt: skip
    import_file(page, other)
    expect(page.locator("#workspace-note")).to_contain_text("version 2")
    page.reload()
    ready(page)
    expect(conversation_list(page)).to_have_text(before)


def test_escape_stops_and_reload_marks_interrupted(page: Page) -> None:
    ready(page)
    # This prompt gets a reply well past 40 tokens from the bundled model (greedy).
    poem = "Write a short poem about the sea."
    send(page, poem, max_tokens=300, wait=False)
    bot = chat_log(page).get_by_test_id("bot").last
    expect(bot).to_have_text(re.compile(r"\S{3}"), timeout=GENERATION_TIMEOUT_MS)
    page.keyboard.press("Escape")
    time.sleep(1.0)
    stopped = bot.inner_text()
    time.sleep(2.0)
    assert bot.inner_text() == stopped  # Esc clicked Stop: the reply no longer grows
    assert "finish:" not in page.locator("#chat-stats").inner_text()  # cut, not finished

    # A reply still streaming when the page goes away is kept, marked interrupted.
    new_chat(page)
    expect(chat_log(page).get_by_test_id("user")).to_have_count(0)
    send(page, poem, max_tokens=300, wait=False)
    bot = chat_log(page).get_by_test_id("bot").last
    expect(bot).to_have_text(re.compile(r"[\s\S]{20,}"), timeout=GENERATION_TIMEOUT_MS)
    time.sleep(1.5)  # at least one save while streaming (about every second)
    assert "finish:" not in page.locator("#chat-stats").inner_text()
    page.reload()
    ready(page)
    expect(chat_log(page).get_by_test_id("user").last).to_have_text(poem)
    expect(chat_log(page).get_by_test_id("bot").last).to_contain_text("(interrupted)")
    expect(conversation_list(page).locator("label")).to_have_count(2)


def test_screenshots_dark_and_phone(chromium_browser, app_url: str, artifacts_dir: Path) -> None:
    dark = new_page(chromium_browser, app_url, color_scheme="dark")
    try:
        send(dark, "Hello in the dark.", max_tokens=5)
        dark.screenshot(path=str(artifacts_dir / "workspace-dark.png"), full_page=True)
    finally:
        dark.context.close()
    context = chromium_browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    try:
        phone.goto(app_url)
        ready(phone)
        send(phone, "Hello on a phone.", max_tokens=5)
        width = phone.evaluate("document.documentElement.scrollWidth")
        phone.screenshot(path=str(artifacts_dir / "workspace-phone.png"), full_page=True)
        assert width <= 400, width  # no sideways scrolling at 390 px
    finally:
        context.close()


def test_retry_keeps_the_earlier_reply(page: Page, artifacts_dir: Path) -> None:
    ready(page)
    page.get_by_label("seed", exact=True).fill("1")
    send(page, "Invent a word.", max_tokens=6)
    first = chat_log(page).get_by_test_id("bot").last.inner_text().strip()
    set_number(page, "temperature", "1.5")
    page.get_by_label("seed", exact=True).fill("2")
    page.get_by_role("button", name="↻ Retry").click()
    label = page.locator("#version-label")
    expect(label).to_contain_text("2/2", timeout=GENERATION_TIMEOUT_MS)
    second = chat_log(page).get_by_test_id("bot").last.inner_text().strip()
    page.screenshot(path=str(artifacts_dir / "workspace-branches.png"), full_page=True)
    page.locator("#prev-version").click()
    expect(label).to_contain_text("1/2")
    expect(chat_log(page).get_by_test_id("bot").last).to_have_text(first)
    page.reload()
    ready(page)
    expect(page.locator("#version-label")).to_contain_text("1/2")
    page.locator("#next-version").click()
    expect(chat_log(page).get_by_test_id("bot").last).to_have_text(second)


def test_reload_with_50_saved_conversations(
    page: Page, tmp_path: Path, artifacts_dir: Path
) -> None:
    from components import conversation_files as files
    from components import conversations as conv

    ready(page)
    history = []
    for turn in range(5):
        history += [
            {"role": "user", "content": f"Question {turn}: " + "tell me more. " * 20},
            {"role": "assistant", "content": "An answer with some length. " * 40},
        ]
    records = [
        conv.snapshot(
            {}, [{"role": "user", "content": f"Saved chat {n}"}, *history], now=1000.0 + n
        )
        for n in range(50)
    ]
    path = tmp_path / "fifty.json"
    path.write_text(files.export_json(records))
    started = time.perf_counter()
    page.reload()
    expect(page.locator("#chat-stop")).to_be_visible()
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    empty = (time.perf_counter() - started) * 1000
    import_file(page, path)
    expect(page.locator("#workspace-note")).to_contain_text("Imported 50 conversations")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        page.reload()
        expect(conversation_list(page).locator("label")).to_have_count(50)
        expect(chat_log(page).get_by_test_id("user").first).to_have_text("Saved chat 0")
        timings.append((time.perf_counter() - started) * 1000)
    size = page.evaluate("Object.values(localStorage).reduce((n, v) => n + v.length, 0)")
    line = (
        f"reload with 50 saved conversations ({path.stat().st_size // 1024} KiB exported, "
        f"{size // 1024} KiB in localStorage): "
        + ", ".join(f"{t:.0f} ms" for t in timings)
        + f"; the same page with none saved: {empty:.0f} ms"
    )
    (artifacts_dir / "workspace-load-50.txt").write_text(line + "\n")
    print(line)
    assert min(timings) < 20_000


def test_continue_a_reply_cut_at_its_length_limit(page: Page) -> None:
    ready(page)
    send(page, "Write a short poem about the sea.", max_tokens=5)
    expect(page.locator("#chat-stats")).to_contain_text("finish: length")
    bot = chat_log(page).get_by_test_id("bot").last
    cut = bot.inner_text().strip()
    page.locator("#chat-continue").click()
    wait_longer = "([n]) => { const b = document.querySelectorAll('#chatbot [data-testid=bot]');"
    wait_longer += " return b.length && b[b.length - 1].innerText.trim().length > n; }"
    page.wait_for_function(wait_longer, arg=[len(cut)], timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=GENERATION_TIMEOUT_MS)
    assert bot.inner_text().strip().startswith(cut)
    expect(chat_log(page).get_by_test_id("bot")).to_have_count(1)  # the same reply, longer


def test_shift_enter_adds_a_line_enter_sends(page: Page) -> None:
    ready(page)
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(chat_log(page).get_by_test_id("user")).to_have_count(0)  # nothing sent yet


def test_rename_delete_and_clear_all_with_confirmation(page: Page) -> None:
    ready(page)
    send(page, "First chat here.", max_tokens=3)
    new_chat(page)
    send(page, "Second chat here.", max_tokens=3)
    page.locator("#conversation-actions").get_by_text("This conversation").click()
    title = page.locator("#conversation-title").get_by_role("textbox")
    expect(title).to_have_value("Second chat here.")
    title.fill("Renamed by me")
    expect(title).to_have_value("Renamed by me")
    page.locator("#rename-chat").click()
    expect(conversation_list(page)).to_contain_text("Renamed by me")
    page.reload()
    ready(page)
    expect(conversation_list(page)).to_contain_text("Renamed by me")
    labels = conversation_list(page).locator("label")
    expect(labels.first).to_contain_text("Renamed by me")  # newest first
    page.locator("#conversation-actions").get_by_text("This conversation").click()
    page.locator("#delete-chat").click()
    expect(labels).to_have_count(1)
    expect(chat_log(page).get_by_test_id("user")).to_have_count(0)
    page.locator("#clear-all").click()
    page.locator("#cancel-clear").click()
    expect(labels).to_have_count(1)  # cancelled: nothing deleted
    page.locator("#clear-all").click()
    expect(page.get_by_text("saved conversation in this browser?")).to_be_visible()
    page.locator("#confirm-clear").click()
    expect(labels).to_have_count(0)
    page.reload()
    ready(page)
    expect(conversation_list(page).locator("label")).to_have_count(0)


def test_a_code_block_is_highlighted_with_a_copy_button(page: Page, tmp_path: Path) -> None:
    ready(page)
    reply = "Here:\n\n```python\nfor i in range(3):\n    print(i)\n```\n\nDone."
    record = {"id": "code1", "title": "Code", "messages": [
        {"role": "user", "content": "A Python loop, please."},
        {"role": "assistant", "content": reply},
    ]}  # fmt: skip
    path = tmp_path / "code.json"
    path.write_text(json.dumps({
        "format": "inference-playground.conversations", "version": 1, "conversations": [record]
    }))  # fmt: skip
    import_file(page, path)
    code = chat_log(page).locator("pre").first
    expect(code).to_contain_text("for i in range(3):")
    expect(code.locator("span.token, span[class]").first).to_be_visible()  # highlighted
    block = code.locator("xpath=..")  # the code block: its copy button sits beside the pre
    expect(block.locator("button").first).to_be_visible()
