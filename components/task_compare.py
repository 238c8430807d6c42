"""Compare for tasks: one task's input (image, audio, text, table) run through 2–4 targets
at once, the results drawn side by side with each target's latency.

``parse_targets`` and ``compare`` are plain Python (unit-tested with fake backends): a
target line is ``local``, ``local:<model dir or cached id>``, a Hub model id (``org/name``,
optionally ``@ provider``) or an endpoint URL. Each runs in its own thread through the
task's ordinary call (``components.tasks.run``), so one failing target shows its message in
its own column and never stops the others. ``render`` adds the accordion under a task's Run
button; its columns are drawn with the task's own output widgets (``output_widgets``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backends import Backend
from backends.errors import BackendError, InputValidationError
from backends.tasks import TaskSpec
from components.connection import LOCAL, REMOTE, Connection, backend_for_task
from presets import default_task_model

MIN_TARGETS, MAX_TARGETS = 2, 4
NAMES = "ABCD"
PLACEHOLDER = "local\ngoogle/vit-base-patch16-224 @ hf-inference\nhttp://127.0.0.1:8080"


@dataclass(frozen=True)
class TaskTarget:
    """One column: what the line said, where it goes, and the model typed for it."""

    label: str
    connection: Connection
    model: str | None = None


@dataclass(eq=False)  # hashed by identity (a gr.State hashes its value; tables cannot be)
class Outcome:
    """One target's answer: the task's rendered outputs and raw result, or its error."""

    target: TaskTarget
    latency_ms: float
    outputs: tuple = ()
    raw: Any = None
    error: str = ""


def parse_targets(text: str, base: Connection | None) -> list[TaskTarget]:
    """Targets from one line each. A Hub id uses ``base``'s provider (or ``@ provider``);
    tokens: the tab's typed token goes to Hub ids and to the tab's own endpoint URL only,
    never to another URL typed here; a sign-in token only to Hugging Face hosts.

    Raises:
        InputValidationError: Fewer than 2 or more than 4 targets, or an unreadable line.
    """
    base = base or Connection()
    lines = [" ".join(line.split()) for line in (text or "").splitlines()]
    lines = [line for line in lines if line]
    if not MIN_TARGETS <= len(lines) <= MAX_TARGETS:
        raise InputValidationError(
            f"Compare needs {MIN_TARGETS} to {MAX_TARGETS} targets, one per line; "
            f"got {len(lines)}.",
            hint="Write `local`, a Hub model id or an endpoint URL on each line.",
        )
    base_token_is_hub = not base.is_url
    targets = []
    for line in lines:
        keep = dict(oauth_token=base.oauth_token)
        if line == "local" or line.startswith("local:"):
            model = line.removeprefix("local").removeprefix(":").strip() or None
            targets.append(TaskTarget(line, Connection(LOCAL, **keep), model))
        elif line.startswith(("http://", "https://")):
            if " " in line:
                raise InputValidationError(
                    f"Not an endpoint URL: {line!r}.", hint="A URL has no spaces."
                )
            token = base.token if line.rstrip("/") == base.endpoint.strip().rstrip("/") else ""
            targets.append(TaskTarget(line, Connection(REMOTE, line, token=token, **keep)))
        else:
            model, _, provider = (part.strip() for part in line.partition("@"))
            if not model or " " in model or (line.count("@") and not provider):
                raise InputValidationError(
                    f"Not a target: {line!r}.",
                    hint="Write `local`, `org/model`, `org/model @ provider` or a URL.",
                )
            token = base.token if base_token_is_hub else ""
            provider = provider or base.provider or "auto"
            conn = Connection(REMOTE, model, provider=provider, token=token, **keep)
            targets.append(TaskTarget(line, conn))
    return targets


def compare(
    local: Backend,
    spec: TaskSpec,
    input_values: Sequence[Any],
    param_values: Sequence[Any],
    targets: Sequence[TaskTarget],
    *,
    run: Callable[..., Any],
) -> list[Outcome]:
    """Run the task on every target at once (``run`` is ``components.tasks.run``); each
    outcome in the targets' order, with its latency (ms) from the call to the result."""

    def one(target: TaskTarget) -> Outcome:
        start = time.perf_counter()
        try:
            backend = backend_for_task(
                target.connection,
                local,
                default_model=target.model or default_task_model(spec.name),
            )
            result = run(backend, spec, input_values, param_values, model=target.model)
        except BackendError as exc:
            return Outcome(target, _ms(start), error=exc.user_message())
        except Exception as exc:  # one target's bug never takes the others down
            return Outcome(target, _ms(start), error=f"{type(exc).__name__}: {exc}")
        return Outcome(target, _ms(start), tuple(result.outputs), result.raw)

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return list(pool.map(one, targets))


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def heading(i: int, outcome: Outcome) -> str:
    """A column's title: its letter, the target and the latency (or what went wrong)."""
    name = f"**{NAMES[i]} · `{outcome.target.label}`**"
    if outcome.error:
        return f"{name} — 🔴 {outcome.error}"
    return f"{name} — {outcome.latency_ms:,.0f} ms"


def summary(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """The JSON a script (and the raw view) gets: target, latency, result or error."""
    return [
        {
            "target": o.target.label,
            "latency_ms": round(o.latency_ms, 1),
            "result": o.raw,
            "error": o.error or None,
        }
        for o in outcomes
    ]


def render(
    spec: TaskSpec,
    local: Backend,
    *,
    inputs: Sequence[Any],
    model: Any,
    params: Sequence[Any],
    connection: Any,
    run: Callable[..., Any],
) -> Any:
    """The "Compare targets" accordion of one task (call inside the task's tab); returns
    the ``gr.State`` its results land in (drawn by ``render_results``)."""
    from components.common import show_error
    from components.connection import signed_in

    with gr.Accordion("Compare targets", open=False, elem_id=f"{spec.name}-compare"):
        with gr.Row():
            lines = gr.Textbox(
                label=f"Targets ({MIN_TARGETS}–{MAX_TARGETS}, one per line)",
                placeholder=PLACEHOLDER,
                lines=3,
                max_lines=MAX_TARGETS,
                scale=4,
                elem_id=f"{spec.name}-compare-targets",
                info="`local`, `local:<model dir>`, a Hub id (`org/model @ provider`) or a "
                "URL. The tab's token goes to Hub ids and its own endpoint only.",
            )
            button = gr.Button("Compare", scale=1, elem_id=f"{spec.name}-compare-run")
        outcomes = gr.State([])

    n_inputs = len(inputs)

    def go(oauth: gr.OAuthToken | None, text, conn, *values):
        try:
            targets = parse_targets(text, signed_in(conn, oauth))
        except BackendError as exc:
            show_error(exc)
            return gr.skip()
        return compare(local, spec, values[:n_inputs], values[n_inputs + 1 :], targets, run=run)

    button.click(
        go,
        [lines, connection, *inputs, model, *params],
        outcomes,
        api_visibility="private",
        concurrency_limit=4,
        concurrency_id="tasks",
        show_progress="minimal",
    )

    return outcomes


def render_results(spec: TaskSpec, outcomes: Any, results_widgets: Callable[..., list]) -> None:
    """The compared results, one column per target (call where they get the page's width).
    ``results_widgets(spec, prefix=, values=)`` builds the task's output widgets showing
    ``values``."""

    @gr.render(inputs=outcomes, triggers=[outcomes.change])
    def draw(shown: list[Outcome]) -> None:
        if not shown:
            return
        with gr.Row(equal_height=False, elem_id=f"{spec.name}-compare-results"):
            for i, outcome in enumerate(shown):
                with gr.Column(min_width=240, elem_classes="task-compare-column"):
                    gr.Markdown(heading(i, outcome), elem_id=f"{spec.name}-cmp{i}-heading")
                    if not outcome.error:
                        results_widgets(spec, prefix=f"{spec.name}-cmp{i}", values=outcome.outputs)
        with gr.Accordion("Raw results (JSON)", open=False):
            gr.JSON(summary(shown))
