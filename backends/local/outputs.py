"""Engine events → huggingface_hub's output types (what every backend returns).

Streams are generators that submit to the engine on their first ``next()`` and cancel the
request when closed, so a consumer that goes away never holds the engine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionOutputComplete,
    ChatCompletionOutputFunctionDefinition,
    ChatCompletionOutputLogprob,
    ChatCompletionOutputLogprobs,
    ChatCompletionOutputMessage,
    ChatCompletionOutputToolCall,
    ChatCompletionOutputTopLogprob,
    ChatCompletionOutputUsage,
    ChatCompletionStreamOutput,
    ChatCompletionStreamOutputChoice,
    ChatCompletionStreamOutputDelta,
    ChatCompletionStreamOutputDeltaToolCall,
    ChatCompletionStreamOutputFunction,
    ChatCompletionStreamOutputLogprob,
    ChatCompletionStreamOutputLogprobs,
    ChatCompletionStreamOutputTopLogprob,
    ChatCompletionStreamOutputUsage,
    TextGenerationOutput,
    TextGenerationOutputBestOfSequence,
    TextGenerationOutputDetails,
    TextGenerationOutputPrefillToken,
    TextGenerationOutputToken,
    TextGenerationStreamOutput,
    TextGenerationStreamOutputStreamDetails,
    TextGenerationStreamOutputToken,
)

from backends.local.engine.grammar import NO_TOOL, parse_tool_call
from backends.local.engine.protocol import GenerationEngine
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.sequence import TokenEvent

VERSION = "0.1.0"
T = TypeVar("T")


class QueueSpot:
    """Stands in for the engine in a stream: its ``submit`` remembers the ``TokenStream``
    it returns, so whoever reads the stream can ask where the request waits."""

    def __init__(self, engine: GenerationEngine) -> None:
        self._engine = engine
        self._stream: Any = None

    def submit(self, ids: list[int], sampling: SamplingParams):
        self._stream = self._engine.submit(ids, sampling)
        return self._stream

    def waiting(self) -> tuple[int, float | None] | None:
        """``(position, seconds)`` while queued (see ``TokenStream.waiting``), else None."""
        stream = self._stream
        return stream.waiting() if stream is not None and hasattr(stream, "waiting") else None


class LocalStream(Generic[T]):
    """A local backend's stream: the outputs, plus ``waiting()`` — the request's place in
    the engine's queue and a wait estimate while it has not started (the tabs show it)."""

    def __init__(self, outputs: Iterator[T], spot: QueueSpot) -> None:
        self._outputs = outputs
        self._spot = spot

    def __iter__(self) -> LocalStream[T]:
        return self

    def __next__(self) -> T:
        return next(self._outputs)

    def close(self) -> None:
        close = getattr(self._outputs, "close", None)
        if close is not None:
            close()

    def waiting(self) -> tuple[int, float | None] | None:
        return self._spot.waiting()


class StopHoldback:
    """Chat semantics for stop sequences (OpenAI): the stop text is never shown. Text that
    could be the start of a stop sequence is held back until it is known not to be one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.pending = ""
        self.done = False

    def feed(self, delta: str) -> str:
        if self.done:
            return ""
        self.pending += delta
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            self.done = True  # nothing after the stop is ever released
            return out
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        return out

    def finish(self) -> str:
        out = self.feed("")
        rest, self.pending = self.pending, ""
        return out + ("" if self.done else rest)


def text_output(
    engine: GenerationEngine, ids: list[int], sampling: SamplingParams, prefix: str
) -> TextGenerationOutput:
    """One whole sequence with TGI's full details (tokens, top tokens, prefill, seed)."""
    with engine.submit(ids, sampling) as stream:
        events = list(stream)
    last = events[-1]
    top = None
    if sampling.top_n_tokens:
        top = [
            [
                TextGenerationOutputToken(id=i, logprob=lp, special=sp, text=t)
                for i, t, lp, sp in e.top_tokens or []
            ]
            for e in events
        ]
    prefill = [
        TextGenerationOutputPrefillToken(id=i, logprob=lp, text=t)
        for i, t, lp in events[0].prefill or []
    ]
    return TextGenerationOutput(
        generated_text=prefix + (last.generated_text or ""),
        details=TextGenerationOutputDetails(
            finish_reason=last.finish_reason,
            generated_tokens=last.index,
            prefill=prefill,
            tokens=[
                TextGenerationOutputToken(
                    id=e.id, logprob=e.logprob, special=e.special, text=e.text
                )
                for e in events
            ],
            seed=last.seed,
            top_tokens=top,
        ),
    )


def text_stream(
    engine: GenerationEngine, ids: list[int], sampling: SamplingParams, prefix: str
) -> Iterator[TextGenerationStreamOutput]:
    # Submitted on the first next(), inside the generator: a consumer that goes away
    # before reading anything then never holds the engine (nothing to cancel).
    with engine.submit(ids, sampling) as stream:
        for event in stream:
            out = TextGenerationStreamOutput(
                index=event.index,
                token=TextGenerationStreamOutputToken(
                    id=event.id, logprob=event.logprob, special=event.special, text=event.text
                ),
            )
            if event.top_tokens is not None:
                out.top_tokens = [
                    TextGenerationStreamOutputToken(id=i, logprob=lp, special=sp, text=t)
                    for i, t, lp, sp in event.top_tokens
                ]
            if event.finish_reason:
                out.generated_text = prefix + (event.generated_text or "")
                out.details = TextGenerationStreamOutputStreamDetails(
                    finish_reason=event.finish_reason,
                    generated_tokens=event.index,
                    input_length=event.input_length,
                    seed=event.seed,
                )
            yield out


def chat_stream(
    engine: GenerationEngine,
    ids: list[int],
    sampling: SamplingParams,
    model_id: str,
    logprobs: bool = False,
    *,
    tool_mode: bool = False,
) -> Iterator[ChatCompletionStreamOutput]:
    """Chat chunks. ``tool_mode``: the output is a grammar-shaped tool call, held back and
    sent as ``delta.tool_calls`` at the end (or as content when the model chose no tool)."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    holdback = StopHoldback(sampling.stop)
    pending: list[ChatCompletionStreamOutputLogprob] = []  # tokens not yet sent

    def chunk(
        content: str | None,
        finish: str | None = None,
        event: TokenEvent | None = None,
        tool_calls: list | None = None,
    ):
        choice_logprobs = None
        if logprobs:
            choice_logprobs = ChatCompletionStreamOutputLogprobs(content=list(pending))
            pending.clear()
        usage = None
        if event is not None:
            usage = ChatCompletionStreamOutputUsage(
                completion_tokens=event.index,
                prompt_tokens=event.input_length,
                total_tokens=event.index + event.input_length,
            )
        return ChatCompletionStreamOutput(
            choices=[
                ChatCompletionStreamOutputChoice(
                    delta=ChatCompletionStreamOutputDelta(
                        role="assistant", content=content, tool_calls=tool_calls
                    ),
                    index=0,
                    finish_reason=finish,
                    logprobs=choice_logprobs,
                )
            ],
            created=created,
            id=chunk_id,
            model=model_id,
            system_fingerprint=f"inference-playground-{VERSION}",
            usage=usage,
        )

    with engine.submit(ids, sampling) as stream:  # on first next(), as in _text_stream
        for event in stream:
            if logprobs and not event.special:
                pending.append(
                    ChatCompletionStreamOutputLogprob(
                        logprob=event.logprob,
                        token=event.text,
                        top_logprobs=[
                            ChatCompletionStreamOutputTopLogprob(logprob=lp, token=t)
                            for _, t, lp, _ in event.top_tokens or []
                        ],
                    )
                )
            if tool_mode:
                if event.finish_reason:
                    yield _tool_chunk(chunk, event.generated_text or "", event)
                    return
                continue
            if event.finish_reason:
                finish = "length" if event.finish_reason == "length" else "stop"
                yield chunk(
                    holdback.feed(event.text if not event.special else "") + holdback.finish(),
                    finish,
                    event,
                )
                return
            if not event.special:
                text = holdback.feed(event.text)
                if text:
                    yield chunk(text)


def _tool_chunk(chunk, generated: str, event: TokenEvent) -> ChatCompletionStreamOutput:
    """The last chunk of a tool-mode answer: the call (name + JSON arguments), or the
    model's plain answer when it chose ``no_tool``; an answer cut short stays visible."""
    try:
        name, arguments = parse_tool_call(generated)
    except ValueError:
        return chunk(generated, "length", event)
    if name == NO_TOOL:
        return chunk(str(arguments.get("content", "")), "stop", event)
    call = ChatCompletionStreamOutputDeltaToolCall(
        function=ChatCompletionStreamOutputFunction(
            name=name, arguments=json.dumps(arguments, ensure_ascii=False)
        ),
        id=f"call_{uuid.uuid4().hex[:12]}",
        index=0,
        type="function",
    )
    return chunk(None, "tool_calls", event, tool_calls=[call])


def best_of_output(runs: list[TextGenerationOutput]) -> TextGenerationOutput:
    """TGI's ``best_of``: the run with the highest total logprob, the others reported in
    its ``best_of_sequences``."""
    best = max(runs, key=lambda o: sum(t.logprob for t in o.details.tokens))
    others = [o for o in runs if o is not best]
    if others:
        best.details.best_of_sequences = [
            TextGenerationOutputBestOfSequence(
                generated_text=o.generated_text,
                finish_reason=o.details.finish_reason,
                generated_tokens=o.details.generated_tokens,
                prefill=o.details.prefill,
                tokens=o.details.tokens,
                seed=o.details.seed,
                top_tokens=o.details.top_tokens,
            )
            for o in others
        ]
    return best


def chat_output(
    chunks: Iterator[ChatCompletionStreamOutput], logprobs: bool
) -> ChatCompletionOutput:
    """The whole stream of ``chat_stream`` as one ``ChatCompletionOutput`` (the last chunk
    carries ``usage``)."""
    text, last, token_logprobs, tool_calls = "", None, [], None
    for last in chunks:
        text += last.choices[0].delta.content or ""
        if last.choices[0].delta.tool_calls:
            tool_calls = [
                ChatCompletionOutputToolCall(
                    function=ChatCompletionOutputFunctionDefinition(
                        name=call.function.name, arguments=call.function.arguments
                    ),
                    id=call.id,
                    type=call.type,
                )
                for call in last.choices[0].delta.tool_calls
            ]
        if last.choices[0].logprobs is not None:
            token_logprobs.extend(last.choices[0].logprobs.content)
    assert last is not None and last.usage is not None
    content = [
        ChatCompletionOutputLogprob(
            logprob=lp.logprob,
            token=lp.token,
            top_logprobs=[
                ChatCompletionOutputTopLogprob(logprob=t.logprob, token=t.token)
                for t in lp.top_logprobs
            ],
        )
        for lp in token_logprobs
    ]
    return ChatCompletionOutput(
        choices=[
            ChatCompletionOutputComplete(
                finish_reason=last.choices[0].finish_reason,
                index=0,
                message=ChatCompletionOutputMessage(
                    role="assistant", content=text or None, tool_calls=tool_calls
                ),
                logprobs=ChatCompletionOutputLogprobs(content=content) if logprobs else None,
            )
        ],
        created=last.created,
        id=last.id,
        model=last.model,
        system_fingerprint=last.system_fingerprint,
        usage=ChatCompletionOutputUsage(**vars(last.usage)),
    )
