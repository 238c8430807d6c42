"""Fixtures shared by the server and browser tiers: the real app on a free port.

``app_server`` starts ``python app.py`` as a subprocess once per session, waits until it
answers HTTP and its model is loaded, and stops it afterwards. Its output goes to
``test-artifacts/app-server.log`` (kept for CI; the directory is gitignored). Unit tests
never request these fixtures, so they do not start anything.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"

# The very first start converts the bundled GGUF (~25 s on 2 cores), later ones read the
# cache (~3 s); importing gradio + torch adds ~10 s. Generous so a slow CI box passes.
STARTUP_DEADLINE_S = 180.0


@dataclass(frozen=True)
class AppServer:
    """A running app: where it listens and where its output goes."""

    url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self, start: int = 0) -> str:
        """The server's output from byte ``start`` on (see ``log_size``)."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode("utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def metrics(self, api_key: str | None = None) -> dict[str, float]:
        """The engine's counts from ``GET /api/metrics`` (Prometheus text), by sample name
        (``playground_requests_cancelled_total``…); ``playground_requests_finished_total``
        sums the finish reasons."""
        from prometheus_client.parser import text_string_to_metric_families

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        request = urllib.request.Request(f"{self.url}api/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                counts[sample.name] = counts.get(sample.name, 0.0) + sample.value
        return counts

    def wait_for_metric(
        self, name: str, above: float, *, api_key: str | None = None, deadline_s: float = 30.0
    ) -> dict[str, float]:
        """Poll ``metrics()`` until ``name`` exceeds ``above`` (bounded); the counts then."""
        deadline = time.monotonic() + deadline_s
        while (counts := self.metrics(api_key)).get(name, 0.0) <= above:
            assert time.monotonic() < deadline, f"{name} stayed at {above} for {deadline_s} s"
            time.sleep(0.05)
        return counts


def _free_port() -> int:
    """A port the OS says is free now (bind port 0), released for the app to take."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _wait_for_http(url: str, process: subprocess.Popen, log_path: Path, deadline: float) -> None:
    """Poll ``GET url`` until 200; fail at once (with the log's tail) if the app died."""
    last_error = "no attempt yet"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            pytest.fail(f"app.py exited with code {code} before serving:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = repr(exc)
        time.sleep(0.25)
    pytest.fail(
        f"app.py did not answer {url} within {STARTUP_DEADLINE_S:.0f} s "
        f"(last: {last_error}):\n{_tail(log_path)}"
    )


def _wait_for_model(url: str, process: subprocess.Popen, log_path: Path, deadline: float) -> None:
    """One 1-token generation: the backend holds calls until its model is loaded, so
    this returns once the app can really generate (and fails with the reason if not)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    job = client.submit("Hello", max_new_tokens=1, do_sample=False, api_name="/text_generation")
    try:
        job.result(timeout=max(1.0, deadline - time.monotonic()))
    except Exception as exc:
        code = process.poll()
        state = f"exited with code {code}" if code is not None else "still running"
        pytest.fail(
            f"app.py ({state}) could not generate within {STARTUP_DEADLINE_S:.0f} s: "
            f"{exc!r}\n{_tail(log_path)}"
        )
    finally:
        client.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (screenshots, server logs)."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


# Settings a developer's shell may export that would change what the tests expect (the
# bundled model's 8192 tokens of context, no API key, the default request limit).
_SHELL_SETTINGS = (
    "PLAYGROUND_MODEL",
    "PLAYGROUND_HOST",
    "PLAYGROUND_PORT",
    "PLAYGROUND_DEVICE",
    "PLAYGROUND_API_KEY",
    "PLAYGROUND_MAX_CONCURRENT_REQUESTS",
    "PLAYGROUND_MAX_BATCH_SIZE",
    "PLAYGROUND_MAX_BATCH_TOKENS",
    "PLAYGROUND_TASK_MODELS",
    "PLAYGROUND_ENGINE",
    "PLAYGROUND_DEFAULT_ENDPOINT",
    "PLAYGROUND_DEFAULT_MODEL",
    "PLAYGROUND_DEFAULT_TOKEN",
    "PLAYGROUND_NO_LOCAL_MODEL",
    "PLAYGROUND_PUBLIC",
    "PLAYGROUND_MAX_PER_SESSION",
    "PLAYGROUND_MAX_PER_ADDRESS",
    "PLAYGROUND_API_RATE_LIMIT",
    "PLAYGROUND_TRUST_FORWARDED",
    "PLAYGROUND_OAUTH",
    "PLAYGROUND_REMOTE_TIMEOUT",
    "PLAYGROUND_REMOTE_LOAD_WAIT",
    "PLAYGROUND_FAULTS",
)
# The server and browser tiers test the default transformers engine (batching, every TGI
# parameter) unless a test asks for another: `auto` would pick llama.cpp where it is
# installed. tests/server/test_llamacpp_app.py starts the app on llama.cpp.
_TEST_ENGINE = {"PLAYGROUND_ENGINE": "transformers"}


@contextlib.contextmanager
def start_app(
    log_path: Path,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    *,
    port: int | None = None,
) -> Iterator[AppServer]:
    """Run ``python app.py`` on a free port (or ``port``: a restart on the same origin keeps
    the browser's localStorage) until the block ends, once its model is loaded."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/"
    # INFO level: the cancellation tests read the engine's log lines.
    full_env = dict(
        os.environ,
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
        PLAYGROUND_LOG_LEVEL="INFO",
    )
    for name in _SHELL_SETTINGS:
        full_env.pop(name, None)
    full_env.update(_TEST_ENGINE)
    full_env.update(env or {})
    command = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        _wait_for_http(url, process, log_path, deadline)
        # Through the Gradio API, which an API key does not guard.
        _wait_for_model(url, process, log_path, deadline)
        yield AppServer(url=url, log_path=log_path, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def app_server(artifacts_dir: Path) -> Iterator[AppServer]:
    """The real app (``python app.py``) on a free port, with its model loaded."""
    with start_app(artifacts_dir / "app-server.log") as server:
        yield server


@pytest.fixture(scope="session")
def app_url(app_server: AppServer) -> str:
    """Base URL of the running app, e.g. ``http://127.0.0.1:41234/``."""
    return app_server.url


GUARDED_API_KEY = "secret-test-key"


@pytest.fixture(scope="session")
def guarded_app(artifacts_dir: Path) -> Iterator[AppServer]:
    """A second real app: one API request at a time, behind ``GUARDED_API_KEY`` (set through
    the variable, as app.py recommends over the flag). Serves the backpressure and API-key
    tests, and is the remote endpoint of the remote-mode tests."""
    with start_app(
        artifacts_dir / "app-server-guarded.log",
        ("--max-concurrent-requests", "1"),
        {"PLAYGROUND_API_KEY": GUARDED_API_KEY},
    ) as server:
        yield server
