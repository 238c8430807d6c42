"""Presets and examples: YAML data validated on load (unknown keys are an error)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

HERE = Path(__file__).parent
DEFAULT_PRESET = "balanced"


class PresetError(ValueError):
    """A preset file that does not validate; the message names the file and the key."""


class ResponseFormat(BaseModel):
    """A preset's structured output: a JSON schema (an object) or a regex (a string)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema", "regex"]
    value: dict | str


class GenerationPreset(BaseModel):
    """One named set of generation parameters (InferenceClient names, TGI bounds), and for
    the chat tab a system prompt, stop sequences, a response format and tools. A preset
    sets exactly the keys it names (``model_fields_set``): the rest keep their values.
    The bundled presets and a visitor's own (saved in the browser, exported as YAML) are
    validated by this one model."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=500)
    do_sample: bool = True
    temperature: float = Field(default=0.7, gt=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int | None = Field(default=None, gt=0)
    repetition_penalty: float = Field(default=1.0, gt=0)
    max_new_tokens: int = Field(default=256, ge=1, le=4096)
    seed: int | None = Field(default=None, ge=0)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    stop: list[str] | None = Field(default=None, max_length=4)
    response_format: ResponseFormat | None = None
    tools: list[dict] | None = Field(default=None, max_length=64)
    tool_choice: Literal["none", "auto", "required"] | None = None


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
    return validate_presets(_read(path), str(path))


def validate_presets(data: object, source: str) -> dict[str, GenerationPreset]:
    """``{name: preset}`` from parsed YAML (or a browser's store); ``PresetError`` naming
    ``source``, the preset and the key when anything does not validate."""
    try:
        presets = _Presets.model_validate(data).root
    except ValidationError as exc:
        raise PresetError(f"{source}: {exc}") from exc
    if not presets:
        raise PresetError(f"{source}: no presets defined")
    for name in presets:
        if not name.strip() or len(name) > 80:
            raise PresetError(f"{source}: a preset name must be 1 to 80 characters: {name!r}")
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
