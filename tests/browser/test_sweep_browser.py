"""The Sweep tab in Chromium on the real app and its local model: a CSV upload fills the
variables table, a 2 rows × 3 temperatures sweep fills six result rows, the exported CSV
holds the same rows as the table and Show code gives valid Python; Stop ends a running
sweep and its streams."""

from __future__ import annotations

import csv
import io
import re
import socket
import time

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import GUARDED_API_KEY

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

    # Show code: the Python loop for this sweep, valid Python naming this app's API.
    page.locator("#sweep-show-code").get_by_text("Show code", exact=True).click()
    page.locator("#sweep-code-btn").click()
    code = page.locator("#sweep-code .cm-content")
    expect(code).to_contain_text("InferenceClient", timeout=TIMEOUT_MS)
    # The whole document from CodeMirror's state: it draws only the lines near the viewport.
    source = page.evaluate(
        """() => {
          const content = document.querySelector('#sweep-code .cm-content');
          return (content.cmTile || content.cmView).view.state.doc.toString();
        }"""
    )
    compile(source, "sweep.py", "exec")
    assert "'topic': 'a forest'" in source and "/api" in source
    assert source.rstrip().endswith('print(f"{len(results)} cells written to sweep.csv")')
    page.screenshot(path=str(artifacts_dir / "sweep-2x3.png"), full_page=True)


def test_stop_ends_a_running_sweep_and_frees_the_engine(page: Page, app_server) -> None:
    page.get_by_role("tab", name="Sweep").click()
    _fill(page, "sweep-template", "Write a very long story about {{topic}}.")
    _fill(page, "sweep-max-tokens", "1500")
    _fill(page, "sweep-temperature", "0, 0.7, 1.2")
    page.locator("#sweep-run").click()
    # A running cell has streamed some text (2 rows × 3 temperatures, 4 at once).
    page.wait_for_function(
        f"""() => {{
          const head = ({TABLE_HEAD})(), rows = ({TABLE_ROWS})();
          const [output, finish] = [head.indexOf('output'), head.indexOf('finish_reason')];
          return rows.some((cells) => cells[finish] === 'running' && cells[output] !== '');
        }}""",
        timeout=TIMEOUT_MS,
        polling=100,
    )
    page.locator("#sweep-stop").click()
    expect(page.locator("#sweep-progress")).to_contain_text("⏹ Stopped", timeout=TIMEOUT_MS)
    head = page.evaluate(TABLE_HEAD)
    finishes = [
        dict(zip(head, cells, strict=True))["finish_reason"] for cells in page.evaluate(TABLE_ROWS)
    ]
    assert len(finishes) == 6 and "stopped" in finishes and "running" not in finishes
    # Every stream the sweep had open is closed: nothing runs or waits on the engine.
    deadline = time.monotonic() + 60
    while (counts := app_server.metrics())["playground_running"] or counts["playground_waiting"]:
        assert time.monotonic() < deadline, f"streams left open after Stop: {counts}"
        time.sleep(0.1)  # polling the engine's gauges, bounded by the deadline above
    expect(page.locator("#sweep-progress")).not_to_contain_text("✅")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released: nothing listens there now


def _remote(page: Page, target: int, url: str, token: str = "") -> None:
    box = page.locator(f"#sweep-target-{target}")
    box.get_by_text("Connection", exact=True).click()
    box.get_by_label("Remote endpoint").check()
    box.get_by_label("Hub model id or endpoint URL").fill(url)
    box.get_by_label("Token", exact=True).fill(token)
    box.get_by_label("Token", exact=True).press("Tab")


def test_three_targets_a_refused_one_fails_its_own_cells_only(
    page: Page, guarded_app, artifacts_dir
) -> None:
    page.get_by_role("tab", name="Sweep").click()
    page.locator("#sweep-count").get_by_label("3").check()
    remote, refused = f"{guarded_app.url}api", f"http://127.0.0.1:{_closed_port()}"
    _remote(page, 1, remote, GUARDED_API_KEY)
    _remote(page, 2, refused)
    _fill(page, "sweep-temperature", "0")
    _fill(page, "sweep-max-tokens", "4")
    concurrency = page.locator("#sweep-concurrency input[type=number]")
    concurrency.fill("1")  # the second app takes one API request at a time
    concurrency.press("Tab")
    page.locator("#sweep-run").click()
    expect(page.locator("#sweep-progress")).to_contain_text("✅ 6/6 cells", timeout=TIMEOUT_MS)
    expect(page.locator("#sweep-progress")).to_contain_text("2 failed")
    head = page.evaluate(TABLE_HEAD)
    rows = [dict(zip(head, cells, strict=True)) for cells in page.evaluate(TABLE_ROWS)]
    by_target: dict[str, list[dict]] = {}
    for row in rows:
        by_target.setdefault(row["target"], []).append(row)
    assert sorted(by_target) == sorted(["local", remote, refused]), by_target.keys()
    for target in ("local", remote):
        assert all(r["output"] and not r["error"] for r in by_target[target]), by_target
    assert all(r["error"] and not r["output"] for r in by_target[refused]), by_target
    expect(page.locator("#sweep-summary")).to_contain_text(refused)
    page.screenshot(path=str(artifacts_dir / "sweep-three-targets.png"), full_page=True)
