"""Bad input on the real app's Gradio side: every named API endpoint called with hostile
values, hostile files through the task tabs' endpoints, and Gradio's file routes.

Every call ends in a result or a Gradio error whose message is a sentence for a person:
never a stack trace or an exception's text (``'int' object has no attribute 'strip'``,
``[Errno 36] File name too long``, pydantic's ``1 validation error for ImageData``). The
app runs with ``show_error=False``, so an exception nobody turned into a ``gr.Error`` reaches
a client as Gradio's generic "has raised an exception" line, which is accepted here: it
carries no exception text. The server answers ``/api/health`` after each endpoint.

Values a JSON library will not send (NaN, Infinity, lone surrogates) go over raw HTTP to
``/gradio_api/call/<endpoint>``, as ``gradio_client`` would send them (``x-gradio-user: api``).
Generation stays short: ``max_tokens`` / ``max_new_tokens`` stay at 2 except where the hostile
value itself is what is tested (refused before any token).
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

pytestmark = pytest.mark.server

HTTP_TIMEOUT_S = 120.0
EXCEPTION_TEXT = re.compile(
    r"Traceback|File \"|\b[A-Z]\w*(Error|Exception)(\(|: )|object has no attribute"
    r"|not subscriptable|unexpected keyword|positional argument|NoneType|invalid literal"
    r"|\[Errno \d+\]|validation errors? for|errors\.pydantic\.dev|unsupported operand"
)
GENERIC = "has raised an exception"  # gradio_client's line for an error without a message
MAX_TOKENS = 2
TOKEN_BUDGETS = ("max_tokens", "max_new_tokens")
GENERATION = ("/chat", "/text_generation")  # every parameter fuzzed one at a time
ROUTING = ("endpoint", "provider", "model", "token")  # where a call goes, fuzzed on its own
HUGE = "x" * 1_000_000
OUTCOMES: Counter[tuple[str, str]] = Counter()  # (endpoint, outcome): count

# Hostile values per parameter kind. A kind a profile leaves out keeps a valid value.
PROFILES: dict[str, dict[str, Any]] = {
    "none": dict.fromkeys(
        ("text", "int", "float", "bool", "strlist", "history", "choice", "file", "table")
    ),
    "wrong-type": {
        "text": 12345,
        "int": "abc",
        "float": "abc",
        "bool": "maybe",
        "strlist": "not a list",
        "history": "not a list",
        "choice": 3,
        "file": "not-a-file",
        "table": "not a table",
    },
    "nan": {
        "text": "NaN",
        "int": float("nan"),
        "float": float("nan"),
        "bool": float("nan"),
        "strlist": [float("nan")],
        "history": [{"role": "user", "content": float("nan")}],
        "table": {"headers": ["a"], "data": [[float("nan")]]},
    },
    "infinity": {
        "text": "-1e309",
        "int": float("inf"),
        "float": float("-inf"),
        "table": {"headers": ["a"], "data": [[float("inf")]]},
    },
    "huge-number": {"text": "1e30", "int": 10**30, "float": 1e308, "choice": 10**30},
    "huge": {
        "text": HUGE,
        "strlist": ["x"] * 10_000,
        "history": [{"role": "user", "content": "hi"}] * 5_000,
        "table": {"headers": ["a"], "data": [["1"]] * 20_000},
    },
    "surrogate": {
        "text": "a\ud800b",
        "strlist": ["\ud800"],
        "history": [{"role": "user", "content": "\udfff"}],
        "choice": "\ud800",
        "table": {"headers": ["\ud800"], "data": [["\udc00"]]},
    },
    "structure": {
        "text": {"a": [1]},
        "int": [1, 2],
        "float": {"x": 1},
        "bool": [],
        "strlist": [[1], {"a": 2}],
        "history": [["user", "hi"], 5],
        "choice": ["softmax"],
        "table": {"headers": 5, "data": 7},
    },
}
RAW_PROFILES = ("nan", "infinity", "surrogate")  # values gradio_client cannot encode
# Where a call goes: the model textbox / remote arguments, each refused with a sentence.
ROUTING_VALUES = [HUGE, "/etc/passwd", "../../../../etc", "\ud800", 12345]


def assert_clear(message: str | None, what: str) -> None:
    """A message for a person: no stack trace, no exception's text."""
    assert message is None or isinstance(message, str), (what, message)
    found = EXCEPTION_TEXT.search(message or "")
    assert found is None, f"{what}: exception text {found.group()!r} in {message[:400]!r}"


@pytest.fixture(scope="module")
def client(app_url: str):
    client = Client(app_url, verbose=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def gradio_http(app_url: str):
    headers = {"x-gradio-user": "api"}  # what gradio_client sends: API errors, not toasts
    with httpx.Client(
        base_url=app_url + "gradio_api", timeout=HTTP_TIMEOUT_S, headers=headers
    ) as http:
        yield http


@pytest.fixture(scope="module")
def endpoints(client) -> dict[str, Any]:
    return client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    image, audio = folder / "ok.png", folder / "ok.wav"
    Image.new("RGB", (8, 8), "red").save(image)
    soundfile.write(audio, np.zeros(1600, dtype="float32"), 16000)
    return {"Image": image, "Audio": audio}


@pytest.fixture(scope="module")
def uploaded(gradio_http, media) -> dict[str, dict]:
    """The valid image and audio uploaded once, as the FileData raw calls pass."""
    files = {}
    for component, path in media.items():
        response = gradio_http.post("/upload", files={"files": (path.name, path.read_bytes())})
        assert response.status_code == 200, response.text
        files[component] = {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}
    return files


def kind(parameter: dict) -> str:
    """A parameter's kind, from what ``view_api`` says about it."""
    component = parameter.get("component")
    python_type = parameter.get("python_type", {}).get("type", "")
    if component in ("Image", "Audio"):
        return "file"
    if component == "Dataframe":
        return "table"
    if python_type.startswith("Literal"):
        return "choice"
    if "list[str]" in python_type:
        return "strlist"
    if "list[dict" in python_type:
        return "history"
    return {"int": "int", "None | int": "int", "float": "float", "bool": "bool"}.get(
        python_type, "text"
    )


def valid(parameter: dict, files: dict[str, Any]) -> Any:
    name, component = parameter["parameter_name"], parameter.get("component")
    if name in TOKEN_BUDGETS:
        return MAX_TOKENS
    if component in files:
        return files[component]
    if component == "Dataframe":
        return {"headers": ["a", "b"], "data": [["1", "2"]]}
    if parameter.get("parameter_has_default"):
        return parameter.get("parameter_default")
    return "hello"


def call(client, gradio_http, endpoint: str, args: list, raw: bool) -> str | None:
    """The endpoint's answer to ``args`` (positional): ``None`` for a result, else the
    error's message ("" when Gradio sent none)."""
    if not raw:
        try:
            client.predict(*args, api_name=endpoint)
        except AppError as exc:
            return str(exc)
        return None
    body = json.dumps({"data": args}, allow_nan=True)  # NaN, Infinity, "\ud800" escapes
    started = gradio_http.post(
        f"/call{endpoint}", content=body, headers={"Content-Type": "application/json"}
    )
    assert started.status_code in (200, 422), started.text[:500]
    if started.status_code == 422:  # Gradio refused the body itself
        assert_clear(started.text, endpoint)
        return started.text
    events = gradio_http.get(f"/call{endpoint}/{started.json()['event_id']}").text
    kinds = re.findall(r"^event: (\w+)", events, flags=re.MULTILINE)
    data = re.findall(r"^data: (.*)$", events, flags=re.MULTILINE)
    assert kinds and kinds[-1] in ("complete", "error"), events[:500]
    if kinds[-1] == "complete":
        return None
    error = json.loads(data[-1]) if data and data[-1] != "null" else None
    return (error or {}).get("error") or ""


TEXT_ARGUMENTS = ("message", "prompt", "history", "system_prompt")
ROUTED_TASK = "/text_classification"


def cases(
    endpoint: str, parameters: list[dict], position: int
) -> list[tuple[str, dict[str, Any], bool]]:
    """``(label, hostile values by parameter name, raw)`` for the endpoint at ``position``.

    The generation endpoints get every profile twice: on their text arguments, then on
    the others (one refusal hides the next). A task endpoint gets two profiles, rotating,
    so each profile reaches every group's shared checks (``components.task_inputs``)
    within budget; the ``model`` field is fuzzed on ``ROUTED_TASK`` only (one code path
    for every task)."""
    names = list(PROFILES)
    chosen = names if endpoint in GENERATION else [names[position % 8], names[(position + 4) % 8]]
    out = []
    for profile in chosen:
        values, raw = PROFILES[profile], profile in RAW_PROFILES
        hostile = {
            p["parameter_name"]: values[kind(p)]
            for p in parameters
            if kind(p) in values and p["parameter_name"] not in ROUTING
        }
        for name, value in hostile.items():
            if name in TOKEN_BUDGETS and value is None:  # None: the default, 100+ tokens
                hostile[name] = MAX_TOKENS
        if endpoint in GENERATION:
            text = {n: v for n, v in hostile.items() if n in TEXT_ARGUMENTS}
            rest = {n: v for n, v in hostile.items() if n not in TEXT_ARGUMENTS}
            out += [(f"{profile}:text", text, raw)] if text else []
            out += [(f"{profile}:values", rest, raw)] if rest else []
        elif hostile:
            out.append((profile, hostile, raw))
    routing = [p["parameter_name"] for p in parameters if p["parameter_name"] in ROUTING]
    if endpoint in GENERATION:
        # Values that are refused before any request leaves (a remote call would wait on
        # the network, unreachable from here).
        out += [
            ("routing:provider", {"provider": HUGE}, False),
            ("routing:endpoint", {"endpoint": 12345}, False),
            ("routing:token", {"token": ["hf_x"]}, False),
            ("routing:model", {"model": "\ud800", "endpoint": "\ud800"}, True),
        ]
    elif routing and endpoint == ROUTED_TASK:
        out += [(f"routing:{routing[0]}", {routing[0]: v}, v == "\ud800") for v in ROUTING_VALUES]
    return out


def test_every_named_endpoint_answers_hostile_values_clearly(
    client, gradio_http, endpoints, media, uploaded, app_server
) -> None:
    assert {"/chat", "/text_generation", "/image_classification"} <= set(endpoints)
    for position, (endpoint, info) in enumerate(endpoints.items()):
        parameters = info["parameters"]
        todo = cases(endpoint, parameters, position) or [("no-arguments", {}, False)]
        for label, hostile, raw in todo:
            files = uploaded if raw else {c: handle_file(str(p)) for c, p in media.items()}
            args = [
                hostile[p["parameter_name"]] if p["parameter_name"] in hostile else valid(p, files)
                for p in parameters
            ]
            started = time.monotonic()
            message = call(client, gradio_http, endpoint, args, raw)
            what = f"{endpoint} {label}"
            print(f"{what}: {time.monotonic() - started:.2f} s {str(message)[:100]!r}")
            assert_clear(message, what)
            outcome = "result" if message is None else "error"
            if message is not None and (message == "" or GENERIC in message):
                # No sentence: only Gradio's own preprocessing may refuse that way (an
                # image or a table that is not one); the app's code always says why.
                kinds = {kind(p) for p in parameters if p["parameter_name"] in hostile}
                assert kinds & {"file", "table"}, f"{what}: an error without a message"
                outcome = "generic"
            OUTCOMES[(endpoint, outcome)] += 1
        health = httpx.get(f"{app_server.url}api/health", timeout=HTTP_TIMEOUT_S)
        assert health.status_code == 200, f"the app stopped serving after {endpoint}"
    print("Gradio fuzz outcomes:", dict(sorted(OUTCOMES.items())))


# -- hostile files through the task tabs' endpoints -------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header for width × height, then one compressed row of zeros and the
    end: a few hundred bytes that would decode to width × height × 3 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\0" * (1 + 3 * width), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", row)
        + _png_chunk(b"IEND", b"")
    )


def real_png(width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def real_wav(seconds: float = 0.5, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), dtype="float32"), rate, format="WAV")
    return buffer.getvalue()


def wav_header(rate: int, data_bytes: int) -> bytes:
    """A 16-bit mono WAV header declaring ``data_bytes`` of samples (none follow)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


# (file name, bytes, endpoint, text the message must contain)
HOSTILE_FILES = {
    "text-named-png": ("notes.png", b"these are notes, not pixels\n" * 50, "image", "not an image"),
    "zero-byte-png": ("empty.png", b"", "image", "empty"),
    "truncated-png": ("cut.png", real_png()[:300], "image", "not an image"),
    "png-bomb-30000x30000": ("bomb.png", png_declaring(30_000, 30_000), "image", "megapixels"),
    "png-over-our-limit": ("big.png", png_declaring(7_000, 7_000), "image", "megapixels"),
    "gzip-named-png": ("archive.png", zlib.compress(b"\0" * 10_000_000), "image", "not an image"),
    "text-named-wav": ("notes.wav", b"RIFF? no, plain text\n" * 50, "audio", "not audio"),
    "zero-byte-wav": ("empty.wav", b"", "audio", "not audio"),
    "truncated-wav": ("cut.wav", real_wav()[:30], "audio", "not audio"),
    "wav-declaring-4-GB": ("huge.wav", wav_header(16_000, 2**32 - 64), "audio", "audio"),
    "wav-rate-1-hz": ("slow.wav", wav_header(1, 2_000) + b"\0" * 2_000, "audio", "sample rate"),
    "png-named-wav": ("image.wav", real_png(), "audio", "not audio"),
}
FILE_ENDPOINTS = {"image": "/image_classification", "audio": "/automatic_speech_recognition"}


@pytest.mark.parametrize(
    ("name", "data", "target", "mentioned"), HOSTILE_FILES.values(), ids=HOSTILE_FILES
)
def test_a_hostile_file_gets_a_clear_message(
    client, app_url, tmp_path, name, data, target, mentioned
):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(path)), api_name=FILE_ENDPOINTS[target])
    message = str(caught.value)
    assert_clear(message, name)
    assert mentioned in message, message
    assert httpx.get(f"{app_url}api/health", timeout=HTTP_TIMEOUT_S).status_code == 200


def test_a_table_bomb_is_refused_clearly(client) -> None:
    # The CSV upload is a private event (no API): its bombs are tests/unit/test_media.py's.
    # Through the API a table arrives as the grid's value: 5 000 columns, 20 000 rows.
    # (Gradio's own preprocessing takes ~10 s for 100 000 columns before the app sees it.)
    wide = {"headers": [f"c{i}" for i in range(5_000)], "data": [["1"] * 5_000]}
    tall = {"headers": ["a", "b"], "data": [["1", "2"]] * 20_000}
    for table, limit in ((wide, "columns; the limit is 200"), (tall, "rows; the limit is 10000")):
        with pytest.raises(AppError, match=limit):
            client.predict(table, "Which?", api_name="/table_question_answering")


def test_a_file_path_that_was_not_uploaded_is_never_read(gradio_http) -> None:
    # Gradio skipped this check on a mounted app (Blocks never "launched"): the handler
    # then read /etc/passwd or the app's own files for whoever named them.
    own = Path(__file__).resolve().parents[2] / "presets" / "examples" / "shapes.png"
    for path in ("/etc/passwd", str(own), "../../../../etc/passwd"):
        data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, None, "", "default"]
        body = json.dumps({"data": data})
        started = gradio_http.post(
            "/call/image_classification",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert started.status_code == 200, started.text
        events = gradio_http.get(f"/call/image_classification/{started.json()['event_id']}").text
        assert "event: error" in events, events
        # Not "not an image Pillow can read" (it was read), nor the local-model refusal
        # (shapes.png was read and passed the image check).
        assert "Pillow" not in events and "No local model" not in events, events
        assert "root:" not in events


# -- Gradio's file routes serve only the app's own files --------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
FILE_ROUTE_PATHS = [
    "/file=/etc/passwd",
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=//etc/passwd",
    "/gradio_api/file=../../../../../../etc/passwd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file=%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/gradio_api/file=/proc/self/environ",
    f"/gradio_api/file={REPO_ROOT}/app.py",
    "/gradio_api/file=app.py",
    "/gradio_api/file=./app.py",
    "/file=app.py",
    "/gradio_api/file=.git/config",
    "/gradio_api/file=.venv/pyvenv.cfg",
    "/gradio_api/file=presets/tasks.yaml",
    "/static/../app.py",
    "/assets/../../app.py",
    "/gradio_api/file={upload}/../../../../etc/passwd",
    "/gradio_api/file={cache}",
    "/gradio_api/file={cache}/converted",
]


@pytest.fixture(scope="module")
def own_upload(gradio_http) -> str:
    """A file uploaded through Gradio: the one kind of path its routes serve."""
    response = gradio_http.post("/upload", files={"files": ("mine.txt", b"uploaded by me")})
    assert response.status_code == 200, response.text
    return response.json()[0]


def test_the_file_route_serves_an_uploaded_file(app_url, own_upload) -> None:
    # The control: the route works, so the refusals below are refusals.
    response = httpx.get(f"{app_url}gradio_api/file={own_upload}", timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200 and response.content == b"uploaded by me"


@pytest.mark.parametrize("template", FILE_ROUTE_PATHS)
def test_file_routes_serve_nothing_outside_the_app(app_url, own_upload, template) -> None:
    cache = Path.home() / ".cache" / "inference-playground"
    path = template.format(upload=str(Path(own_upload).parent), cache=cache)
    url = httpx.URL(app_url.rstrip("/"))
    # Sent as written: httpx would otherwise normalize "../" away before it leaves.
    raw = url.copy_with(raw_path=path.encode())
    response = httpx.get(raw, timeout=HTTP_TIMEOUT_S)
    assert response.status_code in (403, 404), (path, response.status_code)
    for secret in ("root:x:0:0", "def main()", "[core]", "home = ", "default_model"):
        assert secret not in response.text, (path, secret)
