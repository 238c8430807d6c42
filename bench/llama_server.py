"""llama.cpp's own server, the benchmark's anchor: ``llama-server --parallel N`` decodes N
sequences in one batch on the same kernels as the llama.cpp engine.

``bench/build_llama_server.sh`` builds it from the llama.cpp vendored in the pinned
llama-cpp-python sdist with the same portable flags (cached under ``.cache/``);
``find_llama_server()`` finds that build (or ``$LLAMA_SERVER``), None when there is none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_llama_server() -> Path | None:
    """``$LLAMA_SERVER``, else the newest build of ``bench/build_llama_server.sh``."""
    if os.environ.get("LLAMA_SERVER"):
        path = Path(os.environ["LLAMA_SERVER"])
        return path if path.is_file() else None
    builds = sorted(
        ROOT.glob(".cache/llama-server-*/bin/llama-server"), key=lambda p: p.stat().st_mtime
    )
    return builds[-1] if builds else None


class LlamaServer:
    """``with LlamaServer(binary, parallel=16, threads=2) as server: server.url`` — on the
    bundled GGUF (or ``model``), a free loopback port, a unified KV cache of ``n_ctx``
    cells and ``n_batch``-token batches, as the llama.cpp engine runs by default."""

    def __init__(
        self,
        binary: Path,
        *,
        parallel: int,
        threads: int,
        model: str | None = None,
        n_ctx: int = 16384,
        n_batch: int = 512,
        deadline_s: float = 120.0,
    ) -> None:
        from backends.local.model import bundled_gguf

        self.binary, self.parallel, self.threads = binary, parallel, threads
        self.model = model or str(bundled_gguf())
        self.n_ctx, self.n_batch, self.deadline_s = n_ctx, n_batch, deadline_s
        self.url = ""
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.gettempdir()) / "bench-llama-server.log"

    def command(self, port: int) -> list[str]:
        threads, batch = str(self.threads), str(self.n_batch)
        return [
            str(self.binary), "-m", self.model, "--host", "127.0.0.1", "--port", str(port),
            "--parallel", str(self.parallel), "--threads", threads, "--threads-batch", threads,
            "--ctx-size", str(self.n_ctx), "--batch-size", batch, "--ubatch-size", batch,
            "--kv-unified",
        ]  # fmt: skip

    def __enter__(self) -> LlamaServer:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(port), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        started = time.perf_counter()
        while time.perf_counter() - started < self.deadline_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"llama-server was not ready in {self.deadline_s:.0f} s ({self.log})")

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
