"""Show code on the task tabs (``components.task_snippets``): the code names the task, the
target, the inputs and the set parameters; user text cannot break out of its literal in any
language; a token is never written, only read from ``HF_TOKEN``. The curl code is run by
bash with ``curl`` stood in by a shell function that records its arguments, so the quoting
is checked by the shell itself."""

from __future__ import annotations

import ast
import json
import subprocess

import pytest

from backends.tasks import get_task
from components.snippets import Target
from components.task_snippets import task_snippets

HOSTILE = "It's \"quoted\" $(touch /tmp/pwned) `id` \\ back\nnew line ${HOME} '; rm -rf / #"
APP = "http://127.0.0.1:7860"


def call_keywords(code: str, method: str) -> dict:
    """The keyword arguments of the ``client.<method>(...)`` call, evaluated as literals."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == method:
            return {
                kw.arg: ast.literal_eval(kw.value) if isinstance(kw.value, ast.Constant) else kw
                for kw in node.keywords
            }
    raise AssertionError(f"no client.{method}(...) call in:\n{code}")


def run_curl(code: str, tmp_path, env: dict[str, str] | None = None) -> list[list[str]]:
    """Run the curl code with ``curl`` recording each call's arguments (one JSON list per
    call) and answering what Gradio would: an upload's path list, then an event id."""
    log = tmp_path / "calls.jsonl"
    fake = f"""
curl() {{
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> {log}
  case "$*" in
    *gradio_api/upload*) echo '["/srv/uploads/abc/cat.png"]' ;;
    *" -X POST "*|*"-X POST"*) echo '{{"event_id": "e1"}}' ;;
    *) echo 'event: complete' ;;
  esac
}}
"""
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", fake + code],
        check=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=tmp_path,
    )
    return [json.loads(line) for line in log.read_text().splitlines()]


def posted_data(calls: list[list[str]]) -> list:
    post = next(args for args in calls if "-X" in args)
    return json.loads(post[post.index("-d") + 1])["data"]


def test_a_hub_model_through_a_provider_in_python():
    spec = get_task("image_classification")
    code = task_snippets(
        spec,
        Target("model", model="google/vit-base-patch16-224", provider="hf-inference"),
        app_url=APP,
        inputs={"image": "/tmp/gradio/0a1b2c/cat.png"},
        parameters={"top_k": 3},
    )["python"]
    assert 'token=os.environ["HF_TOKEN"]' in code
    assert "provider='hf-inference'" in code
    kwargs = call_keywords(code, "image_classification")
    assert kwargs == {"image": "cat.png", "model": "google/vit-base-patch16-224", "top_k": 3}
    assert "/tmp/gradio" not in code  # the server's upload path is nobody's business


def test_an_endpoint_url_in_python_sends_a_token_only_when_one_was_given():
    spec = get_task("text_classification")
    url = "https://my-endpoint.example/v1"
    with_token, without = (
        task_snippets(
            spec,
            Target("url", base_url=url, has_token=has),
            app_url=APP,
            inputs={"text": "I love this"},
            parameters={},
        )["python"]
        for has in (True, False)
    )
    assert f"model={url!r}" in with_token and 'os.environ["HF_TOKEN"]' in with_token
    assert "HF_TOKEN" not in without and "import os" not in without
    assert "model" not in call_keywords(without, "text_classification")  # the URL's one model


@pytest.mark.parametrize("kind", ["model", "local"])
def test_hostile_text_stays_a_literal_in_python(kind):
    target = Target("model", model="m/x") if kind == "model" else Target("local")
    code = task_snippets(
        get_task("text_classification"),
        target,
        app_url=APP,
        inputs={"text": HOSTILE},
        parameters={},
    )["python"]
    method = "text_classification" if kind == "model" else "predict"
    assert call_keywords(code, method)["text"] == HOSTILE


def test_local_python_calls_this_apps_gradio_endpoint_with_the_file():
    code = task_snippets(
        get_task("visual_question_answering"),
        Target("local", model="./my-vilt"),
        app_url=APP,
        inputs={"image": "/up/cat.png", "question": "What colour?"},
        parameters={"top_k": 2},
    )["python"]
    assert "from gradio_client import Client, handle_file" in code
    assert f"Client({APP + '/'!r})" in code
    kwargs = call_keywords(code, "predict")
    assert kwargs["api_name"] == "/visual_question_answering"
    assert (kwargs["question"], kwargs["model"], kwargs["top_k"]) == (
        "What colour?",
        "./my-vilt",
        2,
    )
    assert ast.unparse(kwargs["image"].value) == "handle_file('cat.png')"


def test_curl_through_the_gradio_api_survives_hostile_text_in_bash(tmp_path):
    spec = get_task("text_classification")
    code = task_snippets(
        spec, Target("local"), app_url=APP, inputs={"text": HOSTILE}, parameters={"top_k": 2}
    )["curl"]
    calls = run_curl(code, tmp_path)
    assert not (tmp_path / "pwned").exists()
    data = posted_data(calls)
    names = [i.name for i in spec.inputs] + ["model"] + [p.name for p in spec.params]
    arguments = dict(zip([*names, "endpoint", "provider", "token"], data, strict=True))
    assert arguments["text"] == HOSTILE and arguments["top_k"] == 2
    assert arguments["endpoint"] is None and arguments["token"] is None
    assert calls[-1][-1] == f"{APP}/gradio_api/call/text_classification/e1"


def test_curl_uploads_the_file_and_reads_the_token_from_the_environment(tmp_path):
    spec = get_task("image_classification")
    code = task_snippets(
        spec,
        Target("model", model="google/vit", provider="fal-ai"),
        app_url=APP,
        inputs={"image": "/up/my cat's photo.png"},
        parameters={},
    )["curl"]
    assert "hf_" not in code
    calls = run_curl(code, tmp_path, env={"HF_TOKEN": "hf_from_env_123"})
    upload = calls[0]
    assert upload[upload.index("-F") + 1] == "files=@my cat's photo.png"
    data = posted_data(calls)
    assert data[0] == {"path": "/srv/uploads/abc/cat.png", "meta": {"_type": "gradio.FileData"}}
    assert data[-3:] == ["google/vit", "fal-ai", "hf_from_env_123"]


def test_javascript_reads_the_file_and_the_token_from_the_environment():
    code = task_snippets(
        get_task("image_classification"),
        Target("model", model="google/vit", provider="hf-inference"),
        app_url=APP,
        inputs={"image": "/up/cat.png"},
        parameters={"top_k": 1},
    )["javascript"]
    assert 'import { Client, handle_file } from "@gradio/client";' in code
    assert '"image": handle_file(new Blob([await readFile("cat.png")]))' in code
    assert '"token": process.env.HF_TOKEN' in code
    assert 'client.predict("/image_classification"' in code
