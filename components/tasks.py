"""The task tabs (Image, Audio, Tables, Text tasks), built from ``backends.tasks``.

Nothing here is written per task: widgets come from each ``TaskSpec`` (``task_widgets``),
results are drawn by the renderer of its output kind (``RENDERERS``), and the recommended
model and examples come from ``presets/tasks.yaml``. A new task touches this module only
when its output is a new kind (a renderer here, its widgets in ``task_widgets``); the
places every task touches are listed in ``backends/tasks.py``.

``run`` and the functions before it are plain Python (unit-tested with a fake backend;
widget values become InferenceClient arguments in ``components.task_inputs``);
``render_group`` lays out one top-level tab and wires its events. Each task's Run button
is also the app's Gradio API endpoint named after the InferenceClient method, e.g.
``Client(url).predict(handle_file("cat.png"), api_name="/image_classification")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backends import Backend
from backends.errors import BackendError, GenerationError
from backends.tasks import Group, TaskSpec, tasks_in
from components import connection as connection_panel
from components import render_media, renderers, show_code, task_compare
from components.common import show_error, to_gradio_error
from components.connection import (
    LOCAL,
    Connection,
    api_connection,
    backend_for_task,
    initial_mode,
    signed_in,
)
from components.renderers import Labelled
from components.snippets import Target
from components.task_inputs import collect_inputs, collect_parameters, load_csv
from components.task_snippets import task_snippets
from components.task_widgets import (
    initial_value,
    input_widgets,
    output_widgets,
    param_widgets,
    shown,
)
from presets import default_task_model, task_presets

# Task calls do not go through the chat engine's queue: several may run at once (remote
# calls mostly wait on the network). One pool for all task tabs.
TASK_CONCURRENCY_ID = "tasks"
TASK_CONCURRENCY = 8
# A task endpoint's remote-target arguments and defaults, after the task's parameters.
API_TARGET = (("endpoint", ""), ("provider", "auto"), ("token", ""))

RENDERERS: dict[str, Callable[[Any, dict], tuple]] = {
    "labels": renderers.labels,
    "boxes": render_media.boxes,
    "masks": render_media.masks,
    "text": renderers.text,
    "image": render_media.image,
    "audio": render_media.audio,
    "audio_list": render_media.audio_list,
    "answers": renderers.answers,
    "entities": renderers.entities,
    "table_answer": renderers.table_answer,
    "table_predictions": renderers.table_predictions,
    "scores": renderers.scores,
    "embedding": renderers.embedding,
}


@dataclass(frozen=True)
class TaskResult:
    """What one call shows: ``outputs`` for the task's output widgets (see
    ``components.renderers``) and ``raw``, the result as JSON."""

    outputs: tuple
    raw: Any


# -- where a call goes ------------------------------------------------------------------


def task_target(
    connection: Connection | None, local: Backend, spec: TaskSpec, model: str | None
) -> tuple[Backend, str | None]:
    """The backend and model for one call. A typed model wins (a Hub id, or locally a
    model directory); Remote mode with no endpoint uses the task's recommended model."""
    typed = (model or "").strip() or None
    default = typed or default_task_model(spec.name)
    return backend_for_task(connection, local, default_model=default), typed


def snippet_target(spec: TaskSpec, connection: Connection | None, model: str | None) -> Target:
    """Where Show code's request goes: as ``task_target`` decides for a call."""
    typed = (model or "").strip() or None
    if connection is None or connection.mode == LOCAL:
        return Target("local", model=typed)
    if connection.is_url:
        has_token = bool(connection.token.strip() or connection.oauth_token)
        return Target("url", base_url=connection.endpoint.strip(), has_token=has_token)
    hub_model = typed or connection.endpoint.strip() or default_task_model(spec.name)
    return Target("model", model=hub_model, provider=connection.provider or None)


def local_model_info(local: Backend, name: str) -> tuple[bool, str | None, str]:
    """``(known, bundled model or None, description)`` from the local backend's task runner
    (``LocalTasks.default_model`` / ``describe``); ``known`` is False when the backend
    cannot tell (a test double, an older runner)."""
    try:
        runner = getattr(local, "tasks", None)
        default = getattr(runner, "default_model", None)
        describe = getattr(runner, "describe", None)
        if not callable(default):
            return False, None, ""
        model = default(name)
        return True, model, str(describe(name)) if callable(describe) else (model or "")
    except Exception:  # a hint must never break the page
        return False, None, ""


LOCAL_MODEL_LABEL = "Local model"
REMOTE_MODEL_LABEL = "Hub model id"


def target_note(spec: TaskSpec, connection: Connection | None, local: Backend) -> str:
    """Markdown above a task: where Run sends the request, and plainly when the local
    backend has no model for this task (with the way out: Remote and its model)."""
    connection = connection or Connection(initial_mode(offer_default=False))
    recommended = default_task_model(spec.name)
    if connection.mode == LOCAL:
        known, model, description = local_model_info(local, spec.name)
        if known and model:
            return f"💻 **Local:** {description or model}"
        remote = "open **Connection** → *Remote endpoint*" + (
            f" (recommended model: `{recommended}`)" if recommended else ""
        )
        if known:  # the runner says why (no model bundled, no runner at all) and what to do
            reason = description.rstrip(".") or f"No local model for {spec.title}"
            return f"⚠️ {reason} — {remote}."
        return f"💻 **Local:** type a model directory in *{LOCAL_MODEL_LABEL}*, or {remote}."
    if connection.is_url:
        return f"🌐 **Remote:** `{connection.endpoint}` (serves one model)"
    model = connection.endpoint.strip() or recommended
    return f"🌐 **Remote:** `{model}` via {connection.provider}"


def model_field(spec: TaskSpec, connection: Connection | None, local: Backend) -> dict:
    """The *Model* textbox's label and placeholder for the current mode: what an empty
    field means."""
    connection = connection or Connection(initial_mode(offer_default=False))
    if connection.mode == LOCAL:
        _, model, _ = local_model_info(local, spec.name)
        hint = "empty: the bundled model" if model else "a model directory, or a cached Hub id"
        return {"label": LOCAL_MODEL_LABEL, "placeholder": hint}
    if connection.is_url:
        return {"label": "Model", "placeholder": "not used: the endpoint URL serves one model"}
    default = connection.endpoint.strip() or default_task_model(spec.name)
    return {"label": REMOTE_MODEL_LABEL, "placeholder": f"empty: {default}"}


# -- one call ---------------------------------------------------------------------------


def run(
    backend: Backend,
    spec: TaskSpec,
    input_values: Sequence[Any],
    param_values: Sequence[Any],
    *,
    model: str | None = None,
) -> TaskResult:
    """Check the inputs and parameters, call ``backend.run_task`` and render the result.

    Raises:
        InputValidationError: A missing or bad input (before any call), a parameter out of
            bounds.
        BackendError: Whatever the backend raises; ``GenerationError`` when the result
            cannot be shown (an endpoint that answered something else).
    """
    inputs = collect_inputs(spec, input_values)
    parameters = collect_parameters(spec, param_values)
    result = backend.run_task(spec.name, inputs, parameters, model=model)
    try:
        outputs = RENDERERS[spec.output](result, inputs)
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        raise GenerationError(
            f"The endpoint's answer is not a {spec.title.lower()} result: {exc}",
            hint="Check that the model serves this task.",
        ) from exc
    return TaskResult(outputs, renderers.to_jsonable(result))


def as_updates(outputs: Sequence[Any]) -> list:
    """Renderer values as widget updates: ``None`` hides a widget, ``Labelled`` renames it."""
    return [gr.update(**shown(value)) for value in outputs]


# -- layout and events ------------------------------------------------------------------


def is_api_call(request: gr.Request | None) -> bool:
    """Whether a Gradio API client (``gradio_client`` marks its requests) sent the event,
    rather than the browser UI."""
    headers = getattr(request, "headers", None) or {}
    return headers.get("x-gradio-user") == "api"


def api_signature(handler: Callable, spec: TaskSpec) -> None:
    """Give a Run handler (``*values``) the signature its API endpoint shows: the task's
    input names, ``model`` and the parameter names, with the widgets' starting values as
    defaults, so ``Client.predict(image, api_name="/image_classification")`` needs only the
    inputs. Gradio reads this signature for the endpoint and to pass ``gr.Request``."""
    Parameter = inspect.Parameter

    def positional(name: str, default: Any = Parameter.empty) -> inspect.Parameter:
        return Parameter(name, Parameter.POSITIONAL_OR_KEYWORD, default=default)

    parameters = [
        positional(item.name, None if item.optional else Parameter.empty) for item in spec.inputs
    ]
    parameters.append(positional("model", None))
    parameters += [positional(param.name, initial_value(param)) for param in spec.params]
    # The remote target, as /chat takes it (the UI sends them empty: its panel decides).
    parameters += [positional(name, default) for name, default in API_TARGET]
    parameters += [positional(name, None) for name in ("connection", "request", "oauth")]
    handler.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    handler.__annotations__ = {"request": gr.Request, "oauth": gr.OAuthToken | None}


def _render_task(spec: TaskSpec, local: Backend, connection: gr.State) -> tuple:
    gr.Markdown(spec.description, elem_classes="task-description")
    note = gr.Markdown(target_note(spec, None, local), elem_id=f"{spec.name}-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            inputs = input_widgets(spec)
            model = gr.Textbox(**model_field(spec, None, local), elem_id=f"{spec.name}-model")
            params = param_widgets(spec)
            run_btn = gr.Button("Run", variant="primary", elem_id=f"{spec.name}-run")
            compared = task_compare.render(
                spec, local, inputs=inputs.values, model=model, params=params,
                connection=connection, run=run,
            )  # fmt: skip
        with gr.Column(scale=1):
            outputs = output_widgets(spec)
            with gr.Accordion("Raw result (JSON)", open=False):
                raw = gr.JSON(elem_id=f"{spec.name}-raw")
            code_panel = gr.Column(elem_id=f"{spec.name}-code")
    task_compare.render_results(spec, compared, output_widgets)
    preset = task_presets().get(spec.name)
    if preset:
        gr.Examples(
            [[example.get(item.name, "") for item in spec.inputs] for example in preset.examples],
            inputs=inputs.examples,
            cache_examples=False,
            examples_per_page=5,
            label="Examples",
        )

    def fill_table(path):
        try:
            frame = load_csv(path)
        except BackendError as exc:
            show_error(exc)
            return gr.skip()
        return gr.skip() if frame is None else frame

    for csv, grid in inputs.csv:
        csv.change(fill_table, csv, grid, api_visibility="private", show_progress="hidden")

    n_inputs, n_params = len(inputs.values), len(params)
    # A script's remote target (``endpoint=``, ``provider=``, ``token=``): no widgets, so
    # hidden fields, always empty in the page.
    api_target = [gr.Textbox(value, visible=False) for _, value in API_TARGET]

    def call(*values):
        *values, endpoint, provider, token, conn, request, oauth = values
        if isinstance(endpoint, str) and endpoint.strip():
            conn = api_connection(endpoint, provider, values[n_inputs], token, oauth)
        else:
            conn = signed_in(conn, oauth)
        input_values = values[:n_inputs]
        param_values = values[n_inputs + 1 : n_inputs + 1 + n_params]
        try:
            backend, chosen = task_target(conn, local, spec, values[n_inputs])
            result = run(backend, spec, input_values, param_values, model=chosen)
        except BackendError as exc:
            if is_api_call(request):
                raise to_gradio_error(exc) from None  # a client gets the reason as an error
            show_error(exc)
            return [gr.skip()] * (len(outputs) + 1)  # what was shown stays
        if is_api_call(request):  # plain values: no update dicts for a client to unwrap
            plain = [v.value if isinstance(v, Labelled) else v for v in result.outputs]
            return [*plain, result.raw]
        return [*as_updates(result.outputs), result.raw]

    api_signature(call, spec)

    def code(request: gr.Request, *values) -> dict[str, str]:
        *values, conn = values
        typed = values[n_inputs]
        inputs = collect_inputs(spec, values[:n_inputs])  # a bad input: a warning instead
        for item, value in zip(spec.inputs, values[:n_inputs], strict=True):
            if item.kind in ("image", "audio"):
                inputs[item.name] = value  # the file's path: the code names the file
        return task_snippets(
            spec,
            snippet_target(spec, conn, typed),
            app_url=show_code.origin_of(request),
            inputs=inputs,
            parameters=collect_parameters(spec, values[n_inputs + 1 :]),
        )

    with code_panel:
        show_code.render_panel(code, [*inputs.values, model, *params, connection])
    run_btn.click(
        call,
        [*inputs.values, model, *params, *api_target, connection],
        [*outputs, raw],
        api_name=spec.name,
        api_description=f"{spec.title}: {spec.description}",
        concurrency_limit=TASK_CONCURRENCY,
        concurrency_id=TASK_CONCURRENCY_ID,
        show_progress="minimal",
    )
    return note, model


def render_group(group: Group, backend: Backend, *, providers: list[str]) -> None:
    """One top-level tab (call inside a ``gr.Tab``): a Connection panel shared by the
    group's tasks, then one inner tab per task (``elem_id`` ``task-<name>``)."""
    # The operator's default endpoint (a TGI/vLLM/OpenAI-compatible server) serves text
    # generation only: task tabs keep the local model, or Hub models without one.
    panel = connection_panel.render_panel(backend, providers, offer_default=False)
    specs = tasks_in(group)
    targets: list[gr.components.Component] = []
    with gr.Tabs(overflow_behavior="wrap", elem_id=f"{group}-tasks"):
        for spec in specs:
            with gr.Tab(spec.title, id=spec.name, elem_id=f"task-{spec.name}"):
                targets.extend(_render_task(spec, backend, panel.state))

    def retarget(*values) -> list:
        conn = Connection(*values)
        updates = []
        for spec in specs:
            updates.append(target_note(spec, conn, backend))
            updates.append(gr.update(**model_field(spec, conn, backend)))
        return updates

    gr.on(
        [field.change for field in panel.fields],
        retarget,
        inputs=panel.fields,
        outputs=targets,
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
