"""The Sweep tab in Chromium on the real app and its local model: a CSV upload fills the
variables table, a 2 rows × 3 temperatures sweep fills six result rows, and the exported
CSV holds the same rows as the table."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

TIMEOUT_MS = 180_000
TABLE_ROWS = """() => [...document.querySelectorAll('#sweep-results [role=row].virtual-row')]
  .map((row) => [...row.querySelectorAll('[role=gridcell]')].map((c) => c.innerText.trim()))"""
TABLE_HEAD = """() => [...document.querySelectorAll('#sweep-results thead th')]
  .map((th) => th.innerText.trim())"""


def _words(text: str) -> str:
    return " ".join(text.split())


def _fill(page: Page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} textarea")
    box.fill(value)
    box.press("Tab")


def test_a_two_by_three_sweep_fills_six_rows_and_exports_them(
    page: Page, artifacts_dir, tmp_path
) -> None:
    page.get_by_role("tab", name="Sweep").click()
    variables = tmp_path / "topics.csv"
    variables.write_text("topic\nthe moon\na forest\n")
    page.locator("#sweep-csv input[type=file]").set_input_files(str(variables))
    expect(page.locator("#sweep-variables")).to_contain_text("a forest")
    _fill(page, "sweep-template", "Name one color for {{topic}}.")
    _fill(page, "sweep-temperature", "0, 0.7, 1.2")
    _fill(page, "sweep-max-tokens", "4")
    page.locator("#sweep-run").click()
    expect(page.locator("#sweep-progress")).to_contain_text("✅ 6/6 cells", timeout=TIMEOUT_MS)
    head = page.evaluate(TABLE_HEAD)
    rows = [dict(zip(head, cells, strict=True)) for cells in page.evaluate(TABLE_ROWS)]
    assert len(rows) == 6, rows
    assert [(r["row"], r["topic"], float(r["temperature"])) for r in rows] == [
        (row, topic, t)
        for row, topic in (("1", "the moon"), ("2", "a forest"))
        for t in (0.0, 0.7, 1.2)
    ]
    assert all(r["target"] == "local" and r["error"] == "" and r["output"] for r in rows)
    assert all(r["finish_reason"] in ("length", "stop") for r in rows)
    assert all(1 <= int(r["tokens"]) <= 4 for r in rows)
    expect(page.locator("#sweep-summary")).to_contain_text("temperature")

    page.locator("#sweep-export-csv").click()
    link = page.locator("#sweep-download a").first
    expect(link).to_have_attribute("href", re.compile(r"sweep-results\.csv$"))
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    exported = list(csv.DictReader(io.StringIO(response.text())))
    assert len(exported) == 6
    for shown, saved in zip(rows, exported, strict=True):
        for column in ("cell", "row", "topic", "target", "tokens", "finish_reason"):
            assert shown[column] == saved[column], column
        assert float(shown["temperature"]) == float(saved["temperature"])
        assert _words(shown["output"]) == _words(saved["output"])
    page.screenshot(path=str(artifacts_dir / "sweep-2x3.png"), full_page=True)
