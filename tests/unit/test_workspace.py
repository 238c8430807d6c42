"""The saved-conversations logic and the export format (components/workspace.py)."""

from __future__ import annotations

import json
import time

import pytest

from components import conversation_files as files
from components import conversations as conv
from components import workspace as ws


def chat(*texts: str) -> list[dict]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]


SETTINGS = dict(
    system_prompt="Be brief.",
    parameters=dict(max_tokens=64, temperature=0.2, top_p=0.9, seed=7, stop="END"),
    structured=dict(format_kind="regex", format_value="[a-z]+", tools_text="", tool_choice="none"),
    target=dict(mode="Remote endpoint", endpoint="http://x/v1", provider="auto", model="m"),
)


def record(*texts: str, now: float = 100.0, **overrides) -> dict:
    return conv.snapshot(
        {}, chat(*texts), stats="3 completion tokens", now=now, **{**SETTINGS, **overrides}
    )


def test_snapshot_keeps_messages_settings_and_title() -> None:
    r = record("Hello there", "Hi!")
    assert r["title"] == "Hello there"
    assert [m["content"] for m in r["messages"]] == ["Hello there", "Hi!"]
    assert r["messages"][1]["stats"] == "3 completion tokens"
    assert r["parameters"]["seed"] == 7 and r["parameters"]["stop"] == "END"
    assert r["structured"]["format_kind"] == "regex"
    assert r["target"] == SETTINGS["target"]
    assert "token" not in r["target"]
    # Gradio 6 content parts are read as text; the id and title stay on later saves.
    parts = [{"type": "text", "text": "Hello there"}]
    history = [{"role": "user", "content": parts}, {"role": "assistant", "content": "Hi!"}]
    later = conv.snapshot(r, [*history, *chat("More")], now=200.0)
    assert later["id"] == r["id"] and later["title"] == "Hello there"
    assert later["messages"][1]["stats"] == "3 completion tokens"
    assert later["created"] == 100.0 and later["updated"] == 200.0


def test_title_is_first_user_message_truncated() -> None:
    assert conv.title_from(chat("x" * 100))[-1] == "…"
    assert len(conv.title_from(chat("x" * 100))) == conv.TITLE_CHARS
    assert conv.title_from([]) == "New chat"


def test_store_upsert_order_remove_search_rename() -> None:
    a, b = record("Alpha question", now=1.0), record("Beta question", now=2.0)
    store = conv.upsert(conv.upsert({}, a), b)
    assert [label for label, _ in conv.choices(store)] == ["Beta question", "Alpha question"]
    assert conv.choices(store, "alpha") == [("Alpha question", a["id"])]
    assert conv.upsert(store, {"id": "e", "messages": []}) == store  # empty chats are not kept
    store, renamed = conv.rename(store, a, "  My   title ")
    assert renamed["title"] == "My title" and conv.choices(store)[0] == ("My title", a["id"])
    assert [r["id"] for r in conv.conversations(conv.remove(store, a["id"]))] == [b["id"]]
    # Garbage in the browser's storage is dropped, not fatal.
    assert conv.conversations({"conversations": [{"nope": 1}, b]}) == [b]
    assert conv.conversations("garbage") == []


def test_streaming_save_is_throttled_and_fold_marks_interrupted(monkeypatch) -> None:
    clock = iter([10.0, 10.2, 11.5, 11.6])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    history = chat("Tell me a story")
    save = conv.saving_stream({}, history, SETTINGS)
    first = save("Once", "1 token")
    assert first is not None and first["streaming"] is True
    assert save("Once upon", "2 tokens") is None  # within a second of the last save
    partial = save("Once upon a time", "4 tokens")
    assert partial["messages"][-1]["content"] == "Once upon a time"
    final = save("Once upon a time.", "5 tokens · finish: stop", final=True)
    assert final["streaming"] is False and final["id"] == first["id"] == partial["id"]
    # The page went away during the stream: load folds it in, marked interrupted.
    store, current = conv.fold_current({}, partial)
    assert current["messages"][-1]["interrupted"] and not current["streaming"]
    assert conv.chat_messages(current)[-1]["content"].endswith("_(interrupted)_")
    assert conv.conversations(store) == [current]
    # Saving the displayed chat again does not duplicate the mark.
    again = conv.snapshot(current, conv.chat_messages(current))
    assert again["messages"][-1]["content"] == "Once upon a time"
    assert again["messages"][-1]["interrupted"]


def test_retry_keeps_versions_and_navigation() -> None:
    r = record("Q", "first answer")
    save = conv.saving_stream(r, chat("Q"), SETTINGS)  # a retry: the reply is replaced
    r2 = save("second answer", "s2", final=True)
    assert conv.version_label(r2) == "2/2"
    back = conv.switch_version(r2, -1)
    assert back["messages"][-1]["content"] == "first answer"
    assert back["messages"][-1]["stats"] == "3 completion tokens"
    assert conv.version_label(back) == "1/2"
    assert conv.switch_version(back, -1)["messages"][-1]["content"] == "first answer"  # no wrap
    save3 = conv.saving_stream(back, chat("Q"), SETTINGS)
    r3 = save3("third answer", "s3", final=True)
    assert conv.version_label(r3) == "3/3"
    contents = [conv.switch_version(r3, -k)["messages"][-1]["content"] for k in (1, 2)]
    assert contents == ["second answer", "first answer"]
    forward = conv.switch_version(conv.switch_version(r3, -2), 1)
    assert forward["messages"][-1]["content"] == "second answer"
    assert conv.version_label(forward) == "2/3"


def test_export_round_trips_exactly() -> None:
    r = conv.saving_stream(record("Q", "A1"), chat("Q"), SETTINGS)("A2", "s", final=True)
    other = record("Other", "Yes", now=5.0)
    text = files.export_json([r, other])
    data = json.loads(text)
    assert data["format"] == conv.FORMAT and data["version"] == 1
    assert files.parse_import(text.encode()) == [r, other]
    markdown = files.export_markdown([r])
    assert "# Q" in markdown and "## Assistant" in markdown and "A2" in markdown


def test_import_openai_messages() -> None:
    messages = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
    ]
    for payload in (messages, {"messages": messages}):
        (r,) = files.parse_import(json.dumps(payload).encode())
        assert r["system_prompt"] == "Be kind."
        assert [(m["role"], m["content"]) for m in r["messages"]] == [
            ("user", "Hi"),
            ("assistant", "Hello"),
        ]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{ nope", "not JSON"),
        (b'"a string"', "Not a conversations file"),
        (b'{"format": "other"}', "Not a conversations file"),
        (json.dumps({"format": conv.FORMAT, "version": 2, "conversations": []}).encode(),
         "version 2"),
        (json.dumps({"format": conv.FORMAT, "version": 1, "conversations": [{"id": ""}]}).encode(),
         "does not match"),
        (json.dumps({"format": conv.FORMAT, "version": 1, "conversations": []}).encode(),
         "no conversations"),
        (json.dumps([{"role": "wizard", "content": "x"}]).encode(), "Not a messages list"),
        (json.dumps([{"role": "system", "content": "x"}]).encode(), "no user or assistant"),
        (b" " * (files.MAX_IMPORT_BYTES + 1), "limited to 32 MB"),
    ],
)  # fmt: skip
def test_bad_imports_are_refused_with_a_reason(raw: bytes, says: str) -> None:
    with pytest.raises(conv.ImportError_, match=says):
        files.parse_import(raw)


def test_extra_fields_and_bad_values_are_refused() -> None:
    good = json.loads(files.export_json([record("Q", "A")]))
    good["conversations"][0]["token"] = "hf_secret"
    with pytest.raises(conv.ImportError_, match="token"):
        files.parse_import(json.dumps(good).encode())
    good = json.loads(files.export_json([record("Q", "A")]))
    good["conversations"][0]["parameters"]["temperature"] = 9
    with pytest.raises(conv.ImportError_, match="temperature"):
        files.parse_import(json.dumps(good).encode())


def test_storage_secret_from_env_or_kept_in_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ws.SECRET_ENV, "from-env")
    assert ws.storage_secret(tmp_path) == "from-env"
    monkeypatch.delenv(ws.SECRET_ENV)
    first = ws.storage_secret(tmp_path)
    assert len(first) >= 32 and ws.storage_secret(tmp_path) == first
    assert (tmp_path / ws.SECRET_FILE).stat().st_mode & 0o077 == 0


def test_settings_never_read_the_token() -> None:
    from components.connection import REMOTE, Connection

    connection = Connection(REMOTE, "http://x/v1", "auto", "m", token="hf_typed_secret")
    settings = conv.settings_of("sys", {"max_tokens": 9, "format_kind": "text"}, connection)
    r = conv.snapshot({}, chat("Q", "A"), **settings)
    assert "hf_typed_secret" not in json.dumps(r)
    assert r["target"] == {"mode": REMOTE, "endpoint": "http://x/v1", "provider": "auto",
                           "model": "m"}  # fmt: skip
    assert r["parameters"]["max_tokens"] == 9
