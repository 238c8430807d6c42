"""llama.cpp's own server, the benchmark's anchor: ``llama-server --parallel N`` decodes N
sequences in one batch on the same kernels as the llama.cpp engine.

``bench/build_llama_server.sh`` builds it from the llama.cpp vendored in the pinned
llama-cpp-python sdist with the same portable flags (cached under ``.cache/``);
``find_llama_server()`` finds that build (or ``$LLAMA_SERVER``), None when there is none.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from bench.app_process import ROOT, ServerProcess


def find_llama_server() -> Path | None:
    """``$LLAMA_SERVER``, else the newest build of ``bench/build_llama_server.sh``."""
    if os.environ.get("LLAMA_SERVER"):
        path = Path(os.environ["LLAMA_SERVER"])
        return path if path.is_file() else None
    builds = sorted(
        ROOT.glob(".cache/llama-server-*/bin/llama-server"), key=lambda p: p.stat().st_mtime
    )
    return builds[-1] if builds else None


class LlamaServer(ServerProcess):
    """``with LlamaServer(binary, parallel=16, threads=2) as server: server.url`` — on the
    bundled GGUF (or ``model``), a free loopback port, a unified KV cache of ``n_ctx``
    cells shared by ``parallel`` slots and ``n_batch``-token batches. Its log:
    ``$TMPDIR/bench-llama-server.log``."""

    name = "llama-server"

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

        super().__init__(deadline_s=deadline_s)
        self.binary, self.parallel, self.threads = binary, parallel, threads
        self.model = model or str(bundled_gguf())
        self.n_ctx, self.n_batch = n_ctx, n_batch
        self.log = Path(tempfile.gettempdir()) / "bench-llama-server.log"

    def command(self, port: int) -> list[str]:
        threads, batch = str(self.threads), str(self.n_batch)
        return [
            str(self.binary), "-m", self.model, "--host", "127.0.0.1", "--port", str(port),
            "--parallel", str(self.parallel), "--threads", threads, "--threads-batch", threads,
            "--ctx-size", str(self.n_ctx), "--batch-size", batch, "--ubatch-size", batch,
            "--kv-unified",
        ]  # fmt: skip

    def popen(self, command: list[str]) -> subprocess.Popen:
        with self.log.open("wb") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
