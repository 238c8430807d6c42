"""Bad input on the real app's local API (``/api``): every hostile request ends in a 4xx
with TGI's error JSON, never a 500, a stack trace or an exception's text, and the server
keeps serving.

Two halves: requests written by hand for what a fuzzer does not send (NaN and Infinity in
JSON numbers, malformed JSON, invalid UTF-8, lone surrogates, 5 MB prompts, 10 000 stop
sequences, JSON nested 100 000 deep, invalid grammars and schemas, values out of range),
then schemathesis generating bodies from ``/api/openapi.json`` for every operation, both
valid ones (positive) and ones the schema forbids (negative), with a fixed budget per
operation and hypothesis derandomized, so a run is reproducible.

Generation stays short: the fuzzer's bodies get ``max_new_tokens`` / ``max_tokens`` capped at
2 (the bundled model runs at ~15 tokens/s on 2 cores).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
)

pytestmark = pytest.mark.server

HTTP_TIMEOUT_S = 120.0
# What an exception's text or a stack trace looks like in a response body.
EXCEPTION_TEXT = re.compile(
    r"Traceback|File \"|\b[A-Z]\w*(Error|Exception)(\(|: )|object has no attribute"
    r"|not subscriptable|is not JSON serializable|maximum recursion depth"
)
MAX_TOKENS = 2  # the cap on every generation this module asks for
# Fuzzed examples per operation and mode: positive bodies of the generation routes run the
# model (2 tokens, ~0.5 s each here), the rest are refused at once.
EXAMPLES = {"POST": 5, "GET": 3}


@pytest.fixture(scope="module")
def http(app_url: str):
    with httpx.Client(base_url=app_url.rstrip("/") + "/api", timeout=HTTP_TIMEOUT_S) as client:
        yield client


def assert_clean(text: str) -> None:
    """No stack trace and no exception's text in what a client receives."""
    found = EXCEPTION_TEXT.search(text)
    assert found is None, f"exception text {found.group()!r} in the response: {text[:500]!r}"


def assert_tgi_error(response: httpx.Response, status: int = 422) -> str:
    """A 4xx with TGI's ``{"error", "error_type"}`` (nothing else); the message."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_type"}, body
    assert isinstance(body["error"], str) and body["error"].strip()
    assert len(body["error"]) < 2_000, "the message echoes the input back"
    assert_clean(body["error"])
    return body["error"]


def assert_serving(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200


def post_raw(http: httpx.Client, route: str, body: bytes) -> httpx.Response:
    return http.post(route, content=body, headers={"Content-Type": "application/json"})


# -- written by hand ---------------------------------------------------------------------

GEN = {"max_new_tokens": MAX_TOKENS}
CHAT = [{"role": "user", "content": "hi"}]


def _json(**parameters: Any) -> dict[str, Any]:
    return {"inputs": "hi", "parameters": {**GEN, **parameters}}


# (route, raw body, text the error must contain). Raw bytes: NaN, Infinity and lone
# surrogates are not what a JSON library sends, but a client can.
RAW_CASES = {
    "temperature-NaN": (
        "/generate",
        b'{"inputs":"hi","parameters":{"temperature":NaN,"max_new_tokens":2}}',
        "temperature",
    ),
    "top_p-NaN": ("/generate", b'{"inputs":"hi","parameters":{"top_p":NaN}}', "top_p"),
    "max_new_tokens-Infinity": (
        "/generate",
        b'{"inputs":"hi","parameters":{"max_new_tokens":Infinity}}',
        "max_new_tokens",
    ),
    "frequency_penalty--Infinity": (
        "/generate_stream",
        b'{"inputs":"hi","parameters":{"frequency_penalty":-Infinity,"max_new_tokens":2}}',
        "frequency_penalty",
    ),
    "chat-temperature-Infinity": (
        "/v1/chat/completions",
        b'{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"temperature":Infinity}',
        "temperature",
    ),
    "seed-1e300": ("/generate", b'{"inputs":"hi","parameters":{"seed":1e300}}', "seed"),
    "malformed-json": ("/generate", b'{"inputs":"hi",', "JSON"),
    "empty-body": ("/generate", b"", "JSON"),
    "json-array-body": ("/generate", b"[1, 2]", "JSON object"),
    "invalid-utf8": ("/generate", b'{"inputs":"\xff\xfe\xc3(","parameters":{}}', "JSON"),
    "nested-100k-deep": (
        "/generate",
        b'{"inputs":"hi","parameters":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "nested too deeply",
    ),
    "lone-surrogate-inputs": ("/generate", b'{"inputs":"\\ud800","parameters":{}}', "inputs"),
    "lone-surrogate-stream": (
        "/generate_stream",
        b'{"inputs":"a\\udfff b","parameters":{"max_new_tokens":2}}',
        "surrogate",
    ),
    "lone-surrogate-compat": ("", b'{"inputs":"\\udc80","stream":true}', "surrogate"),
    "lone-surrogate-chat": (
        "/v1/chat/completions",
        b'{"messages":[{"role":"user","content":"x\\ud800"}],"max_tokens":2}',
        "content",
    ),
    "lone-surrogate-tokenize": ("/tokenize", b'{"inputs":"\\ud800"}', "surrogate"),
    "lone-surrogate-regex": (
        "/generate",
        b'{"inputs":"hi","parameters":{"grammar":{"type":"regex","value":"\\ud800"}}}',
        "grammar",
    ),
}

# (route, JSON body, text the error must contain)
JSON_CASES = {
    "inputs-5MB": ("/generate", {"inputs": "word " * 1_000_000, "parameters": GEN}, "8192"),
    "stop-10k": (
        "/generate",
        {"inputs": "hi", "parameters": {**GEN, "stop": ["x"] * 10_000}},
        "stop",
    ),
    "chat-stop-10k": (
        "/v1/chat/completions",
        {"messages": CHAT, "max_tokens": 2, "stop": ["x"] * 10_000},
        "stop",
    ),
    "messages-10k": ("/v1/chat/completions", {"messages": CHAT * 10_000, "max_tokens": 2}, "8192"),
    "inputs-number": ("/generate", {"inputs": 5}, "inputs"),
    "inputs-list": ("/generate", {"inputs": ["hi"]}, "inputs"),
    "parameters-list": ("/generate", {"inputs": "hi", "parameters": [1]}, "parameters"),
    "temperature-string": ("/generate_stream", _json(temperature="hot"), "temperature"),
    "stop-string": ("/generate", _json(stop="x"), "stop"),
    "stop-empty-string": ("/generate", _json(stop=[""]), "stop"),
    "max_new_tokens-float": ("/generate", _json(max_new_tokens=1.5), "max_new_tokens"),
    "max_new_tokens-1e30": ("/generate", _json(max_new_tokens=10**30), "max_new_tokens"),
    "seed-negative": ("/generate", _json(seed=-1), "seed"),
    "top_n_tokens-over": ("/generate", _json(top_n_tokens=6), "top_n_tokens"),
    "top_n_tokens-negative": ("/generate", _json(top_n_tokens=-1), "top_n_tokens"),
    "best_of-over": ("/generate", _json(best_of=5, do_sample=True), "best_of"),
    "best_of-zero": ("/generate", _json(best_of=0), "best_of"),
    "best_of-greedy": ("/generate", _json(best_of=2), "sampling"),
    "best_of-stream": ("/generate_stream", _json(best_of=2, do_sample=True), "best_of"),
    "unknown-parameter": ("/generate", _json(temprature=0.5), "temprature"),
    "grammar-regex-unclosed": (
        "/generate",
        _json(grammar={"type": "regex", "value": "("}),
        "regex",
    ),
    "grammar-unknown-type": ("/generate", _json(grammar={"type": "yaml", "value": "x"}), "yaml"),
    "grammar-no-value": ("/generate", _json(grammar={"type": "json"}), "grammar"),
    "grammar-schema-type": (
        "/generate",
        _json(grammar={"type": "json", "value": {"type": "nope"}}),
        "schema",
    ),
    "grammar-schema-dangling-ref": (
        "/generate",
        _json(grammar={"type": "json", "value": {"$ref": "#/nowhere"}}),
        "schema",
    ),
    "grammar-schema-not-json": (
        "/generate",
        _json(grammar={"type": "json", "value": "{not json"}),
        "grammar",
    ),
    "chat-response_format-invalid-schema": (
        "/v1/chat/completions",
        {
            "messages": CHAT,
            "max_tokens": 2,
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}},
        },
        "schema",
    ),
    "chat-tools-without-function": (
        "/v1/chat/completions",
        {"messages": CHAT, "max_tokens": 2, "tools": [{"x": 1}], "tool_choice": "auto"},
        "function",
    ),
    "chat-top_logprobs-over": (
        "/v1/chat/completions",
        {"messages": CHAT, "max_tokens": 2, "logprobs": True, "top_logprobs": 50},
        "top_logprobs",
    ),
    "chat-role-number": (
        "/v1/chat/completions",
        {"messages": [{"role": 5, "content": "hi"}], "max_tokens": 2},
        "role",
    ),
    "chat-empty-messages": ("/v1/chat/completions", {"messages": []}, "messages"),
    "chat-n-2": ("/v1/chat/completions", {"messages": CHAT, "n": 2}, "`n`"),
    "tokenize-number": ("/tokenize", {"inputs": 5}, "inputs"),
}


@pytest.mark.parametrize(("route", "body", "mentioned"), RAW_CASES.values(), ids=RAW_CASES)
def test_hostile_raw_body_is_a_tgi_validation_error(http, route, body, mentioned) -> None:
    message = assert_tgi_error(post_raw(http, route, body))
    assert mentioned in message
    assert_serving(http)


@pytest.mark.parametrize(("route", "body", "mentioned"), JSON_CASES.values(), ids=JSON_CASES)
def test_hostile_json_body_is_a_tgi_validation_error(http, route, body, mentioned) -> None:
    message = assert_tgi_error(http.post(route, json=body))
    assert mentioned in message
    assert_serving(http)


def _not_json(name: str) -> None:
    pytest.fail(f"{name} is not JSON")


@pytest.mark.parametrize(
    "parameters",
    [
        {"temperature": 1e-300, "do_sample": True, "seed": 1},
        {"repetition_penalty": 1e-300, "top_n_tokens": 5},
        {"repetition_penalty": 1e300},
        {"top_k": 10**9, "do_sample": True},
        {"top_k": 1, "do_sample": True, "top_n_tokens": 5},
        {"grammar": {"type": "regex", "value": "[ab]+"}, "top_n_tokens": 5},
        {"truncate": 10**20},
    ],
    ids=["tiny-temperature", "tiny-penalty", "huge-penalty", "huge-top_k", "top_k-1", "regex"]
    + ["huge-truncate"],
)
@pytest.mark.parametrize("route", ["/generate", "/generate_stream"])
def test_extreme_values_within_the_bounds_generate_valid_json(http, route, parameters) -> None:
    # Each gave a 500, a 424 or invalid JSON (NaN or -Infinity logprobs) before.
    body = {"inputs": "hi", "parameters": {**GEN, "details": True, **parameters}}
    response = http.post(route, json=body)
    assert response.status_code == 200, response.text[:500]
    payloads = (
        [response.text]
        if route == "/generate"
        else [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    )
    for payload in payloads:
        # parse_constant: Python's json would accept NaN / -Infinity; JSON does not.
        data = json.loads(payload, parse_constant=_not_json)
        assert "error" not in data, data
    assert payloads


# -- schemathesis over /api/openapi.json -----------------------------------------------

OPERATIONS = [
    "POST /api",
    "POST /api/generate",
    "POST /api/generate_stream",
    "POST /api/tokenize",
    "POST /api/v1/chat/completions",
    "POST /api/chat/completions",
    "GET /api/info",
    "GET /api/v1/models",
    "GET /api/metrics",
    "GET /api/health",
]
BODIES = [label for label in OPERATIONS if label.startswith("POST")]
OUTCOMES: Counter[tuple[str, str, int]] = Counter()  # (operation, mode, status): count


@pytest.fixture(scope="module")
def api_schema(app_url: str):
    return schemathesis.openapi.from_url(app_url + "api/openapi.json")


def test_the_schema_lists_every_operation_fuzzed(api_schema) -> None:
    served = {op.ok().label for op in api_schema.get_all_operations()}
    assert served == set(OPERATIONS)


def cap_generation(body: Any, positive: bool) -> None:
    """At most ``MAX_TOKENS`` new tokens (a positive body may ask for millions, or none:
    the default 100); values that are refused anyway are left as generated. Chat bodies
    lose their grammar and tools (see below)."""
    if not isinstance(body, dict):
        return
    if "inputs" in body:
        if body.get("parameters") is None:
            body["parameters"] = {}
        target, key = body["parameters"], "max_new_tokens"
    elif "messages" in body:
        # A random JSON schema or tool list can take llguidance minutes to compile on
        # 2 busy cores; grammars and tools get their hand-written cases above.
        for key in ("response_format", "tools", "tool_choice") if positive else ():
            body.pop(key, None)
        target, key = body, "max_tokens"
    else:
        return
    if isinstance(target, dict):
        value = target.get(key)
        if value is None or (type(value) is int and value > MAX_TOKENS):
            target[key] = MAX_TOKENS


def check_no_exception_text(ctx, response, case) -> None:
    """Schemathesis check: no stack trace or exception text, and a 4xx is TGI's error."""
    assert_clean(response.text)
    if 400 <= response.status_code < 500:
        body = json.loads(response.text)
        assert set(body) == {"error", "error_type"}, body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    check_no_exception_text,
]


@pytest.mark.parametrize(
    ("label", "mode"),
    [(label, GenerationMode.POSITIVE) for label in OPERATIONS]
    + [(label, GenerationMode.NEGATIVE) for label in BODIES],
    ids=lambda value: str(getattr(value, "value", value)),
)
def test_fuzzed_requests_never_fail_the_server(api_schema, http, label, mode) -> None:
    operation = api_schema.find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[operation.method.upper()],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        cap_generation(case.body, mode == GenerationMode.POSITIVE)
        response = case.call(timeout=HTTP_TIMEOUT_S)
        OUTCOMES[(label, mode.value, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    run()
    assert_serving(http)


def test_after_the_bad_input_the_server_still_generates(http) -> None:
    assert_serving(http)
    response = http.post(
        "/generate", json={"inputs": "The capital of France is", "parameters": GEN}
    )
    assert response.status_code == 200, response.text
    assert response.json()["generated_text"].strip()
    chat = http.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": MAX_TOKENS})
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"]
    print("fuzzed outcomes (operation, mode, status): count", dict(sorted(OUTCOMES.items())))
