"""Start a server as a user would, for the benchmark, and stop it afterwards:
``ServerProcess`` (a free loopback port, ready when its health route answers 200) and
``AppProcess`` (``python app.py``)."""

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


class ServerProcess:
    """``with Subclass(...) as server: server.url`` — ``command(port)`` started on a free
    loopback port; ``ready_s`` is the time from process start until ``health`` answered 200
    (loading included). Subclasses set ``name``, ``health`` and ``command``."""

    name = "server"
    health = "/health"

    def __init__(self, *, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.url = ""
        self.ready_s = 0.0
        self.process: subprocess.Popen | None = None

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def popen(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def __enter__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        self.process = self.popen(self.command(port))
        while time.perf_counter() - started < self.deadline_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}{self.health}", timeout=2) as response:
                    if response.status == 200:
                        self.ready_s = time.perf_counter() - started
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"{self.name} was not ready in {self.deadline_s:.0f} s")

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the process (Linux VmHWM)."""
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
        self.process = None


class AppProcess(ServerProcess):
    """``with AppProcess(["--engine", "llama.cpp"]) as app: app.url`` — the app on a free
    port; ``ready_s`` is the time from process start until its model answered /api/health."""

    health = "/api/health"

    def __init__(self, args: list[str], *, deadline_s: float = 300.0) -> None:
        super().__init__(deadline_s=deadline_s)
        self.args = args
        self.name = f"app.py {' '.join(args)}"

    def command(self, port: int) -> list[str]:
        return [sys.executable, "app.py", "--port", str(port), *self.args]

    def popen(self, command: list[str]) -> subprocess.Popen:
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PLAYGROUND_LOG_LEVEL="WARNING")
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
