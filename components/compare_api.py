"""The ``/compare`` Gradio API endpoint: one message to 2–4 targets at once (the Compare
tab's ``stream_panes``), one result per target.

    Client(url).predict("Hi", [{"endpoint": "local"}, {"endpoint": "http://host/v1",
                        "model": "m"}], api_name="/compare")

Each target is ``{"endpoint", "model", "provider", "token", "max_tokens", "temperature",
"top_p", "seed"}`` (all optional; ``endpoint`` ``"local"`` or empty is the local model, as
``/chat`` takes it). Each result is ``{"target", "text", "tokens", "ttft_ms",
"tokens_per_s", "finish_reason", "error"}``: a target that fails has its reason in
``error`` (with any partial text) while the others still answer. ``run_targets`` is plain
Python; ``register`` adds the endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backends import Backend
from backends.errors import BackendError
from components import chat
from components.common import (
    GENERATION_CONCURRENCY,
    GENERATION_CONCURRENCY_ID,
    api_text,
    to_gradio_error,
)
from components.compare import MAX_PANES, PaneJob, stream_panes, target_name
from components.connection import api_connection, backend_for
from components.forms import ChatForm
from components.visitors import Visitors

MIN_TARGETS = 2


class ApiTarget(BaseModel):
    """One target of a ``/compare`` call (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = ""
    model: str = ""
    provider: str = "auto"
    token: str = Field(default="", repr=False)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ReplyFacts:
    """A finished (or failed) reply's numbers, as ``/compare`` returns them."""

    tokens: int = 0
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    finish_reason: str | None = None


def measured_run(
    backend: Backend, messages: list[dict[str, str]], form: ChatForm
) -> Iterator[tuple[str, str, ReplyFacts]]:
    """Like ``chat.run``, with the numbers as ``ReplyFacts`` (third): yields ``(reply so
    far, "", facts)``. Raises ``BackendError``."""
    started = time.perf_counter()
    first = last = None
    count, reply, finish, usage = 0, "", None, None

    def facts() -> ReplyFacts:
        tokens = usage.completion_tokens if usage is not None else count
        speed = None
        if first is not None and last is not None and last > first and tokens > 1:
            speed = round((tokens - 1) / (last - first), 2)
        ttft = None if first is None else round((first - started) * 1000, 1)
        return ReplyFacts(tokens, ttft, speed, finish)

    for chunk in backend.chat_completion(messages, **form.keywords(), stream=True):
        if chunk.choices:
            delta = chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
            if delta:
                last = time.perf_counter()
                first = first or last
                count += 1
                reply += delta
        usage = chunk.usage or usage
        yield reply, "", facts()
    yield reply, "", facts()


def parse_targets(value: object) -> list[ApiTarget]:
    """``targets`` as a client sent them; raises ``gr.Error`` saying what is wrong."""
    if not isinstance(value, list) or not MIN_TARGETS <= len(value) <= MAX_PANES:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise gr.Error(
            f"`targets` must be a list of {MIN_TARGETS}–{MAX_PANES} targets (got {got}).",
            title="Invalid input",
            print_exception=False,
        )
    parsed = []
    for i, item in enumerate(value):
        try:
            parsed.append(ApiTarget.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(the target)"
            raise gr.Error(
                f"`targets[{i}]`: `{where}` — {first['msg']}.",
                title="Invalid input",
                print_exception=False,
            ) from None
    return parsed


def run_targets(
    jobs: list[PaneJob], names: list[str], *, run=measured_run, refresh_s: float = 0.05
) -> list[dict]:
    """Run ``jobs`` together (``stream_panes``) to the end; one result dict per job."""
    final = None
    for final in stream_panes(jobs, refresh_s=refresh_s, run=run):  # noqa: B007
        pass
    results = []
    for name, state in zip(names, final or [], strict=True):
        facts = state.facts or ReplyFacts()
        results.append(
            {
                "target": name,
                "text": state.text,
                "tokens": facts.tokens,
                "ttft_ms": facts.ttft_ms,
                "tokens_per_s": facts.tokens_per_s,
                "finish_reason": facts.finish_reason,
                "error": state.error or None,
            }
        )
    return results


def register(local: Backend, *, visitors: Visitors) -> None:
    """The ``/compare`` endpoint (call inside the ``gr.Blocks``)."""

    def compare(
        request: gr.Request,
        oauth: gr.OAuthToken | None,
        message: str,
        targets: list[dict],
        system_prompt: str = chat.DEFAULT_SYSTEM_PROMPT,
    ) -> list[dict]:
        """Send one message to 2–4 targets at once. Each target: {"endpoint": "local" or
        a Hub model id or URL, "model", "provider", "token", "max_tokens", "temperature",
        "top_p", "seed"} (all optional). Returns one result per target, in order:
        {"target", "text", "tokens", "ttft_ms", "tokens_per_s", "finish_reason", "error"}."""
        message = api_text(message, "message")
        if not message.strip():
            raise gr.Error("`message` cannot be empty.", print_exception=False)
        messages = chat.to_messages(
            [{"role": "user", "content": message}], api_text(system_prompt, "system_prompt")
        )
        jobs, names = [], []
        for target in parse_targets(targets):
            form = ChatForm(
                max_tokens=target.max_tokens,
                temperature=target.temperature,
                top_p=target.top_p,
                seed=target.seed,
            )
            connection = api_connection(
                target.endpoint, target.provider, target.model, target.token, oauth
            )
            names.append(target_name(connection))
            try:
                jobs.append(PaneJob(backend_for(connection, local), messages, form))
            except BackendError as exc:
                jobs.append(PaneJob(None, [], form, error=exc.user_message()))
        try:
            with visitors.hold(request):  # one compare call counts as one generation
                return run_targets(jobs, names)
        except BackendError as exc:
            raise to_gradio_error(exc) from None

    gr.api(
        compare,
        api_name="compare",
        concurrency_limit=GENERATION_CONCURRENCY,
        concurrency_id=GENERATION_CONCURRENCY_ID,
    )
