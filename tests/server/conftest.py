"""A second real app for the local API's access controls.

``guarded_app`` runs ``python app.py --max-concurrent-requests 1`` with
``PLAYGROUND_API_KEY`` set: one process for both the backpressure and the API-key tests,
so the tier pays one extra start-up. It reuses the session app's start-up helpers from
``tests/conftest.py``; its output goes to ``test-artifacts/app-server-guarded.log``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AppServer, start_app

GUARDED_API_KEY = "secret-test-key"


@pytest.fixture(scope="session")
def guarded_app(artifacts_dir: Path) -> Iterator[AppServer]:
    """The real app accepting one API request at a time, behind ``GUARDED_API_KEY``
    (set through the variable, as app.py recommends over the flag)."""
    with start_app(
        artifacts_dir / "app-server-guarded.log",
        ("--max-concurrent-requests", "1"),
        {"PLAYGROUND_API_KEY": GUARDED_API_KEY},
    ) as server:
        yield server
