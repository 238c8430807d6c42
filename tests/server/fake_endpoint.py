"""A small real HTTP server that plays a TGI / OpenAI-compatible endpoint, scripted per path.

The Hugging Face Hub and real providers are unreachable here, so this replays the shapes
TGI and OpenAI-compatible servers send (recorded payload shapes, not live traffic): TGI's
``POST /`` answer and ``data:{"index", "token", "generated_text", "details"}`` stream events,
OpenAI's ``chat.completion`` object and ``chat.completion.chunk`` events ending with
``data: [DONE]``, TGI's error body ``{"error", "error_type"}`` and the HF Inference API's
``{"error": "... is currently loading", "estimated_time": ...}``.

The first path segment picks the behaviour, so a test points a client at
``endpoint.url("<behaviour>")`` and every route below it (``/``, ``/v1/chat/completions``,
``/health``, ``/info``) behaves that way:

========================  ===================================================================
``ok``                    the happy path, streamed or not (``"stream"`` in the request body)
``401`` ``403`` ``404``   that status with an HF-style ``{"error": ...}`` body
``429``                   TGI's overloaded error (``error_type: overloaded``)
``ratelimit``             a plain 429 as the HF router sends it (no ``error_type``)
``422``                   TGI's validation error (``error_type: validation``)
``loading-N``             503 "model is loading" for the first N requests, then ``ok``
``hang``                  sleeps ``HANG_S`` before answering (longer than a short timeout)
``stall-K``               streams K events, then goes silent for ``HANG_S``
``drop-K``                streams K events, then closes the socket mid-chunked-body
``truncated-K``           streams K events, then ends the body cleanly with no final event
``malformed``             one good event, then ``data: {not json``
``badjson-K``             K events, then ``data: {not json`` (invalid JSON in a data: line)
``garbage-K``             K events, then a line that is not SSE at all (an HTML error page)
``nodone``                every event, the last with its finish reason, but no ``[DONE]``
``error-K``               K events, then TGI's in-stream ``{"error", "error_type": "generation"}``
``endless``               one event every 20 ms until the client goes away
``reasoning``             chat stream: ``delta.reasoning_content`` deltas (as vLLM and
                          DeepSeek send them), then the answer in ``delta.content``
``think``                 chat stream: ``<think>…</think>`` inside ``delta.content``, the tags
                          split across events, then the answer
``vision``                chat stream: an image-aware echo — describes each ``image_url`` part
                          of the last user message (MIME type and size, read with Pillow),
                          e.g. "I see 1 image: image/png 8x6."
========================  ===================================================================

``GET /api/whoami-v2`` answers as the Hub does for a user (``WHOAMI``): with ``HF_ENDPOINT``
pointing here, Gradio's local stand-in for Sign in with HF (``--oauth`` off a Space) works.

Every request is recorded (``endpoint.requests``) with its path, headers and JSON body.
Connections are counted on the server's side: ``connections_open`` (accepted and not yet
closed) and ``connections_total``. ``start(keep_alive=False)`` closes each connection after
its response (``Connection: close``), so a connection still open when no request is running
is one the client never closed.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_S = 4.0
WHOAMI = {
    "type": "user",
    "name": "visitor",
    "fullname": "A Visitor",
    "avatarUrl": "/avatars/visitor.svg",
}
REPLY = ["Hello", " from", " the", " fake", " endpoint", "."]
THINKING = ["The user", " asks", " for", " a", " colour", "."]  # ``reasoning`` and ``think``
ANSWER = ["Blue", " is", " calm", "."]
# ``think``: the tags cut across events, as a tokenizer's pieces may cut them.
THINK_PIECES = ["<thi", "nk>The user", " asks", " for a", " colour.</th", "ink>", *ANSWER]
SCRIPTED = ("reasoning", "think", "vision")
MODEL_ID = "fake-org/fake-model"
INFO = {
    "model_id": MODEL_ID,
    "model_sha": None,
    "model_dtype": "torch.float16",
    "model_device_type": "cuda",
    "model_pipeline_tag": "text-generation",
    "max_concurrent_requests": 128,
    "max_best_of": 2,
    "max_stop_sequences": 4,
    "max_input_tokens": 4095,
    "max_total_tokens": 4096,
    "validation_workers": 2,
    "max_client_batch_size": 4,
    "router": "text-generation-router",
    "version": "3.3.4",
    "sha": None,
    "docker_label": None,
}
ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "401": (401, {"error": "Invalid credentials in Authorization header"}),
    "403": (403, {"error": "This token does not have sufficient permissions for this model"}),
    "404": (404, {"error": f"Model {MODEL_ID}-missing does not exist"}),
    "429": (429, {"error": "Model is overloaded", "error_type": "overloaded"}),
    "ratelimit": (429, {"error": "You have reached the rate limit of your plan"}),
    "422": (
        422,
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
            "4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`",
            "error_type": "validation",
        },
    ),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeEndpoint:
    """The running server: ``url(behaviour)``, the recorded requests, and reset()."""

    server: ThreadingHTTPServer
    requests: list[RecordedRequest] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    disconnected: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    keep_alive: bool = True
    connections_open: int = 0
    connections_total: int = 0

    @property
    def root(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, behaviour: str = "ok") -> str:
        return f"{self.root}/{behaviour}"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.counts.clear()
        self.disconnected.clear()

    def posts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]


def _tgi_event(index: int, text: str, final: bool, details: bool) -> dict[str, Any]:
    event: dict[str, Any] = {
        "index": index,
        "token": {"id": 100 + index, "text": text, "logprob": -0.25, "special": False},
        "generated_text": None,
        "details": None,
        "top_tokens": None,
    }
    if final:
        event["generated_text"] = "".join(REPLY[:index])
        if details:
            event["details"] = {
                "finish_reason": "eos_token",
                "generated_tokens": index,
                "seed": None,
                "input_length": 3,
            }
    return event


def describe_images(body: dict[str, Any]) -> str:
    """``vision``'s answer: what the last user message's ``image_url`` parts hold."""
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    urls = [
        p["image_url"]["url"]
        for p in (content if isinstance(content, list) else [])
        if isinstance(p, dict) and p.get("type") == "image_url"
    ]
    if not urls:
        return "I see no image."
    from PIL import Image

    seen = []
    for url in urls:
        head, _, payload = url.partition(",")
        with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
            seen.append(f"{head.removeprefix('data:').split(';')[0]} {image.width}x{image.height}")
    return f"I see {len(urls)} image{'s' if len(urls) != 1 else ''}: {', '.join(seen)}."


def _chat_chunk(
    text: str | None, finish: str | None, reasoning: str | None = None
) -> dict[str, Any]:
    delta = {"role": "assistant", "content": text} if text is not None else {}
    if reasoning is not None:
        delta = {"role": "assistant", "content": None, "reasoning_content": reasoning}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL_ID,
        "system_fingerprint": "3.3.4-sha-fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms
    server: ThreadingHTTPServer
    endpoint: FakeEndpoint  # set on the subclass made by start()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def setup(self) -> None:
        with self.endpoint.lock:
            self.endpoint.connections_open += 1
            self.endpoint.connections_total += 1
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.endpoint.lock:
                self.endpoint.connections_open -= 1

    def end_headers(self) -> None:
        if not self.endpoint.keep_alive:
            self.send_header("connection", "close")  # sets close_connection
        super().end_headers()

    # -- plumbing ----------------------------------------------------------------------------

    def _record(self) -> tuple[str, list[str], dict[str, Any] | None]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self.endpoint.lock:
            self.endpoint.requests.append(
                RecordedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        return (parts[0] if parts else "ok"), parts[1:], body

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _sleep(self, seconds: float) -> None:
        self.endpoint.stopping.wait(seconds)

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        behaviour, rest, _ = self._record()
        if self.path == "/api/whoami-v2":
            self._json(200, WHOAMI)
        elif behaviour in ERRORS:
            self._json(*ERRORS[behaviour])
        elif behaviour == "hang":
            self._sleep(HANG_S)
            self._json(200, {})
        elif rest == ["health"]:
            self._json(200, {})
        elif rest == ["info"] and behaviour != "openai":
            self._json(200, INFO)
        else:
            self._json(404, {"error": "Not Found"})

    def do_POST(self) -> None:
        behaviour, rest, body = self._record()
        body = body or {}
        chat = rest[-2:] == ["chat", "completions"]
        name, _, arg = behaviour.partition("-")
        count = int(arg) if arg.isdigit() else 0
        if name == "loading":
            with self.endpoint.lock:
                seen = self.endpoint.counts[behaviour] = self.endpoint.counts.get(behaviour, 0) + 1
            if seen <= count or arg == "forever":
                message = f"Model {MODEL_ID} is currently loading"
                return self._json(503, {"error": message, "estimated_time": 0.1})
            name = "ok"
        if behaviour in ERRORS:
            return self._json(*ERRORS[behaviour])
        if name == "hang":
            self._sleep(HANG_S)
            return self._json(504, {"error": "too late"})
        if not body.get("stream"):
            return self._reply(chat, body)
        try:
            if chat and name in SCRIPTED:
                return self._scripted(name, body)
            self._stream(chat, body, name, count)
        except (BrokenPipeError, ConnectionResetError):
            self.endpoint.disconnected.set()
            self.close_connection = True

    def _reply(self, chat: bool, body: dict[str, Any]) -> None:
        text = "".join(REPLY)
        if chat:
            return self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": MODEL_ID,
                    "system_fingerprint": "3.3.4-sha-fake",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
                },
            )
        output: dict[str, Any] = {"generated_text": text}
        if (body.get("parameters") or {}).get("details"):
            output["details"] = {
                "finish_reason": "eos_token",
                "generated_tokens": len(REPLY),
                "seed": None,
                "prefill": [],
                "tokens": [
                    {"id": 101 + i, "text": t, "logprob": -0.25, "special": False}
                    for i, t in enumerate(REPLY)
                ],
            }
        self._json(200, [output])  # TGI's compat route `POST /` answers a list

    def _scripted(self, name: str, body: dict[str, Any]) -> None:
        """The reasoning / think / vision chat streams (see the module's table)."""
        if name == "reasoning":
            events = [_chat_chunk(None, None, reasoning=t) for t in THINKING]
            events += [_chat_chunk(t, None) for t in ANSWER]
        elif name == "think":
            events = [_chat_chunk(t, None) for t in THINK_PIECES]
        else:
            words = describe_images(body).split(" ")
            events = [_chat_chunk(w if i == 0 else f" {w}", None) for i, w in enumerate(words)]
        events.append(_chat_chunk(None, "stop"))
        self._start_sse()
        for event in events:
            self._chunk(f"data: {json.dumps(event)}\n\n")
        self._chunk("data: [DONE]\n\n")
        self._end_sse()

    def _stream(self, chat: bool, body: dict[str, Any], name: str, count: int) -> None:
        details = bool((body.get("parameters") or {}).get("details"))
        limits = {
            "drop": count,
            "stall": count,
            "truncated": count,
            "error": count,
            "badjson": count,
            "garbage": count,
        }
        limit = limits.get(name, 1 if name == "malformed" else len(REPLY))
        self._start_sse()
        if name == "endless":  # until the client hangs up (BrokenPipeError in do_POST)
            while not self.endpoint.stopping.wait(0.02):
                self._chunk(self._event(chat, 0, "tick ", False, details))
            return
        for i, text in enumerate(REPLY[:limit]):
            final = i == len(REPLY) - 1 and name in ("ok", "nodone")
            self._chunk(self._event(chat, i, text, final, details))
        if name == "drop":  # mid chunked body: the client sees a broken stream
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if name == "stall":
            self._sleep(HANG_S)
        elif name in ("malformed", "badjson"):
            self._chunk("data: {not json\n\n")
        elif name == "garbage":
            self._chunk("<html><body><h1>502 Bad Gateway</h1></body></html>\n\n")
        elif name == "error":
            error = {
                "error": "Request failed during generation: CUDA out of memory",
                "error_type": "generation",
            }
            self._chunk(f"data:{json.dumps(error)}\n\n")
        elif chat and name == "ok":
            self._chunk("data: [DONE]\n\n")
        self._end_sse()

    @staticmethod
    def _event(chat: bool, i: int, text: str, final: bool, details: bool) -> str:
        if chat:
            return f"data: {json.dumps(_chat_chunk(text, 'stop' if final else None))}\n\n"
        # TGI writes `data:` with no space; InferenceClient accepts both.
        return f"data:{json.dumps(_tgi_event(i + 1, text, final, details))}\n\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or closed its stream is a scripted outcome, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def start(*, keep_alive: bool = True) -> FakeEndpoint:
    """Serve on 127.0.0.1 with a port the OS picks; stop with ``stop(endpoint)``.
    ``keep_alive=False``: close every connection after its response."""
    handler = type("Handler", (_Handler,), {})
    server = _Server(("127.0.0.1", 0), handler)
    endpoint = FakeEndpoint(server, keep_alive=keep_alive)
    handler.endpoint = endpoint
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        daemon=True,
        name="fake-endpoint",
    ).start()
    return endpoint


def stop(endpoint: FakeEndpoint) -> None:
    endpoint.stopping.set()
    endpoint.server.shutdown()
    endpoint.server.server_close()
