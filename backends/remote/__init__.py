"""Remote targets through ``huggingface_hub.InferenceClient``: ``RemoteBackend``
(backend.py), how remote failures become ``BackendError``s (errors.py), and the provider
list (providers.py)."""

from backends.remote.backend import RemoteBackend
from backends.remote.errors import to_backend_error
from backends.remote.providers import PROVIDERS, providers_for

__all__ = ["PROVIDERS", "RemoteBackend", "providers_for", "to_backend_error"]
