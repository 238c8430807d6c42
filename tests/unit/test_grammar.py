"""Grammar-constrained decoding (backends/local/grammar.py) on the bundled SmolLM2 tokenizer,
and end to end with its model: a small decode loop here samples 8 seeds at once (one batch,
one prompt) and every output must parse and validate (``jsonschema``) or fully match its
regex (``re.fullmatch``). Schemas bound their strings, arrays and numbers so outputs stay
short; the loop gives up after 200 tokens, which fails the test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import torch

from backends.local.engine.grammar import (
    NO_TOOL,
    TOOL_PROMPT,
    CompiledGrammar,
    GrammarError,
    compile_grammar,
    parse_tool_call,
    tool_call_schema,
)

pytestmark = pytest.mark.model

REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(8)
MAX_TOKENS = 200

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "height_m": {"type": "number", "minimum": 1.2, "maximum": 2.2},
        "role": {"enum": ["admin", "user", "guest"]},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 12},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
        "nickname": {"type": "string", "maxLength": 8},
    },
    "required": ["name", "age", "height_m", "role", "address", "tags"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                    "qty": {"type": "integer", "exclusiveMinimum": 0, "maximum": 20},
                },
                "required": ["sku", "qty"],
                "additionalProperties": False,
            },
        },
        "express": {"type": "boolean"},
        "total": {"type": "number", "minimum": 0, "maximum": 1000},
    },
    "required": ["items", "express"],
    "additionalProperties": False,
}
DICE = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1, "maximum": 6},
    "minItems": 3,
    "maxItems": 3,
}
PHONE = r"\(\d{3}\) \d{3}-\d{4}"
DATE = r"(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 20},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": -100, "maximum": 100},
                "b": {"type": "integer", "minimum": -100, "maximum": 100},
            },
            "required": ["a", "b"],
        },
    },
}
TOOLS = [WEATHER, ADD]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def json_grammar(schema) -> dict:
    return {"type": "json", "value": schema}


def regex_grammar(pattern: str) -> dict:
    return {"type": "regex", "value": pattern}


def sample_constrained(loaded, compiled: CompiledGrammar, messages, seeds=SEEDS) -> list[str]:
    """One sequence per seed, all in one batch: mask, sample, advance, until each is
    finished (or sampled EOS). Fails if any sequence is still open after MAX_TOKENS."""
    tokenizer, model = loaded.tokenizer, loaded.model
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt).input_ids
    eos = min(loaded.eos_token_ids)
    states = [compiled.new_state() for _ in seeds]
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    outputs: list[list[int]] = [[] for _ in seeds]
    done = [False] * len(states)
    with torch.inference_mode():
        # The prompt is the same for every seed: prefill it once, then copy its cache.
        prompt = torch.tensor([prompt_ids], device=loaded.device)
        out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        past.batch_repeat_interleave(len(states))
        logits = out.logits[:, -1, :].float().expand(len(states), -1)
        for _ in range(MAX_TOKENS):
            chosen = []
            for row, state in enumerate(states):
                if done[row]:  # keeps the batch's shape; never read
                    chosen.append(eos)
                    continue
                masked = state.mask(logits[row : row + 1])
                probs = torch.softmax(masked, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=generators[row]))
                state.advance(token)
                if token in loaded.eos_token_ids:
                    done[row] = True
                else:
                    outputs[row].append(token)
                    done[row] = state.is_finished()
                chosen.append(token)
            if all(done):
                break
            step_input = torch.tensor([chosen], device=loaded.device).T
            out = model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
    texts = [tokenizer.decode(ids) for ids in outputs]
    assert all(done), f"still open after {MAX_TOKENS} tokens: {texts}"
    return texts


def accepts(compiled: CompiledGrammar, tokenizer, text: str) -> bool:
    """Whether ``text`` (as the tokenizer splits it) is a complete output of the grammar."""
    state = compiled.new_state()
    try:
        for token in tokenizer(text, add_special_tokens=False).input_ids:
            state.advance(token)
    except GrammarError:
        return False
    return state.is_accepting()


def allowed_ids(state, width: int) -> set[int]:
    return set(state.allowed(width).nonzero().view(-1).tolist())


# -- end to end: outputs always parse and validate ----------------------------------------


@pytest.mark.parametrize(
    ("schema", "request_"),
    [
        (PERSON, "Invent a person and describe them as JSON."),
        (json.dumps(ORDER), "Write a small shop order as JSON."),  # schema as a JSON string
        (DICE, "Roll three dice and give the results as a JSON list."),
    ],
    ids=["nested-object", "array-of-objects", "top-level-array"],
)
def test_sampled_json_always_validates(loaded, schema, request_):
    compiled = compile_grammar(loaded.tokenizer, json_grammar(schema))
    texts = sample_constrained(loaded, compiled, [{"role": "user", "content": request_}])
    expected = json.loads(schema) if isinstance(schema, str) else schema
    for text in texts:
        jsonschema.validate(json.loads(text), expected)
    assert len(set(texts)) > 1  # the seeds really sampled


@pytest.mark.parametrize(
    ("pattern", "request_"),
    [
        (PHONE, "What is the phone number of the city library? Only the number."),
        (DATE, "When was the Eiffel Tower finished? Answer with a date."),
        ("(yes|no)", "Is the sky blue? Answer yes or no."),
    ],
    ids=["phone", "date", "yes-no"],
)
def test_sampled_text_fully_matches_the_regex(loaded, pattern, request_):
    compiled = compile_grammar(loaded.tokenizer, regex_grammar(pattern))
    texts = sample_constrained(loaded, compiled, [{"role": "user", "content": request_}])
    for text in texts:
        assert re.fullmatch(pattern, text), text


def _tool_messages(question: str) -> list[dict]:
    tools = json.dumps([t["function"] for t in TOOLS])
    return [
        {"role": "system", "content": f"{TOOL_PROMPT}\nTools: {tools}"},
        {"role": "user", "content": question},
    ]


def test_sampled_tool_calls_name_a_declared_tool_with_valid_arguments(loaded):
    schema = tool_call_schema(TOOLS, "required")
    compiled = compile_grammar(loaded.tokenizer, json_grammar(schema))
    texts = sample_constrained(loaded, compiled, _tool_messages("What is the weather in Paris?"))
    for text in texts:
        jsonschema.validate(json.loads(text), schema)
        name, arguments = parse_tool_call(text)
        assert name in PARAMETERS
        jsonschema.validate(arguments, PARAMETERS[name])


def test_sampled_tool_call_with_a_named_tool_choice_uses_that_tool(loaded):
    schema = tool_call_schema(TOOLS, {"type": "function", "function": {"name": "add"}})
    compiled = compile_grammar(loaded.tokenizer, json_grammar(schema))
    messages = _tool_messages("What is the weather in Paris?")  # asks for the other tool
    for text in sample_constrained(loaded, compiled, messages, seeds=range(4)):
        name, arguments = parse_tool_call(text)
        assert name == "add"
        jsonschema.validate(arguments, PARAMETERS["add"])


# -- validation up front -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grammar", "message"),
    [
        (json_grammar({"type": "foo"}), "Invalid type: foo"),
        (json_grammar({"type": "string", "minLength": 5, "maxLength": 2}), "Unsatisfiable"),
        (json_grammar({"type": "integer", "minimum": 5, "maximum": 1}), "minimum (5)"),
        (json_grammar({"type": "string", "pattern": "[a-"}), "unclosed character class"),
        (json_grammar({"$ref": "#/$defs/missing"}), "does not exist"),
        (json_grammar({"required": "name"}), "Expected array for 'required'"),
        (json_grammar('{"type": "object",'), "not valid JSON"),
        (json_grammar([1, 2]), "must be a JSON schema object"),
        ({"type": "json"}, "needs `value`"),
        ({"type": "json_schema", "value": {"name": "x"}}, "{name, schema}"),
        (regex_grammar("[a-"), "unclosed character class"),
        (regex_grammar("(yes|no"), "unclosed group"),
        (regex_grammar("a{5,2}"), "invalid repetition count range"),
        (regex_grammar("(?=a)b"), "look-around"),
        (regex_grammar(""), "non-empty regular expression"),
        ({"type": "xml", "value": "<a/>"}, "Unknown grammar type 'xml'"),
        ({"value": "a"}, "needs a `type`"),
        ("(yes|no)", "`grammar` must be an object"),
    ],
)
def test_invalid_grammars_raise_before_generation(tokenizer, grammar, message):
    with pytest.raises(GrammarError, match=re.escape(message)):
        compile_grammar(tokenizer, grammar)


def test_grammar_error_is_a_value_error():
    assert issubclass(GrammarError, ValueError)


def test_keywords_that_cannot_be_enforced_are_warnings(tokenizer):
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    compiled = compile_grammar(tokenizer, json_grammar(schema))
    assert any("uniqueItems" in warning for warning in compiled.warnings)
    assert compile_grammar(tokenizer, json_grammar(DICE)).warnings == ()


def test_regex_must_match_the_whole_output(tokenizer):
    phone = compile_grammar(tokenizer, regex_grammar(PHONE))
    assert accepts(phone, tokenizer, "(555) 123-4567")
    assert not accepts(phone, tokenizer, "(555) 123-456")  # incomplete
    assert not accepts(phone, tokenizer, "Call (555) 123-4567")
    assert not accepts(phone, tokenizer, "(555) 123-4567!")
    anchored = compile_grammar(tokenizer, regex_grammar("^[A-Z]{3}$"))
    assert accepts(anchored, tokenizer, "ABC")
    assert not accepts(anchored, tokenizer, "^ABC$")


def test_json_grammar_accepts_valid_and_rejects_invalid_documents(tokenizer):
    compiled = compile_grammar(tokenizer, json_grammar(DICE))
    assert accepts(compiled, tokenizer, "[1, 6, 3]")
    assert accepts(compiled, tokenizer, "[1,6,3]")
    assert not accepts(compiled, tokenizer, "[1, 7, 3]")  # maximum
    assert not accepts(compiled, tokenizer, "[1, 2]")  # minItems
    assert not accepts(compiled, tokenizer, "[1, 2, 3, 4]")  # maxItems
    assert not accepts(compiled, tokenizer, "[1,\n 2, 3]")  # at most one space, as TGI


# -- masking and state ---------------------------------------------------------------------


def _token(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) == 1, ids
    return ids[0]


def test_eos_is_allowed_exactly_when_the_output_is_complete(tokenizer):
    eos = tokenizer.eos_token_id
    vocab = len(tokenizer)
    state = compile_grammar(tokenizer, regex_grammar("[0-9]{1,3}")).new_state()
    assert eos not in allowed_ids(state, vocab)
    state.advance(_token(tokenizer, "4"))
    allowed = allowed_ids(state, vocab)
    assert eos in allowed and _token(tokenizer, "2") in allowed
    assert state.is_accepting() and not state.is_finished()
    state.advance(_token(tokenizer, "2"))
    state.advance(_token(tokenizer, "7"))
    assert allowed_ids(state, vocab) == {eos}
    assert state.is_finished()
    state.advance(eos)
    assert state.is_finished()


def test_json_is_finished_at_its_closing_brace(tokenizer):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    state = compile_grammar(tokenizer, json_grammar(schema)).new_state()
    for token in tokenizer('{"ok": true', add_special_tokens=False).input_ids:
        state.advance(token)
        assert not state.is_finished()
    assert tokenizer.eos_token_id not in allowed_ids(state, len(tokenizer))
    state.advance(_token(tokenizer, "}"))
    assert state.is_finished()
    assert allowed_ids(state, len(tokenizer)) == {tokenizer.eos_token_id}


def test_mask_sets_forbidden_tokens_to_minus_inf_for_any_logits_shape(tokenizer):
    vocab = len(tokenizer)
    compiled = compile_grammar(tokenizer, regex_grammar("(yes|no)"))
    state = compiled.new_state()
    logits = torch.randn(1, vocab + 64)  # a model padded past the tokenizer's vocabulary
    masked = state.mask(logits)
    assert masked.shape == logits.shape
    kept = torch.isfinite(masked[0])
    assert not kept[vocab:].any()
    assert set(kept.nonzero().view(-1).tolist()) == allowed_ids(state, vocab)
    assert torch.equal(masked[0][kept], logits[0][kept])  # allowed logits untouched
    assert {tokenizer.decode([i]) for i in allowed_ids(state, vocab)} <= {
        "y",
        "ye",
        "yes",
        "n",
        "no",
    }
    flat = state.mask(torch.zeros(vocab))
    assert flat.shape == (vocab,)
    assert set(torch.isfinite(flat).nonzero().view(-1).tolist()) == allowed_ids(state, vocab)


def test_advance_rejects_a_token_the_grammar_forbids(tokenizer):
    compiled = compile_grammar(tokenizer, regex_grammar("(yes|no)"))
    with pytest.raises(GrammarError, match=r"\('maybe'\) is not allowed"):
        compiled.new_state().advance(_token(tokenizer, "maybe"))
    with pytest.raises(GrammarError, match="outside the tokenizer's vocabulary"):
        compiled.new_state().advance(len(tokenizer) + 3)


def test_states_of_one_grammar_are_independent(tokenizer):
    compiled = compile_grammar(tokenizer, regex_grammar("(yes|no)"))
    first, second = compiled.new_state(), compiled.new_state()
    start = allowed_ids(second, len(tokenizer))
    first.advance(_token(tokenizer, "yes"))
    assert first.is_finished() and not second.is_finished()
    assert allowed_ids(second, len(tokenizer)) == start
    second.advance(_token(tokenizer, "no"))
    assert second.is_finished()


# -- request shapes and the cache ----------------------------------------------------------


def test_compiled_grammars_are_cached_per_tokenizer_and_grammar(tokenizer):
    compiled = compile_grammar(tokenizer, json_grammar(DICE))
    assert compile_grammar(tokenizer, json_grammar(DICE)) is compiled
    assert compile_grammar(tokenizer, json_grammar(json.dumps(DICE))) is compiled
    assert compile_grammar(tokenizer, {"type": "json_object", "value": DICE}) is compiled
    assert compile_grammar(tokenizer, {"type": "json_schema", "value": {"schema": DICE}}) is (
        compiled
    )
    openai = {"type": "json_schema", "json_schema": {"name": "dice", "schema": DICE}}
    assert compile_grammar(tokenizer, openai) is compiled
    assert compile_grammar(tokenizer, json_grammar(ORDER)) is not compiled
    assert compile_grammar(tokenizer, json_grammar(DICE), eos_token_ids=[0, 2]) is not compiled


def test_json_object_without_a_schema_means_any_object(tokenizer):
    compiled = compile_grammar(tokenizer, {"type": "json_object"})
    assert compiled.kind == "json" and json.loads(compiled.source) == {"type": "object"}
    assert accepts(compiled, tokenizer, '{"a": [1, "b"]}')
    assert not accepts(compiled, tokenizer, "[1]")


def test_importing_the_module_loads_neither_torch_nor_llguidance():
    code = (
        "import sys, backends.local.engine.grammar\n"
        "assert 'torch' not in sys.modules and 'llguidance' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# -- tool calls ----------------------------------------------------------------------------


def _names(schema: dict) -> list[str]:
    return [ref["$ref"].rsplit("/", 1)[1] for ref in schema["properties"]["function"]["anyOf"]]


def test_tool_choice_selects_the_offered_tools():
    assert _names(tool_call_schema(TOOLS, "required")) == ["get_weather", "add"]
    assert _names(tool_call_schema(TOOLS, "auto")) == ["get_weather", "add", NO_TOOL]
    assert _names(tool_call_schema(TOOLS, None)) == ["get_weather", "add", NO_TOOL]
    named = {"type": "function", "function": {"name": "add"}}
    assert _names(tool_call_schema(TOOLS, named)) == ["add"]
    assert _names(tool_call_schema(TOOLS, "add")) == ["add"]
    assert tool_call_schema(TOOLS, "none") is None
    assert tool_call_schema([], "auto") is None


def test_tool_call_schema_validates_calls_as_tgi_shapes_them():
    schema = tool_call_schema(TOOLS, "auto")
    call = {"function": {"_name": "get_weather", "city": "Paris", "unit": "celsius"}}
    jsonschema.validate(call, schema)
    jsonschema.validate({"function": {"_name": NO_TOOL, "content": "Hello!"}}, schema)
    invalid = [
        {"function": {"_name": "get_time", "city": "Paris", "unit": "celsius"}},  # undeclared
        {"function": {"_name": "get_weather", "city": "Paris"}},  # missing argument
        {"function": {"_name": "get_weather", "city": "Paris", "unit": "kelvin"}},  # enum
        {"function": {"_name": "get_weather", "city": "Paris", "unit": "celsius", "x": 1}},
        {"function": {"_name": "add", "a": 1, "b": 500}},  # maximum
        {"function": {"city": "Paris", "unit": "celsius"}},  # no name
        {"name": "get_weather"},
    ]
    for instance in invalid:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(instance, schema)
    with pytest.raises(jsonschema.ValidationError):  # no "no tool" answer when required
        jsonschema.validate(
            {"function": {"_name": NO_TOOL, "content": "Hi"}}, tool_call_schema(TOOLS, "required")
        )


def test_tool_call_grammar_rejects_undeclared_tools(tokenizer):
    compiled = compile_grammar(tokenizer, json_grammar(tool_call_schema(TOOLS, "required")))
    assert accepts(compiled, tokenizer, '{"function": {"_name": "add", "a": 2, "b": 3}}')
    assert not accepts(compiled, tokenizer, '{"function": {"_name": "sub", "a": 2, "b": 3}}')
    assert not accepts(compiled, tokenizer, '{"function": {"_name": "add", "a": 2}}')
    auto = compile_grammar(tokenizer, json_grammar(tool_call_schema(TOOLS, "auto")))
    assert accepts(auto, tokenizer, '{"function": {"_name": "no_tool", "content": "Hi"}}')


def test_tool_definitions_referring_to_defs_still_compile(tokenizer):
    tool = {
        "type": "function",
        "function": {
            "name": "set_unit",
            "parameters": {  # as pydantic writes it
                "$defs": {"Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"}},
                "properties": {"unit": {"$ref": "#/$defs/Unit"}},
                "required": ["unit"],
                "type": "object",
            },
        },
    }
    schema = tool_call_schema([tool], "required")
    compiled = compile_grammar(tokenizer, json_grammar(schema))
    assert accepts(compiled, tokenizer, '{"function": {"_name": "set_unit", "unit": "celsius"}}')
    assert not accepts(compiled, tokenizer, '{"function": {"_name": "set_unit", "unit": "K"}}')
    jsonschema.validate({"function": {"_name": "set_unit", "unit": "fahrenheit"}}, schema)


@pytest.mark.parametrize(
    ("tools", "tool_choice", "message"),
    [
        (TOOLS, "get_time", "Tool with name get_time not found"),
        (TOOLS, {"type": "function", "function": {"name": "nope"}}, "Tool with name nope"),
        (TOOLS, {"type": "function"}, "`tool_choice` must be"),
        ([], "required", "no tools were given"),
        ([WEATHER, WEATHER], "auto", "Duplicate tool names: get_weather"),
        ([{"type": "function", "function": {"name": "a b"}}], "auto", "Invalid tool name"),
        ([{"type": "retrieval"}], "auto", "Unsupported tool type"),
        ([{"type": "function"}], "auto", "needs a `function`"),
        (
            [{"function": {"name": "f", "parameters": {"type": "array"}}}],
            "auto",
            "must describe an object",
        ),
        (
            [{"function": {"name": "f", "parameters": {"properties": {"_name": {}}}}}],
            "auto",
            "`_name` is reserved",
        ),
        ([{"function": {"name": NO_TOOL}}], "auto", "reserved with tool_choice='auto'"),
    ],
)
def test_invalid_tools_or_tool_choice_raise(tools, tool_choice, message):
    with pytest.raises(GrammarError, match=re.escape(message)):
        tool_call_schema(tools, tool_choice)


def test_parse_tool_call_gives_name_and_arguments():
    text = '{"function": {"_name": "add", "a": 2, "b": 3}}'
    name, arguments = parse_tool_call(text)
    assert (name, arguments) == ("add", {"a": 2, "b": 3})
    assert json.loads(json.dumps(arguments)) == {"a": 2, "b": 3}
    assert parse_tool_call('{"function": {"_name": "no_tool", "content": "Hi"}}') == (
        NO_TOOL,
        {"content": "Hi"},
    )
    for broken in ['{"function": {"_name": "add", "a": 2', '{"name": "add"}', "[]"]:
        with pytest.raises(ValueError, match="not a complete tool call"):
            parse_tool_call(broken)
