"""Compare for tasks: target lines (and where a token may go), every target run at once with
its latency, a failing target alone in its column, the side-by-side widgets."""

from __future__ import annotations

import socket
import threading

import gradio as gr
import pytest

from backends.errors import InputValidationError
from backends.tasks import get_task
from components import task_compare, tasks
from components.connection import LOCAL, REMOTE, Connection
from components.renderers import Labelled
from components.task_widgets import output_widgets
from tests.unit.test_task_components import EXAMPLES, FakeBackend, unset

HUB = Connection(REMOTE, "", provider="hf-inference", token="hf_typed", oauth_token="hf_oauth")


def test_each_line_is_a_target_local_a_hub_id_or_a_url():
    targets = task_compare.parse_targets(
        "local\n  local:/models/vit \n google/vit @ fal-ai\nhttp://127.0.0.1:9/v1\n", HUB
    )
    assert [t.label for t in targets] == [
        "local",
        "local:/models/vit",
        "google/vit @ fal-ai",
        "http://127.0.0.1:9/v1",
    ]
    assert targets[0].connection.mode == LOCAL and targets[0].model is None
    assert targets[1].connection.mode == LOCAL and targets[1].model == "/models/vit"
    hub = targets[2].connection
    assert (hub.mode, hub.endpoint, hub.provider) == (REMOTE, "google/vit", "fal-ai")
    assert targets[3].connection.is_url


def test_a_hub_id_without_a_provider_takes_the_tabs():
    (a, b) = task_compare.parse_targets("org/a\norg/b @ together", HUB)
    assert a.connection.provider == "hf-inference" and b.connection.provider == "together"


def test_the_tabs_token_never_goes_to_another_url_typed_here():
    targets = task_compare.parse_targets("org/model\nhttp://127.0.0.1:9/v1", HUB)
    assert targets[0].connection.request_token() == "hf_typed"  # a Hub id: the Hub token
    assert targets[1].connection.request_token() is None  # not typed for this host
    own = Connection(REMOTE, "http://127.0.0.1:9/v1/", token="sk-own")
    same, other = task_compare.parse_targets("http://127.0.0.1:9/v1\nhttp://127.0.0.1:8/", own)
    assert same.connection.request_token() == "sk-own"  # the tab's own endpoint
    assert other.connection.request_token() is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("local", "Compare needs 2 to 4 targets, one per line; got 1."),
        ("a\nb\nc\nd\ne", "Compare needs 2 to 4 targets, one per line; got 5."),
        ("local\norg/model @", "Not a target: 'org/model @'."),
        ("local\nhttp://host/ v1", "Not an endpoint URL: 'http://host/ v1'."),
    ],
)
def test_a_bad_target_list_is_refused_with_what_to_write(text, message):
    with pytest.raises(InputValidationError) as caught:
        task_compare.parse_targets(text, HUB)
    assert caught.value.message == message
    assert caught.value.hint


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # released: nothing listens


def test_every_target_runs_at_once_and_a_failing_one_stays_in_its_column(tmp_path):
    """Two local calls meet at a barrier (so they must run concurrently); a refused URL
    fails in its own outcome while the others' results are drawn."""
    spec = get_task("image_classification")
    both_started = threading.Barrier(2, timeout=10)

    class Concurrent(FakeBackend):
        def run_task(self, name, inputs, parameters=None, *, model=None):
            both_started.wait()  # raises BrokenBarrierError if the calls ran one by one
            return super().run_task(name, inputs, parameters, model=model)

    local = Concurrent()
    targets = task_compare.parse_targets(f"local\nlocal:/models/other\n{_refused_url()}", HUB)
    image = str(EXAMPLES / "shapes.png")
    outcomes = task_compare.compare(
        local, spec, [image], unset("image_classification"), targets, run=tasks.run
    )
    assert [o.target.label for o in outcomes] == [t.label for t in targets]
    first, second, refused = outcomes
    assert not first.error and not second.error
    assert isinstance(first.outputs[0], (dict, Labelled)) and first.raw
    # Each target's typed model reached its call (in whichever order the threads ran).
    assert sorted(call[3] or "" for call in local.calls) == ["", "/models/other"]
    assert refused.error and not refused.outputs
    assert all(o.latency_ms >= 0 for o in outcomes)
    assert task_compare.heading(2, refused).startswith("**C · `http://127.0.0.1:")
    assert "🔴" in task_compare.heading(2, refused) and " ms" in task_compare.heading(0, first)
    assert [row["error"] is None for row in task_compare.summary(outcomes)] == [True, True, False]


def test_a_column_is_drawn_with_the_tasks_own_widgets_showing_the_result():
    spec = get_task("object_detection")
    outcome = task_compare.compare(
        FakeBackend(),
        spec,
        [str(EXAMPLES / "shapes.png")],
        unset("object_detection"),
        task_compare.parse_targets("local\nlocal", None),
        run=tasks.run,
    )[0]
    with gr.Blocks():
        drawn, table = output_widgets(spec, prefix="cmp0", values=outcome.outputs)
    assert drawn.elem_id == "cmp0-out-0" and drawn.visible
    assert table.value["data"][0][0] == "x"  # the fake's one box, in the widget's value
