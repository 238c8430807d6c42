"""Blind mode of the Compare tab in Chromium: with the local model and a second app's API as
the two panes, the targets are nowhere in the page's text until the viewer votes; the vote
reveals them, counts in this session's tally and the leaderboard, and the leaderboard (kept
in the browser) survives a reload. Importing votes merges them (deduped by id) and a bad
file changes nothing and says why."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from components import leaderboard as lb
from tests.conftest import GUARDED_API_KEY

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


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


def _blind(page: Page) -> None:
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-blind input[type=checkbox]").check()
    expect(page.locator("#compare-blind-section")).to_be_visible()


def _import(page: Page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#votes-import").click()
    chooser.value.set_files(str(path))


def _ranked_first(board, winner: str, loser: str) -> None:
    expect(board).to_contain_text(winner)
    expect(board).to_contain_text(loser)
    text = board.inner_text()
    assert text.index(winner) < text.index(loser), text


def _page_text(page: Page) -> str:
    return page.locator("body").inner_text()


def test_blind_vote_reveals_targets_and_the_leaderboard_survives_reload(
    page: Page, guarded_app, artifacts_dir
) -> None:
    remote = f"{guarded_app.url}api"
    page.get_by_role("tab", name="Compare").click()
    _target(page, 1, remote, GUARDED_API_KEY)
    for pane in (0, 1):
        _max_tokens(page, pane, 16)
    _blind(page)
    for pane in (0, 1):  # the panes' targets and parameters are hidden
        expect(page.locator(f"#compare-setup-{pane}")).to_be_hidden()
    box = page.locator("#compare-input textarea")
    box.fill("Name a colour.")
    box.press("Enter")

    a_better = page.get_by_role("button", name="A better")
    expect(a_better).to_be_visible(timeout=TIMEOUT_MS)
    for pane in (0, 1):
        expect(page.locator(f"#compare-chat-{pane} [data-testid=bot]").last).not_to_be_empty()
        expect(page.locator(f"#compare-stats-{pane}")).to_contain_text("done")
    for label in ("B better", "Tie", "Both bad"):
        expect(page.get_by_role("button", name=label)).to_be_visible()
    before = _page_text(page)
    assert remote not in before and guarded_app.url.rstrip("/") not in before
    assert "A was" not in before and "finish:" not in before  # no stats line names it yet
    expect(page.locator("#compare-leaderboard")).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "compare-blind-before-vote.png"), full_page=True)

    a_better.click()
    reveal = page.locator("#compare-reveal")
    expect(reveal).to_contain_text("A was")
    expect(reveal).to_contain_text(remote)
    expect(reveal).to_contain_text("local model")
    expect(a_better).to_be_hidden()
    winner = re.search(r"A was (.+?), B was", reveal.inner_text()).group(1).strip()
    assert winner in ("local model", remote)
    expect(page.locator("#compare-tally")).to_contain_text("This session: 1 vote")
    loser = remote if winner == "local model" else "local model"
    _ranked_first(page.locator("#compare-leaderboard"), winner, loser)  # the winner first
    for pane in (0, 1):  # the real stats lines come back with the reveal
        expect(page.locator(f"#compare-stats-{pane}")).to_contain_text("completion tokens")
    page.screenshot(path=str(artifacts_dir / "compare-blind-voted.png"), full_page=True)

    page.reload()
    _blind(page)
    _ranked_first(page.locator("#compare-leaderboard"), winner, loser)
    expect(page.locator("#compare-board-note")).to_contain_text("1 vote in this browser")
    # A new session has its own tally; the browser's leaderboard is the one kept.
    expect(page.locator("#compare-tally")).to_contain_text("No votes in this session yet")

    # A round stopped before its answers are in gets no vote, and says so.
    box = page.locator("#compare-input textarea")
    box.fill("Write a long story about a lighthouse.")
    box.press("Enter")
    expect(page.locator("#compare-stats-0")).to_contain_text("answering", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Stop all").click()
    for pane in (0, 1):
        expect(page.locator(f"#compare-stats-{pane}")).to_contain_text("no vote this round")
    expect(page.get_by_role("button", name="A better")).to_be_hidden()


def test_importing_votes_merges_them_and_a_bad_file_changes_nothing(
    page: Page, tmp_path, artifacts_dir
) -> None:
    _blind(page)
    votes = [lb.new_vote(["viewer-x", "viewer-y"], "A", now=1000.0 + i) for i in range(3)]
    good = tmp_path / "votes.json"
    good.write_text(lb.export_json(votes))
    _import(page, good)
    note = page.locator("#votes-note")
    expect(note).to_contain_text("Imported 3 votes: 3 new")
    board = page.locator("#compare-leaderboard")
    _ranked_first(board, "viewer-x", "viewer-y")
    expect(page.locator("#compare-board-note")).to_contain_text("3 votes in this browser")

    more = [*votes[:2], lb.new_vote(["viewer-x", "viewer-z"], "tie", now=2000.0)]
    second = tmp_path / "other-viewer.json"
    second.write_text(lb.export_json(more))
    _import(page, second)
    expect(note).to_contain_text("Imported 3 votes: 1 new, 2 already here")
    expect(page.locator("#compare-board-note")).to_contain_text("4 votes in this browser")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": lb.FORMAT, "version": 1, "votes": [{"id": "x"}]}))
    _import(page, bad)
    expect(note).to_contain_text("Import refused")
    expect(note).to_contain_text("Nothing was changed")
    expect(page.locator("#compare-board-note")).to_contain_text("4 votes in this browser")
    expect(board).to_contain_text("viewer-z")
    page.screenshot(path=str(artifacts_dir / "compare-blind-import.png"), full_page=True)

    exported = lb.parse_import(_export(page, "Export JSON", tmp_path / "out.json").read_bytes())
    assert {v["id"] for v in exported} == {v["id"] for v in [*votes, *more]}
    rows = _export(page, "Export CSV", tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == ",".join(lb.CSV_COLUMNS) and len(rows) == 1 + 4


def _export(page: Page, button: str, target):
    page.get_by_role("button", name=button).click()
    link = page.locator("#votes-file a").first
    expect(link).to_have_attribute("href", re.compile(target.suffix + "$"))
    with page.expect_download() as info:
        link.click()
    info.value.save_as(target)
    return target
