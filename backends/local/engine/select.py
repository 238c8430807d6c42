"""Which engine generates text locally, and building it.

Two engines serve the same Backend protocol with the same parameter semantics:

- ``transformers`` (``transformers.TransformersEngine``): the default; CUDA or CPU, any
  transformers model, continuous batching. GGUF files are de-quantized to fp32 first.
- ``llama.cpp`` (``llamacpp.LlamaCppEngine``): GGUF files on the CPU through
  llama.cpp's quantized kernels, continuous batching; several times faster on CPU. Needs
  the optional extra ``requirements-fast.txt`` (``make setup-fast``).

``--engine auto`` (the default) picks llama.cpp when the model is a GGUF file, generation
runs on the CPU and llama-cpp-python is installed; transformers otherwise. Before llama.cpp
is chosen (auto or explicit), ``choose_engine`` lets it prove it runs on this CPU: a tiny
load-and-decode in a child process (``llamacpp_probe.probe``), because a library built for
another CPU dies with SIGILL/SIGSEGV and would take the whole app down. A failed canary
makes ``auto`` fall back to transformers with a note, and an explicit choice an error.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from backends.errors import UnavailableError
from backends.local.engine.llamacpp import INSTALL_HINT, llamacpp_available
from backends.local.engine.probe import REBUILD_HINT, Verdict
from backends.local.model import (
    Device,
    LoadedModel,
    ModelSource,
    load_model,
    load_tokenizer_only,
)

__all__ = [
    "ENGINE_CHOICES",
    "EngineChoice",
    "EngineName",
    "choose_engine",
    "create_engine",
    "llamacpp_available",
    "load_for_engine",
    "select_engine",
]

log = logging.getLogger(__name__)

EngineName = Literal["transformers", "llama.cpp"]
ENGINE_CHOICES = ("auto", "transformers", "llama.cpp")
"""The values ``--engine`` accepts."""


def _runs_on_cpu(device: str) -> bool:
    if device == "cpu":
        return True
    if device == "cuda":
        return False
    import torch  # "auto": where the transformers engine would run

    return not torch.cuda.is_available()


def select_engine(kind: str, source: ModelSource, device: Device | str = "auto") -> EngineName:
    """The engine for ``--engine kind`` on ``source`` with ``--device device``.

    ``auto``: ``llama.cpp`` when ``source`` is a GGUF file, the device is the CPU (``cpu``,
    or ``auto`` without CUDA) and llama-cpp-python imports; ``transformers`` otherwise.

    Raises:
        UnavailableError: an unknown ``kind``, or ``llama.cpp`` forced where it cannot run
            (not installed, not a GGUF file, ``--device cuda``); the hint says what to do.
    """
    if kind not in ENGINE_CHOICES:
        raise UnavailableError(
            f"Unknown engine {kind!r}.", hint="Use --engine auto, transformers or llama.cpp."
        )
    if kind == "transformers":
        return "transformers"
    if kind == "auto":
        if source.kind != "gguf" or device == "cuda" or not llamacpp_available():
            return "transformers"
        return "llama.cpp" if _runs_on_cpu(device) else "transformers"
    if source.kind != "gguf":
        raise UnavailableError(
            f"The llama.cpp engine runs GGUF files; {source.model_id} is not one.",
            hint="Pass a .gguf file with --model, or use --engine transformers.",
        )
    if device == "cuda":
        raise UnavailableError(
            "The llama.cpp engine runs on the CPU, but --device cuda was asked for.",
            hint="Drop --device cuda, or use --engine transformers for the GPU.",
        )
    if not llamacpp_available():
        raise UnavailableError(
            "--engine llama.cpp was asked for, but llama-cpp-python is not installed.",
            hint=INSTALL_HINT,
        )
    return "llama.cpp"


# Why ``auto`` prefers llama.cpp for a GGUF on the CPU, from one `python -m bench` run on
# 2 cores (README, Benchmark): the figures a user can check against their own run.
LLAMACPP_MEASURED = (
    "faster than the transformers engine at every concurrency measured (5.7× at one stream, "
    "1.25× at 16; 95 vs 16.7 tok/s single, 136 vs 109 tok/s at 16 streams) and 0.97× "
    "llama.cpp's own llama-server for one stream"
)


def why(kind: str, source: ModelSource, device: Device | str, name: EngineName) -> str:
    """One line for the terminal: why ``--engine kind`` runs ``name`` here."""
    if kind != "auto":
        return f"{name} engine: asked for with --engine {kind}"
    if name == "llama.cpp":
        return f"llama.cpp engine (auto): a GGUF model on the CPU — {LLAMACPP_MEASURED}"
    if source.kind != "gguf":
        return "transformers engine (auto): the model is not a GGUF file"
    if device == "cuda" or not _runs_on_cpu(device):
        return "transformers engine (auto): generation runs on the GPU"
    return (
        "transformers engine (auto): llama-cpp-python is not installed "
        "(`make setup-fast` adds the faster llama.cpp engine for GGUF models on CPU)"
    )


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    """The engine that runs; ``note``: why it is not the one asked for ("" if it is);
    ``reason``: why it is the one that runs (logged at start)."""

    name: EngineName
    note: str = ""
    reason: str = ""


def choose_engine(
    kind: str,
    source: ModelSource,
    device: Device | str = "auto",
    *,
    canary: Callable[[str], Verdict] | None = None,
) -> EngineChoice:
    """``select_engine``, then, when that is llama.cpp, ``canary(model_path)`` (None: no
    check). A failed canary falls back to transformers under ``auto`` (with a note for the
    terminal and the page) and raises ``UnavailableError`` when llama.cpp was asked for."""
    name = select_engine(kind, source, device)
    reason = why(kind, source, device, name)
    if name != "llama.cpp" or canary is None:
        return EngineChoice(name, reason=reason)
    verdict = canary(source.location)
    if verdict.ok:
        return EngineChoice(name, reason=reason)
    if kind == "llama.cpp":
        raise UnavailableError(
            f"{verdict.reason}.",
            hint=f"{REBUILD_HINT[0].upper()}{REBUILD_HINT[1:]}, or use --engine transformers.",
        )
    note = f"{verdict.reason} — using the transformers engine; {REBUILD_HINT}"
    log.warning(note)
    return EngineChoice("transformers", note, f"transformers engine (auto): {verdict.reason}")


def load_for_engine(
    engine: EngineName,
    source: ModelSource,
    *,
    device: Device = "auto",
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = log.info,
) -> LoadedModel:
    """What ``engine`` needs loaded: the whole model for transformers, only the tokenizer
    and config for llama.cpp (it reads the GGUF's weights itself; ``model`` is None)."""
    if engine == "llama.cpp":
        return load_tokenizer_only(source, cache_dir=cache_dir, progress=progress)
    return load_model(source, device=device, cache_dir=cache_dir, progress=progress)


def create_engine(
    engine: EngineName, loaded: LoadedModel, *, model_path: str | None = None, **options: Any
):
    """Build ``engine`` over ``loaded``: a ``GenerationEngine`` (``TransformersEngine`` or
    ``LlamaCppEngine``).

    Args:
        engine: ``select_engine``'s answer.
        loaded: ``load_for_engine``'s answer for the same engine.
        model_path: the ``.gguf`` file (``ModelSource.location``); llama.cpp only.
        **options: passed on: ``max_queue``, ``max_batch_size`` and ``max_batch_tokens``
            for both; ``n_ctx``, ``n_threads`` and ``n_batch`` for llama.cpp.
    """
    if engine == "llama.cpp":
        from backends.local.engine.llamacpp import LlamaCppEngine

        if model_path is None:
            raise ValueError("the llama.cpp engine needs model_path (the .gguf file)")
        return LlamaCppEngine(loaded, model_path, **options)
    if engine == "transformers":
        from backends.local.engine.transformers import TransformersEngine

        return TransformersEngine(loaded, **options)
    raise ValueError(f"unknown engine {engine!r}")
