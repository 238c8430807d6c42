"""Measure the local generator as a user meets it, in one run, on one model, per engine:

- raw engine speed: plain ``model.generate`` (transformers) / plain llama.cpp (``Llama.generate``),
- the app started as a user starts it (``python app.py --engine …``): cold start to the first
  token, then single-stream time-to-first-token and tokens/s through the local API
  (``InferenceClient`` on ``/api``) and through the Gradio API (``gradio_client``),
- aggregate tokens/s with 1, 4, 8 and 16 concurrent streams through the local API,
- the app's peak RSS.

Greedy decoding everywhere. Prints a table, writes ``bench/results.json`` and draws
``bench/throughput.png`` (throughput vs. concurrency per engine).

Usage: ``python -m bench [--tokens 128] [--runs 3] [--engines transformers llama.cpp]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.app_process import AppProcess  # noqa: E402

PROMPT = "Here is a long story about a dragon who learned to cook:"
CONCURRENCY = (1, 4, 8, 16)


def measure_stream(chunks) -> tuple[float, float, int]:
    """(time to first item, items/s after the first, item count) of an iterator that yields
    once per token."""
    start = time.perf_counter()
    first = last = None
    count = 0
    for _ in chunks:
        last = time.perf_counter()
        first = first or last
        count += 1
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return (first or start) - start, rate, count


def _median(results: list[tuple[float, float, int]]) -> dict:
    return {
        "ttft_s": statistics.median(r[0] for r in results),
        "tok_s": statistics.median(r[1] for r in results),
        "tokens": results[0][2],
    }


# -- raw engines (in this process) -------------------------------------------------------


def bench_raw_transformers(tokens: int, runs: int) -> dict:
    """Plain ``model.generate`` on the model the app loads (same cached conversion)."""
    import torch

    from backends.local.model import load_model, resolve_model

    loaded = load_model(resolve_model(None), device="cpu")
    ids = torch.tensor([loaded.tokenizer(PROMPT).input_ids])
    results = []
    with torch.inference_mode():
        for _ in range(runs):
            start = time.perf_counter()
            loaded.model.generate(ids, max_new_tokens=1, do_sample=False)
            ttft = time.perf_counter() - start
            start = time.perf_counter()
            out = loaded.model.generate(
                ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
            )
            new = out.shape[1] - ids.shape[1]
            results.append((ttft, new / (time.perf_counter() - start), new))
    del loaded
    return _median(results)


def bench_raw_llamacpp(tokens: int, runs: int) -> dict:
    """Plain llama.cpp greedy decoding on the same GGUF (llama-cpp-python's ``generate``)."""
    from llama_cpp import Llama

    from backends.local.engine.llamacpp import default_threads
    from backends.local.model import resolve_model

    # The engine's own thread count (physical cores - 1): llama.cpp's spinning threads
    # stall when the OS preempts one, so on 2 cores 1 thread is ~1.8× faster than 2.
    llm = Llama(
        model_path=str(resolve_model(None).location),
        n_ctx=2048,
        n_threads=default_threads(),
        verbose=False,
    )
    prompt = llm.tokenize(PROMPT.encode())

    def greedy():
        llm.reset()
        for count, _ in enumerate(llm.generate(prompt, top_k=1, temp=0.0, reset=True), 1):
            yield
            if count == tokens:
                return

    results = [measure_stream(greedy()) for _ in range(runs)]
    llm.close()
    return _median(results)


RAW = {"transformers": bench_raw_transformers, "llama.cpp": bench_raw_llamacpp}


# -- the app ------------------------------------------------------------------------------


def api_stream(url: str, tokens: int):
    from huggingface_hub import InferenceClient

    # A generator, so the client (whose session owns the stream) lives as long as it.
    with InferenceClient(base_url=f"{url}/api", headers={"authorization": None}) as client:
        yield from client.text_generation(
            PROMPT, max_new_tokens=tokens, stream=True, details=True, do_sample=False
        )


def gradio_stream(client, tokens: int):
    job = client.submit(
        PROMPT,
        max_new_tokens=tokens,
        do_sample=False,
        repetition_penalty=1.0,
        api_name="/text_generation",
    )
    return (update for update in job if update)  # the first update is the empty start state


def concurrent(url: str, tokens: int, streams: int) -> dict:
    """Aggregate tokens/s of ``streams`` simultaneous local-API streams (total tokens over
    the wall time from the first request to the last token)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(lambda _: measure_stream(api_stream(url, tokens)), range(streams)))
    wall = time.perf_counter() - start
    total = sum(r[2] for r in results)
    return {
        "streams": streams,
        "aggregate_tok_s": total / wall,
        "median_ttft_s": statistics.median(r[0] for r in results),
        "tokens": total,
        "wall_s": wall,
    }


def bench_app(engine: str, tokens: int, runs: int) -> dict:
    from gradio_client import Client

    with AppProcess(["--engine", engine, "--max-concurrent-requests", "64"]) as app:
        cold_ttft, _, _ = measure_stream(api_stream(app.url, 2))
        cold = app.ready_s + cold_ttft  # process start → first token (loading included)
        for _ in api_stream(app.url, tokens):  # warm-up: first-call allocations, caches
            pass
        api = _median([measure_stream(api_stream(app.url, tokens)) for _ in range(runs)])
        client = Client(app.url, verbose=False)
        gradio = _median([measure_stream(gradio_stream(client, tokens)) for _ in range(runs)])
        scaling = [concurrent(app.url, tokens, n) for n in CONCURRENCY]
        return {
            "engine": engine,
            "cold_start_to_first_token_s": cold,
            "local_api": api,
            "gradio_api": gradio,
            "concurrency": scaling,
            "peak_rss_mb": app.peak_rss_mb(),
        }


# -- report -------------------------------------------------------------------------------


def targets(results: dict) -> list[tuple[str, float, float, bool]]:
    """(target, measured, goal, met) for the issue's targets this run can check."""
    out = []
    tf = results["engines"].get("transformers")
    lc = results["engines"].get("llama.cpp")
    if tf:
        raw = results["raw"]["transformers"]["tok_s"]
        single = tf["local_api"]["tok_s"]
        c = {row["streams"]: row["aggregate_tok_s"] for row in tf["concurrency"]}
        out += [
            ("transformers: local API single ÷ raw generate", single / raw, 0.95, None),
            ("transformers: 8 streams ÷ 1 stream aggregate", c[8] / c[1], 4.0, None),
        ]
    for name, app in results["engines"].items():
        api, gradio = app["local_api"], app["gradio_api"]
        out += [
            (
                f"{name}: Gradio TTFT − local API TTFT (ms)",
                1000 * (gradio["ttft_s"] - api["ttft_s"]),
                150.0,
                "max",
            ),
            (f"{name}: Gradio tok/s ÷ local API tok/s", gradio["tok_s"] / api["tok_s"], 0.95, None),
            (
                f"{name}: cold start to first token (s)",
                app["cold_start_to_first_token_s"],
                30.0,
                "max",
            ),
        ]
    if lc:
        raw = results["raw"]["llama.cpp"]["tok_s"]
        out.append(
            (
                "llama.cpp: local API single ÷ raw llama.cpp",
                lc["local_api"]["tok_s"] / raw,
                0.8,
                None,
            )
        )
        if tf:
            ratio = lc["local_api"]["tok_s"] / tf["local_api"]["tok_s"]
            out.append(("llama.cpp ÷ transformers engine (single stream)", ratio, 5.0, None))
    return [
        (name, value, goal, value <= goal if kind == "max" else value >= goal)
        for name, value, goal, kind in out
    ]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, app in results["engines"].items():
        xs = [row["streams"] for row in app["concurrency"]]
        ys = [row["aggregate_tok_s"] for row in app["concurrency"]]
        ax.plot(xs, ys, marker="o", label=f"{name} engine")
        if name in results["raw"]:
            ax.axhline(
                results["raw"][name]["tok_s"],
                linestyle=":",
                linewidth=1,
                color=ax.lines[-1].get_color(),
                label=f"raw {name}, 1 stream",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(CONCURRENCY), [str(n) for n in CONCURRENCY])
    ax.set_xlabel("concurrent streams (local API)")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_title(
        f"{results['model']} · {results['new_tokens']} new tokens · {results['machine']}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(results: dict) -> None:
    print(f"{results['model']} · {results['new_tokens']} new tokens · {results['machine']}")
    print(f"{'path':40} {'TTFT (s)':>9} {'tok/s':>8}")
    for name, raw in results["raw"].items():
        print(f"{'raw ' + name:40} {raw['ttft_s']:9.3f} {raw['tok_s']:8.1f}")
    for name, app in results["engines"].items():
        for label, key in (("local API", "local_api"), ("Gradio API", "gradio_api")):
            row = app[key]
            print(f"{name + ' · ' + label:40} {row['ttft_s']:9.3f} {row['tok_s']:8.1f}")
        for row in app["concurrency"]:
            label = f"{name} · {row['streams']} streams (aggregate)"
            print(f"{label:40} {row['median_ttft_s']:9.3f} {row['aggregate_tok_s']:8.1f}")
        cold = app["cold_start_to_first_token_s"]
        print(f"{name + ' · cold start to first token':40} {cold:9.1f} s")
        print(f"{name + ' · app peak RSS':40} {app['peak_rss_mb']:9.0f} MB")
    print("\ntargets:")
    for name, value, goal, met in results["targets"]:
        print(f"  {'✓' if met else '✗'} {name}: {value:.2f} (goal {goal:g})")


def available_engines() -> list[str]:
    from backends.local.engine.select import llamacpp_available

    return ["transformers", *(["llama.cpp"] if llamacpp_available() else [])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=None, help="default: every installed one")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    engines = args.engines or available_engines()

    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "model": "SmolLM2-135M-Instruct (bundled Q4_1 GGUF)",
        "new_tokens": args.tokens,
        "raw": {},
        "engines": {},
    }
    for engine in engines:
        results["raw"][engine] = RAW[engine](args.tokens, args.runs)
    for engine in engines:  # apps after the raw runs: nothing else holds the cores
        results["engines"][engine] = bench_app(engine, args.tokens, args.runs)
    results["targets"] = targets(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_name("throughput.png"))
    print_table(results)
    png = args.out.with_name("throughput.png")
    print(f"wrote {args.out.relative_to(ROOT)} and {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
