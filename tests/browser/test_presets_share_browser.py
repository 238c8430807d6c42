"""Presets of one's own and share links in Chromium: a saved preset survives a reload and
sets the chat back; its YAML export loads with the bundled presets' loader; a bad preset
file changes nothing; a share link opens the same setup and conversation in a fresh
browser (never a token); a damaged link gets a message and the page still works."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from presets import load_presets
from tests.browser.workspace_pages import (
    chat_log,
    conversation_list,
    new_page,
    ready,
    send,
    set_number,
)

pytestmark = pytest.mark.browser


def number(page: Page, name: str):
    return page.get_by_role("spinbutton", name=f"number input for {name}")


def open_my_presets(page: Page) -> None:
    if not page.locator("#preset-name").is_visible():
        page.locator("#my-presets").get_by_text("My presets").click()
    expect(page.locator("#preset-name")).to_be_visible()


def choose_preset(page: Page, name: str) -> None:
    page.get_by_role("combobox", name="Preset").click()
    page.get_by_role("option", name=name, exact=True).click()


def test_a_preset_of_ones_own_survives_a_reload_and_sets_the_chat_back(
    page: Page, tmp_path: Path, artifacts_dir: Path
) -> None:
    ready(page)
    page.get_by_label("System prompt").fill("You answer in one word.")
    set_number(page, "temperature", "0")
    set_number(page, "max_tokens", "42")
    open_my_presets(page)
    page.locator("#preset-name textarea, #preset-name input").fill("One word")
    page.locator("#save-preset").click()
    expect(page.locator("#presets-note")).to_contain_text("Saved preset One word")
    page.reload()
    ready(page)
    page.get_by_label("System prompt").fill("Something else.")
    set_number(page, "max_tokens", "300")
    set_number(page, "temperature", "1.1")
    choose_preset(page, "One word")  # listed after a reload: kept in this browser
    expect(page.get_by_label("System prompt")).to_have_value("You answer in one word.")
    expect(number(page, "max_tokens")).to_have_value("42")
    expect(number(page, "temperature")).to_have_value("0")
    choose_preset(page, "creative")  # a bundled preset sets only what it names
    expect(number(page, "temperature")).to_have_value("1.1")
    expect(page.get_by_label("System prompt")).to_have_value("You answer in one word.")
    page.screenshot(path=str(artifacts_dir / "presets-mine.png"), full_page=True)

    open_my_presets(page)
    page.locator("#export-presets").click()
    link = page.locator("#presets-file a").first
    expect(link).to_be_visible()
    with page.expect_download() as info:
        link.click()
    exported = tmp_path / "presets.yaml"
    info.value.save_as(exported)
    loaded = load_presets(exported)  # the loader of presets/generation.yaml
    assert loaded["One word"].system_prompt == "You answer in one word."
    assert loaded["One word"].max_new_tokens == 42 and loaded["One word"].do_sample is False

    bad = tmp_path / "bad.yaml"
    bad.write_text("mine:\n  temperature: 9\n")
    with page.expect_file_chooser() as chooser:
        page.locator("#import-presets").click()
    chooser.value.set_files(str(bad))
    expect(page.locator("#presets-note")).to_contain_text("Import refused")
    expect(page.locator("#presets-note")).to_contain_text("Nothing was changed")
    page.get_by_role("combobox", name="Preset").click()
    expect(page.get_by_role("option", name="mine", exact=True)).to_have_count(0)
    expect(page.get_by_role("option", name="One word", exact=True)).to_have_count(1)


def test_a_share_link_opens_the_same_setup_in_a_fresh_browser(
    page: Page, chromium_browser, app_url: str, artifacts_dir: Path
) -> None:
    ready(page)
    page.get_by_label("System prompt").fill("You are a pirate.")
    send(page, "Share this, pirate.", max_tokens=4)
    page.locator("#conversation-actions").get_by_text("This conversation").click()
    page.locator("#share-link").click()
    box = page.locator("#share-url textarea, #share-url input")
    page.wait_for_function(
        "() => (document.querySelector('#share-url textarea, #share-url input')?.value || '')"
        ".includes('?setup=')"
    )
    url = box.input_value()
    assert url.startswith(app_url.rstrip("/") + "/?setup=")
    reply = chat_log(page).get_by_test_id("bot").last.inner_text().strip()

    fresh = new_page(chromium_browser, url)
    try:
        expect(chat_log(fresh).get_by_test_id("user")).to_have_text("Share this, pirate.")
        expect(chat_log(fresh).get_by_test_id("bot").last).to_have_text(reply)
        expect(fresh.get_by_label("System prompt")).to_have_value("You are a pirate.")
        expect(number(fresh, "max_tokens")).to_have_value("4")
        expect(fresh.locator("#workspace-note")).to_contain_text("Opened a shared setup")
        expect(conversation_list(fresh)).to_contain_text("Share this, pirate.")
        fresh.wait_for_function("() => !location.search.includes('setup=')")  # one-time
        fresh.screenshot(path=str(artifacts_dir / "share-opened.png"), full_page=True)
        fresh.reload()
        ready(fresh)  # a reload opens the saved copy, not a second one
        expect(conversation_list(fresh).locator("label")).to_have_count(1)
    finally:
        fresh.context.close()


def test_a_damaged_share_link_gets_a_message_and_the_page_works(
    chromium_browser, app_url: str
) -> None:
    page = new_page(chromium_browser, app_url.rstrip("/") + "/?setup=bm90IGEgc2V0dXA")
    try:
        expect(page.locator("#workspace-note")).to_contain_text("Share link not opened")
        send(page, "Still working?", max_tokens=3)
        expect(chat_log(page).get_by_test_id("bot")).to_have_count(1)
    finally:
        page.context.close()
