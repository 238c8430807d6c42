"""Widgets for the task tabs, built from a ``TaskSpec``: one builder per input kind,
parameter kind and output kind (``backends.tasks``). Layout only: events are wired in
``components.tasks``.

Parameters start unset ("default", an empty textbox — numbers too): an unset parameter is not
sent, so the server's own default applies. Booleans are a three-way choice for the same
reason: a checkbox could not say "leave it to the server" (TEI normalizes embeddings unless
told ``normalize=false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from backends.tasks import Input, Param, TaskSpec
from components.render_media import MAX_AUDIO_OUTPUTS
from components.renderers import Labelled
from components.task_inputs import DEFAULT_CHOICE

BOOL_CHOICES = [DEFAULT_CHOICE, "true", "false"]
EMPTY_TABLE = pd.DataFrame({"column 1": [""], "column 2": [""]})


def image_upload(**kwargs) -> gr.Image:
    """``gr.Image(type="filepath")`` that hands over the uploaded file untouched: no
    re-encoding, and no Pillow error before the handler runs when the file is not an image,
    so ``backends.media.check_image`` can say what is wrong and what is accepted."""
    widget = gr.Image(type="filepath", image_mode=None, **kwargs)
    checked = widget.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return checked(payload)

    # An instance attribute, not a subclass: Gradio writes a .pyi stub next to the module of
    # every Component subclass it sees defined.
    widget.preprocess = preprocess
    return widget


@dataclass
class InputWidgets:
    """A task's input widgets. ``values``: what Run reads, in ``spec.inputs`` order.
    ``examples``: what an example fills (a table's CSV upload rather than its grid).
    ``csv``: each table grid's CSV upload, to wire."""

    values: list[gr.components.Component]
    examples: list[gr.components.Component]
    csv: list[tuple[gr.File, gr.Dataframe]]


def _input(spec: TaskSpec, item: Input, widgets: InputWidgets) -> None:
    elem_id = f"{spec.name}-{item.name}"
    if item.kind == "image":
        widget = image_upload(
            label=item.label,
            sources=["upload", "clipboard"],
            height=300,
            elem_id=elem_id,
        )
    elif item.kind == "audio":
        widget = gr.Audio(
            sources=["upload", "microphone"], type="filepath", label=item.label, elem_id=elem_id
        )
    elif item.kind == "table":
        csv = gr.File(
            label="Upload a CSV (fills the table)",
            file_types=[".csv"],
            height=120,
            elem_id=f"{elem_id}-csv",
        )
        widget = gr.Dataframe(
            EMPTY_TABLE,
            label=f"{item.label} (editable; cells are sent as text)",
            interactive=True,
            datatype="str",
            max_height=320,
            elem_id=elem_id,
        )
        widgets.values.append(widget)
        widgets.examples.append(csv)
        widgets.csv.append((csv, widget))
        return
    elif item.kind == "labels":
        widget = gr.Textbox(
            label=item.label, placeholder=item.placeholder, info="Comma-separated", elem_id=elem_id
        )
    elif item.kind == "sentences":
        widget = gr.Textbox(
            label=item.label,
            placeholder=item.placeholder,
            info="One per line",
            lines=4,
            elem_id=elem_id,
        )
    else:  # text, long_text
        long = item.kind == "long_text"
        widget = gr.Textbox(
            label=item.label,
            placeholder=item.placeholder,
            lines=4 if long else 1,
            max_lines=20 if long else 3,
            elem_id=elem_id,
        )
    widgets.values.append(widget)
    widgets.examples.append(widget)


def input_widgets(spec: TaskSpec) -> InputWidgets:
    """One widget per input (two for a table: the grid and its CSV upload)."""
    widgets = InputWidgets([], [], [])
    for item in spec.inputs:
        _input(spec, item, widgets)
    return widgets


def _bounds(param: Param) -> str:
    if param.minimum is None and param.maximum is None:
        return ""
    low = "" if param.minimum is None else f"{param.minimum:g}"
    high = "" if param.maximum is None else f"{param.maximum:g}"
    return f"{low}–{high}"


def initial_value(param: Param) -> Any:
    """A parameter widget's starting value: the ``Param``'s default, else "unset"."""
    if param.kind == "bool":
        return DEFAULT_CHOICE if param.default is None else str(bool(param.default)).lower()
    if param.kind == "choice":
        return param.default or DEFAULT_CHOICE
    if param.default is None:
        return ""
    return str(param.default) if param.kind in ("int", "float") else param.default


def param_widget(spec: TaskSpec, param: Param) -> gr.components.Component:
    """The widget for one parameter, starting at "the server's default" unless the
    ``Param`` declares a default."""
    info = "; ".join(part for part in (param.info, _bounds(param)) if part)
    elem_id = f"{spec.name}-param-{param.name}"
    if param.kind in ("int", "float"):
        # A textbox, not gr.Number: a Number cannot be empty (it shows and sends 0), and
        # 0 is a real value here (threshold=0 keeps every box).
        return gr.Textbox(
            value=initial_value(param),
            label=param.label,
            info=info or None,
            placeholder=f"empty: server default ({'integer' if param.kind == 'int' else 'number'})",
            elem_id=elem_id,
        )
    if param.kind == "bool":
        return gr.Radio(
            BOOL_CHOICES,
            value=initial_value(param),
            label=param.label,
            info=info or None,
            elem_id=elem_id,
        )
    if param.kind == "choice":
        return gr.Dropdown(
            [DEFAULT_CHOICE, *param.choices],
            value=initial_value(param),
            label=param.label,
            info=info or None,
            elem_id=elem_id,
        )
    return gr.Textbox(
        value=initial_value(param),
        label=param.label,
        info=info + (" (comma-separated)" if param.kind == "labels" else ""),
        placeholder="empty: server default",
        elem_id=elem_id,
    )


def param_widgets(spec: TaskSpec) -> list[gr.components.Component]:
    """The "Parameters" accordion's widgets, in ``spec.params`` order."""
    if not spec.params:
        gr.Markdown("This task takes no parameters.")
        return []
    with gr.Accordion("Parameters", open=False):
        return [param_widget(spec, param) for param in spec.params]


def output_widgets(
    spec: TaskSpec, *, prefix: str | None = None, values: Sequence[Any] | None = None
) -> list[gr.components.Component]:
    """The widgets ``components.tasks.RENDERERS[spec.output]`` fills, in its order
    (``elem_id`` ``<prefix>-out-<i>``, the task's name by default). With ``values`` (a
    renderer's outputs, e.g. inside ``gr.render``) they are built showing them, as
    ``components.tasks.as_updates`` would set them."""
    kind, prefix = spec.output, prefix or spec.name

    def make(cls: type, i: int, **options: Any) -> Any:
        options["elem_id"] = f"{prefix}-out-{i}"
        if values is not None:
            options.update(shown(values[i] if i < len(values) else None))
        return cls(**options)

    if kind == "labels":
        return [make(gr.Label, label="Result", num_top_classes=10, i=0)]
    if kind == "boxes":
        return [
            make(gr.Image, type="pil", format="png", label="Detections", interactive=False, i=0),
            make(
                gr.Dataframe,
                headers=["label", "score", "xmin", "ymin", "xmax", "ymax"],
                label="Boxes (pixels)",
                interactive=False,
                i=1,
            ),
        ]
    if kind == "masks":
        return [make(gr.AnnotatedImage, label="Segments", show_legend=True, i=0)]
    if kind == "text":
        return [
            make(gr.Textbox, label="Result", lines=4, interactive=False, buttons=["copy"], i=0),
            make(gr.Dataframe, label="Timestamps", interactive=False, visible=False, i=1),
        ]
    if kind == "image":
        return [make(gr.Image, type="pil", format="png", label="Result", interactive=False, i=0)]
    if kind == "audio":
        return [make(gr.Audio, label="Audio", interactive=False, buttons=["download"], i=0)]
    if kind == "audio_list":
        return [
            make(
                gr.Audio,
                label=f"Output {i + 1}",
                interactive=False,
                visible=False,
                buttons=["download"],
                i=i,
            )
            for i in range(MAX_AUDIO_OUTPUTS)
        ]
    if kind == "answers":
        return [
            make(
                gr.Dataframe,
                headers=["answer", "score"],
                label="Answers (best first)",
                interactive=False,
                i=0,
            ),
            make(
                gr.HighlightedText,
                label="Best answer in the context",
                visible=False,
                color_map={"answer": "#f59e0b"},
                i=1,
            ),
        ]
    if kind == "entities":
        return [
            make(
                gr.HighlightedText, label="Entities", show_legend=True, combine_adjacent=False, i=0
            ),
            make(
                gr.Dataframe,
                headers=["entity", "word", "score", "start", "end"],
                label="Entity list",
                interactive=False,
                i=1,
            ),
        ]
    if kind == "table_answer":
        return [
            make(gr.Textbox, label="Answer", interactive=False, i=0),
            make(
                gr.Dataframe,
                label="Table (answer cells highlighted)",
                interactive=False,
                visible=False,  # shown with the first answer (its columns are the input's)
                wrap=True,
                i=1,
            ),
        ]
    if kind == "table_predictions":
        return [
            make(
                gr.Dataframe,
                label="Predictions (first column) and the rows they are for",
                interactive=False,
                visible=False,  # shown with the first result (its columns are the input's)
                i=0,
            )
        ]
    if kind == "scores":
        return [
            make(
                gr.Dataframe,
                headers=["sentence", "score"],
                label="Similarity (most similar first)",
                interactive=False,
                wrap=True,
                i=0,
            )
        ]
    if kind == "embedding":
        return [
            make(gr.Markdown, i=0),
            make(gr.LinePlot, x="dimension", y="value", label="Embedding values", height=220, i=1),
        ]
    raise ValueError(f"no widgets for output kind {kind!r}")  # a new kind needs a builder


def shown(value: Any) -> dict[str, Any]:
    """Constructor options that show one renderer output: ``None`` hides the widget,
    ``Labelled`` renames it."""
    if value is None:
        return {"value": None, "visible": False}
    if isinstance(value, Labelled):
        return {"value": value.value, "label": value.label, "visible": True}
    return {"value": value, "visible": True}
