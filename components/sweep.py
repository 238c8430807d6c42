"""Sweep tab: one prompt template, its ``{{variables}}`` filled from a table (or an uploaded
CSV), run on 1–4 targets × lists of parameter values, every cell streamed into a results
table with its tokens, time to first token, tok/s, finish reason, error and checks.

The logic is plain Python: ``sweep_grid`` (template, grid, limits), ``sweep_inputs``
(widget and API values → cells, targets), ``sweep_results`` (checks, summary, export),
``sweep_run`` (the bounded thread pool, Stop) and ``sweep_code`` (Show code).
This module lays out the widgets, wires the events and exposes the Gradio API endpoint
``/sweep``.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from backends import Backend
from backends.errors import BackendError
from components import connection as connection_panel
from components import show_code
from components.common import (
    GENERATION_CONCURRENCY,
    GENERATION_CONCURRENCY_ID,
    api_text,
    show_error,
    show_problem,
    to_gradio_error,
)
from components.connection import LOCAL, REMOTE, Connection, api_connection, signed_in
from components.sweep_code import gradio_client_call, python_loop
from components.sweep_grid import (
    DEFAULT_CONCURRENCY,
    LIMITS_LINE,
    MAX_CONCURRENCY,
    MAX_TARGETS,
    MIN_CONCURRENCY,
    Cell,
    SweepError,
    check_concurrency,
    rows_from_csv,
    template_variables,
)
from components.sweep_inputs import (
    TOKEN_LIMIT,
    api_targets,
    backends_for,
    optional_number,
    plan,
    rows_csv_text,
    rows_of_grid,
    sweep_seed,
)
from components.sweep_results import (
    Checks,
    flat_rows,
    pass_rates,
    speed_by_target,
    to_csv,
    to_json,
)
from components.sweep_run import Progress, run_sweep
from components.task_inputs import load_csv
from components.visitors import Visitors

DEFAULT_TEMPLATE = "Write one short sentence about {{topic}}."
DEFAULT_ROWS = pd.DataFrame({"topic": ["the sea", "a city at night"]})
SUMMARY_COLUMNS = ["by", "value", "cells", "passed", "pass rate %"]
SPEED_COLUMNS = ["target", "total_ms", "ttft_ms", "tok_s"]
TARGET_NAMES = "ABCD"


def frame(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def speed_frame(rows: list[list[Any]]) -> pd.DataFrame:
    """The plots' data: numeric columns even when empty or missing a value, so the bar
    plots draw a quantitative axis (an empty object column would make it categorical);
    their ``y_lim`` starts at 0 (Gradio's default domain is [min, max]: one target's bar
    would have no height)."""
    speed = frame(SPEED_COLUMNS, rows)
    return speed.astype({name: "float64" for name in SPEED_COLUMNS[1:]})


def results_frame(records: list[dict]) -> pd.DataFrame:
    columns, rows = flat_rows(records)
    return frame(columns, rows)


def write_export(records: list[dict], kind: str) -> str:
    """The results as ``sweep-results.csv`` / ``.json`` in a fresh temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="sweep-"))
    path = folder / f"sweep-results.{kind}"
    path.write_text(to_csv(records) if kind == "csv" else to_json(records), encoding="utf-8")
    return str(path)


def render(
    local: Backend,
    *,
    providers: list[str],
    api_key_required: bool = False,
    visitors: Visitors | None = None,
) -> None:
    """The Sweep tab's widgets and events, and the ``/sweep`` API (inside a ``gr.Tab``)."""
    visitors = visitors or Visitors()
    gr.Markdown(
        "A prompt template with `{{variables}}`, one prompt per table row, on each target "
        f"with every combination of the parameter values. {LIMITS_LINE}",
        elem_id="sweep-limits",
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            template = gr.Textbox(
                DEFAULT_TEMPLATE, label="Prompt template", lines=2, elem_id="sweep-template",
                info="{{name}} is replaced by the row's value in the column called name",
            )  # fmt: skip
            system = gr.Textbox("", label="System prompt (optional)", elem_id="sweep-system")
            grid = gr.Dataframe(
                DEFAULT_ROWS, label="Variables (one prompt per row; the header names them)",
                interactive=True, datatype="str", max_height=260, elem_id="sweep-variables",
            )  # fmt: skip
            csv_file = gr.File(
                label="Upload a CSV (header row = variable names; fills the table)",
                file_types=[".csv"], height=100, elem_id="sweep-csv",
            )  # fmt: skip
        with gr.Column(scale=2):
            temperature = gr.Textbox(
                "0, 0.7", label="temperature values", info="comma-separated, 0 to 2",
                elem_id="sweep-temperature",
            )  # fmt: skip
            max_tokens = gr.Textbox(
                "48", label="max_tokens values", info=f"comma-separated, 1 to {TOKEN_LIMIT}",
                elem_id="sweep-max-tokens",
            )  # fmt: skip
            top_p = gr.Textbox(
                "1", label="top_p values", info="comma-separated, 0.01 to 1 (1 = off)",
                elem_id="sweep-top-p",
            )  # fmt: skip
            seed = gr.Number(-1, label="seed", precision=0, minimum=-1, info="-1 = random")
            concurrency = gr.Slider(
                MIN_CONCURRENCY, MAX_CONCURRENCY, value=DEFAULT_CONCURRENCY, step=1,
                label="Cells at once", elem_id="sweep-concurrency",
            )  # fmt: skip
    with gr.Accordion("Targets", open=True):
        count = gr.Radio(
            list(range(1, MAX_TARGETS + 1)), value=1, label="Targets", elem_id="sweep-count"
        )
        panels, columns = [], []
        with gr.Row(equal_height=False):
            for i in range(MAX_TARGETS):
                with gr.Column(visible=i < 1, min_width=240, elem_id=f"sweep-target-{i}") as col:
                    gr.Markdown(f"**Target {TARGET_NAMES[i]}**")
                    panels.append(connection_panel.render_panel(local, providers))
                columns.append(col)
    with gr.Accordion("Checks (optional)", open=False):
        with gr.Row():
            contains = gr.Textbox(label="Output contains", elem_id="sweep-contains")
            regex = gr.Textbox(label="Output matches regex", elem_id="sweep-regex")
            max_ms = gr.Number(
                0, label="Under N ms (whole answer)", minimum=0, info="0 = no latency check"
            )
        with gr.Row():
            json_valid = gr.Checkbox(False, label="Output is valid JSON")
            json_schema = gr.Code(
                "", language="json", label="…matching this JSON schema (optional)", lines=4
            )
    with gr.Row():
        run_btn = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
        stop_btn = gr.Button("Stop", variant="stop", elem_id="sweep-stop")
    progress = gr.Markdown("", elem_id="sweep-progress")
    results = gr.Dataframe(
        label="Results", interactive=False, wrap=True, max_height=520, elem_id="sweep-results"
    )
    records = gr.State([])
    # The sweep each browser session runs now, by session: Stop sets its event, and the
    # sweep itself ends with a last "Stopped" update (a cancelled event would leave the
    # page with whatever update came last, racing the Stop button's own).
    stops: dict[str, threading.Event] = {}
    with gr.Row(equal_height=False):
        summary = gr.Dataframe(
            frame(SUMMARY_COLUMNS, []), label="Pass rate per target and parameter value",
            interactive=False, elem_id="sweep-summary",
        )  # fmt: skip
        latency_plot = gr.BarPlot(
            speed_frame([]), x="target", y="total_ms", title="Mean latency (ms)",
            y_lim=[0, None], elem_id="sweep-latency-plot",
        )  # fmt: skip
        speed_plot = gr.BarPlot(
            speed_frame([]), x="target", y="tok_s", title="Mean tok/s",
            y_lim=[0, None], elem_id="sweep-speed-plot",
        )  # fmt: skip
    with gr.Row():
        export_csv = gr.Button("Export CSV", size="sm", elem_id="sweep-export-csv")
        export_json = gr.Button("Export JSON", size="sm", elem_id="sweep-export-json")
        download = gr.File(label="Download", interactive=False, height=90, elem_id="sweep-download")
    with gr.Accordion("Show code", open=False, elem_id="sweep-show-code"):
        code_btn = gr.Button("Show code for this sweep", size="sm", elem_id="sweep-code-btn")
        with gr.Tabs():
            with gr.Tab("Python (InferenceClient)"):
                code = gr.Code(language="python", interactive=False, elem_id="sweep-code")
            with gr.Tab("Python (gradio_client, /sweep)"):
                api_code = gr.Code(language="python", interactive=False)

    hidden = dict(api_visibility="undocumented")
    count.change(
        lambda n: [gr.Column(visible=i < int(n)) for i in range(MAX_TARGETS)],
        count, columns, api_visibility="private", queue=False,
    )  # fmt: skip

    def fill_grid(path: str | None):
        try:
            loaded = load_csv(path)
        except BackendError as exc:
            show_error(exc)
            return gr.skip()
        return gr.skip() if loaded is None else loaded

    csv_file.change(fill_grid, csv_file, grid, api_visibility="private", show_progress="hidden")

    form = [template, system, grid, temperature, max_tokens, top_p, seed, concurrency,
            contains, regex, json_valid, json_schema, max_ms, count,
            *[p.state for p in panels]]  # fmt: skip

    def read(oauth, values) -> tuple[list[Cell], list[Connection], Checks, int]:
        (template_, system_, grid_, temps, tokens, tops, seed_, conc, contains_, regex_,
         json_, schema_, max_ms_, n, *conns) = values  # fmt: skip
        connections = [signed_in(c or Connection(LOCAL), oauth) for c in conns[: int(n)]]
        rows = rows_of_grid(grid_) if template_variables(template_ or "") else []
        cells = plan(
            template_ or "", rows, connections, temperature=temps, max_tokens=tokens,
            top_p=tops, seed=sweep_seed(seed_), system_prompt=system_ or "",
        )  # fmt: skip
        checks = Checks(
            contains_ or "", regex_ or "", bool(json_), schema_ or "",
            optional_number(max_ms_, "max_ms", minimum=1e-9),
        )  # fmt: skip
        return cells, connections, checks, check_concurrency(conc)

    def run(request: gr.Request, oauth: gr.OAuthToken | None, *values):
        outputs = 7
        try:
            cells, connections, checks, conc = read(oauth, values)
            compiled = checks.compiled()
        except BackendError as exc:
            show_problem(exc.user_message(), title="Cannot run this sweep")
            yield [gr.skip()] * outputs
            return
        last_done, session = -1, request.session_hash or ""
        stops[session] = stop = threading.Event()
        try:
            with visitors.hold(request):  # one sweep counts as one generation
                sweep = run_sweep(
                    cells, backends_for(connections, local), checks=compiled,
                    concurrency=conc, stop=stop,
                )  # fmt: skip
                final: Progress | None = None
                with closing(sweep):  # a page gone mid-sweep closes every cell's stream too
                    for final in sweep:
                        changed = final.done != last_done
                        last_done = final.done
                        yield summary_outputs(final, changed=changed, finished=False)
                if final is not None:
                    yield summary_outputs(final, changed=True, finished=True)
        except BackendError as exc:
            show_error(exc)
            yield [gr.skip()] * outputs
        finally:
            if stops.get(session) is stop:
                del stops[session]

    def summary_outputs(progress_: Progress, *, changed: bool, finished: bool) -> list:
        table = results_frame(progress_.records)
        if not changed:
            return [progress_.line(), table, progress_.records] + [gr.skip()] * 4
        speed = speed_frame(speed_by_target(progress_.records))
        return [
            progress_.line(finished=finished), table, progress_.records,
            frame(SUMMARY_COLUMNS, pass_rates(progress_.records)), speed, speed,
            gr.skip(),
        ]  # fmt: skip

    run_btn.click(
        run, form, [progress, results, records, summary, latency_plot, speed_plot, download],
        concurrency_limit=GENERATION_CONCURRENCY, concurrency_id=GENERATION_CONCURRENCY_ID,
        show_progress="hidden", **hidden,
    )  # fmt: skip

    def stop_sweep(request: gr.Request) -> None:
        stop = stops.get(request.session_hash or "")
        if stop is not None:
            stop.set()

    stop_btn.click(stop_sweep, queue=False, **hidden)

    def export(kind: str):
        def handler(rows: list[dict]):
            if not rows:
                show_problem("Run a sweep first.", title="Nothing to export")
                return gr.skip()
            return write_export(rows, kind)

        return handler

    export_csv.click(export("csv"), records, download, **hidden)
    export_json.click(export("json"), records, download, **hidden)

    def show(request: gr.Request, oauth: gr.OAuthToken | None, *values):
        try:
            cells, connections, _, conc = read(oauth, values)
        except BackendError as exc:
            gr.Warning(exc.user_message(), title="Cannot show code")
            return gr.skip(), gr.skip()
        origin = show_code.origin_of(request)
        targets = [
            show_code.target_for(c, origin, api_key_required=api_key_required) for c in connections
        ]
        (template_, system_, _, temps, tokens, tops, seed_, *_rest) = values
        loop = python_loop(cells, targets, template=template_, system_prompt=system_ or "")
        arguments = dict(template=template_, rows_csv=rows_csv_text(cells),
                         targets=api_targets(connections), temperature=temps,
                         max_tokens=tokens, top_p=tops, concurrency=conc)  # fmt: skip
        if system_:
            arguments["system_prompt"] = system_
        remote = [c for c in connections if c.mode == REMOTE]
        if remote and remote[0].provider not in ("", "auto"):
            arguments["provider"] = remote[0].provider
        if remote and remote[0].model.strip():
            arguments["model"] = remote[0].model.strip()
        note = (
            "# Remote targets share `provider`, `model` and `token` (add\n"
            '# token=os.environ["HF_TOKEN"] where they need one).\n'
            if remote else ""
        )  # fmt: skip
        via_api = note + gradio_client_call(origin, arguments)
        return loop, via_api

    code_btn.click(show, form, [code, api_code], api_visibility="private")

    def sweep(
        request: gr.Request,
        oauth: gr.OAuthToken | None,
        template: str,
        rows_csv: str = "",
        targets: str = "",
        temperature: str = "0",
        max_tokens: str = "64",
        top_p: str = "1",
        seed: int | None = None,
        system_prompt: str = "",
        contains: str = "",
        regex: str = "",
        json_valid: bool = False,
        json_schema: str = "",
        max_ms: float | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        provider: str = "auto",
        model: str = "",
        token: str = "",
    ) -> Iterator[list[dict]]:
        """Run a sweep: `template` with {{variables}} filled from `rows_csv` (CSV text, the
        header row names the variables), on each of `targets` (one per line: "local", a Hub
        model id or an endpoint URL; `provider`, `model` and `token` apply to the remote
        ones; "default" or empty: the operator's default endpoint if set, else the local
        model) with every combination of `temperature`, `max_tokens` and `top_p` (each a
        comma-separated list). Optional checks: `contains`, `regex`, `json_valid`,
        `json_schema`, `max_ms`. Streams the result rows so far (one dict per cell)."""
        try:
            names = [line.strip() for line in api_text(targets, "targets").splitlines()]
            names = [name for name in names if name] or ["default"]
            if len(names) > MAX_TARGETS:
                raise SweepError(f"At most {MAX_TARGETS} targets (got {len(names)}).")
            # "default" is api_connection's empty endpoint: the operator's, else local.
            names = ["" if name.lower() == "default" else name for name in names]
            connections = [api_connection(name, provider, model, token, oauth) for name in names]
            texts = {
                name: api_text(value, name)
                for name, value in (("template", template), ("rows_csv", rows_csv),
                                    ("system_prompt", system_prompt), ("contains", contains),
                                    ("regex", regex), ("json_schema", json_schema))
            }  # fmt: skip
            if not isinstance(json_valid, bool) and json_valid is not None:
                raise SweepError("`json_valid` must be true or false.")
            rows = rows_from_csv(texts["rows_csv"])
            cells = plan(
                texts["template"], rows, connections, temperature=temperature,
                max_tokens=max_tokens, top_p=top_p, seed=sweep_seed(seed),
                system_prompt=texts["system_prompt"],
            )  # fmt: skip
            compiled = Checks(
                texts["contains"], texts["regex"], bool(json_valid), texts["json_schema"],
                optional_number(max_ms, "max_ms", minimum=1e-9),
            ).compiled()  # fmt: skip
            width = check_concurrency(concurrency)
            sweep = run_sweep(
                cells, backends_for(connections, local), checks=compiled, concurrency=width
            )
            with visitors.hold(request), closing(sweep):
                for progress_ in sweep:
                    yield progress_.records
        except BackendError as exc:
            raise to_gradio_error(exc) from None

    gr.api(
        sweep,
        api_name="sweep",
        concurrency_limit=GENERATION_CONCURRENCY,
        concurrency_id=GENERATION_CONCURRENCY_ID,
    )
