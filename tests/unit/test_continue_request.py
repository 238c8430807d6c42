"""Continue: a final assistant message is left open by the chat template (local model)."""

from __future__ import annotations

from backends.local.requests import chat_request
from backends.params import ChatCompletionParameters


def test_final_assistant_message_is_continued_not_answered(loaded) -> None:
    params = ChatCompletionParameters(max_tokens=4, temperature=0)
    asked = [{"role": "user", "content": "Count to ten."}]
    partial = [*asked, {"role": "assistant", "content": "1, 2, 3,"}]
    new_turn, _, _ = chat_request(loaded, asked, params)
    continued, _, _ = chat_request(loaded, partial, params)
    new_text = loaded.tokenizer.decode(new_turn)
    text = loaded.tokenizer.decode(continued)
    assert new_text.rstrip().endswith("assistant")  # a new turn starts
    assert text.rstrip().endswith("1, 2, 3,")  # the reply stays open, no end-of-turn
    assert text.count("<|im_start|>assistant") == 1
