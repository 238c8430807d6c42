"""Start ``python app.py`` as a user would, for the benchmark, and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class AppProcess:
    """``with AppProcess(["--engine", "llama.cpp"]) as app: app.url`` — the app on a free
    port; ``ready_s`` is the time from process start until its model answered /api/health."""

    def __init__(self, args: list[str], *, deadline_s: float = 300.0) -> None:
        self.args = args
        self.deadline_s = deadline_s
        self.url = ""
        self.ready_s = 0.0
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> AppProcess:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PLAYGROUND_LOG_LEVEL="WARNING")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), *self.args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while time.perf_counter() - started < self.deadline_s:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"app.py {' '.join(self.args)} exited with {self.process.returncode}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as response:
                    if response.status == 200:
                        self.ready_s = time.perf_counter() - started
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"app.py {' '.join(self.args)} was not ready in {self.deadline_s:.0f} s")

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the app (Linux VmHWM)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def __exit__(self, *exc) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
