"""Presets and examples load, validate, and reject unknown keys."""

import pytest

import presets
from backends.params import TextGenerationParameters, validate
from presets import PresetError, load_examples, load_presets


def test_bundled_presets_have_the_three_named_ones():
    table = load_presets()
    assert {"precise", "balanced", "creative"} <= set(table)
    assert presets.DEFAULT_PRESET in table
    # The presets differ where it matters: precise is greedy, creative hotter than balanced.
    assert table["precise"].do_sample is False
    assert table["creative"].temperature > table["balanced"].temperature


@pytest.mark.parametrize("name", ["precise", "balanced", "creative"])
def test_each_preset_is_valid_for_text_generation(name):
    preset = load_presets()[name]
    values = {
        "max_new_tokens": preset.max_new_tokens,
        "temperature": preset.temperature,
        "top_p": preset.top_p if preset.top_p < 1 else None,
        "top_k": preset.top_k,
        "repetition_penalty": preset.repetition_penalty,
    }
    assert validate(TextGenerationParameters, values).max_new_tokens == preset.max_new_tokens


def test_unknown_preset_key_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("fast:\n  temprature: 0.5\n")
    with pytest.raises(PresetError, match="temprature"):
        load_presets(path)


def test_out_of_bounds_preset_value_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("hot:\n  temperature: 9\n")
    with pytest.raises(PresetError, match="temperature"):
        load_presets(path)


def test_broken_yaml_and_empty_file_are_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n")
    with pytest.raises(PresetError, match="broken.yaml"):
        load_presets(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(PresetError, match="no presets"):
        load_presets(empty)


def test_examples_per_tab_and_unknown_tab_rejected(tmp_path):
    examples = load_examples()
    assert examples.chat and examples.text_generation
    path = tmp_path / "e.yaml"
    path.write_text("chat: [hi]\nspeech: [hello]\n")
    with pytest.raises(PresetError, match="speech"):
        load_examples(path)
