"""The local generator: model loading, the engine, and ``LocalBackend``.

torch and transformers are imported lazily (inside functions), so importing this package
is cheap and the remote-only path never loads them.
"""

from backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
