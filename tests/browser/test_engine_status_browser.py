"""Issue 12 in the page: a llama.cpp that crashes on this CPU is never chosen (the banner says
so and names what to do), and an engine that dies later turns the banner red with the reason.

The first app is the real one (``python app.py``, ``--engine auto``) with a stand-in
``llama_cpp`` package first on its PYTHONPATH that dies by SIGSEGV on its first decode, as a
library built for another CPU does: the canary's child crashes, the app falls back to the
transformers engine and still generates. The second is ``build_ui`` served in this process
over a real ``LocalBackend`` whose engine worker is then killed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO_ROOT, start_app

pytestmark = pytest.mark.browser

CRASHING_LIBRARY = REPO_ROOT / "tests" / "fixtures" / "crashing_llama_cpp"
GENERATION_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def fallback_app(artifacts_dir: Path):
    path = os.pathsep.join([str(CRASHING_LIBRARY), str(REPO_ROOT)])
    # The canary's verdict on the stand-in is cached under its own key (it has no library
    # files), never mixed with the real build's.
    with start_app(
        artifacts_dir / "app-server-fallback.log",
        env={"PYTHONPATH": path, "PLAYGROUND_ENGINE": "auto"},
    ) as server:
        yield server


def _page(chromium_browser, url: str, artifacts_dir: Path, name: str):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(url)
    return context, page, artifacts_dir / f"{name}.png"


def test_a_crashing_llamacpp_falls_back_to_transformers_and_the_page_says_why(
    chromium_browser, fallback_app, artifacts_dir: Path
) -> None:
    context, page, shot = _page(chromium_browser, fallback_app.url, artifacts_dir, "fallback")
    try:
        banner = page.locator("#backend-status")
        expect(banner).to_contain_text("🟢")
        expect(banner).to_contain_text("transformers engine")
        expect(banner).to_contain_text(
            "⚠️ llama.cpp crashed on this CPU (SIGSEGV, segmentation fault) — using the "
            "transformers engine; rebuild it portably with"
        )
        # The terminal says it too, and the app kept serving: it generated (start_app waited
        # for a real generation) and did not die.
        log = fallback_app.log_text()
        assert "llama.cpp crashed on this CPU (SIGSEGV, segmentation fault)" in log
        assert fallback_app.process.poll() is None
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="module")
def dying_app():
    """build_ui over a real LocalBackend (transformers engine on the bundled model), served
    from this process so the test can kill its engine's worker."""
    from backends.local.backend import LocalBackend
    from backends.local.model import bundled_gguf
    from components import CSS, build_ui

    backend = LocalBackend(str(bundled_gguf()), engine="transformers").load()
    assert backend.status().state == "ready", backend.status().message
    demo = build_ui(backend)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", css=CSS, quiet=True)
    try:
        yield backend, url
    finally:
        demo.close()
        backend.shutdown()


def test_an_engine_that_dies_turns_the_banner_red_without_a_reload(
    chromium_browser, dying_app, artifacts_dir: Path
) -> None:
    backend, url = dying_app
    context, page, shot = _page(chromium_browser, url, artifacts_dir, "engine-died")
    try:
        banner = page.locator("#backend-status")
        expect(banner).to_contain_text("🟢")
        expect(banner).not_to_have_class(re.compile("status-failed"))
        backend._engine.queue.die(RuntimeError("CUDA error: an illegal memory access"))
        # The banner polls every few seconds: no reload needed.
        expect(banner).to_contain_text(
            "🔴 local model — The local engine stopped: RuntimeError: CUDA error: an illegal "
            "memory access. Restart the app",
            timeout=30_000,
        )
        expect(banner).to_have_class(re.compile("status-failed"))
        # A message sent now gets the reason, not a spinner forever.
        box = page.get_by_placeholder("Type a message and press Enter")
        box.fill("Hello?")
        box.press("Enter")
        expect(page.get_by_text(re.compile("The local engine stopped")).first).to_be_visible(
            timeout=GENERATION_TIMEOUT_MS
        )
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
