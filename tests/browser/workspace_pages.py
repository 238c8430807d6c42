"""Helpers for the saved-conversations browser tests (one place for both modules)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

GENERATION_TIMEOUT_MS = 120_000


def set_number(page: Page, name: str, value: str) -> None:
    box = page.get_by_role("spinbutton", name=f"number input for {name}")
    box.fill(value)
    box.press("Tab")


def send(page: Page, text: str, *, max_tokens: int = 6, wait: bool = True) -> None:
    set_number(page, "max_tokens", str(max_tokens))
    set_number(page, "temperature", "0")
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill(text)
    box.press("Enter")
    if wait:
        expect(page.locator("#chat-stats")).to_contain_text(
            "finish:", timeout=GENERATION_TIMEOUT_MS
        )
        # The end-of-reply save lands in the browser's store and the sidebar.
        expect(conversation_list(page)).to_contain_text(text[:20])


def conversation_list(page: Page):
    return page.locator("#conversation-list")


def chat_log(page: Page):
    return page.get_by_role("log", name="chatbot conversation")


def new_chat(page: Page) -> None:
    """*New chat*, and wait until the page shows it (an empty chat) before going on: a
    message sent sooner would go out with the previous chat's state."""
    page.locator("#new-chat").click()
    expect(chat_log(page).get_by_test_id("user")).to_have_count(0)  # one update with it


def ready(page: Page) -> None:
    """The model is loaded and the page's saved work is shown (the workspace's load
    event done: its outputs would otherwise land on whatever the test did first)."""
    expect(page.locator("#backend-status")).to_contain_text("🟢")
    expect(page.locator("body[data-workspace-loaded]")).to_have_count(1)


def new_page(browser, url: str, **options) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
    page = context.new_page()
    page.goto(url)
    ready(page)
    return page


def export_file(page: Page, button: str, target: Path) -> Path:
    if not page.locator(button).is_visible():
        page.locator("#conversation-files").get_by_text("Export / import").click()
    page.locator(button).click()
    link = page.locator("#export-file a").first
    expect(link).to_be_visible()
    with page.expect_download() as info:
        link.click()
    info.value.save_as(target)
    return target


def import_file(page: Page, path: Path) -> None:
    files = page.locator("#conversation-files")
    if not page.locator("#import-button").is_visible():
        files.get_by_text("Export / import").click()
    with page.expect_file_chooser() as chooser:
        page.locator("#import-button").click()
    chooser.value.set_files(str(path))
