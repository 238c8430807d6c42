"""Constrained output on the real bundled model: TGI's ``grammar`` (JSON schema, regex),
chat ``response_format`` and ``tools`` — the output always parses and validates."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from backends.errors import InputValidationError

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 2},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


@pytest.mark.parametrize("seed", range(4))
def test_json_grammar_output_validates(local_backend, seed):
    out = local_backend.text_generation(
        "A person as JSON:", max_new_tokens=60, do_sample=True, seed=seed,
        grammar={"type": "json", "value": PERSON},
    )  # fmt: skip
    jsonschema.validate(json.loads(out), PERSON)


@pytest.mark.parametrize("seed", range(3))
def test_regex_grammar_output_fully_matches(local_backend, seed):
    pattern = r"\d{4}-\d{2}-\d{2}"
    out = local_backend.text_generation(
        "Today's date:", max_new_tokens=16, do_sample=True, seed=seed,
        grammar={"type": "regex", "value": pattern},
    )  # fmt: skip
    assert re.fullmatch(pattern, out), out


def test_grammar_ends_with_eos_like_tgi(local_backend):
    out = local_backend.text_generation(
        "Answer:", max_new_tokens=10, details=True, grammar={"type": "regex", "value": "(yes|no)"}
    )
    assert out.generated_text in ("yes", "no") and out.details.finish_reason == "eos_token"


@pytest.mark.parametrize(
    "grammar",
    [
        {"type": "regex", "value": "(["},
        {"type": "json", "value": {"type": "object", "properties": {"a": {"type": "nope"}}}},
        {"type": "yaml", "value": "a: 1"},
    ],
)
def test_invalid_grammar_is_refused_before_any_compute(local_backend, grammar):
    with pytest.raises(InputValidationError) as info:
        local_backend.text_generation("x", grammar=grammar)
    assert info.value.field == "grammar"


def test_chat_response_format_json_schema(local_backend):
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}},
              "required": ["color"], "additionalProperties": False}  # fmt: skip
    out = local_backend.chat_completion(
        [{"role": "user", "content": "Pick a color."}], max_tokens=20,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )  # fmt: skip
    jsonschema.validate(json.loads(out.choices[0].message.content), schema)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arguments_validate_against_the_function_schema(local_backend, stream):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    kwargs = dict(max_tokens=60, tools=[WEATHER_TOOL], tool_choice="required", temperature=0)
    if stream:
        chunks = list(local_backend.chat_completion(messages, **kwargs, stream=True))
        calls = [c for chunk in chunks for c in chunk.choices[0].delta.tool_calls or []]
        finish = chunks[-1].choices[0].finish_reason
    else:
        choice = local_backend.chat_completion(messages, **kwargs).choices[0]
        calls, finish = choice.message.tool_calls, choice.finish_reason
    assert finish == "tool_calls" and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    arguments = json.loads(calls[0].function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])


def test_unknown_tool_choice_is_refused(local_backend):
    with pytest.raises(InputValidationError, match="not found"):
        local_backend.chat_completion(
            [{"role": "user", "content": "Hi"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "send_email"}},
        )
