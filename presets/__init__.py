"""Presets and examples: YAML data validated on load (unknown keys are an error)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

HERE = Path(__file__).parent
DEFAULT_PRESET = "balanced"


class PresetError(ValueError):
    """A preset file that does not validate; the message names the file and the key."""


class GenerationPreset(BaseModel):
    """One named set of generation parameters (InferenceClient names, TGI bounds)."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    do_sample: bool = True
    temperature: float = Field(default=0.7, gt=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int | None = Field(default=None, gt=0)
    repetition_penalty: float = Field(default=1.0, gt=0)
    max_new_tokens: int = Field(default=256, ge=1)


class Examples(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    chat: list[str] = []
    text_generation: list[str] = Field(default=[], alias="text-generation")


_Presets = RootModel[dict[str, GenerationPreset]]


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PresetError(f"{path}: {exc}") from exc


def load_presets(path: Path = HERE / "generation.yaml") -> dict[str, GenerationPreset]:
    """Named generation presets from ``path``; raises ``PresetError`` on any invalid key."""
    try:
        presets = _Presets.model_validate(_read(path)).root
    except ValidationError as exc:
        raise PresetError(f"{path}: {exc}") from exc
    if not presets:
        raise PresetError(f"{path}: no presets defined")
    return presets


def load_examples(path: Path = HERE / "examples.yaml") -> Examples:
    """Example inputs per tab from ``path``; raises ``PresetError`` on unknown keys."""
    try:
        return Examples.model_validate(_read(path))
    except ValidationError as exc:
        raise PresetError(f"{path}: {exc}") from exc


@cache
def presets() -> dict[str, GenerationPreset]:
    """The bundled presets (loaded once)."""
    return load_presets()


@cache
def examples() -> Examples:
    """The bundled examples (loaded once)."""
    return load_examples()


# -- task tabs (presets/tasks.yaml) ------------------------------------------------------

# Inputs whose example values are files next to tasks.yaml.
_MEDIA_INPUTS = ("image", "audio", "table")


class TaskPreset(BaseModel):
    """One task's recommended remote model and its examples (input name → value; media
    inputs are file paths, made absolute on load)."""

    model_config = ConfigDict(extra="forbid")

    default_model: str = Field(min_length=1)
    examples: list[dict[str, str]] = Field(min_length=1)


_TaskPresets = RootModel[dict[str, TaskPreset]]


def load_task_presets(path: Path = HERE / "tasks.yaml") -> dict[str, TaskPreset]:
    """Per task (``backends.tasks.TASKS`` names): the default remote model and examples.
    Raises ``PresetError`` on unknown keys, unknown tasks or inputs, and missing files."""
    from backends.tasks import TASKS  # a plain data module: no gradio, no torch

    try:
        table = _TaskPresets.model_validate(_read(path)).root
    except ValidationError as exc:
        raise PresetError(f"{path}: {exc}") from exc
    for name, preset in table.items():
        if name not in TASKS:
            raise PresetError(f"{path}: unknown task {name!r}; known: {', '.join(TASKS)}")
        inputs = {i.name: i.kind for i in TASKS[name].inputs}
        for example in preset.examples:
            for key, value in example.items():
                if key not in inputs:
                    raise PresetError(
                        f"{path}: {name}: unknown input {key!r}; the task takes {list(inputs)}"
                    )
                if inputs[key] in _MEDIA_INPUTS:
                    file = (path.parent / value).resolve()
                    if not file.is_file():
                        raise PresetError(f"{path}: {name}: no file {value!r}")
                    example[key] = str(file)
    return table


@cache
def task_presets() -> dict[str, TaskPreset]:
    """The bundled task presets (loaded once)."""
    return load_task_presets()


def default_task_model(name: str) -> str | None:
    """The Hub model Remote mode uses for task ``name`` when no endpoint is set."""
    preset = task_presets().get(name)
    return preset.default_model if preset else None
