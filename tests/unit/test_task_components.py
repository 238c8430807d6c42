"""The task tabs' plain functions (inputs, parameters, targets, ``run``) on a fake backend,
their presets, and the built UI: one API endpoint per task, errors shown as toasts."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from huggingface_hub import (
    AudioToAudioOutputElement,
    AutomaticSpeechRecognitionOutput,
    ImageClassificationOutputElement,
    ImageSegmentationOutputElement,
    ObjectDetectionOutputElement,
    QuestionAnsweringOutputElement,
    TableQuestionAnsweringOutputElement,
    TokenClassificationOutputElement,
)
from PIL import Image

from backends import BackendStatus
from backends.errors import GenerationError, InputValidationError, UnavailableError
from backends.media import encode_png, encode_wav
from backends.remote import RemoteBackend
from backends.tasks import TASKS, get_task
from components import build_ui, task_inputs, tasks
from components.connection import LOCAL, REMOTE, Connection, backend_for_task
from components.render_media import PALETTE
from components.renderers import Labelled
from components.task_inputs import DEFAULT_CHOICE
from components.task_widgets import initial_value, output_widgets
from presets import PresetError, load_task_presets, task_presets

EXAMPLES = Path(__file__).resolve().parents[2] / "presets" / "examples"
WAV = encode_wav(np.zeros(1600, dtype=np.float32), 16_000)


def _mask() -> str:
    return base64.b64encode(encode_png(Image.new("L", (8, 8), 255))).decode()


def canned(name: str, inputs: dict) -> Any:
    """A plausible result of each output kind, in huggingface_hub's types."""
    kind = get_task(name).output
    if kind == "labels":
        return [ImageClassificationOutputElement(label="yes", score=0.9)]
    if kind == "boxes":
        return [
            ObjectDetectionOutputElement.parse_obj_as_instance(
                {"box": {"xmin": 1, "ymin": 1, "xmax": 6, "ymax": 6}, "label": "x", "score": 0.5}
            )
        ]
    if kind == "masks":
        return [ImageSegmentationOutputElement(label="all", mask=_mask(), score=None)]
    if kind == "text":
        return AutomaticSpeechRecognitionOutput(text="words", chunks=None)
    if kind == "image":
        return Image.new("RGB", (8, 8))
    if kind == "audio":
        return WAV
    if kind == "audio_list":
        return [AudioToAudioOutputElement(blob=WAV, content_type="audio/wav", label="clean")]
    if kind == "answers":
        return [QuestionAnsweringOutputElement(answer="it", score=0.5, start=0, end=2)]
    if kind == "entities":
        return [TokenClassificationOutputElement(start=0, end=2, word="it", score=0.5, entity="X")]
    if kind == "table_answer":
        return TableQuestionAnsweringOutputElement(answer="1", cells=["1"], coordinates=[[0, 0]])
    if kind == "table_predictions":
        return ["a"] * len(next(iter(inputs["table"].values())))
    if kind == "scores":
        return [0.5] * len(inputs["other_sentences"])
    if kind == "embedding":
        return np.zeros((1, 4), dtype=np.float32)
    raise AssertionError(kind)


class FakeBackend:
    """Records ``run_task`` calls; answers each task with ``canned`` (or raises ``error``)."""

    name = "fake"

    def __init__(self, error: Exception | None = None, tasks_runner: Any = None) -> None:
        self.calls: list[tuple[str, dict, dict, str | None]] = []
        self.error = error
        if tasks_runner is not None:
            self.tasks = tasks_runner

    def status(self) -> BackendStatus:
        return BackendStatus("ready", "fake")

    def run_task(self, name, inputs, parameters=None, *, model=None):
        self.calls.append((name, inputs, parameters, model))
        if self.error is not None:
            raise self.error
        return canned(name, inputs)


class Runner:
    """Like ``LocalTasks``' hint methods: a bundled model for embeddings only."""

    def default_model(self, name: str) -> str | None:
        return "/models/minilm" if name in ("feature_extraction", "sentence_similarity") else None

    def describe(self, name: str) -> str:
        if self.default_model(name):
            return "Local model: all-MiniLM-L6-v2 (bundled)."
        return f"No local model for {get_task(name).title}."


def sample_values(name: str) -> list[Any]:
    """UI values for every input of task ``name``, as the widgets deliver them."""
    values = []
    for item in get_task(name).inputs:
        values.append(
            {
                "image": str(EXAMPLES / "shapes.png"),
                "audio": str(EXAMPLES / "speech.wav"),
                "table": pd.DataFrame({"a": ["1", "2"], "b": ["x", "y"]}),
                "labels": "cat, dog",
                "sentences": "one\ntwo",
            }.get(item.kind, "it is a text")
        )
    return values


def unset(name: str) -> list[Any]:
    """Every parameter widget at its starting value."""
    return [initial_value(p) for p in get_task(name).params]


# -- run on every task ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_runs_and_fills_each_of_its_output_widgets(name):
    backend = FakeBackend()
    result = tasks.run(backend, get_task(name), sample_values(name), unset(name))
    with gr.Blocks():
        widgets = output_widgets(get_task(name))
    assert len(result.outputs) == len(widgets)
    called, inputs, parameters, model = backend.calls[0]
    assert called == name and model is None
    # Nothing set: nothing sent, the server's defaults apply (except a declared default).
    assert parameters == {p.name: p.default for p in get_task(name).params if p.default is not None}
    assert set(inputs) == {i.name for i in get_task(name).inputs}
    assert result.raw is not None


def test_set_parameters_are_sent_in_inference_client_types():
    backend = FakeBackend()
    spec = get_task("token_classification")
    # aggregation_strategy, ignore_labels, stride
    tasks.run(backend, spec, ["Sarah lives here."], ["simple", "O, MISC", " 16 "])
    assert backend.calls[0][2] == {
        "aggregation_strategy": "simple",
        "ignore_labels": ["O", "MISC"],
        "stride": 16,
    }
    assert isinstance(backend.calls[0][2]["stride"], int)
    spec = get_task("zero_shot_classification")  # multi_label (bool), hypothesis_template
    tasks.run(backend, spec, ["text", "a, b"], ["false", ""])
    assert backend.calls[1][2] == {"multi_label": False}


def test_zero_is_a_value_and_not_a_number_is_refused():
    backend = FakeBackend()
    image = str(EXAMPLES / "shapes.png")
    tasks.run(backend, get_task("object_detection"), [image], ["0"])
    assert backend.calls[0][2] == {"threshold": 0.0}
    with pytest.raises(InputValidationError, match="`threshold` must be a number"):
        tasks.run(backend, get_task("object_detection"), [image], ["high"])
    with pytest.raises(InputValidationError, match="top_k"):
        tasks.run(backend, get_task("text_classification"), ["hi"], ["2.5", DEFAULT_CHOICE])
    assert len(backend.calls) == 1


def test_a_parameter_out_of_bounds_is_refused_before_the_call():
    backend = FakeBackend()
    with pytest.raises(InputValidationError, match="top_k") as caught:
        tasks.run(backend, get_task("text_classification"), ["hi"], [500, DEFAULT_CHOICE])
    assert caught.value.field == "top_k"
    assert backend.calls == []


def test_a_text_file_uploaded_as_an_image_is_refused_with_what_is_accepted(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    backend = FakeBackend()
    with pytest.raises(InputValidationError) as caught:
        tasks.run(backend, get_task("object_detection"), [str(fake)], [None])
    assert "not an image" in caught.value.user_message()
    assert "PNG, JPEG" in caught.value.user_message()
    assert backend.calls == []


def test_bad_audio_and_missing_uploads_are_refused_before_the_call(tmp_path):
    noise = tmp_path / "clip.wav"
    noise.write_bytes(b"RIFF....garbage")
    backend = FakeBackend()
    with pytest.raises(InputValidationError, match="not audio"):
        tasks.run(backend, get_task("automatic_speech_recognition"), [str(noise)], [])
    with pytest.raises(InputValidationError, match="No image") as caught:
        tasks.run(backend, get_task("image_classification"), [None], unset("image_classification"))
    assert "Upload image" in caught.value.user_message()
    assert backend.calls == []


def test_empty_text_labels_and_sentences_say_what_to_type():
    backend = FakeBackend()
    cases = [
        ("question_answering", ["  ", "ctx"], "Question is empty. Type the question first."),
        ("zero_shot_classification", ["t", " , "], "none given. Type them comma-separated."),
        ("sentence_similarity", ["s", "\n \n"], "none given. Type them one per line."),
    ]
    for name, values, message in cases:
        with pytest.raises(InputValidationError) as caught:
            tasks.run(backend, get_task(name), values, unset(name))
        assert message in caught.value.user_message()
    assert backend.calls == []


def test_an_optional_prompt_left_empty_is_not_sent():
    backend = FakeBackend()
    values = [str(EXAMPLES / "shapes.png"), ""]
    tasks.run(backend, get_task("image_to_image"), values, unset("image_to_image"))
    assert set(backend.calls[0][1]) == {"image"}


def test_labels_and_sentences_are_split_into_lists():
    backend = FakeBackend()
    tasks.run(backend, get_task("sentence_similarity"), ["s", "a dog\n\n a cat \n"], [])
    assert backend.calls[0][1] == {"sentence": "s", "other_sentences": ["a dog", "a cat"]}
    assert task_inputs.split_labels("cat, dog,\nbird,,") == ["cat", "dog", "bird"]


def test_a_result_that_is_not_the_tasks_shape_is_a_clear_error():
    class Wrong(FakeBackend):
        def run_task(self, name, inputs, parameters=None, *, model=None):
            return [ImageSegmentationOutputElement(label="x", mask="not base64 png", score=None)]

    with pytest.raises(GenerationError, match="not a image segmentation result"):
        tasks.run(
            Wrong(),
            get_task("image_segmentation"),
            sample_values("image_segmentation"),
            unset("image_segmentation"),
        )


# -- tables -----------------------------------------------------------------------------


def test_a_csv_upload_fills_the_table_and_the_table_is_sent_as_strings():
    frame = task_inputs.load_csv(str(EXAMPLES / "repos.csv"))
    assert frame.columns.tolist() == ["Repository", "Stars", "Contributors", "Programming language"]
    assert frame.iloc[2].tolist() == ["Tokenizers", "3934", "34", "Rust, Python and NodeJS"]
    assert task_inputs.load_csv(None) is None
    backend = FakeBackend()
    tasks.run(
        backend,
        get_task("table_question_answering"),
        [frame, "How many stars?"],
        unset("table_question_answering"),
    )
    table = backend.calls[0][1]["table"]
    assert table["Stars"] == ["36542", "4512", "3934"]


def test_a_bad_csv_names_the_problem(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("   ")
    with pytest.raises(InputValidationError, match="CSV file is empty"):
        task_inputs.load_csv(str(empty))


def test_the_grid_drops_blank_rows_and_accepts_the_api_shape():
    frame = pd.DataFrame({"a": ["1", "", "3"], "b": [2, "", None]})
    assert task_inputs.table_from_frame(frame) == {"a": ["1", "3"], "b": ["2", ""]}
    api = {"headers": ["a", "b"], "data": [["1", "2"]], "metadata": None}
    assert task_inputs.table_from_frame(api) == {"a": ["1"], "b": ["2"]}
    with pytest.raises(InputValidationError, match="no rows"):
        task_inputs.table_from_frame(pd.DataFrame({"a": [""], "b": [""]}))


# -- where a call goes ------------------------------------------------------------------


def test_remote_with_no_endpoint_uses_the_tasks_recommended_model():
    local = FakeBackend()
    remote = Connection(REMOTE, "", "hf-inference", "", "hf_token")
    backend, model = tasks.task_target(remote, local, get_task("object_detection"), "")
    assert isinstance(backend, RemoteBackend)
    assert backend.model == "facebook/detr-resnet-50" and backend.provider == "hf-inference"
    assert model is None
    # A typed model wins over the recommended one.
    backend, model = tasks.task_target(remote, local, get_task("object_detection"), " my/detr ")
    assert backend.model == "my/detr" and model == "my/detr"


def test_local_mode_and_url_endpoints_keep_their_target():
    local = FakeBackend()
    backend, model = tasks.task_target(Connection(), local, get_task("fill_mask"), "/models/bert")
    assert backend is local and model == "/models/bert"
    url = Connection(REMOTE, "http://127.0.0.1:9/", "auto", "", "")
    backend, _ = tasks.task_target(url, local, get_task("fill_mask"), "")
    assert isinstance(backend, RemoteBackend) and backend.base_url == "http://127.0.0.1:9"


def test_backend_for_task_without_a_default_falls_back_to_the_panel_rule():
    with pytest.raises(InputValidationError, match="No remote endpoint"):
        backend_for_task(Connection(REMOTE), FakeBackend(), default_model=None)


def test_the_note_says_plainly_when_no_local_model_exists_and_suggests_remote():
    local = FakeBackend(tasks_runner=Runner())
    note = tasks.target_note(get_task("object_detection"), Connection(LOCAL), local)
    assert note == (
        "⚠️ No local model for Object detection — open **Connection** → *Remote endpoint* "
        "(recommended model: `facebook/detr-resnet-50`)."
    )
    bundled = tasks.target_note(get_task("sentence_similarity"), None, local)
    assert bundled == "💻 **Local:** Local model: all-MiniLM-L6-v2 (bundled)."
    assert tasks.model_field(get_task("sentence_similarity"), None, local)["placeholder"] == (
        "empty: the bundled model"
    )


def test_a_backend_without_hints_gets_a_generic_line_and_remote_notes_name_the_model():
    note = tasks.target_note(get_task("fill_mask"), None, FakeBackend())
    assert note.startswith("💻 **Local:** type a model directory")
    remote = tasks.target_note(get_task("fill_mask"), Connection(REMOTE), FakeBackend())
    assert remote == "🌐 **Remote:** `google-bert/bert-base-uncased` via auto"
    field = tasks.model_field(get_task("fill_mask"), Connection(REMOTE), FakeBackend())
    assert field == {"label": "Hub model id", "placeholder": "empty: google-bert/bert-base-uncased"}


def test_a_hint_that_raises_never_breaks_the_page():
    class Broken:
        def default_model(self, name):
            raise RuntimeError("boom")

    assert tasks.local_model_info(FakeBackend(tasks_runner=Broken()), "fill_mask") == (
        False,
        None,
        "",
    )


def test_updates_hide_missing_outputs_and_rename_labelled_ones():
    hidden, shown, renamed = tasks.as_updates([None, "text", Labelled("v", "speech")])
    assert hidden["visible"] is False and hidden["value"] is None
    assert shown["value"] == "text" and shown["visible"] is True
    assert renamed["label"] == "speech" and renamed["value"] == "v"


# -- presets ----------------------------------------------------------------------------


def test_every_task_has_a_recommended_model_and_an_example_with_every_input():
    table = task_presets()
    assert set(table) == set(TASKS)
    for name, preset in table.items():
        assert "/" in preset.default_model, name
        required = {i.name for i in get_task(name).inputs if not i.optional}
        assert any(required <= set(example) for example in preset.examples), name
        for example in preset.examples:
            for key in ("image", "audio", "table"):
                if key in example:
                    assert Path(example[key]).is_file()


def test_example_uploads_pass_the_upload_checks():
    for name in TASKS:
        for example in task_presets()[name].examples:
            values = [example.get(i.name, "") for i in get_task(name).inputs]
            values = [
                task_inputs.load_csv(v) if i.kind == "table" else v
                for i, v in zip(get_task(name).inputs, values, strict=True)
            ]
            task_inputs.collect_inputs(get_task(name), values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fill_mask:\n  default_model: a/b\n  examples: [{text: hi}]\n  extra: 1\n", "extra"),
        ("fil_mask:\n  default_model: a/b\n  examples: [{text: hi}]\n", "unknown task"),
        ("fill_mask:\n  default_model: a/b\n  examples: [{txt: hi}]\n", "unknown input 'txt'"),
        ("object_detection:\n  default_model: a/b\n  examples: [{image: no.png}]\n", "no file"),
        ("fill_mask:\n  default_model: a/b\n  examples: []\n", "at least 1"),
    ],
)
def test_task_presets_refuse_unknown_keys_tasks_inputs_and_missing_files(tmp_path, text, message):
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    with pytest.raises(PresetError, match=message):
        load_task_presets(path)


# -- the built UI -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return build_ui(FakeBackend(tasks_runner=Runner()))


# What the page sends for a script's remote target: its hidden fields, empty.
PAGE_TARGET = ("", "auto", "")


def _fn(demo, api_name: str):
    return next(fn for fn in demo.fns.values() if fn.api_name == api_name)


def test_every_task_is_an_api_endpoint_named_after_its_inference_client_method(demo):
    names = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert set(TASKS) <= names
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {f"task-{name}" for name in TASKS} <= ids
    assert {"image-tab", "audio-tab", "tables-tab", "text-tab"} <= ids


def test_the_run_handler_shows_a_bad_upload_as_a_toast_and_keeps_the_outputs(demo, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("hello")
    fn = _fn(demo, "object_detection")
    # image, model, threshold, endpoint/provider/token (empty in the page), connection
    with pytest.warns(UserWarning, match="not an image"):
        outputs = fn.fn(str(fake), "", None, *PAGE_TARGET, Connection(), None, None)
    assert len(outputs) == 3 and all(isinstance(o, type(gr.skip())) for o in outputs)


def test_the_run_handler_shows_backend_errors_as_toasts():
    local = FakeBackend(error=UnavailableError("No local model for Fill mask:", hint="Go remote."))
    built = build_ui(local)
    fn = _fn(built, "fill_mask")
    with pytest.warns(UserWarning, match="No local model for Fill mask: Go remote."):
        outputs = fn.fn(
            "Paris is the [MASK].", "", None, "", *PAGE_TARGET, Connection(), None, None
        )
    assert all(isinstance(o, type(gr.skip())) for o in outputs)


def test_the_run_handler_draws_the_result(demo):
    fn = _fn(demo, "object_detection")
    drawn, table, raw = fn.fn(
        str(EXAMPLES / "shapes.png"), "", 0.5, *PAGE_TARGET, Connection(), None, None
    )
    assert drawn["value"].getpixel((1, 3)) == PALETTE[0]
    assert table["value"]["label"].tolist() == ["x"]
    assert raw[0]["label"] == "x"


def test_switching_the_connection_retargets_every_task_of_the_tab(demo):
    retarget = _fn(demo, "retarget")  # the Image tab's: its panel's fields in, notes out
    assert len(retarget.inputs) == 5  # mode, endpoint, provider, model, token
    updates = retarget.fn(REMOTE, "", "hf-inference", "", "hf_x")
    image_tasks = [name for name in TASKS if TASKS[name].group == "image"]
    assert len(updates) == 2 * len(image_tasks)
    assert updates[0] == "🌐 **Remote:** `google/vit-base-patch16-224` via hf-inference"
    assert updates[1]["label"] == "Hub model id"
    back = retarget.fn(LOCAL, "", "auto", "", "")
    assert back[0].startswith("⚠️ No local model for Image classification")
    assert back[1]["label"] == "Local model"


def test_api_clients_get_the_error_instead_of_a_toast():
    local = FakeBackend(error=UnavailableError("No local model for Fill mask:", hint="Go remote."))
    fn = _fn(build_ui(local), "fill_mask")
    client = SimpleNamespace(headers={"x-gradio-user": "api"})
    with pytest.raises(gr.Error, match="No local model for Fill mask: Go remote."):
        fn.fn("Paris is the [MASK].", "", None, "", *PAGE_TARGET, Connection(), client, None)


def test_each_endpoint_takes_the_tasks_input_names_and_only_the_inputs_are_required(demo):
    endpoints = demo.get_api_info()["named_endpoints"]
    parameters = endpoints["/zero_shot_classification"]["parameters"]
    assert [(p["parameter_name"], p["parameter_has_default"]) for p in parameters] == [
        ("text", False),
        ("candidate_labels", False),
        ("model", True),
        ("multi_label", True),
        ("hypothesis_template", True),
        ("endpoint", True),  # a script's remote target: optional, the local model without
        ("provider", True),
        ("token", True),
    ]
    assert parameters[3]["parameter_default"] == "false"  # the Param's declared default
    image_to_image = endpoints["/image_to_image"]["parameters"]
    assert (
        image_to_image[1]["parameter_name"] == "prompt"
        and image_to_image[1]["parameter_has_default"]
    )


# -- through the real InferenceClient ---------------------------------------------------


@pytest.fixture(scope="module")
def fake_endpoint():
    from tests.server.fake_tasks_endpoint import FakeTasksEndpoint

    with FakeTasksEndpoint() as ep:  # a loopback HTTP server in this process
        yield ep


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_renders_what_inference_client_returns(name, fake_endpoint, tmp_path):
    """The UI values of ``task_cases`` through ``run``, ``RemoteBackend`` and the real
    ``InferenceClient`` to the fake endpoint, and back through the renderer."""
    from tests.server.task_cases import CASES

    spec, case = get_task(name), CASES[name]
    values = []
    for item in spec.inputs:
        value = case.inputs.get(item.name)
        if item.kind in ("image", "audio"):
            path = tmp_path / item.name
            path.write_bytes(value)
            value = str(path)
        elif item.kind == "table":
            value = pd.DataFrame(value)
        elif item.kind in ("labels", "sentences"):
            value = (", " if item.kind == "labels" else "\n").join(value)
        values.append(value)
    backend = RemoteBackend(base_url=fake_endpoint.url("ok", name))
    result = tasks.run(backend, spec, values, unset(name))
    with gr.Blocks():
        widgets = output_widgets(spec)
    assert len(result.outputs) == len(widgets)
    assert any(output is not None for output in result.outputs)
    assert fake_endpoint.posts()[-1].task == name


def test_a_table_too_wide_is_refused_before_pandas_converts_it():
    # 100 000 columns took ~30 s of pandas (every cell to str, row by row) to be refused.
    wide = {"headers": [f"c{i}" for i in range(300_000)], "data": [["1"] * 300_000]}
    done, outcome = threading.Event(), []

    def convert() -> None:
        try:
            task_inputs.table_from_frame(wide)
        except InputValidationError as exc:
            outcome.append(exc.message)
        done.set()

    threading.Thread(target=convert, daemon=True).start()
    assert done.wait(20), "table_from_frame converts a 300 000-column table before refusing it"
    assert outcome == ["The table has 300000 columns; the limit is 200."]
