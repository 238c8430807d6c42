"""Measure the local generator as a user meets it, in one run on one model:

- raw ``model.generate`` tokens/s (the ceiling for this engine),
- the engine through ``LocalBackend`` (in process),
- the app started as a user starts it (``python app.py``): cold start to first token and
  single-stream time-to-first-token / tokens/s through the Gradio API (gradio_client),
- the app's peak RSS.

Greedy decoding everywhere, so every path generates the same tokens. Prints a table and
writes bench/results.json. Usage: ``python -m bench [--tokens 128] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Here is a long story about a dragon who learned to cook:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_raw(backend, tokens: int, runs: int) -> dict:
    import torch

    loaded = backend._require()[0]
    ids = torch.tensor([loaded.tokenizer(PROMPT).input_ids])
    rates, ttfts = [], []
    with torch.inference_mode():
        for _ in range(runs):
            start = time.perf_counter()
            loaded.model.generate(ids, max_new_tokens=1, do_sample=False)
            ttfts.append(time.perf_counter() - start)
            start = time.perf_counter()
            out = loaded.model.generate(
                ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
            )
            rates.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - start))
    return {"tok_s": statistics.median(rates), "ttft_s": statistics.median(ttfts)}


def measure_stream(chunks) -> tuple[float, float, int]:
    """(ttft, decode tok/s, tokens) for an iterator that yields once per token."""
    start = time.perf_counter()
    first = last = None
    count = 0
    for _ in chunks:
        last = time.perf_counter()
        first = first or last
        count += 1
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return (first or start) - start, rate, count


def bench_engine(backend, tokens: int, runs: int) -> dict:
    results = [
        measure_stream(
            backend.text_generation(PROMPT, max_new_tokens=tokens, stream=True, details=True)
        )
        for _ in range(runs)
    ]
    return {
        "ttft_s": statistics.median(r[0] for r in results),
        "tok_s": statistics.median(r[1] for r in results),
        "tokens": results[0][2],
    }


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of ``pid`` (Linux VmHWM; current RSS elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def bench_app(tokens: int, runs: int) -> dict:
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PLAYGROUND_LOG_LEVEL="WARNING")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = None
        while client is None:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}")
            try:
                client = Client(f"http://127.0.0.1:{port}", verbose=False)
            except Exception:
                time.sleep(0.2)
        job = client.submit(PROMPT, max_new_tokens=4, do_sample=False, api_name="/text_generation")
        for update in job:
            if update:
                break
        cold = time.perf_counter() - started
        for _ in job:
            pass
        results = []
        for _ in range(runs):
            job = client.submit(
                PROMPT,
                max_new_tokens=tokens,
                do_sample=False,
                repetition_penalty=1.0,
                api_name="/text_generation",
            )
            # The first update is the empty "started" state; count token updates only.
            results.append(measure_stream(u for u in job if u))
        peak = peak_rss_mb(proc.pid)
        return {
            "cold_start_to_first_token_s": cold,
            "ttft_s": statistics.median(r[0] for r in results),
            "tok_s": statistics.median(r[1] for r in results),
            "peak_rss_mb": peak,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from backends.local import LocalBackend

    backend = LocalBackend().load()
    raw = bench_raw(backend, args.tokens, args.runs)
    engine = bench_engine(backend, args.tokens, args.runs)
    backend.shutdown()
    app = bench_app(args.tokens, args.runs)

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "model": backend.status().message.split(" on ")[0],
        "new_tokens": args.tokens,
        "raw_generate": raw,
        "engine": engine,
        "gradio_api": app,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("raw model.generate", raw["ttft_s"], raw["tok_s"]),
        ("engine (LocalBackend)", engine["ttft_s"], engine["tok_s"]),
        ("Gradio API (gradio_client)", app["ttft_s"], app["tok_s"]),
    ]
    print(f"{results['model']} · {args.tokens} new tokens · {results['machine']}")
    print(f"{'path':28} {'TTFT (s)':>9} {'tok/s':>7} {'× raw':>6}")
    for name, ttft, rate in rows:
        print(f"{name:28} {ttft:9.3f} {rate:7.1f} {rate / raw['tok_s']:6.2f}")
    print(
        f"cold start to first token: {app['cold_start_to_first_token_s']:.1f} s (cached conversion)"
    )
    print(f"app peak RSS: {app['peak_rss_mb']:.0f} MB")
    print(f"wrote {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
