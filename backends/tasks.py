"""Every non-generation task InferenceClient supports, declared once.

A ``TaskSpec`` says what a task takes (its inputs and parameters, with InferenceClient's
keyword names, defaults and bounds) and what it returns (``output``: the renderer the UI
uses). The UI builds its widgets from it, ``validate_parameters`` checks values with a
pydantic model built from it, the remote backend passes the keywords straight to
``InferenceClient.<name>`` and the local backend to the task's runner.

Adding a task touches: its ``TaskSpec`` here; its entry in
``backends/local/tasks/registry.py`` ``RUNNERS`` (a ``Runner`` whose functions go in the
family module that fits, or a ``NoRunner`` with the reason it cannot run locally); its entry
in ``presets/tasks.yaml`` (recommended model and examples); and, only when its ``output`` is
a new kind, that kind in ``Output`` below, a renderer in ``components.tasks.RENDERERS`` and
its widgets in ``components.task_widgets.output_widgets``. tests/unit/test_task_registry.py
fails while a runner (or reason), a renderer or a preset is missing; the remote tests also
want a canned reply in tests/server/task_payloads.py and a case in
tests/server/task_cases.py.

Input values have InferenceClient's own shapes: ``image``/``audio`` are bytes, ``table`` is
``{column: [cell, …]}`` with string cells, ``candidate_labels``/``other_sentences`` are lists
of strings, everything else is a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import pydantic

from backends.errors import InputValidationError
from backends.params import validate

Group = Literal["image", "audio", "tables", "text"]
InputKind = Literal["image", "audio", "text", "long_text", "table", "labels", "sentences"]
ParamKind = Literal["int", "float", "bool", "choice", "text", "labels"]
# How the UI shows a result; each names a renderer in components/renderers.py.
Output = Literal[
    "labels",  # list[{label, score}] → gr.Label
    "boxes",  # ObjectDetectionOutputElement list → boxes drawn on the input image
    "masks",  # ImageSegmentationOutputElement list → masks overlaid, legend
    "text",  # an output with a text field (caption, summary, translation, transcript)
    "image",  # a PIL image
    "audio",  # audio bytes → player + download
    "audio_list",  # AudioToAudioOutputElement list → one player per output
    "answers",  # answer spans with scores (QA, VQA, document QA)
    "entities",  # token classification → highlighted text
    "table_answer",  # TableQuestionAnsweringOutputElement → answer + highlighted cells
    "table_predictions",  # list[str | float] → a column joined to the input rows
    "scores",  # sentence similarity: list[float] next to the sentences
    "embedding",  # feature extraction: shape + preview + plot
]


@dataclass(frozen=True)
class Input:
    """A task input: ``name`` is InferenceClient's positional/keyword name."""

    name: str
    kind: InputKind
    label: str
    placeholder: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Param:
    """An optional task parameter with InferenceClient's keyword name. ``default=None``
    means "the server's default" (the keyword is not sent)."""

    name: str
    kind: ParamKind
    label: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    info: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str  # InferenceClient method name, also the Gradio API name (/image_classification)
    group: Group
    title: str
    description: str
    inputs: tuple[Input, ...]
    output: Output
    params: tuple[Param, ...] = ()
    hub_task: str = ""  # the Hub's id, e.g. "image-classification"

    def __post_init__(self) -> None:
        if not self.hub_task:
            object.__setattr__(self, "hub_task", self.name.replace("_", "-"))


def _image(label: str = "Image") -> Input:
    return Input("image", "image", label)


def _audio(label: str = "Audio") -> Input:
    return Input("audio", "audio", label)


def _text(
    name: str = "text", label: str = "Text", long: bool = False, placeholder: str = ""
) -> Input:
    return Input(name, "long_text" if long else "text", label, placeholder)


_TOP_K = Param("top_k", "int", "Top k", minimum=1, maximum=100, info="How many results to return")
_FUNCTION_TO_APPLY = Param(
    "function_to_apply",
    "choice",
    "Score function",
    choices=("sigmoid", "softmax", "none"),
    info="Applied to the model's logits",
)
_THRESHOLD = Param(
    "threshold", "float", "Threshold", minimum=0.0, maximum=1.0, info="Minimum score to keep"
)
_TRUNCATION = Param(
    "truncation",
    "choice",
    "Truncation",
    choices=("do_not_truncate", "longest_first", "only_first", "only_second"),
)
_QA_PARAMS = (
    Param("top_k", "int", "Top k", minimum=1, maximum=20, info="How many answers to return"),
    Param("doc_stride", "int", "Doc stride", minimum=1, maximum=512),
    Param("max_answer_len", "int", "Max answer length", minimum=1, maximum=512),
    Param("max_question_len", "int", "Max question length", minimum=1, maximum=512),
    Param("max_seq_len", "int", "Max sequence length", minimum=8, maximum=4096),
    Param("handle_impossible_answer", "bool", "Allow no answer"),
)
_DIFFUSION = (
    Param("negative_prompt", "text", "Negative prompt", info="What the image should not show"),
    Param("num_inference_steps", "int", "Steps", minimum=1, maximum=100),
    Param("guidance_scale", "float", "Guidance scale", minimum=0.0, maximum=30.0),
)

TASKS: dict[str, TaskSpec] = {}


def _register(*specs: TaskSpec) -> None:
    for spec in specs:
        TASKS[spec.name] = spec


_register(
    # -- image --------------------------------------------------------------------------
    TaskSpec(
        "image_classification",
        "image",
        "Image classification",
        "Which classes does the image show?",
        (_image(),),
        "labels",
        (_TOP_K, _FUNCTION_TO_APPLY),
    ),
    TaskSpec(
        "object_detection",
        "image",
        "Object detection",
        "Find objects: boxes and labels drawn on the image.",
        (_image(),),
        "boxes",
        (_THRESHOLD,),
    ),
    TaskSpec(
        "image_segmentation",
        "image",
        "Image segmentation",
        "Split the image into labelled regions: masks overlaid with a legend.",
        (_image(),),
        "masks",
        (
            Param("subtask", "choice", "Subtask", choices=("semantic", "instance", "panoptic")),
            _THRESHOLD,
            Param("mask_threshold", "float", "Mask threshold", minimum=0.0, maximum=1.0),
            Param(
                "overlap_mask_area_threshold",
                "float",
                "Overlap mask area threshold",
                minimum=0.0,
                maximum=1.0,
            ),
        ),
    ),
    TaskSpec(
        "image_to_text",
        "image",
        "Image to text",
        "Describe the image in words (captioning).",
        (_image(),),
        "text",
    ),
    TaskSpec(
        "text_to_image",
        "image",
        "Text to image",
        "Generate an image from a prompt.",
        (_text("prompt", "Prompt", long=True),),
        "image",
        (
            *_DIFFUSION,
            Param("width", "int", "Width", minimum=64, maximum=2048),
            Param("height", "int", "Height", minimum=64, maximum=2048),
            Param("seed", "int", "Seed", minimum=0, maximum=2**32 - 1),
        ),
    ),
    TaskSpec(
        "image_to_image",
        "image",
        "Image to image",
        "Transform an image (edit by prompt, super-resolution, …).",
        (_image(), Input("prompt", "text", "Prompt (optional)", optional=True)),
        "image",
        _DIFFUSION,
    ),
    TaskSpec(
        "zero_shot_image_classification",
        "image",
        "Zero-shot image classification",
        "Score the image against labels you choose.",
        (_image(), Input("candidate_labels", "labels", "Candidate labels", "cat, dog, car")),
        "labels",
        (
            Param(
                "hypothesis_template",
                "text",
                "Hypothesis template",
                info="e.g. 'This is a photo of {}.'",
            ),
        ),
    ),
    TaskSpec(
        "visual_question_answering",
        "image",
        "Visual question answering",
        "Ask a question about the image.",
        (_image(), _text("question", "Question", placeholder="What is in the picture?")),
        "answers",
        (Param("top_k", "int", "Top k", minimum=1, maximum=20),),
    ),
    TaskSpec(
        "document_question_answering",
        "image",
        "Document question answering",
        "Ask a question about a scanned document or form.",
        (_image("Document image"), _text("question", "Question", placeholder="What is the total?")),
        "answers",
        (*_QA_PARAMS, Param("lang", "text", "OCR language", info="e.g. eng")),
    ),
    # -- audio --------------------------------------------------------------------------
    TaskSpec(
        "automatic_speech_recognition",
        "audio",
        "Speech recognition",
        "Transcribe speech (upload or record); timestamps when the model returns them.",
        (_audio(),),
        "text",
    ),
    TaskSpec(
        "audio_classification",
        "audio",
        "Audio classification",
        "Which sounds, speakers or commands does the audio contain?",
        (_audio(),),
        "labels",
        (_TOP_K, _FUNCTION_TO_APPLY),
    ),
    TaskSpec(
        "text_to_speech",
        "audio",
        "Text to speech",
        "Read text aloud: play it or download it.",
        (_text("text", "Text", long=True),),
        "audio",
        (
            Param("do_sample", "bool", "Sample"),
            Param("temperature", "float", "Temperature", minimum=0.0, maximum=2.0),
            Param("max_new_tokens", "int", "Max new tokens", minimum=1, maximum=4096),
        ),
        hub_task="text-to-speech",
    ),
    TaskSpec(
        "audio_to_audio",
        "audio",
        "Audio to audio",
        "Enhance or separate audio (noise removal, source separation).",
        (_audio(),),
        "audio_list",
    ),
    # -- tables -------------------------------------------------------------------------
    TaskSpec(
        "table_question_answering",
        "tables",
        "Table question answering",
        "Ask a question about a table.",
        (
            Input("table", "table", "Table"),
            _text("query", "Question", placeholder="Which repo has the most stars?"),
        ),
        "table_answer",
        (
            Param("padding", "choice", "Padding", choices=("do_not_pad", "longest", "max_length")),
            Param("sequential", "bool", "Sequential", info="Answer row by row (conversational)"),
            _TRUNCATION,
        ),
    ),
    TaskSpec(
        "tabular_classification",
        "tables",
        "Tabular classification",
        "Predict a class for every row.",
        (Input("table", "table", "Table"),),
        "table_predictions",
    ),
    TaskSpec(
        "tabular_regression",
        "tables",
        "Tabular regression",
        "Predict a number for every row.",
        (Input("table", "table", "Table"),),
        "table_predictions",
    ),
    # -- text ---------------------------------------------------------------------------
    TaskSpec(
        "text_classification",
        "text",
        "Text classification",
        "Sentiment, topic or any label set the model was trained on.",
        (_text(long=True),),
        "labels",
        (_TOP_K, _FUNCTION_TO_APPLY),
    ),
    TaskSpec(
        "token_classification",
        "text",
        "Token classification",
        "Named entities and other per-token labels, highlighted in the text.",
        (_text(long=True),),
        "entities",
        (
            Param(
                "aggregation_strategy",
                "choice",
                "Aggregation",
                choices=("none", "simple", "first", "average", "max"),
                info="How sub-word tokens are grouped into entities",
            ),
            Param("ignore_labels", "labels", "Ignore labels", info="e.g. O"),
            Param("stride", "int", "Stride", minimum=0, maximum=512),
        ),
    ),
    TaskSpec(
        "summarization",
        "text",
        "Summarization",
        "A shorter version of a long text.",
        (_text(long=True),),
        "text",
        (
            Param("clean_up_tokenization_spaces", "bool", "Clean up spaces"),
            _TRUNCATION,
        ),
    ),
    TaskSpec(
        "translation",
        "text",
        "Translation",
        "Translate text; multilingual models take source and target languages.",
        (_text(long=True),),
        "text",
        (
            Param("src_lang", "text", "Source language", info="e.g. en_XX (multilingual models)"),
            Param("tgt_lang", "text", "Target language", info="e.g. fr_XX (multilingual models)"),
            Param("clean_up_tokenization_spaces", "bool", "Clean up spaces"),
            _TRUNCATION,
        ),
    ),
    TaskSpec(
        "question_answering",
        "text",
        "Question answering",
        "Find the answer to a question inside a context passage.",
        (_text("question", "Question"), _text("context", "Context", long=True)),
        "answers",
        (*_QA_PARAMS, Param("align_to_words", "bool", "Align to words")),
    ),
    TaskSpec(
        "fill_mask",
        "text",
        "Fill mask",
        "Guess the masked word (write [MASK] or <mask>, as the model expects).",
        (_text(placeholder="Paris is the [MASK] of France."),),
        "labels",
        (_TOP_K, Param("targets", "labels", "Targets", info="Only score these words")),
    ),
    TaskSpec(
        "zero_shot_classification",
        "text",
        "Zero-shot classification",
        "Score a text against labels you choose.",
        (
            _text(long=True),
            Input("candidate_labels", "labels", "Candidate labels", "politics, sport, science"),
        ),
        "labels",
        (
            Param(
                "multi_label", "bool", "Multi-label", default=False, info="Labels are independent"
            ),
            Param(
                "hypothesis_template",
                "text",
                "Hypothesis template",
                info="e.g. 'This text is about {}.'",
            ),
        ),
    ),
    TaskSpec(
        "sentence_similarity",
        "text",
        "Sentence similarity",
        "How close is each sentence to the source sentence? (cosine similarity)",
        (
            _text("sentence", "Source sentence"),
            Input("other_sentences", "sentences", "Sentences to compare", "One per line"),
        ),
        "scores",
    ),
    TaskSpec(
        "feature_extraction",
        "text",
        "Feature extraction",
        "The embedding vector of a text.",
        (_text(long=True),),
        "embedding",
        (
            Param("normalize", "bool", "Normalize"),
            Param("truncate", "bool", "Truncate"),
            Param(
                "truncation_direction", "choice", "Truncation direction", choices=("left", "right")
            ),
            Param("prompt_name", "text", "Prompt name", info="A prompt from the model's config"),
        ),
    ),
)

GROUPS: dict[Group, str] = {
    "image": "Image",
    "audio": "Audio",
    "tables": "Tables",
    "text": "Text tasks",
}


def tasks_in(group: Group) -> list[TaskSpec]:
    """The tasks of one tab, in declaration order."""
    return [spec for spec in TASKS.values() if spec.group == group]


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise InputValidationError(
            f"Unknown task {name!r}.", hint=f"Known tasks: {', '.join(TASKS)}."
        )
    return TASKS[name]


_PY_TYPES = {
    "int": int,
    "float": float,
    "bool": bool,
    "choice": str,
    "text": str,
    "labels": list[str],
}


@cache
def _model_for(name: str) -> type[pydantic.BaseModel]:
    spec = TASKS[name]
    fields: dict[str, Any] = {}
    for param in spec.params:
        constraints: dict[str, Any] = {}
        if param.minimum is not None:
            constraints["ge"] = param.minimum
        if param.maximum is not None:
            constraints["le"] = param.maximum
        annotation: Any = _PY_TYPES[param.kind]
        if param.kind == "choice":
            annotation = Literal[param.choices]  # type: ignore[valid-type]
        fields[param.name] = (annotation | None, pydantic.Field(default=None, **constraints))
    config = pydantic.ConfigDict(extra="forbid", strict=False)
    return pydantic.create_model(f"{spec.name}_parameters", __config__=config, **fields)


def validate_parameters(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters that were set (``None``, ``""`` and ``[]`` dropped), checked against
    the task's bounds. Raises ``InputValidationError`` naming each field and its limit, with
    ``field`` the first one."""
    given = {k: v for k, v in parameters.items() if v is not None and v != "" and v != []}
    # params.validate: the generation parameters' wording ("`top_k` must be <= 100 (got
    # 101)"), every offending field named, and `field` set so a UI can point at the widget.
    model = validate(_model_for(get_task(name).name), given)
    return model.model_dump(exclude_none=True)


def check_inputs(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with every input of task ``name`` present and non-empty and no other key;
    raises ``InputValidationError`` naming the input (so a missing question or table gets a
    sentence, not a TypeError from the client)."""
    spec = get_task(name)
    expected = {item.name: item for item in spec.inputs}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise InputValidationError(
            f"{spec.title} takes no input named {', '.join(map(repr, unknown))}.",
            field=unknown[0],
            hint=f"Its inputs: {', '.join(expected)}.",
        )
    for item in spec.inputs:
        value = inputs.get(item.name)
        empty = value is None or (
            not isinstance(value, (int, float)) and len(value) == 0  # "", b"", [], {}
        )
        if isinstance(value, str):
            empty = not value.strip()
        if empty and not item.optional:
            raise InputValidationError(
                f"{spec.title} needs {item.label.lower()}.",
                field=item.name,
                hint=f"Fill in {item.label!r} and run again.",
            )
    return {k: v for k, v in inputs.items() if v is not None and v != ""}
