"""The generation tabs' forms: widget values → ``backends.params`` models → the keyword
arguments a request (and "Show code") sends; what a form refuses, keyed by its field."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from backends.errors import InputValidationError
from backends.params import ChatCompletionParameters, TextGenerationParameters
from components.chat import EXAMPLE_SCHEMA, EXAMPLE_TOOLS
from components.forms import (
    OFF,
    ChatForm,
    FormErrors,
    TextGenerationForm,
    optional_seed,
    parse_stop,
)
from components.generation_params import NAMES, read_form

# The text-generation panel as it opens, one value per widget (raw, as handlers get them).
PANEL = dict(
    max_new_tokens=8.0, do_sample=True, temperature=0.7, top_k=0.0, top_p=1.0, typical_p=1.0,
    seed=-1, repetition_penalty=1.0, frequency_penalty=0.0, stop="", return_full_text=False,
    truncate=0, best_of=1.0, watermark=False, top_n_tokens=3.0, decoder_input_details=False,
    grammar_type="none", grammar_value="",
)  # fmt: skip
# The chat tab's parameter widgets, raw.
CHAT = dict(
    max_tokens=64.0, temperature=0.7, top_p=1.0, seed=-1, stop="", format_kind="text",
    format_value=EXAMPLE_SCHEMA, tools_text=EXAMPLE_TOOLS, tool_choice="none",
)  # fmt: skip


def panel(**changes) -> TextGenerationForm:
    values = {**PANEL, **changes}
    return read_form(*[values[name] for name in NAMES])


def chat_form(**changes) -> ChatForm:
    return ChatForm.from_widgets(**{**CHAT, **changes})


def refused(form) -> FormErrors:
    with pytest.raises(FormErrors) as info:
        form.parameters()
    return info.value


# -- reading widgets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), (None, None), ("END", ["END"]), ("a\n\nb\n", ["a", "b"]), ("\\n\\n", ["\n\n"])],
)
def test_parse_stop(text, expected):
    assert parse_stop(text) == expected


@pytest.mark.parametrize(("value", "expected"), [(-1, None), (None, None), (0, 0), (42.0, 42)])
def test_optional_seed(value, expected):
    assert optional_seed(value) == expected


def test_the_panels_widgets_are_the_forms_fields():
    assert NAMES == [f.name for f in fields(TextGenerationForm)]


def test_the_panel_as_it_opens_sends_only_what_is_on():
    # Show code lists the keywords in the panel's order.
    assert panel().keywords() == {
        "max_new_tokens": 8,
        "do_sample": True,
        "temperature": 0.7,
        "return_full_text": False,
        "watermark": False,
        "top_n_tokens": 3,
        "decoder_input_details": False,
    }
    assert panel().errors() == {}
    assert isinstance(panel().parameters(), TextGenerationParameters)


# -- "off" values ----------------------------------------------------------------------


ON = {
    "top_k": 40,
    "top_p": 0.9,
    "typical_p": 0.5,
    "repetition_penalty": 1.2,
    "frequency_penalty": 0.5,
    "truncate": 16,
    "best_of": 2,
    "top_n_tokens": 2,
}


@pytest.mark.parametrize("name", sorted(OFF))
def test_each_off_value_leaves_its_parameter_unset(name):
    assert set(OFF) == set(ON)  # every off value is exercised
    form = TextGenerationForm(max_new_tokens=4, do_sample=True, **{name: OFF[name]})
    assert name not in form.keywords()
    assert getattr(form.parameters(), name) is None
    # Any other value is sent as it is.
    assert TextGenerationForm(do_sample=True, **{name: ON[name]}).keywords()[name] == ON[name]


def test_off_values_read_from_the_widgets_are_unset_too():
    form = panel(top_k=0.0, typical_p=1.0, repetition_penalty=1.0, truncate=0, best_of=1.0)
    sent = form.keywords()
    assert not {"top_k", "typical_p", "repetition_penalty", "truncate", "best_of"} & set(sent)
    # An emptied number box is unset as well (not 0, which TGI would refuse for best_of).
    assert "truncate" not in panel(truncate=None).keywords()


def test_sampling_off_leaves_every_warper_unset():
    warpers = dict(temperature=0.7, top_k=50, top_p=0.9, typical_p=0.5)
    greedy = TextGenerationForm(do_sample=False, **warpers).keywords()
    assert greedy["do_sample"] is False
    assert not set(warpers) & set(greedy)
    sampling = TextGenerationForm(do_sample=True, **warpers).keywords()
    assert {k: sampling[k] for k in warpers} == warpers


def test_chat_top_p_of_one_or_more_is_unset():
    assert "top_p" not in ChatForm(top_p=1.0).keywords()
    assert "top_p" not in ChatForm(top_p=1.5).keywords()  # /chat has always taken it as off
    assert ChatForm(top_p=0.9).keywords() == {"top_p": 0.9}


# -- refused values, keyed by field ----------------------------------------------------


def test_a_bad_json_schema_is_an_error_keyed_by_its_field():
    error = refused(panel(grammar_type="json", grammar_value="{oops"))
    assert list(error.errors) == ["grammar_value"]
    assert error.errors["grammar_value"].startswith("invalid JSON: Expecting property name")
    assert error.field == "grammar_value" and isinstance(error, InputValidationError)
    assert error.message == f"`grammar_value`: {error.errors['grammar_value']}"
    # The schema itself becomes JSON, not a string.
    sent = panel(grammar_type="json", grammar_value=EXAMPLE_SCHEMA).keywords()
    assert sent["grammar"] == {"type": "json", "value": json.loads(EXAMPLE_SCHEMA)}


def test_a_regex_that_does_not_compile_is_an_error_keyed_by_its_field():
    error = refused(panel(grammar_type="regex", grammar_value="(["))
    assert error.errors["grammar_value"].startswith("invalid regex: ")
    assert panel(grammar_type="regex", grammar_value="[0-9]+").keywords()["grammar"] == {
        "type": "regex",
        "value": "[0-9]+",
    }
    assert "grammar" not in panel(grammar_type="none", grammar_value="([").keywords()


def test_chat_json_that_does_not_parse_is_an_error_keyed_by_its_field():
    error = refused(chat_form(format_kind="json_schema", format_value="{oops"))
    assert list(error.errors) == ["format_value"]
    assert error.message.startswith("The JSON schema is not valid JSON: Expecting")
    error = refused(chat_form(tools_text="[{", tool_choice="auto"))
    assert list(error.errors) == ["tools_text"]
    assert error.message.startswith("The tools is not valid JSON: ")
    # Tools are not read while tool_choice is "none".
    assert "tools" not in chat_form(tools_text="[{").keywords()


def test_text_generation_bounds_are_keyed_by_the_widget_that_holds_them():
    error = refused(
        panel(
            do_sample=False, temperature=1e9, best_of=2, top_n_tokens=3,
            grammar_type="regex", grammar_value="([",
        )
    )  # fmt: skip
    # temperature is checked although greedy decoding leaves it out, as TGI does; the
    # best_of rule (no location in pydantic) belongs to best_of.
    assert list(error.errors) == ["temperature", "best_of", "grammar_value"]
    assert "sampling" in error.errors["best_of"]
    assert error.errors["temperature"] == "Input should be less than or equal to 100"
    assert error.message == "`temperature`: Input should be less than or equal to 100"
    assert error.field == "temperature"
    assert panel(max_new_tokens=0).errors() == {
        "max_new_tokens": "Input should be greater than or equal to 1"
    }


def test_chat_bounds_are_keyed_by_field_with_the_backends_message():
    error = refused(chat_form(stop="\n".join("abcde")))
    assert error.errors.keys() == {"stop"}
    assert error.message == "`stop` accepts at most 4 items (got 5)"
    error = refused(ChatForm(max_tokens=0, temperature=3))
    assert list(error.errors) == ["max_tokens", "temperature"]
    assert error.field == "max_tokens" and error.message.startswith("`max_tokens` must be >= 1")


# -- the chat form → chat_completion keywords --------------------------------------------


@pytest.mark.parametrize("value", ["abc", {"x": 1}, [1, 2]])
def test_a_chat_value_of_the_wrong_type_is_refused_naming_it(value):
    # The /chat API takes any JSON: top_p "abc" was compared with its off value (1) and
    # raised a TypeError ("'>' not supported…") instead of naming the field.
    form = ChatForm(max_tokens=2, temperature=0.7, top_p=value, seed=None, stop=None)
    with pytest.raises(FormErrors) as info:
        form.keywords()
    assert info.value.field == "top_p" and "`top_p`" in info.value.message


def test_chat_form_gives_chat_completion_keywords():
    assert chat_form().keywords() == {"max_tokens": 64, "temperature": 0.7}
    assert chat_form(seed=3, stop="User:\n\\n", top_p=0.5).keywords() == {
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.5,
        "seed": 3,
        "stop": ["User:", "\n"],
    }
    schema = chat_form(format_kind="json_schema").keywords()
    assert schema["response_format"] == {"type": "json", "value": json.loads(EXAMPLE_SCHEMA)}
    assert "tools" not in schema and "tool_choice" not in schema
    assert chat_form(format_kind="regex", format_value="(yes|no)").keywords()[
        "response_format"
    ] == {"type": "regex", "value": "(yes|no)"}
    tools = chat_form(tool_choice="required").keywords()
    assert tools["tools"] == json.loads(EXAMPLE_TOOLS) and tools["tool_choice"] == "required"
    assert "response_format" not in tools
    assert isinstance(chat_form().parameters(), ChatCompletionParameters)
