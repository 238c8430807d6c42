"""Model resolution, device selection and the GGUF → safetensors cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import backends.local.backend as local_backend_module
import backends.local.model as model_module
from backends.errors import UnavailableError
from backends.local.backend import LocalBackend
from backends.local.model import (
    BUNDLED_FILE,
    DEFAULT_CACHE,
    ModelSource,
    bundled_gguf,
    load_model,
    resolve_model,
    select_device,
)


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch):
    monkeypatch.delenv("PLAYGROUND_MODEL", raising=False)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")
    return path


# -- resolve_model -------------------------------------------------------------------------


def test_no_spec_is_the_bundled_gguf():
    source = resolve_model()
    assert source == ModelSource("gguf", str(bundled_gguf()), "SmolLM2-135M-Instruct")
    assert Path(source.location).name == BUNDLED_FILE
    assert Path(source.location).is_file()


def test_env_variable_is_used_when_no_spec(tmp_path, monkeypatch):
    gguf = _touch(tmp_path / "Tiny-1B.Q8_0.gguf")
    monkeypatch.setenv("PLAYGROUND_MODEL", str(gguf))
    assert resolve_model() == ModelSource("gguf", str(gguf.resolve()), "Tiny-1B")


def test_explicit_spec_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_MODEL", str(_touch(tmp_path / "env.gguf")))
    assert resolve_model("org/name").location == "org/name"


def test_gguf_path(tmp_path):
    gguf = _touch(tmp_path / "My-Model.Q4_K_M.gguf")
    assert resolve_model(str(gguf)) == ModelSource("gguf", str(gguf.resolve()), "My-Model")


def test_missing_gguf_path_is_unavailable(tmp_path):
    with pytest.raises(UnavailableError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_transformers_directory(tmp_path):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    _touch(model_dir / "also-here.gguf")  # config.json takes precedence
    assert resolve_model(str(model_dir)) == ModelSource("dir", str(model_dir.resolve()), "my-model")


def test_directory_with_one_gguf(tmp_path):
    gguf = _touch(tmp_path / "models" / "Small.Q4_1.gguf")
    assert resolve_model(str(gguf.parent)) == ModelSource("gguf", str(gguf.resolve()), "Small")


@pytest.mark.parametrize("n_ggufs", [0, 2])
def test_directory_without_a_single_model_is_unavailable(tmp_path, n_ggufs):
    for i in range(n_ggufs):
        _touch(tmp_path / f"m{i}.gguf")
    with pytest.raises(UnavailableError, match=f"{n_ggufs} .gguf files"):
        resolve_model(str(tmp_path))


def test_hub_id():
    assert resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct") == ModelSource(
        "hub", "HuggingFaceTB/SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"
    )


@pytest.mark.parametrize("spec", ["./no/such/dir", "/no/such/dir", "a/b/c"])
def test_path_like_spec_that_does_not_exist_is_unavailable(spec):
    with pytest.raises(UnavailableError, match="not found"):
        resolve_model(spec)


# -- select_device -------------------------------------------------------------------------


def test_cpu_is_float32():
    import torch

    assert select_device("cpu") == ("cpu", torch.float32)


def test_cuda_without_a_gpu_is_unavailable():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(UnavailableError, match="no CUDA device"):
        select_device("cuda")
    assert select_device("auto")[0] == "cpu"


def test_unknown_device_is_unavailable():
    with pytest.raises(UnavailableError, match="Unknown device 'tpu'"):
        select_device("tpu")  # type: ignore[arg-type]


# -- the GGUF cache ------------------------------------------------------------------------


def test_gguf_cache_key_follows_the_file(tmp_path):
    gguf = _touch(tmp_path / "m.gguf")
    first = model_module._gguf_cache_dir(gguf, tmp_path / "cache")
    assert first == model_module._gguf_cache_dir(gguf, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" / "converted"
    os.utime(gguf, ns=(1, 1))  # a replaced file (new mtime) gets a new conversion
    assert model_module._gguf_cache_dir(gguf, tmp_path / "cache") != first


@pytest.mark.model
def test_bundled_model_is_cached_as_safetensors(local_backend):
    cached = model_module._gguf_cache_dir(bundled_gguf(), DEFAULT_CACHE)
    assert (cached / "config.json").is_file()
    assert (cached / "model.safetensors").stat().st_size > 100_000_000
    assert (cached / "tokenizer.json").is_file()


@pytest.mark.model
def test_second_load_does_not_reconvert(local_backend, tmp_path, monkeypatch):
    # Stand-in for the ~25 s conversion: link the session's already converted files.
    converted = model_module._gguf_cache_dir(bundled_gguf(), DEFAULT_CACHE)
    calls = []

    def fake_convert(gguf, target, progress):
        calls.append(target)
        target.mkdir(parents=True)
        for file in converted.iterdir():
            (target / file.name).symlink_to(file)

    monkeypatch.setattr(model_module, "_convert_gguf", fake_convert)
    source = resolve_model()
    first = load_model(source, device="cpu", cache_dir=tmp_path)
    second = load_model(source, device="cpu", cache_dir=tmp_path)
    assert len(calls) == 1
    assert calls[0].parent == tmp_path / "converted"
    assert first.model_id == second.model_id == "SmolLM2-135M-Instruct"
    assert second.max_context == 8192
    assert second.eos_token_ids


# -- a backend whose model fails to load ---------------------------------------------------


def test_failed_load_is_reported_and_raised(monkeypatch):
    def fail(*args, **kwargs):
        raise UnavailableError("Could not load model 'x': disk on fire")

    monkeypatch.setattr(local_backend_module, "load_for_engine", fail)
    backend = LocalBackend().load()
    assert backend.status().state == "failed"
    assert "disk on fire" in backend.status().message
    assert not backend.health_check()
    with pytest.raises(UnavailableError, match="disk on fire"):
        backend.text_generation("Hello", max_new_tokens=1)


def test_unexpected_load_exception_becomes_unavailable(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("unsupported architecture")

    monkeypatch.setattr(local_backend_module, "load_for_engine", fail)
    backend = LocalBackend().load()
    assert backend.status().state == "failed"
    with pytest.raises(UnavailableError, match="unsupported architecture"):
        backend.chat_completion([{"role": "user", "content": "hi"}])
