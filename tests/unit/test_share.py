"""Share links: what a link carries (never a token), the round trip, the length limit, and
bad or hostile links refused with a message."""

from __future__ import annotations

import base64
import json
import random
import zlib
from urllib.parse import parse_qs

import pytest

from components import conversations, share
from components.connection import REMOTE, Connection


def _record(messages: int = 2) -> dict:
    history = []
    for i in range(messages // 2):
        history += [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    conn = Connection(REMOTE, "http://127.0.0.1:9/v1", model="m", token="sk-SECRET")
    form = dict(max_tokens=77, temperature=0.3, top_p=0.9, seed=5, stop="END")
    form.update(format_kind="regex", format_value="[a-z]+", tools_text="", tool_choice="none")
    settings = conversations.settings_of("Be kind.", form, conn)
    return conversations.snapshot({}, history, stats="12 tokens", **settings)


def _value(query: str) -> str:
    return parse_qs(query.removeprefix("?"))[share.QUERY_KEY][0]


def test_a_link_round_trips_the_setup_and_the_conversation_never_a_token():
    record = _record()
    query = share.query(share.setup_of(record, conversation=True))
    assert "SECRET" not in query
    setup = share.decode(_value(query))
    assert "sk-SECRET" not in json.dumps(setup)
    assert setup["system_prompt"] == "Be kind."
    assert setup["parameters"] == record["parameters"]
    assert setup["structured"]["format_value"] == "[a-z]+"
    assert setup["target"] == {"mode": REMOTE, "endpoint": "http://127.0.0.1:9/v1",
                               "provider": "auto", "model": "m"}  # fmt: skip
    assert [(m["role"], m["content"]) for m in setup["messages"]] == [
        ("user", "question 0"),
        ("assistant", "answer 0"),
    ]
    opened = share.as_record(setup, new_id="abc", now=1.0)
    assert conversations.valid(opened) == opened and opened["id"] == "abc"


def test_without_the_conversation_only_the_settings_travel():
    setup = share.decode(_value(share.query(share.setup_of(_record(), conversation=False))))
    assert setup["messages"] == [] and setup["system_prompt"] == "Be kind."


def test_a_setup_too_long_for_a_link_says_what_to_do_instead():
    record = _record()
    noise = random.Random(0).randbytes(20_000)  # does not compress
    record["messages"][0]["content"] = base64.b64encode(noise).decode()
    with pytest.raises(share.ShareError, match="too long for a link.*Export chat"):
        share.query(share.setup_of(record, conversation=True))
    share.query(share.setup_of(record, conversation=False))  # settings alone still fit


def _pack(data: object) -> str:
    raw = json.dumps(data).encode() if not isinstance(data, bytes) else data
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!!not base64!!!", "damaged"),
        (base64.urlsafe_b64encode(b"plain bytes").decode(), "damaged"),
        (_pack(b"\x00" * 5_000_000), "unpacks to more than a setup can hold"),  # a zip bomb
        (_pack(b"not json"), "damaged"),
        (_pack([1, 2]), "does not hold an Inference Playground setup"),
        (_pack({"format": share.FORMAT, "version": 2}), "version 2 of the setup format"),
        (
            _pack({"format": share.FORMAT, "version": 1, "messages": [{"role": "system"}]}),
            "not valid: messages.0",
        ),
        (
            _pack({"format": share.FORMAT, "version": 1, "parameters": {"max_tokens": -5}}),
            "not valid: parameters.max_tokens",
        ),
        ("A" * (share.MAX_LINK_CHARS + 1), "too long to be one of ours"),
    ],
)
def test_a_bad_or_hostile_link_is_refused_with_a_message(text, message):
    with pytest.raises(share.ShareError, match=message):
        share.decode(text)
