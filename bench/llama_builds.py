"""Two llama.cpp builds against each other, in one run: raw greedy decoding on the bundled
GGUF, 128 new tokens after the same prompt, with 1 and 2 threads (issue 12: the portable
AVX2 build the project installs against a ``GGML_NATIVE=ON`` build for this very CPU).

    python -m bench.llama_builds --build portable= --build native=/tmp/llama-native

Each ``NAME=DIR`` puts ``DIR`` first on ``PYTHONPATH`` (empty: the environment's own
llama-cpp-python). Every measurement runs in a child process (a build made for another CPU
may die: that is reported, not fatal), builds alternate round by round so drift on the
shared cores hits both alike, and the median of the rounds is printed and written to
``bench/llama_builds.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The capital of France is a city that"

CHILD = r"""
import json, sys, time
from llama_cpp import Llama
from backends.local.model import bundled_gguf
tokens, threads = int(sys.argv[1]), int(sys.argv[2])
llm = Llama(str(bundled_gguf()), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
            verbose=False)
prompt = llm.tokenize(sys.argv[3].encode())
def run():
    llm.reset()
    start = time.perf_counter()
    for count, _ in enumerate(llm.generate(prompt, top_k=1, temp=0.0, reset=True), 1):
        if count == tokens:
            break
    return count / (time.perf_counter() - start)
run()  # warm-up
print(json.dumps({"tok_s": run()}))
"""


def measure(path: str, tokens: int, threads: int) -> float | str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, str(ROOT)) if p)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tokens), str(threads), PROMPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    if child.returncode != 0:
        tail = (child.stderr.strip().splitlines() or [""])[-1]
        return f"died ({child.returncode}): {tail[:120]}"
    return json.loads(child.stdout.strip().splitlines()[-1])["tok_s"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llama_builds")
    parser.add_argument("--build", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "llama_builds.json")
    args = parser.parse_args(argv)
    builds = dict(item.split("=", 1) for item in args.build)
    samples: dict[str, dict[int, list]] = {n: {t: [] for t in args.threads} for n in builds}
    for _ in range(args.rounds):
        for threads in args.threads:
            for name, path in builds.items():
                samples[name][threads].append(measure(path, args.tokens, threads))
    results = {}
    for name, by_threads in samples.items():
        results[name] = {}
        for threads, values in by_threads.items():
            numbers = [v for v in values if isinstance(v, float)]
            results[name][threads] = {
                "median_tok_s": round(statistics.median(numbers), 1) if numbers else None,
                "min": round(min(numbers), 1) if numbers else None,
                "max": round(max(numbers), 1) if numbers else None,
                "failures": [v for v in values if not isinstance(v, float)],
            }
    args.out.write_text(json.dumps({"tokens": args.tokens, "results": results}, indent=2) + "\n")
    first = next(iter(builds))
    print(f"{'build':<12}" + "".join(f"{f'{t} thread(s) tok/s':>22}" for t in args.threads))
    for name in builds:
        cells = []
        for threads in args.threads:
            r = results[name][threads]
            base = results[first][threads]["median_tok_s"]
            ratio = f" ({r['median_tok_s'] / base:.2f}x)" if r["median_tok_s"] and base else ""
            cells.append(f"{r['median_tok_s']}{ratio}" if r["median_tok_s"] else "died")
        print(f"{name:<12}" + "".join(f"{c:>22}" for c in cells))
    print(f"wrote {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
