"""A small real HTTP server that plays an HF Inference endpoint for every task in
``backends.tasks.TASKS`` (image, audio, tables, text).

The Hugging Face Hub and its providers are unreachable from here, so this replays recorded
payload *shapes* (``tests/server/task_payloads.py``), not live traffic. It speaks the wire
format huggingface_hub 2.4's ``InferenceClient(base_url=..., provider="hf-inference")``
uses, which POSTs every task to the base URL itself:

* image / audio tasks with no parameters: the raw file bytes as the body (no content type);
  with parameters: JSON ``{"inputs": <base64>, "parameters": {...}}``;
* visual QA: JSON ``{"inputs": <base64>, "parameters": {...}, "question": ..., "image":
  <base64>}``; document QA: ``{"inputs": {"question", "image": <base64>}, "parameters"}``;
* text tasks: JSON ``{"inputs": <str | dict>, "parameters": {...}}`` (``parameters`` always
  present, ``{}`` when none); feature extraction puts its parameters at the root;
* tabular tasks: JSON ``{"parameters": {}, "table": {column: [cells]}}``.

Use::

    from tests.server.fake_tasks_endpoint import FakeTasksEndpoint

    with FakeTasksEndpoint() as ep:
        backend = RemoteBackend(base_url=ep.url("ok", "object_detection"))
        backend.run_task("object_detection", {"image": png_bytes})   # → PAYLOADS values
        ep.posts()[-1].parameters, ep.posts()[-1].media               # what was sent

Sample inputs for every task, the body InferenceClient must send for them and a check of
the returned value are in ``tests/server/task_cases.py`` (``CASES[task]``); the uploads
(``IMAGE_PNG``, ``AUDIO_WAV``, ``TABLE``) and the replies are in ``task_payloads.py``.

``url(behaviour, task)`` is ``http://127.0.0.1:<port>/<behaviour>/<task>``. The *task*
segment picks the reply (``PAYLOADS[task]``); it is optional where the request's shape
belongs to one task only (question answering, table QA, sentence similarity, document
and visual QA, the zero-shot tasks, feature extraction): a UI with one endpoint URL for
every tab can use ``url(behaviour)``. An ambiguous request without a task gets a 400 that
says so. A request that does not match its task's wire format (e.g. JSON text sent to an
image task) gets a 400 naming the problem, so a client bug cannot pass silently.

The *behaviour* segment says what happens:

========================  ===================================================================
``ok``                    200 with the task's payload (JSON, or PNG / FLAC bytes)
``401`` ``403`` ``404``   that status with an HF-style ``{"error": ...}`` body
``422``                   a validation error ``{"error": "Input validation error: ..."}``
``429``                   the router's rate limit ``{"error": "Rate limit reached..."}``
``500``                   a server failure ``{"error": "CUDA out of memory..."}``
``503``                   "Service Unavailable", not a loading model (no retry expected)
``loading-N``             503 "model is currently loading" for the first N requests (counted
                          per URL), then ``ok``; ``loading-forever`` never ends
``hang``                  waits ``HANG_S`` seconds, then 504 (longer than a short timeout)
``garbage``               200 with an HTML body, as a misconfigured proxy would answer
========================  ===================================================================

``GET <url>/health`` answers 200 for every behaviour but the error ones. Every request is
recorded (``ep.requests``) with its headers, raw body and decoded JSON; ``reset()`` forgets
them and the loading counters.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from backends.tasks import TASKS
from tests.server.task_payloads import PAYLOADS, Binary

HANG_S = 4.0
MODEL_ID = "fake-org/fake-task-model"
ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "401": (401, {"error": "Invalid credentials in Authorization header"}),
    "403": (403, {"error": "This token does not have sufficient permissions for this model"}),
    "404": (404, {"error": f"Model {MODEL_ID} does not exist"}),
    "422": (
        422,
        {"error": "Input validation error: `inputs` is longer than the model's 512 tokens"},
    ),
    "429": (429, {"error": "Rate limit reached. You reached the free usage limit (reset hourly)"}),
    "500": (500, {"error": "CUDA out of memory. Tried to allocate 2.00 GiB"}),
    "503": (503, {"error": "Service Unavailable"}),
}
LOADING_ERROR = {"error": f"Model {MODEL_ID} is currently loading", "estimated_time": 0.1}

# How InferenceClient (hf-inference) sends each task; see the module docstring.
MEDIA_TASKS = {
    name for name, spec in TASKS.items() if {i.kind for i in spec.inputs} & {"image", "audio"}
} - {"visual_question_answering", "document_question_answering"}
DICT_INPUTS = {
    "question_answering": {"question", "context"},
    "table_question_answering": {"query", "table"},
    "sentence_similarity": {"source_sentence", "sentences"},
    "document_question_answering": {"question", "image"},
}
TABLE_TASKS = {"tabular_classification", "tabular_regression"}


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_image(data: bytes | None) -> bool:
    if not data:
        return False
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except OSError:
        return False


@dataclass
class RecordedRequest:
    """One request as the server saw it. ``json`` is the decoded body when it was JSON."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    json: dict[str, Any] | None
    behaviour: str
    task: str | None  # from the path, or inferred from the body; None if neither

    @property
    def inputs(self) -> Any:
        """The ``inputs`` field, or the raw body for a binary upload."""
        return self.json.get("inputs") if self.json is not None else self.raw

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters as sent: ``parameters`` (root-level keys for feature extraction)."""
        if self.json is None:
            return {}
        if "parameters" not in self.json:
            return {k: v for k, v in self.json.items() if k != "inputs"}
        return self.json["parameters"]

    @property
    def media(self) -> bytes | None:
        """The uploaded image/audio bytes, however encoded (raw body, base64 ``inputs``,
        base64 ``image``)."""
        if self.json is None:
            return self.raw or None
        inputs = self.json.get("inputs")
        if isinstance(inputs, dict):
            return _b64(inputs.get("image"))
        return _b64(self.json.get("image")) or _b64(inputs)


def infer_task(body: dict[str, Any] | None) -> str | None:
    """The one task whose request has this shape, or None when several could (a raw upload,
    plain text, a table)."""
    if body is None:
        return None
    inputs, parameters = body.get("inputs"), body.get("parameters")
    if isinstance(inputs, dict):
        matches = [task for task, keys in DICT_INPUTS.items() if set(inputs) == keys]
        return matches[0] if len(matches) == 1 else None
    if {"question", "image"} <= set(body):
        return "visual_question_answering"
    if isinstance(inputs, str) and parameters is None and "table" not in body:
        return "feature_extraction"  # the only task without a `parameters` object
    if isinstance(parameters, dict) and "candidate_labels" in parameters:
        image = _is_image(_b64(inputs))
        return "zero_shot_image_classification" if image else "zero_shot_classification"
    return None


def wire_problem(task: str, request: RecordedRequest) -> str | None:
    """Why ``request`` is not how InferenceClient sends ``task``, or None if it is."""
    body = request.json
    if task in MEDIA_TASKS:
        if body is None:
            return None if request.raw else "the body is empty"
        if request.media is None:
            return "`inputs` must be the file's bytes in base64"
        return None if isinstance(body.get("parameters"), dict) else "`parameters` is missing"
    if body is None:
        return "expected a JSON body"
    if task == "visual_question_answering":
        if not isinstance(body.get("question"), str) or _b64(body.get("image")) is None:
            return "expected `question` and a base64 `image` at the root"
        return None
    if task in TABLE_TASKS:
        table = body.get("table")
        if not isinstance(table, dict) or not table:
            return "expected `table` ({column: [cells]}) at the root"
        return None
    if task in DICT_INPUTS:
        inputs = body.get("inputs")
        if not isinstance(inputs, dict) or set(inputs) != DICT_INPUTS[task]:
            return f"`inputs` must have exactly {sorted(DICT_INPUTS[task])}"
        if task == "document_question_answering" and request.media is None:
            return "`inputs.image` must be base64"
    elif not isinstance(body.get("inputs"), str) or not body["inputs"]:
        return "`inputs` must be a non-empty string"
    if task == "feature_extraction":
        return "`parameters` go at the root for this task" if "parameters" in body else None
    return None if isinstance(body.get("parameters"), dict) else "`parameters` is missing"


class FakeTasksEndpoint:
    """The running server: ``url(behaviour, task)``, the recorded ``requests``, ``reset()``.

    A context manager: ``with FakeTasksEndpoint() as ep: ...`` starts it on a free port of
    127.0.0.1 and stops it on exit (or call ``start()`` / ``stop()``).
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeTasksEndpoint:
        handler = type("Handler", (_Handler,), {"endpoint": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="fake-tasks-endpoint",
        ).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTasksEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for tests ---------------------------------------------------------------------------

    @property
    def root(self) -> str:
        assert self._server is not None, "start() the endpoint first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, behaviour: str = "ok", task: str | None = None) -> str:
        """The base URL to give ``RemoteBackend``/``InferenceClient`` for this behaviour."""
        if task is not None and task not in TASKS:
            raise KeyError(f"unknown task {task!r}; known: {sorted(TASKS)}")
        return f"{self.root}/{behaviour}" + (f"/{task}" if task else "")

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.counts.clear()

    def posts(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms
    endpoint: FakeTasksEndpoint  # set on the subclass made by start()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _record(self) -> tuple[RecordedRequest, list[str]]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = None
        if "json" in headers.get("content-type", ""):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        behaviour = parts[0] if parts else "ok"
        rest = parts[1:]
        task = None
        if rest and rest[0].replace("-", "_") in TASKS:
            task, rest = rest[0].replace("-", "_"), rest[1:]
        elif self.command == "POST":
            task = infer_task(body if isinstance(body, dict) else None)
        request = RecordedRequest(
            self.command,
            self.path,
            headers,
            raw,
            body if isinstance(body, dict) else None,
            behaviour,
            task,
        )
        with self.endpoint.lock:
            self.endpoint.requests.append(request)
        return request, rest

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:
        request, rest = self._record()
        if request.behaviour in ERRORS:
            self._json(*ERRORS[request.behaviour])
        elif rest == ["health"]:
            self._json(200, {})
        else:
            self._json(404, {"error": "Not Found"})

    def do_POST(self) -> None:
        request, _ = self._record()
        behaviour = request.behaviour
        if behaviour.startswith("loading-"):
            arg = behaviour.removeprefix("loading-")
            with self.endpoint.lock:
                seen = self.endpoint.counts.get(request.path, 0) + 1
                self.endpoint.counts[request.path] = seen
            if arg == "forever" or (arg.isdigit() and seen <= int(arg)):
                return self._json(503, LOADING_ERROR)
            behaviour = "ok"
        if behaviour in ERRORS:
            return self._json(*ERRORS[behaviour])
        if behaviour == "hang":
            self.endpoint.stopping.wait(HANG_S)
            return self._json(504, {"error": "Gateway Timeout"})
        if behaviour == "garbage":
            return self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
        if behaviour != "ok":
            return self._json(404, {"error": f"fake endpoint: unknown behaviour {behaviour!r}"})
        if request.task is None:
            return self._json(
                400,
                {
                    "error": "fake endpoint: this request could be several tasks; name one in "
                    "the URL: url(behaviour, task)"
                },
            )
        problem = wire_problem(request.task, request)
        if problem:
            return self._json(400, {"error": f"fake endpoint ({request.task}): {problem}"})
        payload = PAYLOADS[request.task]
        if isinstance(payload, Binary):
            return self._send(200, payload.data, payload.content_type)
        self._json(200, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is a scripted outcome, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
