"""The Inference Providers a Hub model id can be sent to, from huggingface_hub's own
registry (so a provider huggingface_hub learns is offered without a change here)."""

from __future__ import annotations

from huggingface_hub.inference._providers import PROVIDERS as _PROVIDER_REGISTRY

#: "auto" plus every provider InferenceClient knows.
PROVIDERS: list[str] = ["auto", *sorted(_PROVIDER_REGISTRY)]


def providers_for(task: str) -> list[str]:
    """Providers that serve ``task`` ("conversational", "text-generation"), "auto" first."""
    return ["auto", *sorted(p for p, tasks in _PROVIDER_REGISTRY.items() if task in tasks)]


def serves(provider: str, task: str) -> bool:
    """Whether ``provider`` serves ``task`` (a Hub task name) per huggingface_hub."""
    return task in _PROVIDER_REGISTRY.get(provider, {})
