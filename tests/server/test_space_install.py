"""What a Hugging Face Space installs — `requirements.txt` only — serves the app.

Runs scripts/space-check.sh: a clean venv with `pip install -r requirements.txt` (no
bundled GGUF wheel, no dev or fast extras), the default model "downloaded" from a local
stand-in for the Hub (a tiny random-weight model), `GET /` 200, the status banner in the
page, `/api/health` 200, then stop. The first run installs the venv (minutes from the
local package mirror); it is kept in `.cache/space-venv/` and later runs only check it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.server


def test_requirements_txt_alone_serves_the_app_with_the_hub_default():
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "space-check.sh"), str(ROOT / ".cache" / "space-venv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")},
            "PYTHON": sys.executable,
        },
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-6000:]
    assert "space-check: OK" in result.stderr
    print(f"space-check took {elapsed:.0f} s")
