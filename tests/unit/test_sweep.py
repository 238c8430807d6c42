"""The Sweep tab's plain-Python parts: grid expansion (count and order), template filling,
refusals before anything runs (a missing variable naming it and its row, the limits, bad
parameter lists and checks), the checks, the pass-rate summary, the CSV / JSON export, the
thread pool (bounded concurrency, a failing target alone, Stop closing every stream) and
the Show-code loop (valid Python that really runs the sweep against a fake server)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from huggingface_hub import (
    ChatCompletionStreamOutput,
    ChatCompletionStreamOutputChoice,
    ChatCompletionStreamOutputDelta,
    ChatCompletionStreamOutputUsage,
)

from backends.errors import UnavailableError
from components.snippets import Target
from components.sweep_code import python_loop
from components.sweep_grid import (
    MAX_CELLS,
    SweepError,
    check_concurrency,
    expand,
    fill,
    parse_values,
    rows_from_csv,
    template_variables,
)
from components.sweep_inputs import plan, rows_of_grid, target_label, unique
from components.sweep_results import Checks, pass_rates, to_csv, to_json
from components.sweep_run import run_sweep

TEMPLATE = "Write a {{style}} about {{ topic }}."
ROWS = [{"topic": "the sea", "style": "haiku"}, {"topic": "a cat", "style": "limerick"}]


def _chunk(content=None, finish=None, usage=None) -> ChatCompletionStreamOutput:
    choices = []
    if content is not None or finish is not None:
        delta = ChatCompletionStreamOutputDelta(role="assistant", content=content)
        choices = [ChatCompletionStreamOutputChoice(delta=delta, index=0, finish_reason=finish)]
    return ChatCompletionStreamOutput(
        choices=choices, created=0, id="1", model="fake", system_fingerprint="", usage=usage
    )


class FakeBackend:
    """Answers each chat with ``reply`` (one chunk per word), then usage; records calls and
    how many streams were open at once. ``gate``: every stream waits on it before its
    first chunk (to hold cells running)."""

    name = "fake"

    def __init__(self, reply: str = "hello there world", gate: threading.Event | None = None):
        self.reply, self.gate = reply, gate
        self.calls: list[tuple[list, dict]] = []
        self.open = self.most_open = 0
        self.closed = 0
        self.lock = threading.Lock()

    def chat_completion(self, messages, *, stream=False, **params):
        assert stream
        with self.lock:
            self.calls.append((messages, params))
        return self._chunks()

    def _chunks(self):
        with self.lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            if self.gate is not None:
                assert self.gate.wait(timeout=10)
            words = self.reply.split(" ")
            for i, word in enumerate(words):
                last = i == len(words) - 1
                yield _chunk(word if i == 0 else " " + word, "stop" if last else None)
            usage = ChatCompletionStreamOutputUsage(
                completion_tokens=len(words), prompt_tokens=5, total_tokens=5 + len(words)
            )
            yield _chunk(usage=usage)
        finally:
            with self.lock:
                self.open -= 1
                self.closed += 1


def _cells(targets=("local",), temperatures=(0.0, 0.7, 1.2), **kwargs):
    return expand(TEMPLATE, ROWS, list(targets), temperatures=list(temperatures),
                  max_tokens=kwargs.pop("max_tokens", [4]), top_ps=[1.0], **kwargs)  # fmt: skip


# -- template and grid ----------------------------------------------------------------


def test_template_variables_and_fill() -> None:
    assert template_variables("{{a}} {{ b }} {{a}} {c}") == ["a", "b"]
    assert fill(TEMPLATE, ROWS[0]) == "Write a haiku about the sea."
    assert fill("{{n}} items", {"n": 3.0}) == "3 items"


def test_grid_counts_and_order_rows_then_targets_then_parameters() -> None:
    cells = expand(TEMPLATE, ROWS, ["local", "remote"], temperatures=[0.0, 0.7],
                   max_tokens=[4, 8], top_ps=[1.0], system_prompt="Be brief.")  # fmt: skip
    assert len(cells) == 2 * 2 * 2 * 2
    order = [(c.row, c.target_label, c.params["temperature"], c.params["max_tokens"])
             for c in cells]  # fmt: skip
    assert order[:5] == [(1, "local", 0.0, 4), (1, "local", 0.0, 8), (1, "local", 0.7, 4),
                         (1, "local", 0.7, 8), (1, "remote", 0.0, 4)]  # fmt: skip
    assert [c.index for c in cells] == list(range(1, 17))
    first = cells[0]
    assert first.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Write a haiku about the sea."},
    ]
    assert first.keywords == {"max_tokens": 4, "temperature": 0.0}  # top_p 1 = off, unset
    assert cells[-1].messages[-1]["content"] == "Write a limerick about a cat."


def test_a_template_without_variables_is_one_prompt() -> None:
    cells = expand("Say hi.", [], ["local"], temperatures=[0.0], max_tokens=[4], top_ps=[0.9])
    assert len(cells) == 1 and cells[0].keywords["top_p"] == 0.9


def test_a_missing_variable_names_it_and_the_row() -> None:
    with pytest.raises(SweepError, match=r"Row 2 has no value for \{\{style\}\}"):
        expand(TEMPLATE, [ROWS[0], {"topic": "x", "style": ""}], ["local"],
               temperatures=[0.0], max_tokens=[4], top_ps=[1.0])  # fmt: skip
    with pytest.raises(SweepError, match=r"Row 1 has no value for \{\{style\}\}: .*no column"):
        expand(TEMPLATE, [{"topic": "x"}], ["local"], temperatures=[0.0], max_tokens=[4],
               top_ps=[1.0])  # fmt: skip
    with pytest.raises(SweepError, match=r"uses \{\{style\}\}, \{\{topic\}\} but .* no rows"):
        expand(TEMPLATE, [], ["local"], temperatures=[0.0], max_tokens=[4], top_ps=[1.0])


def test_past_the_limits_is_refused_before_anything_runs() -> None:
    rows = [{"topic": str(i), "style": "poem"} for i in range(30)]
    with pytest.raises(SweepError) as info:
        expand(TEMPLATE, rows, ["a", "b"], temperatures=[0.0, 0.5, 1.0, 1.5], max_tokens=[4],
               top_ps=[1.0])  # fmt: skip
    assert str(info.value).startswith("This sweep has 240 cells (30 rows × 2 targets × 4 ")
    assert f"the limit is {MAX_CELLS}" in str(info.value)
    with pytest.raises(SweepError, match="1 to 4 targets"):
        expand("x", [], ["a"] * 5, temperatures=[0.0], max_tokens=[4], top_ps=[1.0])
    with pytest.raises(SweepError, match="concurrency` must be 1 to 8"):
        check_concurrency(9)
    assert check_concurrency("3") == 3


def test_parameter_lists() -> None:
    assert parse_values("0, 0.7,1.2", "temperature", float, 0, 2) == [0.0, 0.7, 1.2]
    assert parse_values(2, "max_tokens", int, 1, 10) == [2]
    assert parse_values("4, 4, 8", "max_tokens", int, 1, 10) == [4, 8]
    for bad, reason in (("0, hot", "'hot' is not a number"), ("3", "out of range"),
                        ("", "at least one value"), ("nan", "out of range"),
                        (",".join(["1"] * 9), "9 values; the limit is 8")):  # fmt: skip
        with pytest.raises(SweepError, match=reason):
            parse_values(bad, "temperature", float, 0, 2)
    with pytest.raises(SweepError, match="not a whole number"):
        parse_values("1.5", "max_tokens", int, 1, 10)


def test_rows_from_csv_and_grid() -> None:
    rows = rows_from_csv("topic,style\nthe sea,haiku\n\na cat,limerick\n")
    assert rows == ROWS
    assert rows_from_csv("  ") == []
    import pandas as pd

    grid = pd.DataFrame({"topic": ["the sea", ""], "style": ["haiku", ""]})
    assert rows_of_grid(grid) == [ROWS[0]]  # the blank row is left out


def test_plan_from_raw_widget_values_and_labels() -> None:
    from components.connection import LOCAL, REMOTE, Connection

    conns = [Connection(LOCAL), Connection(REMOTE, "http://h:1/v1", model="m"), Connection()]
    assert unique([target_label(c) for c in conns]) == ["local", "http://h:1/v1 · m", "local (2)"]
    cells = plan(TEMPLATE, ROWS, conns, temperature="0, 1", max_tokens="4", top_p="1",
                 seed=7, system_prompt="")  # fmt: skip
    assert len(cells) == 12 and cells[0].keywords == {"max_tokens": 4, "temperature": 0.0,
                                                      "seed": 7}  # fmt: skip


# -- checks and summary ---------------------------------------------------------------


def test_checks() -> None:
    schema = json.dumps({"type": "object", "required": ["a"]})
    compiled = Checks(contains="ok", regex=r"\d+", json_schema=schema, max_ms=100).compiled()
    assert compiled.evaluate('{"a": "ok 1"}', 50) == {
        "contains": True, "regex": True, "schema": True, "latency": True}  # fmt: skip
    assert compiled.evaluate('{"b": 1}', 150) == {
        "contains": False, "regex": True, "schema": False, "latency": False}  # fmt: skip
    assert Checks(json_valid=True).compiled().evaluate("not json", 1) == {"json": False}
    assert Checks(json_valid=True).compiled().evaluate("[1]", 1) == {"json": True}
    assert Checks().compiled().evaluate("anything", 1) == {}
    with pytest.raises(SweepError, match="regex check does not compile"):
        Checks(regex="(").compiled()
    with pytest.raises(SweepError, match="schema is not valid JSON"):
        Checks(json_schema="{").compiled()
    with pytest.raises(SweepError, match="not a valid schema"):
        Checks(json_schema='{"type": 5}').compiled()


def test_a_schema_check_without_jsonschema_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # not installed
    with pytest.raises(SweepError, match="needs the jsonschema package") as info:
        Checks(json_schema='{"type": "object"}').compiled()
    assert "pip install jsonschema" in info.value.user_message()
    assert Checks(json_valid=True).compiled().evaluate("{}", 1) == {"json": True}


def _records(cells, outputs, errors=None):
    records = []
    for i, (cell, output) in enumerate(zip(cells, outputs, strict=True)):
        error = (errors or {}).get(i, "")
        records.append({"cell": cell.index, "row": cell.row, "variables": cell.variables,
                        "target": cell.target_label, **cell.params, "output": output,
                        "tokens": 3, "ttft_ms": 10.0, "total_ms": 40.0, "tok_s": 50.0,
                        "finish_reason": "stop", "error": error,
                        "checks": {"contains": "sea" in output},
                        "passed": not error and "sea" in output})  # fmt: skip
    return records


def test_pass_rates_per_target_and_parameter_value() -> None:
    cells = _cells(targets=("local", "remote"), temperatures=(0.0, 1.0))
    outputs = ["sea" if c.params["temperature"] == 0 else "land" for c in cells]
    rates = pass_rates(_records(cells, outputs, errors={0: "boom"}))
    assert ["target", "local", 4, 1, 25.0] in rates
    assert ["target", "remote", 4, 2, 50.0] in rates
    assert ["temperature", 0.0, 4, 3, 75.0] in rates
    assert ["temperature", 1.0, 4, 0, 0.0] in rates
    assert not [r for r in rates if r[0] in ("max_tokens", "top_p")]  # one value each


def test_csv_and_json_export_round_trip() -> None:
    cells = _cells()
    records = _records(cells, ['a, "quoted"\nline', *["x"] * (len(cells) - 1)])
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert len(rows) == len(cells) == 6
    assert rows[0]["output"] == 'a, "quoted"\nline'
    assert rows[0]["topic"] == "the sea" and rows[0]["style"] == "haiku"
    assert [r["temperature"] for r in rows[:3]] == ["0.0", "0.7", "1.2"]
    assert rows[0]["checks"] == "❌ contains" and rows[0]["passed"] == "False"
    assert json.loads(to_json(records)) == records


# -- running --------------------------------------------------------------------------


def test_every_cell_runs_with_bounded_concurrency_and_is_measured() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    cells = _cells(temperatures=(0.0, 0.5, 1.0, 1.5))  # 8 cells
    seen_running = 0
    for progress in run_sweep(cells, [backend], concurrency=3, refresh_s=0.01):
        seen_running = max(seen_running, progress.running)
        if backend.open == 3:
            gate.set()  # three streams open at once, no more: let them finish
        final = progress
    assert seen_running == 3 and backend.most_open == 3 and final.max_running == 3
    assert final.done == 8 and final.failed == 0 and len(backend.calls) == 8
    record = final.records[0]
    assert record["output"] == "hello there world" and record["tokens"] == 3
    assert record["finish_reason"] == "stop" and record["error"] == ""
    assert record["ttft_ms"] >= 0 and record["total_ms"] >= record["ttft_ms"]
    assert final.line(finished=True).startswith("✅ 8/8 cells")


def test_a_failing_target_fills_its_own_cells_and_the_others_go_on() -> None:
    class Broken(FakeBackend):
        def _chunks(self):
            yield _chunk("partial")
            raise UnavailableError("Could not connect to http://127.0.0.1:9", hint="Is it up?")

    cells = _cells(targets=("good", "bad", "none"), temperatures=(0.0,))
    missing = UnavailableError("No remote endpoint set.")
    final = list(run_sweep(cells, [FakeBackend(), Broken(), missing], refresh_s=0.01))[-1]
    by_target = {}
    for record in final.records:
        by_target.setdefault(record["target"], []).append(record)
    assert all(r["error"] == "" and r["output"] for r in by_target["good"])
    assert all("Could not connect" in r["error"] for r in by_target["bad"])
    assert by_target["bad"][0]["output"] == "partial"
    assert all(r["error"] == "No remote endpoint set." for r in by_target["none"])
    assert final.done == 6 and final.failed == 4


def test_checks_are_applied_to_each_cell() -> None:
    cells = _cells(temperatures=(0.0,))
    checks = Checks(contains="world", regex="^x").compiled()
    final = list(run_sweep(cells, [FakeBackend()], checks=checks, refresh_s=0.01))[-1]
    assert final.records[0]["checks"] == {"contains": True, "regex": False}
    assert final.records[0]["passed"] is False


def test_stop_closes_every_open_stream_and_runs_no_more_cells() -> None:
    gate = threading.Event()  # never set: every cell waits for its first token
    backend = FakeBackend(gate=gate)
    cells = _cells(temperatures=(0.0, 0.5, 1.0, 1.5))
    sweep = run_sweep(cells, [backend], concurrency=2, refresh_s=0.01)
    for progress in sweep:
        if progress.running == 2:
            break
    sweep.close()  # Stop
    gate.set()
    deadline = threading.Event()
    for _ in range(200):
        if backend.closed == 2:
            break
        deadline.wait(0.05)
    assert backend.closed == 2 and backend.open == 0
    assert len(backend.calls) == 2  # the queued cells never started


# -- Show code ------------------------------------------------------------------------


class _ChatServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that streams "ok" and records bodies."""

    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append({"path": self.path, **body})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in (
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}}]},
            {"choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]},
        ):
            event = {"id": "1", "created": 0, "model": "m", "system_fingerprint": "",
                     "object": "chat.completion.chunk", **piece}  # fmt: skip
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args) -> None:
        pass


def test_show_code_loop_is_valid_python_and_reproduces_the_sweep(tmp_path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        targets = [Target("local", base_url=f"{base}/api"), Target("url", model="m",
                   base_url=f"{base}/v1")]  # fmt: skip
        cells = _cells(targets=("local", "remote"), system_prompt="Be 'brief'.\n")
        code = python_loop(cells, targets, template=TEMPLATE, system_prompt="Be 'brief'.\n")
        compile(code, "sweep.py", "exec")
        script = tmp_path / "sweep.py"
        script.write_text(code)
        env = {"PATH": "", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "HF_HUB_OFFLINE": "0"}
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
    assert "12 cells written to sweep.csv" in done.stdout
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [(r["row"], r["target"], r["temperature"]) for r in rows[:4]] == [
        ("1", "local", "0.0"), ("1", "local", "0.7"), ("1", "local", "1.2"),
        ("1", f"{base}/v1", "0.0")]  # fmt: skip
    assert all(r["output"] == "ok" and r["error"] == "" for r in rows)
    bodies = _ChatServer.bodies
    assert len(bodies) == 12
    assert bodies[0]["path"] == "/api/v1/chat/completions"
    assert bodies[0]["messages"][-1]["content"] == "Write a haiku about the sea."
    assert bodies[0]["messages"][0]["content"] == "Be 'brief'.\n"
    assert bodies[0]["max_tokens"] == 4 and bodies[0]["temperature"] == 0.0
    assert bodies[3]["path"] == "/v1/chat/completions" and bodies[3]["model"] == "m"


def test_the_stop_event_ends_with_a_last_progress_marking_what_was_left() -> None:
    class Slow(FakeBackend):
        def _chunks(self):
            with self.lock:
                self.open += 1
            try:
                for i in range(10_000):  # never finishes by itself
                    yield _chunk(f"w{i} ")
                    threading.Event().wait(0.01)
            finally:
                with self.lock:
                    self.open -= 1
                    self.closed += 1

    backend, stop = Slow(), threading.Event()
    cells = _cells(temperatures=(0.0, 0.5, 1.0))  # 6 cells
    progresses = []
    for progress in run_sweep(cells, [backend], concurrency=2, refresh_s=0.01, stop=stop):
        progresses.append(progress)
        if any(r["output"] for r in progress.records):
            stop.set()  # Stop, once a cell has text
    last = progresses[-1]
    assert last.stopped and last.line().startswith("⏹ Stopped: 0/6 cells finished")
    assert [r["finish_reason"] for r in last.records] == ["stopped"] * 6
    assert last.records[0]["output"] and last.records[0]["passed"] is None
    closed = threading.Event()
    for _ in range(200):  # each stream is closed by its reader after its current chunk
        if backend.closed == 2:
            break
        closed.wait(0.05)
    assert backend.closed == 2 and backend.open == 0 and len(backend.calls) == 2


def test_the_api_call_show_code_gives_names_the_targets_and_compiles() -> None:
    from components.connection import DEFAULT, LOCAL, REMOTE, Connection
    from components.sweep_code import gradio_client_call
    from components.sweep_inputs import api_targets, rows_csv_text

    conns = [Connection(LOCAL), Connection(DEFAULT), Connection(REMOTE, " http://h:1/v1 ")]
    assert api_targets(conns) == "local\ndefault\nhttp://h:1/v1"
    cells = _cells()
    assert rows_from_csv(rows_csv_text(cells)) == ROWS  # the rows go back as they came
    code = gradio_client_call(
        "http://127.0.0.1:7860", dict(template=TEMPLATE, rows_csv=rows_csv_text(cells))
    )
    compile(code, "sweep_api.py", "exec")
    assert 'api_name="/sweep"' in code and "Client('http://127.0.0.1:7860/')" in code
