"""``/compare`` through ``gradio_client`` against the real app: one message to two targets
at once — the local model and a port that refuses connections — returns one result per
target: the refused one with its reason, the local one with its full answer and numbers.
Bad ``targets`` are refused with what is wrong."""

from __future__ import annotations

import socket

import pytest
from gradio_client import Client

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def client(app_url: str):
    client = Client(app_url, verbose=False)
    try:
        yield client
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released: nothing listens there now


def test_compare_is_a_named_endpoint(client) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/compare" in named


def test_one_refused_target_fails_alone_and_the_local_one_answers(client) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}"
    local, remote = client.predict(
        "Say hello.",
        [
            {"endpoint": "local", "max_tokens": 12, "temperature": 0, "seed": 1},
            {"endpoint": refused, "max_tokens": 12, "token": "never-shown"},
        ],
        api_name="/compare",
    )
    assert local["target"] == "local model"
    assert local["error"] is None
    assert local["text"].strip()
    assert 1 <= local["tokens"] <= 12
    assert local["ttft_ms"] > 0
    assert local["finish_reason"] in ("length", "stop", "eos_token")
    assert local["tokens_per_s"] is None or local["tokens_per_s"] > 0
    assert remote["target"] == refused
    assert remote["error"] and "never-shown" not in str(remote)
    assert remote["text"] == "" and remote["tokens"] == 0 and remote["finish_reason"] is None


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([{"endpoint": "local"}], "2–4 targets (got 1)"),
        ("local", "2–4 targets (got str)"),
        ([{"endpoint": "local"}, {"endpoint": "local", "colour": "red"}], "`targets[1]`: `colour`"),
        ([{"endpoint": "local"}, {"max_tokens": "many"}], "`targets[1]`: `max_tokens`"),
    ],
)
def test_bad_targets_are_refused_with_what_is_wrong(client, targets, message) -> None:
    with pytest.raises(Exception) as info:
        client.predict("Hi", targets, api_name="/compare")
    assert message in str(info.value)
