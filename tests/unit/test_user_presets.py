"""Presets of one's own: what a saved preset names, applying sets exactly that, the YAML
round trip in generation.yaml's schema, and the files an import refuses."""

from __future__ import annotations

import json

import pytest
import yaml

from components import user_presets
from presets import HERE, PresetError, load_presets

CHAT = dict(
    max_tokens=200, temperature=0.0, top_p=0.8, seed=7, stop="END\nline\\nbreak",
    format_kind="json_schema", format_value='{"type": "object"}',
    tools_text='[{"type": "function", "function": {"name": "f", "parameters": {}}}]',
    tool_choice="auto",
)  # fmt: skip


def test_the_current_settings_make_a_preset_in_generation_yamls_terms():
    preset = user_presets.from_chat("You are terse.", CHAT)
    assert user_presets.named(preset) == {
        "system_prompt": "You are terse.",
        "max_new_tokens": 200,
        "do_sample": False,  # temperature 0: greedy, as generation.yaml says it
        "top_p": 0.8,
        "seed": 7,
        "stop": ["END", "line\nbreak"],
        "response_format": {"type": "json_schema", "value": {"type": "object"}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto",
    }


def test_applying_a_preset_sets_the_chat_back_exactly():
    values = user_presets.chat_values(user_presets.from_chat("You are terse.", CHAT))
    assert values["temperature"] == 0 and values["max_tokens"] == 200
    assert values["stop"] == CHAT["stop"]  # the newline escape comes back as typed
    assert json.loads(values["format_value"]) == {"type": "object"}
    assert json.loads(values["tools_text"]) == json.loads(CHAT["tools_text"])
    assert values["system_prompt"] == "You are terse." and values["tool_choice"] == "auto"


def test_a_preset_sets_only_what_it_names():
    (preset,) = user_presets.parse_yaml(b"warm:\n  temperature: 1.3\n").values()
    assert user_presets.chat_values(preset) == {"temperature": 1.3}
    plain = dict(CHAT, seed=-1, stop="", tool_choice="none", format_kind="text", temperature=0.5)
    defaults_only = user_presets.from_chat("", plain)
    assert set(user_presets.named(defaults_only)) == {
        "system_prompt", "max_new_tokens", "temperature", "top_p",
    }  # fmt: skip


def test_the_bundled_presets_apply_as_before():
    precise = load_presets()["precise"]
    values = user_presets.chat_values(precise)
    assert values == {"max_tokens": 128, "temperature": 0.2, "top_p": 0.9}


def test_export_and_import_round_trip_in_the_bundled_schema(tmp_path):
    table = {"terse": user_presets.from_chat("Be brief.", CHAT)}
    text = user_presets.export_yaml(table)
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    assert load_presets(path)["terse"] == table["terse"]  # the loader of generation.yaml
    back = user_presets.parse_yaml(text.encode())
    assert {k: user_presets.named(v) for k, v in back.items()} == {
        "terse": user_presets.named(table["terse"])
    }
    store = user_presets.make_store(back)
    assert user_presets.stored(store) == back  # the browser's store keeps them as named


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "Not a YAML file"),
        (b"key: [unclosed", "Not a YAML file"),
        (b"- a list\n", "A presets file maps names to presets"),
        (b"mine:\n  temperature: 9\n", "less than or equal to 2"),
        (b"mine:\n  colour: red\n", "Extra inputs are not permitted"),
        (b"balanced:\n  temperature: 1\n", "These names are bundled presets"),
        (b"x" * (user_presets.MAX_IMPORT_BYTES + 1), "preset files are limited to 256 KB"),
    ],
)
def test_a_bad_file_is_refused_with_the_reason(raw, message):
    with pytest.raises(PresetError, match=message):
        user_presets.parse_yaml(raw)


def test_names_are_checked():
    with pytest.raises(PresetError, match="Type a name"):
        user_presets.check_name("  ", {})
    with pytest.raises(PresetError, match="is a bundled preset"):
        user_presets.check_name("creative", {})
    assert user_presets.check_name("  my   preset ", {}) == "my preset"


def test_a_broken_entry_in_the_browser_store_is_left_out():
    store = {"presets": {"good": {"top_p": 0.5}, "bad": {"top_p": 7}, "odd": "text"}}
    assert list(user_presets.stored(store)) == ["good"]
    assert user_presets.stored(None) == {} and user_presets.stored({"presets": None}) == {}


def test_the_bundled_file_still_validates():
    assert set(load_presets(HERE / "generation.yaml")) == {"precise", "balanced", "creative"}
    assert yaml.safe_load((HERE / "generation.yaml").read_text())
