"""Text-generation runs kept in the browser: what a run keeps (never a token), newest
first, the limits, and entries of the wrong shape left out."""

from __future__ import annotations

from components import runs
from components.connection import REMOTE, Connection

CONN = Connection(REMOTE, "http://127.0.0.1:9", token="hf_SECRET")


def _run(prompt: str, now: float, inspector: str = "<table/>") -> dict:
    params = {"max_new_tokens": 5, "do_sample": False}
    return runs.record(prompt, params, CONN, "out", "length", "5 tokens", inspector, now=now)


def test_a_run_keeps_prompt_parameters_target_output_and_details_never_the_token():
    run = _run("Once upon", 1.0)
    assert run["prompt"] == "Once upon" and run["output"] == "out"
    assert run["parameters"] == {"max_new_tokens": 5, "do_sample": False}
    assert run["target"] == {"mode": REMOTE, "endpoint": "http://127.0.0.1:9",
                             "provider": "auto", "model": ""}  # fmt: skip
    assert (run["finish"], run["stats"], run["inspector"]) == ("length", "5 tokens", "<table/>")
    assert "hf_SECRET" not in repr(run)


def test_runs_are_listed_newest_first_and_found_by_id():
    store = runs.add(runs.add({}, _run("first", 1.0)), _run("second", 2.0))
    assert [label for label, _ in runs.choices(store)] == [
        "second — http://127.0.0.1:9 · length",
        "first — http://127.0.0.1:9 · length",
    ]
    first_id = runs.choices(store)[1][1]
    assert runs.find(store, first_id)["prompt"] == "first"
    assert [r["prompt"] for r in runs.runs(runs.remove(store, first_id))] == ["second"]


def test_the_oldest_go_past_the_limit_and_a_huge_inspector_is_not_kept():
    store: dict = {}
    for i in range(runs.MAX_RUNS + 5):
        store = runs.add(store, _run(f"p{i}", float(i)))
    kept = runs.runs(store)
    assert len(kept) == runs.MAX_RUNS and kept[-1]["prompt"] == "p5"
    big = _run("big", 0.0, inspector="x" * (runs.MAX_INSPECTOR_CHARS + 1))
    assert big["inspector"] == "" and big["output"] == "out"


def test_entries_of_the_wrong_shape_are_left_out():
    store = {"runs": ["text", {"id": "x"}, {"prompt": "no id"}, _run("good", 1.0)]}
    assert [r["prompt"] for r in runs.runs(store)] == ["good"]
    assert runs.runs(None) == [] and runs.runs({"runs": None}) == []
