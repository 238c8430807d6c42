"""Blind votes and the leaderboard (components/leaderboard.py): Bradley–Terry ratings on
known vote sets, vote counts, merging viewers' votes, the CSV/JSON files and refused
imports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from components import leaderboard as lb


def _votes(pairs: list[tuple[list[str], str]]) -> list[dict]:
    return [
        lb.new_vote(targets, outcome, now=1000.0 + i) for i, (targets, outcome) in enumerate(pairs)
    ]


def test_a_beating_b_8_of_10_is_rated_higher_with_its_vote_counts() -> None:
    records = _votes([(["a", "b"], "A")] * 8 + [(["a", "b"], "B")] * 2)
    rows = lb.standings(records)
    assert [row.target for row in rows] == ["a", "b"]
    a, b = rows
    assert a.rating > lb.BASE_RATING > b.rating
    assert (a.votes, a.wins, a.ties, a.losses) == (10, 8, 0, 2)
    assert (b.votes, b.wins, b.ties, b.losses) == (10, 2, 0, 8)
    # 8:2 is a 4:1 odds ratio; the prior pulls it in a little, never past it.
    gap = a.rating - b.rating
    assert 150 < gap < 400 * 0.6021 + 1  # 400·log10(4) ≈ 241


def test_pane_order_does_not_matter_only_who_was_voted_best() -> None:
    records = _votes([(["a", "b"], "A")] * 4 + [(["b", "a"], "B")] * 4 + [(["b", "a"], "A")])
    a, b = lb.standings(records)
    assert (a.target, a.wins, a.losses) == ("a", 8, 1)
    assert (b.target, b.wins, b.losses) == ("b", 1, 8)


def test_ties_and_all_bad_rate_targets_equal() -> None:
    records = _votes([(["a", "b"], "tie")] * 3 + [(["b", "a"], "bad")] * 2)
    a, b = lb.standings(records)
    assert a.rating == pytest.approx(b.rating) == pytest.approx(lb.BASE_RATING)
    assert (a.votes, a.ties, b.ties) == (5, 5, 5)


def test_an_unbeaten_target_gets_a_finite_rating_and_order_is_transitive() -> None:
    records = _votes([(["a", "b"], "A")] * 3 + [(["b", "c"], "A")] * 3)
    rows = lb.standings(records)
    assert [row.target for row in rows] == ["a", "b", "c"]
    assert all(abs(row.rating) < 1e4 for row in rows)


def test_three_panes_best_beats_both_others() -> None:
    records = _votes([(["a", "b", "c"], "C")] * 3 + [(["a", "b", "c"], "tie")])
    rows = {row.target: row for row in lb.standings(records)}
    assert rows["c"].rating > rows["a"].rating == pytest.approx(rows["b"].rating)
    assert (rows["c"].wins, rows["c"].ties, rows["a"].losses) == (3, 1, 3)


def test_table_rows_rank_and_round() -> None:
    records = _votes([(["a", "b"], "A")] * 8 + [(["a", "b"], "B")] * 2)
    rows = lb.table(records)
    assert [row[:2] for row in rows] == [[1, "a"], [2, "b"]]
    assert rows[0][3] == 10 and isinstance(rows[0][2], int)


def test_tally_counts_a_sessions_votes() -> None:
    assert lb.tally([]) == "No votes in this session yet."
    records = _votes(
        [(["a", "b"], "A"), (["b", "a"], "A"), (["a", "b"], "tie"), (["a", "b"], "bad")]
    )
    line = lb.tally(records)
    assert "4 votes" in line and "`a` 1" in line and "`b` 1" in line
    assert "ties 1" in line and "all bad 1" in line


def test_reveal_names_every_pane_after_the_vote() -> None:
    line = lb.reveal(["local model", "http://127.0.0.1:9/v1"], "B")
    assert "B better" in line
    assert "**A** was `local model`" in line and "**B** was `http://127.0.0.1:9/v1`" in line
    assert lb.outcome_label("C", 3) == "C best" and lb.outcome_label("bad", 4) == "All bad"


def test_merge_dedupes_by_id_and_keeps_time_order() -> None:
    first = _votes([(["a", "b"], "A"), (["a", "b"], "B")])
    other = _votes([(["c", "d"], "tie")])
    other[0]["time"] = 500.0  # an earlier vote from another viewer
    store, added = lb.merge({"votes": first}, first + other)
    assert added == 1
    assert [v["id"] for v in lb.votes(store)] == [other[0]["id"], first[0]["id"], first[1]["id"]]
    again, added = lb.merge(store, other + first)
    assert added == 0 and again == store


def test_votes_ignores_broken_records_in_the_browser_store() -> None:
    good = _votes([(["a", "b"], "A")])
    store = {"votes": [*good, {"id": "x"}, "junk", {**good[0], "outcome": "D"}]}
    assert lb.votes(store) == good
    assert lb.votes(None) == [] and lb.votes({"votes": "no"}) == []


def test_json_round_trip() -> None:
    records = _votes([(["a", "b"], "A"), (["a", "b", "c"], "tie"), (["x", "y", "z", "w"], "D")])
    text = lb.export_json(records)
    assert json.loads(text)["format"] == lb.FORMAT
    assert lb.parse_import(text.encode()) == records


def test_csv_has_one_row_per_vote_with_the_best_target() -> None:
    records = _votes([(["a", "b"], "B"), (["a", "b, c"], "tie")])
    rows = list(csv.DictReader(io.StringIO(lb.export_csv(records))))
    assert [row["id"] for row in rows] == [v["id"] for v in records]
    assert rows[0]["targets"] == "a | b" and rows[0]["best"] == "b" and rows[0]["outcome"] == "B"
    assert rows[1]["targets"] == "a | b, c" and rows[1]["best"] == ""
    assert float(rows[0]["time"]) == records[0]["time"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"{not json", "not valid JSON (line 1"),
        (b"[]", "Not a votes file"),
        (b'{"format": "inference-playground.conversations", "version": 1}', "Not a votes file"),
        (
            b'{"format": "inference-playground.votes", "version": 2, "votes": []}',
            "at `version`",
        ),
        (b'{"format": "inference-playground.votes", "version": 1, "votes": []}', "no votes"),
        (
            b'{"format": "inference-playground.votes", "version": 1, "votes": '
            b'[{"id": "v", "time": 1, "targets": ["a"], "outcome": "A"}]}',
            "at `votes.0.targets`",
        ),
        (
            b'{"format": "inference-playground.votes", "version": 1, "votes": '
            b'[{"id": "v", "time": 1, "targets": ["a", "b"], "outcome": "C"}]}',
            "names a pane that vote does not have",
        ),
        (
            b'{"format": "inference-playground.votes", "version": 1, "votes": '
            b'[{"id": "v", "time": 1, "targets": ["a", "b"], "outcome": "A", "token": "x"}]}',
            "at `votes.0.token`",
        ),
    ],
)
def test_bad_import_files_say_why(raw: bytes, message: str) -> None:
    with pytest.raises(lb.ImportRefused) as info:
        lb.parse_import(raw)
    assert message in str(info.value)


def test_an_oversized_import_is_refused_before_parsing() -> None:
    with pytest.raises(lb.ImportRefused, match="limited to 5 MB"):
        lb.parse_import(b" " * (lb.MAX_IMPORT_BYTES + 1))
