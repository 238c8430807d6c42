"""The text-generation tab in a real browser: prompt → Generate → output and finish reason."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

MAX_NEW_TOKENS = 12
GENERATION_TIMEOUT_MS = 120_000
PROMPT = "The capital of France is"


def test_generate_fills_output_and_finish_reason(page: Page, app_url: str) -> None:
    page.get_by_role("tab", name="Text generation").click()
    prompt = page.get_by_role("textbox", name="Prompt")
    expect(prompt).to_be_visible()
    prompt.fill(PROMPT)
    max_new_tokens = page.get_by_role("spinbutton", name="number input for max_new_tokens")
    max_new_tokens.fill(str(MAX_NEW_TOKENS))
    max_new_tokens.press("Tab")
    page.get_by_role("checkbox", name="do_sample").uncheck()  # greedy: a known answer

    page.get_by_role("button", name="Generate").click()

    # The Output textbox has no accessible name in Gradio 6.31 when it has buttons=
    # (see the report), hence its elem_id.
    output = page.locator("#tg-output textarea")
    finish = page.get_by_role("textbox", name="Finish reason")
    expect(output).to_have_value(re.compile(r"\S"), timeout=GENERATION_TIMEOUT_MS)
    expect(finish).to_have_value(re.compile(r"^length\b"), timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#tg-stats")).to_contain_text(f"{MAX_NEW_TOKENS} completion tokens")

    # The UI sends what the API sends for the same settings: the same greedy text.
    client = Client(app_url, verbose=False)
    try:
        expected = client.submit(
            PROMPT, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, api_name="/text_generation"
        ).result(timeout=GENERATION_TIMEOUT_MS / 1000)
    finally:
        client.close()
    assert output.input_value() == expected


def test_a_run_is_kept_across_a_reload_and_opens_again(page: Page, artifacts_dir) -> None:
    page.get_by_role("tab", name="Text generation").click()
    page.get_by_role("textbox", name="Prompt").fill("Keep this run: once upon a time")
    max_new_tokens = page.get_by_role("spinbutton", name="number input for max_new_tokens")
    max_new_tokens.fill("5")
    max_new_tokens.press("Tab")
    page.get_by_role("checkbox", name="do_sample").uncheck()
    page.get_by_role("button", name="Generate").click()
    finish = page.get_by_role("textbox", name="Finish reason")
    expect(finish).to_have_value(re.compile(r"^length\b"), timeout=GENERATION_TIMEOUT_MS)
    output = page.locator("#tg-output textarea").input_value()
    runs = page.locator("#tg-run-list")
    page.locator("#tg-runs").get_by_text("Saved runs").click()
    expect(runs).to_contain_text("Keep this run: once upon a time")  # saved when it ended

    page.reload()
    page.get_by_role("tab", name="Text generation").click()
    page.locator("#tg-runs").get_by_text("Saved runs").click()
    expect(runs.locator("label")).to_have_count(1)
    expect(page.locator("#tg-output textarea")).to_have_value("")
    runs.locator("label").first.click()
    expect(page.get_by_role("textbox", name="Prompt")).to_have_value(
        "Keep this run: once upon a time"
    )
    expect(page.locator("#tg-output textarea")).to_have_value(output)
    expect(max_new_tokens).to_have_value("5")
    expect(page.locator("#tg-stats")).to_contain_text("5 completion tokens")
    expect(page.locator("#tg-inspector")).to_contain_text("Probability")
    page.screenshot(path=str(artifacts_dir / "text-generation-runs.png"), full_page=True)
    page.locator("#tg-delete-run").click()
    expect(runs.locator("label")).to_have_count(0)
