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
