"""Images in chat (OpenAI content parts, limits, the text-only local model's refusal) and
a reasoning model's thinking (``<think>`` on any chunk boundary, reasoning deltas), and
both kept in saved conversations through export and import."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ChatCompletionStreamOutput
from PIL import Image

from backends import BackendStatus, vision
from backends.errors import InputValidationError
from components import chat
from components import conversation_files as files
from components import conversations as conv
from components.forms import ChatForm
from components.thinking import ThinkSplitter, reasoning_delta


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=kind)
    return out.getvalue()


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    path.write_bytes(image_bytes())
    return path


# ---------------------------------------------------------------- content parts and limits


def test_a_message_with_images_becomes_openai_content_parts(png: Path, tmp_path: Path):
    jpeg = tmp_path / "photo.jpeg"
    jpeg.write_bytes(image_bytes("JPEG"))
    history = [
        {"role": "user", "content": [{"path": str(png)}, {"path": str(jpeg)}, "What is this?"]},
        {"role": "assistant", "content": "A red square."},
    ]
    messages = chat.to_messages(history, "Be brief.")
    parts = messages[1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    urls = [p["image_url"]["url"] for p in parts[1:]]
    assert [p["type"] for p in parts[1:]] == ["image_url", "image_url"]
    assert urls[0].startswith("data:image/png;base64,")
    assert urls[1].startswith("data:image/jpeg;base64,")
    assert base64.b64decode(urls[0].split(",", 1)[1]) == png.read_bytes()
    assert messages[2] == {"role": "assistant", "content": "A red square."}


def test_gradio_file_parts_are_read_too_and_text_only_stays_a_string(png: Path):
    history = [
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"path": str(png), "mime_type": "image/png"}},
                {"type": "text", "text": "Describe"},
            ],
        },
        {"role": "user", "content": "plain"},
    ]
    messages = chat.to_messages(history)
    assert messages[0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert messages[1] == {"role": "user", "content": "plain"}


def test_the_mime_type_comes_from_the_bytes_not_the_name(tmp_path: Path):
    liar = tmp_path / "really-a-jpeg.png"
    liar.write_bytes(image_bytes("JPEG"))
    assert vision.data_url(liar).startswith("data:image/jpeg;base64,")
    webp = tmp_path / "x.webp"
    webp.write_bytes(image_bytes("WEBP"))
    assert vision.data_url(webp).startswith("data:image/webp;base64,")


def test_limits_and_not_an_image_are_refused_with_a_sentence(png: Path, tmp_path: Path):
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (vision.MAX_IMAGE_BYTES + 1))
    with pytest.raises(InputValidationError, match=r"'huge.png' is 5.0 MB; the limit is 5 MB"):
        vision.data_url(big)
    text = tmp_path / "notes.png"
    text.write_text("just some text")
    with pytest.raises(InputValidationError, match="not an image Pillow can read"):
        vision.data_url(text)
    bmp = tmp_path / "old.bmp"
    bmp.write_bytes(image_bytes("BMP"))
    with pytest.raises(InputValidationError, match="BMP image; vision models take PNG"):
        vision.data_url(bmp)
    five = [{"path": str(png)}] * 5
    with pytest.raises(InputValidationError, match="5 images attached; a message takes at most 4"):
        chat.to_messages([{"role": "user", "content": [*five, "hi"]}])


def test_the_box_keeps_a_refused_message_and_says_why(png: Path, tmp_path: Path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    box = {"text": "look", "files": [str(png), str(text)]}
    with pytest.warns(UserWarning, match="not an image Pillow can read"):
        kept, history = chat.add_user(box, [])
    assert history == [] and not isinstance(kept, str)  # gr.update(): the box is unchanged
    with pytest.warns(UserWarning, match="at most 4"):
        chat.add_user({"text": "", "files": [str(png)] * 5}, [])
    cleared, history = chat.add_user({"text": "look", "files": [str(png)]}, [])
    assert cleared == "" and history == [{"role": "user", "content": [{"path": str(png)}, "look"]}]
    # An image alone is a message; Undo puts text and image back in the box.
    _, alone = chat.add_user({"text": "", "files": [str(png)]}, [])
    assert alone[0]["content"] == [{"path": str(png)}]
    assert chat.undo_turn(history) == ([], {"text": "look", "files": [str(png)]})


def test_remote_parts_are_checked_again_before_sending(png: Path):
    good = vision.data_url(png)
    parts = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": good}}]
    assert vision.check_parts(parts) == parts
    lying = good.replace("image/png", "image/jpeg", 1)
    with pytest.raises(InputValidationError, match="says image/jpeg but holds another"):
        vision.check_parts([{"type": "image_url", "image_url": {"url": lying}}])
    with pytest.raises(InputValidationError, match="Unknown content part type 'audio'"):
        vision.check_parts([{"type": "audio"}])


def test_the_local_model_refuses_images_before_any_compute(png: Path):
    from backends.local.backend import LocalBackend
    from backends.local.model import bundled_gguf

    backend = LocalBackend(str(bundled_gguf()), engine="transformers")  # never loaded
    parts = vision.content_parts("What is it?", [vision.data_url(png)])
    with pytest.raises(InputValidationError, match="does not read images") as info:
        backend.chat_completion([{"role": "user", "content": parts}], stream=True)
    assert "vision-language model" in info.value.user_message()
    # Nothing was started: no loading thread, no engine, no model.
    assert backend._thread is None and backend._engine is None and backend._loaded is None


# ---------------------------------------------------------------- thinking


THOUGHT, ANSWER = "The user asks for a colour.", "Blue is calm."
FULL = f"<think>{THOUGHT}</think>{ANSWER}"


def split_all(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    for piece in pieces:
        splitter.feed(piece)
    return splitter.finish()


@pytest.mark.parametrize("cut", range(1, len(FULL)))
def test_think_tags_are_split_on_any_boundary(cut: int):
    assert split_all([FULL[:cut], FULL[cut:]]) == (THOUGHT, ANSWER)


def test_think_tags_split_char_by_char_and_in_three_pieces():
    assert split_all(list(FULL)) == (THOUGHT, ANSWER)
    for a in range(1, len(FULL) - 1, 3):
        for b in range(a + 1, len(FULL), 5):
            assert split_all([FULL[:a], FULL[a:b], FULL[b:]]) == (THOUGHT, ANSWER)


def test_think_edge_cases():
    # Only the closing tag: the template opened <think> in the prompt.
    assert split_all(["I should", " say hi.</th", "ink>Hi!"]) == ("I should say hi.", "Hi!")
    # No tags: all answer, and a lone "<" held back is text at the end.
    assert split_all(["a < b", " <"]) == ("", "a < b <")
    # Unclosed: still thinking when the stream ends.
    splitter = ThinkSplitter()
    splitter.feed("<think>hmm")
    assert splitter.thinking_open and splitter.finish() == ("hmm", "")


class ScriptedBackend:
    """Streams the given deltas (dicts of ``ChatCompletionStreamOutputDelta`` fields)."""

    name = "scripted"

    def __init__(self, deltas: list[dict[str, Any]]) -> None:
        self.deltas = deltas
        self.sent: list = []

    def status(self) -> BackendStatus:
        return BackendStatus("ready", "ready")

    def chat_completion(self, messages, *, stream: bool = False, **params: Any):
        self.sent.append(messages)
        last = len(self.deltas) - 1
        for i, delta in enumerate(self.deltas):
            yield ChatCompletionStreamOutput.parse_obj_as_instance(
                {
                    "id": "1",
                    "created": 0,
                    "model": "m",
                    "system_fingerprint": "",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", **delta},
                            "finish_reason": "stop" if i == last else None,
                        }
                    ],
                }
            )


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_become_the_thinking_block(field: str):
    deltas = [{field: "Let me"}, {field: " think."}, {"content": "Blue"}, {"content": "."}]
    turns = list(chat.run_turn(ScriptedBackend(deltas), [], ChatForm(max_tokens=8)))
    last = turns[-1]
    assert (last.thinking, last.answer, last.thinking_tokens) == ("Let me think.", "Blue.", 2)
    block, answer = last.shown()
    assert block["metadata"] == {"title": "Thinking · 2 tokens", "status": "done"}
    assert block["content"] == "Let me think." and answer == {
        "role": "assistant",
        "content": "Blue.",
    }
    assert "4 completion tokens" in last.line  # thinking counts toward the reply's tokens
    # While only thinking has come, the block is open and there is no answer yet.
    assert turns[1].shown()[0]["metadata"]["status"] == "pending" and len(turns[1].shown()) == 1
    assert [answer for answer, _ in chat.run(ScriptedBackend(deltas), [], ChatForm())][
        -1
    ] == "Blue."
    delta = ScriptedBackend([{field: "x"}]).chat_completion([], stream=True)
    assert reasoning_delta(next(delta).choices[0].delta) == "x"


def test_think_in_content_streams_apart_and_is_not_sent_back():
    pieces = ["<thi", "nk>Hmm", ", blue", ".</th", "ink>", "Blue", "."]
    backend = ScriptedBackend([{"content": p} for p in pieces])
    last = list(chat.run_turn(backend, [], ChatForm()))[-1]
    assert (last.thinking, last.answer, last.thinking_tokens) == ("Hmm, blue.", "Blue.", 3)
    history = [{"role": "user", "content": "Colour?"}, *last.shown()]
    assert chat.to_messages(history) == [
        {"role": "user", "content": "Colour?"},
        {"role": "assistant", "content": "Blue."},
    ]


# ---------------------------------------------------------------- saved conversations


def test_images_and_thinking_round_trip_through_export_and_import(png: Path):
    thinking = {
        "role": "assistant",
        "content": "It is red.",
        "metadata": {"title": "Thinking · 3 tokens", "status": "done"},
    }
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": str(png)}}, "Colour?"]},
        thinking,
        {"role": "assistant", "content": "Red."},
    ]
    record = conv.snapshot({}, history, stats="3 completion tokens")
    user, reply = record["messages"]
    assert user["content"] == "Colour?" and user["images"] == [vision.data_url(png)]
    assert reply["thinking"] == "It is red." and reply["thinking_title"] == "Thinking · 3 tokens"
    assert reply["content"] == "Red."

    text = files.export_json([record])
    assert '"version": 1' in text and "data:image/png;base64," in text
    (back,) = files.parse_import(text.encode())
    assert back == record
    shown = conv.chat_messages(back)
    assert shown[1] == thinking and shown[2] == {"role": "assistant", "content": "Red."}
    path = shown[0]["content"][0]["path"]
    assert Path(path).read_bytes() == png.read_bytes() and shown[0]["content"][1] == "Colour?"
    # Reopened, the chat sends the same image again (and not the thinking).
    again = chat.to_messages(shown)
    assert again[0]["content"][1]["image_url"]["url"] == user["images"][0]
    assert again[1] == {"role": "assistant", "content": "Red."}
    assert "![image 1](data:image/png;base64," in files.export_markdown([record])


def test_an_import_with_a_bad_image_is_refused_with_the_reason(png: Path):
    record = conv.snapshot({}, [{"role": "user", "content": [{"path": str(png)}, "Hi"]}])
    for bad, reason in (
        ("https://example.com/cat.png", "must be a data:<image/png"),
        ("data:text/html;base64,PGgxPg==", "must be a data:<image/png"),
        ("data:image/png;base64," + "A" * (vision.MAX_IMAGE_BYTES * 2), "over 5 MB"),
    ):
        record["messages"][0]["images"] = [bad]
        with pytest.raises(conv.ImportError_, match=reason):
            file = {"format": conv.FORMAT, "version": conv.VERSION, "conversations": [record]}
            files.parse_import(json.dumps(file).encode())


def test_a_retried_reply_keeps_its_thinking_as_a_version(png: Path):
    history = [{"role": "user", "content": [{"path": str(png)}, "Colour?"]}]
    save = conv.saving_stream({}, history, {})
    first = save("Red.", "line", final=True, thinking="It is red.", title="Thinking · 3 tokens")
    again = conv.saving_stream(first, history, {})
    second = again("Crimson.", "line", final=True)
    reply = second["messages"][1]
    assert reply["content"] == "Crimson." and reply["versions"][0]["thinking"] == "It is red."
    back = conv.switch_version(second, -1)["messages"][1]
    assert back["content"] == "Red." and back["thinking"] == "It is red."


def test_an_openai_messages_file_with_image_parts_imports_its_images(png: Path):
    url = vision.data_url(png)
    data = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
        {"role": "assistant", "content": "A square."},
    ]
    import json

    (record,) = files.parse_import(json.dumps(data).encode())
    assert record["messages"][0]["images"] == [url]
    assert record["messages"][0]["content"] == "What?"


def test_a_large_image_is_saved_as_a_smaller_copy_that_fits_the_browser(tmp_path: Path):
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 255, (1300, 1100, 3), dtype=np.uint8)
    big = tmp_path / "noise.png"
    Image.fromarray(noise).save(big)
    assert 4 * 1024 * 1024 < big.stat().st_size <= vision.MAX_IMAGE_BYTES
    sent = vision.data_url(big)  # what the model gets: the original
    record = conv.snapshot({}, [{"role": "user", "content": [{"path": str(big)}, "Big?"]}])
    (saved,) = record["messages"][0]["images"]
    assert saved != sent and saved.startswith("data:image/jpeg;base64,")
    mime, data = vision.decode_data_url(saved)
    assert len(data) <= vision.SAVED_MAX_BYTES
    with Image.open(io.BytesIO(data)) as copy:
        assert max(copy.size) <= vision.SAVED_MAX_SIDE and copy.size[0] < copy.size[1]
    # Transparency survives as PNG; a small image is kept as it is.
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([noise, noise[:, :, :1]])[:700, :700]).save(rgba)
    assert vision.saved_copy(vision.data_url(rgba)).startswith("data:image/png;base64,")
    small = vision.data_url(image_bytes())
    assert vision.saved_copy(small) == small
