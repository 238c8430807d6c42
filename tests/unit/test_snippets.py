"""Show-code snippets: endpoints, bodies, escaping, and the token never leaking.

The Python snippet is executed against a fake ``huggingface_hub``; the curl snippet is parsed
by ``shlex`` and also run by bash with ``curl`` replaced by a function that prints its
arguments; the JavaScript call's argument object is read back with ``json.loads``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
import types

import pytest

from components.snippets import Target, _chat_url, snippets

HUB_ID = "meta-llama/Llama-3.1-8B-Instruct"
ROUTER = "https://router.huggingface.co"
ENV_TOKEN = "hf_env_value_for_tests"  # what the fake client must receive via os.environ
ENV_KEY = "playground_env_key_for_tests"

# Quotes of every kind, shell metacharacters, escapes, a line separator and non-ASCII.
NASTY = (
    'He said "hi" & it\'s\n\tdone \\n \\ $HOME ${x} $(whoami) `ls` \'\'\' """ '
    "%s {0} </script> \u2028 café 🚀"
)
MESSAGES = [
    {"role": "system", "content": NASTY},
    {"role": "user", "content": "Ünïcödé ' \" \\"},
    {"role": "assistant", "content": "ok\r\n"},
    {"role": "user", "content": "again?"},
]
CHAT_PARAMS = {
    "max_tokens": 64,
    "temperature": 0.7,
    "top_p": None,  # None is left out everywhere
    "seed": 0,  # falsy but set: kept
    "stop": ["'\"", "\n\nUser:", "$(whoami)"],
}
TEXT_PARAMS = {
    "max_new_tokens": 32,
    "do_sample": True,
    "temperature": 0.5,
    "top_k": 10,
    "top_p": 0.9,
    "repetition_penalty": 1.1,
    "seed": 7,
    "stop": ["\n\n", "'''"],
    "return_full_text": False,
    "details": None,
}
CASES = {
    "chat-completion": (MESSAGES, CHAT_PARAMS),
    "text-generation": (NASTY, TEXT_PARAMS),
}

TARGETS = {
    "local": Target("local", base_url="http://127.0.0.1:7860/api"),
    "local-key": Target(
        "local", model="local", base_url="http://127.0.0.1:7860/api/", has_token=True
    ),
    "model-none": Target("model", model=HUB_ID),
    "model-auto": Target("model", model=HUB_ID, provider="auto"),
    "model-hf": Target("model", model=HUB_ID, provider="hf-inference"),
    "model-together": Target("model", model=HUB_ID, provider="together"),
    "url-tgi": Target("url", base_url="https://abc.endpoints.huggingface.cloud", has_token=True),
    "url-openai": Target("url", model="served-llm", base_url="http://localhost:8000/v1/"),
}

# (task, target) -> (URL, model field of the body or None) for curl, written out by hand.
CURL_CHAT = {
    "local": ("http://127.0.0.1:7860/api/v1/chat/completions", None),
    "local-key": ("http://127.0.0.1:7860/api/v1/chat/completions", "local"),
    "model-none": (f"{ROUTER}/v1/chat/completions", HUB_ID),
    "model-auto": (f"{ROUTER}/v1/chat/completions", HUB_ID),
    "model-hf": (f"{ROUTER}/hf-inference/models/{HUB_ID}/v1/chat/completions", HUB_ID),
    "model-together": (f"{ROUTER}/v1/chat/completions", f"{HUB_ID}:together"),
    "url-tgi": ("https://abc.endpoints.huggingface.cloud/v1/chat/completions", None),
    "url-openai": ("http://localhost:8000/v1/chat/completions", "served-llm"),
}
CURL_TEXT = {
    "local": "http://127.0.0.1:7860/api/generate_stream",
    "local-key": "http://127.0.0.1:7860/api/generate_stream",
    "model-none": f"{ROUTER}/hf-inference/models/{HUB_ID}",
    "model-auto": f"{ROUTER}/hf-inference/models/{HUB_ID}",
    "model-hf": f"{ROUTER}/hf-inference/models/{HUB_ID}",
    "model-together": f"{ROUTER}/together/v1/completions",
    "url-tgi": "https://abc.endpoints.huggingface.cloud/generate_stream",
    "url-openai": "http://localhost:8000/generate_stream",
}
# Constructor kwargs of InferenceClient (token values as read from the environment).
PY_CLIENT = {
    "local": {"base_url": "http://127.0.0.1:7860/api"},
    "local-key": {"base_url": "http://127.0.0.1:7860/api", "api_key": ENV_KEY},
    "model-none": {"model": HUB_ID, "token": ENV_TOKEN},
    "model-auto": {"model": HUB_ID, "provider": "auto", "token": ENV_TOKEN},
    "model-hf": {"model": HUB_ID, "provider": "hf-inference", "token": ENV_TOKEN},
    "model-together": {"model": HUB_ID, "provider": "together", "token": ENV_TOKEN},
    "url-tgi": {"base_url": "https://abc.endpoints.huggingface.cloud", "token": ENV_TOKEN},
    "url-openai": {"base_url": "http://localhost:8000/v1"},
}
AUTH = {"local-key": "Bearer $PLAYGROUND_API_KEY", "url-tgi": "Bearer $HF_TOKEN"}

MATRIX = [(task, name) for task in CASES for name in TARGETS]


def _given(task: str) -> tuple:
    inputs, params = CASES[task]
    return inputs, params, {k: v for k, v in params.items() if v is not None}


def _expected_http(task: str, name: str) -> tuple[str, dict]:
    inputs, _, params = _given(task)
    if task == "chat-completion":
        url, model = CURL_CHAT[name]
        head = {"model": model} if model else {}
        return url, {**head, "messages": inputs, **params, "stream": True}
    url = CURL_TEXT[name]
    if name == "model-together":
        return url, {"prompt": inputs, **params, "model": HUB_ID, "stream": True}
    stream = {"stream": True} if name.startswith("model") else {}
    return url, {"inputs": inputs, "parameters": params, **stream}


def _auth(name: str) -> str | None:
    return "Bearer $HF_TOKEN" if name.startswith("model") else AUTH.get(name)


@pytest.fixture
def fake_hub(monkeypatch):
    """A ``huggingface_hub`` whose InferenceClient records how the snippet calls it."""
    record: dict = {}

    class InferenceClient:
        def __init__(self, **kwargs):  # keyword-only, like the snippets must call it
            record["init"] = kwargs

        def chat_completion(self, messages, **kwargs):
            record["call"] = ("chat_completion", messages, kwargs)
            pieces = ["Hel", None, "lo"]
            return iter(
                types.SimpleNamespace(
                    choices=[types.SimpleNamespace(delta=types.SimpleNamespace(content=p))]
                )
                for p in pieces
            )

        def text_generation(self, prompt, **kwargs):
            record["call"] = ("text_generation", prompt, kwargs)
            if kwargs.get("details"):
                return iter(
                    types.SimpleNamespace(token=types.SimpleNamespace(text=t)) for t in "Hi!"
                )
            return iter(["Hel", "lo"])

    module = types.ModuleType("huggingface_hub")
    module.InferenceClient = InferenceClient
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("PLAYGROUND_API_KEY", ENV_KEY)
    return record


def _run_python(code: str) -> None:
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})


@pytest.mark.parametrize("task,name", MATRIX)
def test_python_snippet_runs_with_exact_inputs_and_parameters(task, name, fake_hub, capsys):
    inputs, given, params = _given(task)
    code = snippets(task, TARGETS[name], inputs=inputs, parameters=given)["python"]
    _run_python(code)
    expected_client = dict(PY_CLIENT[name])
    if task == "text-generation" and "base_url" in expected_client:
        # TGI's routes live at the root; InferenceClient POSTs generation to the URL itself.
        expected_client["base_url"] = expected_client["base_url"].removesuffix("/v1")
    assert fake_hub["init"] == expected_client
    method, sent_inputs, kwargs = fake_hub["call"]
    assert method == ("chat_completion" if task == "chat-completion" else "text_generation")
    assert sent_inputs == inputs  # exact: every quote, escape and emoji survived
    extra = (
        {"model": TARGETS[name].model}
        if task == "chat-completion" and (name in ("local-key", "url-openai"))
        else {}
    )
    assert kwargs == {"stream": True, **extra, **params}
    assert capsys.readouterr().out == "Hello\n"


def test_python_text_generation_with_details_prints_token_text(fake_hub, capsys):
    code = snippets(
        "text-generation", TARGETS["url-tgi"], inputs="x", parameters={"details": True}
    )["python"]
    _run_python(code)
    assert fake_hub["call"][2] == {"stream": True, "details": True}
    assert capsys.readouterr().out == "Hi!\n"


def _curl_parts(argv: list[str]) -> tuple[str, list[str], dict]:
    assert argv[0] == "curl" and "-N" in argv
    headers = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-H"]
    return argv[1], headers, json.loads(argv[argv.index("-d") + 1])


@pytest.mark.parametrize("task,name", MATRIX)
def test_curl_snippet_sends_the_expected_request(task, name):
    inputs, given, _ = _given(task)
    curl = snippets(task, TARGETS[name], inputs=inputs, parameters=given)["curl"]
    url, headers, body = _curl_parts(shlex.split(curl, comments=True))
    assert (url, body) == _expected_http(task, name)
    expected_headers = ["Content-Type: application/json"]
    if _auth(name):
        expected_headers.insert(0, f"Authorization: {_auth(name)}")
    assert headers == expected_headers


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("task,name", MATRIX)
def test_curl_snippet_survives_a_real_shell(task, name):
    """bash, not just shlex: `$HOME`, backticks and `$(...)` in the body stay literal."""
    inputs, given, _ = _given(task)
    curl = snippets(task, TARGETS[name], inputs=inputs, parameters=given)["curl"]
    script = 'curl() { printf "%s\\0" curl "$@"; }\n' + curl
    env = {"HF_TOKEN": "tok1", "PLAYGROUND_API_KEY": "key2", "HOME": "/nowhere", "PATH": ""}
    out = subprocess.run(
        [shutil.which("bash"), "-c", script], env=env, capture_output=True, check=True
    )
    url, headers, body = _curl_parts(out.stdout.decode().split("\0")[:-1])
    assert (url, body) == _expected_http(task, name)
    expanded = {"Bearer $HF_TOKEN": "Bearer tok1", "Bearer $PLAYGROUND_API_KEY": "Bearer key2"}
    if _auth(name):
        assert f"Authorization: {expanded[_auth(name)]}" in headers


def _js_call(js: str) -> tuple[str, str, dict]:
    match = re.search(r"const stream = (.*)\.(\w+)\((\{.*\})\);\n", js, re.DOTALL)
    assert match, js
    return match[1], match[2], json.loads(match[3])


@pytest.mark.parametrize("task,name", MATRIX)
def test_javascript_snippet_calls_the_stream_method_with_exact_arguments(task, name):
    inputs, given, params = _given(task)
    target = TARGETS[name]
    js = snippets(task, target, inputs=inputs, parameters=given)["javascript"]
    assert js.startswith('import { InferenceClient } from "@huggingface/inference";')
    client, method, args = _js_call(js)
    head = {}
    if target.kind == "model":
        assert client == "client"
        head = {"model": HUB_ID, **({"provider": target.provider} if target.provider else {})}
    else:
        endpoint = PY_CLIENT[name]["base_url"]
        if task == "text-generation":
            endpoint = endpoint.removesuffix("/v1")
        assert client == f"client.endpoint({json.dumps(endpoint)})"
        if task == "chat-completion" and target.model:
            head = {"model": target.model}
    if task == "chat-completion":
        assert method == "chatCompletionStream"
        assert args == {**head, "messages": inputs, **params}
        assert "chunk.choices[0]?.delta?.content" in js
    else:
        assert method == "textGenerationStream"
        assert args == {**head, "inputs": inputs, "parameters": params}
        assert "chunk.token.text" in js
    assert json.dumps(NASTY, ensure_ascii=False) in js  # the JSON-escaped user string
    env = {"local-key": "PLAYGROUND_API_KEY"}.get(name, "HF_TOKEN") if _auth(name) else ""
    client_line = f"new InferenceClient({'process.env.' + env if env else ''});"
    assert client_line in js


def test_no_token_parameter_exists():
    assert [f.name for f in dataclasses.fields(Target)] == [
        "kind",
        "model",
        "provider",
        "base_url",
        "has_token",
    ]
    assert list(inspect.signature(snippets).parameters) == [
        "task",
        "target",
        "inputs",
        "parameters",
    ]


@pytest.mark.parametrize("task,name", MATRIX)
def test_environment_secrets_never_appear(task, name, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRET_should_not_leak")
    monkeypatch.setenv("PLAYGROUND_API_KEY", "SECRET_key_should_not_leak")
    inputs, given, _ = _given(task)
    for code in snippets(task, TARGETS[name], inputs=inputs, parameters=given).values():
        assert "SECRET" not in code


@pytest.mark.parametrize("task", CASES)
@pytest.mark.parametrize("name,env", [("url-tgi", "HF_TOKEN"), ("local-key", "PLAYGROUND_API_KEY")])
def test_has_token_only_adds_the_auth_placeholder(task, name, env):
    inputs, given, _ = _given(task)
    with_token = snippets(task, TARGETS[name], inputs=inputs, parameters=given)
    without = snippets(
        task, dataclasses.replace(TARGETS[name], has_token=False), inputs=inputs, parameters=given
    )
    for language in with_token:
        assert env in with_token[language]
        assert "HF_TOKEN" not in without[language]
        assert "PLAYGROUND_API_KEY" not in without[language]
        assert "Authorization" not in without[language]
        changed = [
            line
            for line in difflib.ndiff(
                without[language].splitlines(), with_token[language].splitlines()
            )
            if line.startswith(("+ ", "- "))
        ]
        assert changed, language
        for line in changed:
            assert (
                line.startswith("+ ") and (env in line or line in ("+ import os", "+ "))
            ) or line == "- const client = new InferenceClient();", (language, line)


@pytest.mark.parametrize("task", CASES)
def test_model_targets_always_use_hf_token(task):
    inputs, given, _ = _given(task)
    on = snippets(
        task, Target("model", model=HUB_ID, has_token=True), inputs=inputs, parameters=given
    )
    off = snippets(task, Target("model", model=HUB_ID), inputs=inputs, parameters=given)
    assert on == off
    assert 'os.environ["HF_TOKEN"]' in on["python"] or "os.environ['HF_TOKEN']" in on["python"]
    assert '"Authorization: Bearer $HF_TOKEN"' in on["curl"]
    assert "new InferenceClient(process.env.HF_TOKEN);" in on["javascript"]


@pytest.mark.parametrize(
    "base",
    [
        "http://localhost:8080",
        "http://localhost:8080/",
        "https://x.endpoints.huggingface.cloud/v1",
        "https://x.endpoints.huggingface.cloud/v1/",
        "http://h/api/v1/chat/completions",
    ],
)
def test_chat_url_matches_huggingface_hub(base):
    from huggingface_hub.inference._providers.hf_inference import _build_chat_completion_url

    assert _chat_url(base) == _build_chat_completion_url(base).rstrip("/")


@pytest.mark.parametrize(
    "task,target,parameters,message",
    [
        ("summarization", TARGETS["local"], {}, "No snippets for task"),
        ("chat-completion", Target("model"), {}, "needs a Hub model id"),
        ("chat-completion", Target("url", model="m"), {}, "needs a base_url"),
        ("text-generation", Target("local"), {}, "needs a base_url"),
        ("chat-completion", TARGETS["local"], {"stream": False}, "'stream' is not"),
        ("text-generation", TARGETS["local"], {"bad key": 1}, "'bad key' is not"),
    ],
)
def test_invalid_requests_are_rejected(task, target, parameters, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        snippets(task, target, inputs="x", parameters=parameters)
