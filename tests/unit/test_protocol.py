"""Every backend speaks the protocol's exact vocabulary (InferenceClient's keyword names),
so a tab can switch between local and remote without knowing which answers."""

import inspect

import pytest

from backends import Backend
from backends.local import LocalBackend
from backends.remote import RemoteBackend


@pytest.mark.parametrize("method", ["text_generation", "chat_completion"])
@pytest.mark.parametrize("backend", [LocalBackend, RemoteBackend])
def test_backends_take_the_protocols_keywords(backend, method):
    expected = inspect.signature(getattr(Backend, method)).parameters
    actual = inspect.signature(getattr(backend, method)).parameters
    assert list(actual) == list(expected)


@pytest.mark.parametrize("method", ["text_generation", "chat_completion"])
def test_protocol_keywords_are_inference_clients(method):
    from huggingface_hub import InferenceClient

    ours = set(inspect.signature(getattr(Backend, method)).parameters) - {"self"}
    theirs = set(inspect.signature(getattr(InferenceClient, method)).parameters)
    assert ours <= theirs, ours - theirs
