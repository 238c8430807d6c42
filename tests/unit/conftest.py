"""Shared fixtures for the unit tests.

The engine and backend tests run on the real bundled model (SmolLM2-135M-Instruct). It is
loaded once per session; the first load ever converts the GGUF (~25 s), later loads read
the cached safetensors from ~/.cache/inference-playground in a few seconds.
"""

from __future__ import annotations

import pytest

from backends.local.backend import LocalBackend
from backends.local.model import bundled_gguf


@pytest.fixture(scope="session")
def local_backend() -> LocalBackend:
    # The bundled file is named explicitly so a PLAYGROUND_MODEL set in the shell cannot
    # swap the model the assertions (8192 tokens of context, SmolLM2's tokenizer) expect.
    # The transformers engine: llama.cpp (auto-picked where installed) has its own tests.
    backend = LocalBackend(str(bundled_gguf()), engine="transformers").load()
    status = backend.status()
    if status.state != "ready":
        pytest.fail(f"the bundled model did not load: {status.message}")
    yield backend
    backend.shutdown()


@pytest.fixture(scope="session")
def loaded(local_backend):
    """The ``LoadedModel`` behind the backend (model, tokenizer, limits)."""
    return local_backend._loaded


@pytest.fixture(scope="session")
def engine(local_backend):
    return local_backend._engine


@pytest.fixture(scope="session")
def tokenizer(loaded):
    return loaded.tokenizer
