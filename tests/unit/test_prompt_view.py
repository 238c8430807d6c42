"""Show prompt on the bundled model: the chat template's exact text and token count (what
the engine is given), tools folded in as chat_completion folds them, and the remote case."""

from __future__ import annotations

import json

import pytest

from backends.errors import InputValidationError
from components import prompt_view
from components.connection import REMOTE, Connection

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def test_the_prompt_is_the_chat_templates_text_and_its_tokens(local_backend, loaded):
    line, prompt = prompt_view.describe(local_backend, Connection(), MESSAGES, "", "none")
    expected = loaded.tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    assert prompt == expected and "You are terse." in prompt
    count = len(loaded.tokenizer(expected, add_special_tokens=False).input_ids)
    assert line.startswith(f"**{count:,} tokens** of {loaded.max_context:,}")
    # The count is what generation is charged: the usage of a real call says the same.
    out = local_backend.chat_completion(MESSAGES, max_tokens=1, temperature=0)
    assert out.usage.prompt_tokens == count


def test_tools_are_folded_in_as_chat_completion_does(local_backend):
    _, plain = prompt_view.describe(local_backend, None, MESSAGES, "", "none")
    _, with_tools = prompt_view.describe(
        local_backend, None, MESSAGES, json.dumps(TOOLS), "required"
    )
    assert "get_weather" in with_tools and "get_weather" not in plain
    with pytest.raises(InputValidationError, match="not valid JSON"):
        prompt_view.describe(local_backend, None, MESSAGES, "[nope", "auto")


def test_a_remote_target_says_it_uses_its_own_template(local_backend):
    line, prompt = prompt_view.describe(
        local_backend, Connection(REMOTE, "org/model"), MESSAGES, "", "none"
    )
    assert prompt is None and line == prompt_view.REMOTE_NOTE


def test_an_empty_chat_asks_for_a_message(local_backend):
    with pytest.raises(InputValidationError, match="Type a message first"):
        prompt_view.describe(local_backend, None, [], "", "none")
