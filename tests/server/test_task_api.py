"""The task tabs through the real app's Gradio API (``gradio_client``), on the local backend:
each task is an endpoint named after its InferenceClient method. Only the two embedding
tasks have a bundled model (all-MiniLM-L6-v2), so they run for real; the others must refuse
with the reason and what to do instead of failing obscurely."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from backends.tasks import TASKS

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def client(app_url: str):
    client = Client(app_url, verbose=False)
    try:
        yield client
    finally:
        client.close()


def test_every_task_is_an_api_endpoint_named_after_its_method(client) -> None:
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {f"/{name}" for name in TASKS} <= named


def test_sentence_similarity_on_the_bundled_model(client) -> None:
    others = "That is a very happy person\nToday is a sunny day\nThat is a happy dog"
    table, raw = client.predict("That is a happy person", others, api_name="/sentence_similarity")
    scores = dict(zip(others.splitlines(), raw, strict=True))
    assert scores["That is a very happy person"] > scores["That is a happy dog"]
    assert scores["That is a happy dog"] > scores["Today is a sunny day"]
    assert table["data"][0][0] == "That is a very happy person"  # best first


def test_feature_extraction_on_the_bundled_model(client) -> None:
    *_, raw = client.predict("An embedding of this text.", api_name="/feature_extraction")
    vector = raw[0] if isinstance(raw[0], list) else raw
    assert len(vector) == 384
    assert any(abs(v) > 1e-3 for v in vector)


def test_a_task_without_a_local_model_says_what_to_do(client, tmp_path) -> None:
    image = tmp_path / "tiny.png"
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(image)
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(image)), api_name="/image_classification")
    message = str(info.value)
    assert "No local model for Image classification" in message
    assert "Remote" in message


def test_a_text_file_sent_as_an_image_is_refused_clearly(client, tmp_path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not pixels")
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(fake)), api_name="/object_detection")
    assert "not an image" in str(info.value)


def test_a_script_sends_a_task_to_a_remote_target_it_names(client) -> None:
    """``endpoint=`` / ``token=`` on a task endpoint, as /chat takes them: the call goes to
    that endpoint (a real loopback server replaying the HF Inference API's payload) with the
    caller's token, and the result comes back through the app."""
    from tests.server.fake_tasks_endpoint import FakeTasksEndpoint

    secret = "hf_script_TOKEN_789"
    with FakeTasksEndpoint() as endpoint:
        table, raw = client.predict(
            "I love this!",
            endpoint=endpoint.url("ok", "text_classification"),
            token=secret,
            api_name="/text_classification",
        )
        (request,) = endpoint.posts()
    assert request.json["inputs"] == "I love this!"
    assert request.headers["authorization"] == f"Bearer {secret}"
    assert raw[0]["label"] == "POSITIVE"
    assert secret not in str(table) + str(raw)


def test_a_task_endpoint_named_local_runs_on_the_local_model(client) -> None:
    *_, raw = client.predict(
        "An embedding of this text.", endpoint="local", api_name="/feature_extraction"
    )
    vector = raw[0] if isinstance(raw[0], list) else raw
    assert len(vector) == 384


def test_show_code_for_a_task_runs_against_this_app(app_url: str, tmp_path) -> None:
    """The task tabs' Show code, run as a user would run it: the Python (gradio_client) and
    the curl code (Gradio's HTTP API, real curl) both get the local model's answer."""
    import subprocess
    import sys

    from backends.tasks import get_task
    from components.snippets import Target
    from components.task_snippets import task_snippets

    code = task_snippets(
        get_task("sentence_similarity"),
        Target("local"),
        app_url=app_url,
        inputs={"sentence": "A happy person", "other_sentences": ["A very happy person", "Rain"]},
        parameters={},
    )
    python = subprocess.run(
        [sys.executable, "-c", code["python"]], capture_output=True, text=True, timeout=120
    )
    assert python.returncode == 0, python.stderr
    assert "A very happy person" in python.stdout
    curl = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code["curl"]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert curl.returncode == 0, curl.stderr
    assert "event: complete" in curl.stdout and "A very happy person" in curl.stdout
