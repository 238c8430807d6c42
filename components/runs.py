"""Text-generation runs kept in the visitor's browser: each finished run (prompt,
parameters, target, output, finish reason, stats line, token inspector) is saved, listed
newest first in *Saved runs*, and opened again with one click — after a reload or a server
restart too (``gr.BrowserState``, encrypted with the app's storage secret).

Everything but ``render`` is plain Python on dicts (unit-tested).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gradio as gr

from components.conversations import TARGET

STORE_KEY = "playground-runs"
MAX_RUNS = 100
MAX_INSPECTOR_CHARS = 200_000  # a larger inspector is not kept (the rest of the run is)
LABEL_CHARS = 60


def runs(store: Any) -> list[dict]:
    """The saved runs, newest first (entries of the wrong shape left out)."""
    items = store.get("runs", []) if isinstance(store, dict) else []
    kept = [r for r in items or [] if isinstance(r, dict) and r.get("id") and "prompt" in r]
    return sorted(kept, key=lambda r: r.get("time", 0), reverse=True)


def record(
    prompt: str,
    parameters: dict[str, Any],
    connection: Any,
    output: str,
    finish: str,
    stats: str,
    inspector: str | None,
    *,
    now: float | None = None,
) -> dict:
    """One run as saved (the connection's target, never its token)."""
    target = {
        name: getattr(connection, name, "") or ("auto" if name == "provider" else "")
        for name in TARGET
    }
    inspector = inspector or ""
    return {
        "id": uuid.uuid4().hex[:16],
        "time": time.time() if now is None else now,
        "prompt": prompt or "",
        "parameters": dict(parameters),
        "target": target,
        "output": output or "",
        "finish": finish or "",
        "stats": stats or "",
        "inspector": inspector if len(inspector) <= MAX_INSPECTOR_CHARS else "",
    }


def add(store: Any, run: dict) -> dict:
    return {"runs": [run, *runs(store)][:MAX_RUNS]}


def remove(store: Any, run_id: str | None) -> dict:
    return {"runs": [r for r in runs(store) if r["id"] != run_id]}


def find(store: Any, run_id: str | None) -> dict | None:
    return next((r for r in runs(store) if r["id"] == run_id), None)


def label(run: dict) -> str:
    """``prompt start → output start (finish)``, one line."""
    prompt = " ".join(run["prompt"].split())
    prompt = prompt if len(prompt) <= LABEL_CHARS else prompt[: LABEL_CHARS - 1] + "…"
    where = run["target"].get("endpoint") or run["target"].get("mode") or ""
    finish = f" · {run['finish']}" if run.get("finish") else ""
    return f"{prompt or '(empty prompt)'} — {where}{finish}"


def choices(store: Any) -> list[tuple[str, str]]:
    return [(label(r), r["id"]) for r in runs(store)]


def render(
    *,
    events: list,
    prompt: Any,
    connection: Any,
    widgets: dict[str, Any],
    shown: list,
    secret: str | None,
) -> None:
    """*Saved runs* (call where the accordion goes); ``events``: the Generate events
    whose end saves the run; ``widgets``: the parameter widgets by name; ``shown``: output,
    finish reason, stats line and inspector."""
    from gradio.context import Context

    store = gr.BrowserState({"runs": []}, storage_key=STORE_KEY, secret=secret)
    with gr.Accordion("Saved runs", open=False, elem_id="tg-runs") as box:
        listing = gr.Radio([], label="Runs (newest first)", elem_id="tg-run-list")
        with gr.Row():
            delete = gr.Button("Delete run", size="sm", elem_id="tg-delete-run")
            clear = gr.Button("Clear runs", size="sm", variant="stop", elem_id="tg-clear-runs")
    hidden = dict(api_visibility="private", show_progress="hidden")
    names = list(widgets)

    def save(saved, text, conn, output, finish, stats, inspector, *values):
        if not (output or "").strip():
            return gr.skip(), gr.skip()  # nothing came back: nothing to keep
        run = record(text, dict(zip(names, values, strict=True)), conn, output, finish,
                     stats, inspector)  # fmt: skip
        saved = add(saved, run)
        return saved, gr.Radio(choices=choices(saved), value=run["id"])

    for event in events:
        event.then(
            save, [store, prompt, connection, *shown, *widgets.values()], [store, listing],
            concurrency_limit=None, **hidden,
        )  # fmt: skip

    def open_run(saved, run_id):
        run = find(saved, run_id)
        if run is None:
            return [gr.skip()] * (1 + len(names) + len(shown))
        values = [run["parameters"].get(name, gr.skip()) for name in names]
        return [run["prompt"], *values, run["output"], run["finish"], run["stats"],
                run["inspector"] or gr.skip()]  # fmt: skip

    listing.input(
        open_run, [store, listing], [prompt, *widgets.values(), *shown], queue=False, **hidden
    )

    def do_delete(saved, run_id):
        saved = remove(saved, run_id)
        return saved, gr.Radio(choices=choices(saved), value=None)

    delete.click(do_delete, [store, listing], [store, listing], queue=False, **hidden)
    clear.click(
        lambda: ({"runs": []}, gr.Radio(choices=[], value=None)), None, [store, listing],
        queue=False, **hidden,
    )  # fmt: skip
    # The list is read on page load and again when the accordion opens (a browser state
    # in a tab not shown yet holds its stored value only once the tab is mounted).
    refresh = dict(fn=lambda saved: gr.Radio(choices=choices(saved)), inputs=store,
                   outputs=listing, **hidden)  # fmt: skip
    Context.root_block.load(concurrency_limit=None, **refresh)
    box.expand(queue=False, **refresh)
