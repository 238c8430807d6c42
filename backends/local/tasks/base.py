"""What the local task runners share: the ``Runner`` and ``NoRunner`` records, the
architecture check, input decoding, parameter refusal, and conversion to huggingface_hub's
output types. It imports no other module of this package.

A runner is two functions: ``load(directory, device)`` builds what the task needs (a
transformers pipeline, a model with its processor, a sentence-transformers or scikit-learn
model) and ``run(loaded, inputs, params)`` returns exactly what ``InferenceClient.<task>``
returns. Outputs are built with the hub types' own ``parse_obj``, the parser InferenceClient
applies to a server's JSON, so local and remote results have the same shape and extras.
A runner raises ``InputValidationError`` for input it refuses; anything else that escapes it
is a bug or a model it cannot handle, which ``LocalTasks.run`` logs and reports as a
``GenerationError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends import media
from backends.errors import InputValidationError

if TYPE_CHECKING:
    from PIL import Image

    from backends.tasks import TaskSpec


@dataclass(frozen=True)
class Runner:
    """How one task runs locally.

    ``kind`` names what ``load`` builds; tasks with the same kind share one loaded model
    (summarization and translation share a seq2seq model, sentence similarity and feature
    extraction one sentence-transformers model). ``pipeline_task`` / ``auto`` say which
    transformers Auto classes a model must fit, checked before loading so a wrong model gets
    a sentence instead of a stack trace; both empty means the loader checks itself."""

    kind: str
    load: Callable[[str, str], Any]
    run: Callable[[Any, dict[str, Any], dict[str, Any]], Any]
    pipeline_task: str | None = None
    auto: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoRunner:
    """A task that cannot run locally: ``reason`` is the clause users see after
    "<task> cannot run locally: " (no capital, no full stop)."""

    reason: str


def check_architecture(runner: Runner, location: str, model_id: str, spec: TaskSpec) -> None:
    """Refuse a model whose architecture cannot do the task, before loading its weights."""
    if not runner.pipeline_task and not runner.auto:
        return
    import transformers
    from transformers import AutoConfig

    if runner.pipeline_task:
        from transformers.pipelines import SUPPORTED_TASKS

        autos = SUPPORTED_TASKS[runner.pipeline_task]["pt"]
    else:
        autos = tuple(getattr(transformers, name) for name in runner.auto)
    if not (Path(location) / "config.json").is_file():
        raise InputValidationError(
            f"{model_id} is not a transformers model (no config.json).",
            field="model",
            hint=f"Pick a {spec.hub_task} model saved with save_pretrained.",
        )
    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError, KeyError) as exc:
        raise InputValidationError(
            f"{model_id}'s config.json is not one transformers understands: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            field="model",
            hint="Update transformers, or pick another model.",
        ) from exc
    if not any(type(config) in auto._model_mapping for auto in autos):
        architecture = ", ".join(getattr(config, "architectures", None) or [config.model_type])
        raise InputValidationError(
            f"{model_id} is a {config.model_type} model ({architecture}), which cannot run "
            f"{spec.title.lower()}.",
            field="model",
            hint=f"Pick a model made for {spec.hub_task} (on the Hub: filter by that task).",
        )


# -- inputs -----------------------------------------------------------------------------


def required(inputs: dict[str, Any], key: str) -> Any:
    value = inputs.get(key)
    if value is None or (isinstance(value, (str, bytes, list, dict)) and not value):
        raise InputValidationError(f"`{key}` is required.", field=key)
    return value


def text(inputs: dict[str, Any], key: str = "text") -> str:
    value = required(inputs, key)
    if not isinstance(value, str):
        raise InputValidationError(f"`{key}` must be a string.", field=key)
    if not value.strip():
        raise InputValidationError(f"`{key}` is empty.", field=key)
    return value


def labels(inputs: dict[str, Any], key: str) -> list[str]:
    """A list of non-empty strings (a comma-separated string is accepted too)."""
    value = required(inputs, key)
    items = value.split(",") if isinstance(value, str) else list(value)
    cleaned = [str(item).strip() for item in items if str(item).strip()]
    if not cleaned:
        raise InputValidationError(f"`{key}` needs at least one label.", field=key)
    return cleaned


def image(inputs: dict[str, Any], key: str = "image") -> Image.Image:
    """An RGB image from bytes or a file path, checked by ``backends.media``."""
    source = required(inputs, key)
    if isinstance(source, (str, Path)):
        source = media.read_bytes(source, what="image", limit=media.MAX_IMAGE_BYTES)
    return media.decode_image(bytes(source))


def audio(inputs: dict[str, Any], sampling_rate: int, key: str = "audio") -> np.ndarray:
    """Mono float32 samples at the model's ``sampling_rate`` (resampled by ``media``)."""
    source = required(inputs, key)
    if isinstance(source, (str, Path)):
        source = media.read_bytes(source, what="audio", limit=media.MAX_AUDIO_BYTES)
    samples, _ = media.decode_audio(bytes(source), sampling_rate=int(sampling_rate))
    return samples


def table(inputs: dict[str, Any], key: str = "table") -> dict[str, list[str]]:
    return media.check_table(required(inputs, key))


def template(value: str | None, key: str = "hypothesis_template") -> str | None:
    """A hypothesis template must place the label somewhere (``{}``)."""
    if value is not None and "{}" not in value:
        raise InputValidationError(
            f"`{key}` must contain {{}} where the label goes.",
            field=key,
            hint="e.g. 'This is a photo of {}.'",
        )
    return value


# -- parameters -------------------------------------------------------------------------


def refuse(params: dict[str, Any], names: Iterable[str], why: str) -> None:
    """Raise for the first of ``names`` that is set: a parameter this model cannot honour is
    refused, never silently dropped."""
    for name in names:
        if name in params:
            raise InputValidationError(
                f"`{name}` is not supported locally: {why}.",
                field=name,
                hint=f"Clear `{name}`, or switch the tab to Remote.",
            )


def pick(params: dict[str, Any], *names: str) -> dict[str, Any]:
    """The parameters among ``names`` that were set."""
    return {name: params[name] for name in names if name in params}


# -- outputs ----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """JSON-like Python values (numpy scalars/arrays, tuples → float/int/list), as a server
    would send them; other objects (PIL images) pass through untouched."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def hub(cls: type, data: Any) -> Any:
    """``cls.parse_obj`` on JSON-like data: a hub type or a list of them."""
    return cls.parse_obj(plain(data))


def load_pipeline(task: str, location: str, device: str, **kwargs: Any) -> Any:
    """A transformers pipeline on ``device`` in float32 (task models are small; float32
    avoids the half-precision gaps some audio and vision ops still have)."""
    import torch
    from transformers import pipeline

    return pipeline(task, model=location, device=device, dtype=torch.float32, **kwargs)


@dataclass
class Bundle:
    """A model with the tokenizer and/or processor that prepares its inputs."""

    model: Any
    tokenizer: Any = None
    processor: Any = None


def auto_model(auto: str, location: str, device: str) -> Any:
    """``transformers.<auto>.from_pretrained`` in float32 on ``device``, in eval mode."""
    import torch
    import transformers

    cls = getattr(transformers, auto)
    return cls.from_pretrained(location, dtype=torch.float32).to(device).eval()


def to_device(batch: Any, model: Any) -> dict[str, Any]:
    """A processor's output on the model's device, floats in the model's dtype, without the
    keys the model's forward does not take (BERT-style tokenizers add token_type_ids that
    DistilBERT, BART and others refuse)."""
    import inspect

    import torch

    parameters = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    out = {}
    for key, value in dict(batch).items():
        if not takes_any and key not in parameters:
            continue
        if isinstance(value, torch.Tensor):
            value = value.to(model.device)
            if value.is_floating_point():
                value = value.to(model.dtype)
        out[key] = value
    return out
