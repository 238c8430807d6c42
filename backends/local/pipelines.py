"""``LocalTasks``: every task in ``backends.tasks`` on local transformers models.

(Stub: being implemented.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.errors import UnavailableError
from backends.local.model import Device


class LocalTasks:
    def __init__(self, *, device: Device = "auto", cache_dir: Path | None = None) -> None:
        self.device = device
        self.cache_dir = cache_dir

    def run(
        self,
        name: str,
        inputs: dict[str, Any],
        parameters: dict[str, Any],
        *,
        model: str | None = None,
    ) -> Any:
        raise UnavailableError(f"No local runner for {name} yet.")
