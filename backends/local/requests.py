"""A request's parameters → what an engine runs: prompt token ids + ``SamplingParams``.

Validated parameters (``backends.params``) come in; the prompt is tokenized (the chat
template for chat, the tool instruction appended when tools are on), checked against the
model's context, and the grammar (TGI's ``grammar``, chat's ``response_format`` or the
tool-call schema) compiled for this tokenizer. Every refusal is an ``InputValidationError``
raised before any compute.
"""

from __future__ import annotations

import json
from typing import Any

from backends.errors import InputValidationError
from backends.local.engine.grammar import (
    TOOL_PROMPT,
    GrammarError,
    compile_grammar,
    tool_call_schema,
)
from backends.local.engine.sampling import SamplingParams
from backends.local.model import LoadedModel
from backends.params import ChatCompletionParameters, TextGenerationParameters

DEFAULT_MAX_NEW_TOKENS = 100  # InferenceClient/TGI default for text_generation
DEFAULT_CHAT_MAX_TOKENS = 1024


def check_context(loaded: LoadedModel, n_input: int, max_new: int, name: str) -> None:
    """TGI's refusal when the prompt plus ``max_new`` tokens exceed the model's context."""
    if n_input + max_new > loaded.max_context:
        raise InputValidationError(
            f"`inputs` tokens + `{name}` must be <= {loaded.max_context}. "
            f"Given: {n_input} `inputs` tokens and {max_new} `{name}`",
            field="inputs",
            hint=f"This model has {loaded.max_context} tokens of context: shorten the "
            f"input or lower {name}.",
        )


def compile_for(loaded: LoadedModel, grammar: dict[str, Any] | None):
    """TGI's ``grammar`` compiled for this tokenizer, or a 422-style error before any
    compute (invalid JSON schema, invalid regex, unknown type)."""
    if grammar is None:
        return None
    value = grammar.get("value")
    if isinstance(value, dict) and "properties" in value and "type" not in value:
        # A schema with properties but no type means an object to TGI (outlines), though
        # JSON Schema would accept any value: follow TGI (the reference's own example).
        grammar = {**grammar, "value": {"type": "object", **value}}
    try:
        return compile_grammar(loaded.tokenizer, grammar, eos_token_ids=loaded.eos_token_ids)
    except GrammarError as exc:
        raise InputValidationError(f"Invalid grammar: {exc}", field="grammar") from None


def text_request(
    loaded: LoadedModel, prompt: str, params: TextGenerationParameters
) -> tuple[list[int], SamplingParams]:
    """``text_generation``'s prompt ids (truncated to the last ``truncate`` tokens, as TGI
    does) and sampling parameters."""
    ids = loaded.tokenizer(prompt).input_ids
    if params.truncate is not None:
        ids = ids[-params.truncate :]
    max_new = params.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    check_context(loaded, len(ids), max_new, "max_new_tokens")
    return ids, SamplingParams(
        max_new_tokens=max_new,
        do_sample=params.do_sample,
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        typical_p=params.typical_p,
        repetition_penalty=params.repetition_penalty,
        frequency_penalty=params.frequency_penalty,
        seed=params.seed,
        stop=tuple(params.stop or ()),
        top_n_tokens=params.top_n_tokens or 0,
        watermark=params.watermark,
        prefill_details=params.decoder_input_details,
        grammar=compile_for(loaded, params.grammar),
    )


def tool_grammar(
    messages: list[dict[str, Any]], params: ChatCompletionParameters
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """With ``tools`` on: the messages with the tool instruction after the last one (as TGI
    does for a chat template without tool support) and the tool-call JSON grammar that
    enforces the answer's shape; otherwise the messages unchanged and None."""
    if not params.tools or params.tool_choice == "none":
        return messages, None
    try:
        schema = tool_call_schema(params.tools, params.tool_choice)
    except GrammarError as exc:
        raise InputValidationError(str(exc), field="tools") from None
    if schema is None:
        return messages, None
    note = f"{TOOL_PROMPT}{json.dumps(params.tools, ensure_ascii=False)}"
    last = {**messages[-1], "content": f"{messages[-1]['content']}\n{note}"}
    return [*messages[:-1], last], {"type": "json", "value": schema}


def templated(
    loaded: LoadedModel, messages: list[dict[str, Any]], params: ChatCompletionParameters
) -> tuple[str, list[int], dict | None]:
    """The exact prompt ``chat_completion`` gives the model (the chat template, tools
    folded in), its token ids, and the tool-call grammar (None without tools)."""
    messages, tools = tool_grammar(messages, params)
    # A final assistant message is a reply to continue (the chat's "Continue" after
    # finish: length): the template leaves it open instead of starting a new turn.
    continuing = bool(messages) and messages[-1].get("role") == "assistant"
    prompt = loaded.tokenizer.apply_chat_template(
        messages,
        add_generation_prompt=not continuing,
        continue_final_message=continuing,
        tokenize=False,
    )
    return prompt, loaded.tokenizer(prompt, add_special_tokens=False).input_ids, tools


def chat_request(
    loaded: LoadedModel, messages: list[dict[str, Any]], params: ChatCompletionParameters
) -> tuple[list[int], SamplingParams, bool]:
    """``chat_completion``'s prompt ids (the chat template), sampling parameters, and
    whether the reply is a tool call. ``temperature`` 0 means greedy; ``top_p`` 1 is off."""
    _, ids, tools = templated(loaded, messages, params)
    room = loaded.max_context - len(ids)
    max_new = params.max_tokens or max(1, min(DEFAULT_CHAT_MAX_TOKENS, room))
    check_context(loaded, len(ids), max_new, "max_tokens")
    greedy = params.temperature == 0
    sampling = SamplingParams(
        max_new_tokens=max_new,
        do_sample=not greedy,
        temperature=None if greedy else params.temperature,
        top_p=None if greedy or params.top_p == 1 else params.top_p,
        seed=params.seed,
        stop=tuple(params.stop or ()),
        frequency_penalty=params.frequency_penalty,
        presence_penalty=params.presence_penalty,
        top_n_tokens=(params.top_logprobs or 0) if params.logprobs else 0,
        grammar=compile_for(loaded, tools or params.response_format),
    )
    return ids, sampling, tools is not None
