"""Issue 14 item 5, the short version of ``make soak`` (``python -m bench.soak``): ten
simulated visitors on the real app for ~20 s after a short warm-up — chats and generations
through the local API and the Gradio API, random stops, reloads and abandoned streams. Every
request that was not stopped or abandoned completes, no 429, the engine's slots are freed
(running/waiting back to 0, the closed streams cancelled), the app's thread count returns to
its baseline and its RSS grows less than 10 % (``Report.violations``)."""

from __future__ import annotations

import pytest

from bench.soak import run_soak

pytestmark = pytest.mark.server

VISITORS = 10
DURATION_S = 20.0
WARMUP_S = 6.0
TOKENS = (8, 16)


def test_short_soak_leaves_the_app_as_it_found_it(app_server, artifacts_dir) -> None:
    report = run_soak(
        app_server.url,
        app_server.process.pid,
        visitors=VISITORS,
        duration=DURATION_S,
        warmup=WARMUP_S,
        seed=14,
        tokens=TOKENS,
    )
    (artifacts_dir / "soak-short.txt").write_text(report.table() + "\n")
    outcomes = report.outcomes()
    assert outcomes["completed"], report.table()
    assert outcomes["stopped"] + outcomes["abandoned"] > 0, report.table()
    assert {r.channel for r in report.measured()} == {"api", "gradio"}
    assert not report.violations(), report.table()
