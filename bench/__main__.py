"""Measure the local generator as a user meets it, in one run, on one model, per engine:

- raw engine speed: plain ``model.generate`` (transformers) / plain llama.cpp (``Llama.generate``),
- the app started as a user starts it (``python app.py --engine …``): cold start to the first
  token, then single-stream time-to-first-token and tokens/s through the local API
  (``InferenceClient`` on ``/api``) and through the Gradio API (``gradio_client``),
- aggregate tokens/s and time to first token with 1, 4, 8 and 16 concurrent streams through
  the streaming HTTP route (TGI's ``/api/generate_stream``), greedy and with temperature 0.7
  + top_p 0.9,
- the anchor: llama.cpp's own ``llama-server --parallel <batch size>`` on the same GGUF,
  threads and KV cache, through the same client code (its ``/completion`` stream), measured
  level by level alternately with the llama.cpp engine's app so drift hits both alike
  (``bench/build_llama_server.sh`` builds it; skipped with a note when absent),
- the app's peak RSS.

Prints a table, writes ``bench/results.json`` and draws ``bench/throughput.png``
(throughput vs. concurrency per engine and llama-server).

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
from bench.llama_server import LlamaServer, find_llama_server  # noqa: E402

PROMPT = "Here is a long story about a dragon who learned to cook:"
CONCURRENCY = (1, 4, 8, 16)
# The two sampling modes of the concurrency runs: greedy, and temperature + top_p.
MODES = {"greedy": {}, "sampled": {"temperature": 0.7, "top_p": 0.9}}
BATCH_SIZE = 16  # the app's --max-batch-size default; llama-server gets --parallel 16


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

    # The engine's own thread count (``default_threads()``).
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


def profile_llamacpp(tokens: int) -> dict:
    """Where a token's time goes in the llama.cpp engine, in this process (no HTTP): at 1,
    8 and 16 concurrent streams per mode, the aggregate tokens/s, llama_decode's ms per
    step, and per token the sampler's ms and the rest of ``Sequence.step`` (detokenizing,
    stop rules, the event). What the app loses beyond that is the streaming (HTTP)."""
    from backends.local.engine.llamacpp import LlamaCppEngine
    from backends.local.model import load_tokenizer_only, resolve_model

    source = resolve_model(None)
    loaded = load_tokenizer_only(source)
    engine = LlamaCppEngine(loaded, source.location, max_batch_size=BATCH_SIZE)
    ids = loaded.tokenizer(PROMPT).input_ids
    out: dict = {}
    try:
        from backends.local.engine.sampling import SamplingParams

        for mode, sampling in MODES.items():
            params = SamplingParams(max_new_tokens=tokens, do_sample=bool(sampling), **sampling)
            list(engine.submit(ids, params))  # warm-up
            for n in (1, 8, 16):
                before = dict(engine.timings)
                start = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    counts = list(
                        pool.map(lambda _, p=params: len(list(engine.submit(ids, p))), range(n))
                    )
                wall = time.perf_counter() - start
                d = {k: engine.timings[k] - before[k] for k in before}
                out[f"{mode}/{n}"] = {
                    "streams": n,
                    "tok_s": sum(counts) / wall,
                    "decode_ms_per_step": 1000 * d["decode_s"] / max(1, d["steps"]),
                    "tokens_per_step": d["tokens"] / max(1, d["steps"]),
                    "sample_ms_per_token": 1000 * d["sample_s"] / max(1, d["tokens"]),
                    "detok_ms_per_token": 1000
                    * (d["step_s"] - d["sample_s"])
                    / max(1, d["tokens"]),
                    "decode_share": d["decode_s"] / wall,
                    "step_share": d["step_s"] / wall,
                }
    finally:
        engine.shutdown()
    return out


def thread_sweep(tokens: int) -> dict:
    """The llama.cpp engine's aggregate greedy tokens/s in this process at 1 and 8 streams
    with 1 thread and with every core: the measurement behind ``default_threads()``."""
    from backends.local.engine.llamacpp import LlamaCppEngine
    from backends.local.engine.sampling import SamplingParams
    from backends.local.model import load_tokenizer_only, resolve_model

    source = resolve_model(None)
    loaded = load_tokenizer_only(source)
    ids = loaded.tokenizer(PROMPT).input_ids
    params = SamplingParams(max_new_tokens=tokens)
    out: dict = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        engine = LlamaCppEngine(
            loaded, source.location, max_batch_size=BATCH_SIZE, n_threads=threads
        )
        try:
            list(engine.submit(ids, params))  # warm-up
            for n in (1, 8):
                start = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    run = lambda _, e=engine: len(list(e.submit(ids, params)))  # noqa: E731
                    counts = list(pool.map(run, range(n)))
                out[f"{threads}/{n}"] = {
                    "threads": threads,
                    "streams": n,
                    "tok_s": sum(counts) / (time.perf_counter() - start),
                }
        finally:
            engine.shutdown()
    return out


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


def sse_stream(url: str, body: dict, count):
    """POST ``body`` to a server-sent-events route and yield once per generated token
    (``count(event)``: how many tokens that JSON event carries). The same client for the
    app's TGI stream and llama-server's: only the route and the body differ."""
    import httpx

    with httpx.stream("POST", url, json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:"):
                for _ in range(count(json.loads(line[5:]))):
                    yield


def app_stream(url: str, tokens: int, mode: str):
    """One stream through the app's TGI route (``/api/generate_stream``)."""
    sampling = MODES[mode]
    parameters = {"max_new_tokens": tokens, "do_sample": bool(sampling), **sampling}
    body = {"inputs": PROMPT, "parameters": parameters}
    return sse_stream(f"{url}/api/generate_stream", body, lambda event: int("token" in event))


def server_stream(url: str, tokens: int, mode: str):
    """One stream through llama-server's ``/completion``: greedy is temperature 0; its
    other samplers (top_k 40, min_p 0.05 by default) off, so it does what the app does."""
    sampling = MODES[mode]
    body = {
        "prompt": PROMPT,
        "n_predict": tokens,
        "stream": True,
        "temperature": sampling.get("temperature", 0.0),
        "top_p": sampling.get("top_p", 1.0),
        "top_k": 0,
        "min_p": 0.0,
        "cache_prompt": False,
    }
    # Each event carries one token; the last one (stop: true) carries the timings only.
    return sse_stream(f"{url}/completion", body, lambda event: int(not event.get("stop")))


def concurrent(stream, streams: int) -> dict:
    """Aggregate tokens/s of ``streams`` simultaneous ``stream()``s (total tokens over the
    wall time from the first request to the last token), and their times to first token."""
    start = time.perf_counter()

    def one(_):
        ttft, rate, count = measure_stream(stream())
        return ttft, count, time.perf_counter() - start  # finished at

    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(one, range(streams)))
    wall = time.perf_counter() - start
    total = sum(r[1] for r in results)
    return {
        "streams": streams,
        "aggregate_tok_s": total / wall,
        "median_ttft_s": statistics.median(r[0] for r in results),
        "max_ttft_s": max(r[0] for r in results),
        "first_finish_s": min(r[2] for r in results),
        "tokens": total,
        "wall_s": wall,
    }


def bench_app(engine: str, tokens: int, runs: int, anchor: Path | None = None) -> dict:
    """The app with ``engine``: cold start, single stream through both APIs, and the
    concurrency levels in both modes; with ``anchor`` (llama-server's binary), llama-server
    runs beside it and each level is measured on both, one after the other."""
    from gradio_client import Client

    from backends.local.engine.llamacpp import default_threads

    args = ["--engine", engine, "--max-concurrent-requests", "64"]
    args += ["--max-batch-size", str(BATCH_SIZE)]
    with AppProcess(args) as app:
        cold_ttft, _, _ = measure_stream(api_stream(app.url, 2))
        cold = app.ready_s + cold_ttft  # process start → first token (loading included)
        for _ in api_stream(app.url, tokens):  # warm-up: first-call allocations, caches
            pass
        api = _median([measure_stream(api_stream(app.url, tokens)) for _ in range(runs)])
        client = Client(app.url, verbose=False)
        gradio = _median([measure_stream(gradio_stream(client, tokens)) for _ in range(runs)])
        peak = app.peak_rss_mb()
        server = None
        if anchor is not None:
            server = LlamaServer(anchor, parallel=BATCH_SIZE, threads=default_threads())
            server.__enter__()
            for _ in server_stream(server.url, tokens, "greedy"):  # warm-up
                pass
        try:
            scaling: dict[str, list] = {mode: [] for mode in MODES}
            anchored: dict[str, list] = {mode: [] for mode in MODES}
            for mode in MODES:
                for n in CONCURRENCY:
                    ours = concurrent(lambda m=mode: app_stream(app.url, tokens, m), n)
                    scaling[mode].append(ours)
                    if server is not None:
                        theirs = concurrent(lambda m=mode: server_stream(server.url, tokens, m), n)
                        anchored[mode].append(theirs)
        finally:
            if server is not None:
                server.__exit__()
        return {
            "engine": engine,
            "cold_start_to_first_token_s": cold,
            "local_api": api,
            "gradio_api": gradio,
            "concurrency": scaling["greedy"],
            "concurrency_sampled": scaling["sampled"],
            "llama_server": anchored if server is not None else None,
            "peak_rss_mb": max(peak, app.peak_rss_mb()),
        }


# -- report -------------------------------------------------------------------------------


def _level(rows: list[dict], streams: int) -> dict:
    return next(row for row in rows if row["streams"] == streams)


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
        sixteen = _level(lc["concurrency"], 16)
        out.append(
            (
                "llama.cpp: 16 streams, slowest first token ÷ first stream done",
                sixteen["max_ttft_s"] / sixteen["first_finish_s"],
                1.0,
                "max",
            )
        )
        server = lc.get("llama_server")
        if server:
            ours = {"greedy": lc["concurrency"], "sampled": lc["concurrency_sampled"]}

            def ratio(mode: str, n: int) -> float:
                return (
                    _level(ours[mode], n)["aggregate_tok_s"]
                    / _level(server[mode], n)["aggregate_tok_s"]
                )

            ttft_ours = _level(lc["concurrency"], 8)["max_ttft_s"]
            ttft_server = _level(server["greedy"], 8)["max_ttft_s"]
            out += [
                ("llama.cpp ÷ llama-server, 1 stream greedy", ratio("greedy", 1), 0.9, None),
                ("llama.cpp ÷ llama-server, 1 stream temp+top_p", ratio("sampled", 1), 0.85, None),
                ("llama.cpp ÷ llama-server, 8 streams greedy", ratio("greedy", 8), 0.9, None),
                (
                    "llama.cpp: slowest TTFT at 8 − (1.5 × llama-server's + 0.2 s)",
                    ttft_ours - (1.5 * ttft_server + 0.2),
                    0.0,
                    "max",
                ),
            ]
    return [
        (name, value, goal, value <= goal if kind == "max" else value >= goal)
        for name, value, goal, kind in out
    ]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=120)
    series = []
    for name, app in results["engines"].items():
        series.append((f"{name} engine", app["concurrency"], app.get("concurrency_sampled")))
        if app.get("llama_server"):
            server = app["llama_server"]
            series.append((f"llama-server -np {BATCH_SIZE}", server["greedy"], server["sampled"]))
    for label, greedy, sampled in series:
        xs = [row["streams"] for row in greedy]
        ax.plot(xs, [row["aggregate_tok_s"] for row in greedy], marker="o", label=label)
        color = ax.lines[-1].get_color()
        if sampled:
            ys = [row["aggregate_tok_s"] for row in sampled]
            ax.plot(xs, ys, marker="x", linestyle="--", color=color, label=f"{label}, temp+top_p")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(CONCURRENCY), [str(n) for n in CONCURRENCY])
    ax.set_xlabel("concurrent streams (streaming HTTP route)")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_title(
        f"{results['model']} · {results['new_tokens']} new tokens · {results['machine']}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(results: dict) -> None:
    print(f"{results['model']} · {results['new_tokens']} new tokens · {results['machine']}")
    print(f"{'path':44} {'TTFT (s)':>9} {'tok/s':>8}")
    for name, raw in results["raw"].items():
        print(f"{'raw ' + name:44} {raw['ttft_s']:9.3f} {raw['tok_s']:8.1f}")
    for name, app in results["engines"].items():
        for label, key in (("local API", "local_api"), ("Gradio API", "gradio_api")):
            row = app[key]
            print(f"{name + ' · ' + label:44} {row['ttft_s']:9.3f} {row['tok_s']:8.1f}")
        cold = app["cold_start_to_first_token_s"]
        print(f"{name + ' · cold start to first token':44} {cold:9.1f} s")
        print(f"{name + ' · app peak RSS':44} {app['peak_rss_mb']:9.0f} MB")
    print("\nconcurrent streams (aggregate tok/s; TTFT median / slowest, s)")
    for name, app in results["engines"].items():
        server = app.get("llama_server")
        for mode, key in (("greedy", "concurrency"), ("sampled", "concurrency_sampled")):
            for row in app[key]:
                line = (
                    f"  {name:12} {mode:8} {row['streams']:3} streams: "
                    f"{row['aggregate_tok_s']:6.1f} tok/s, TTFT {row['median_ttft_s']:.2f} / "
                    f"{row['max_ttft_s']:.2f}"
                )
                if server:
                    anchor = _level(server[mode], row["streams"])
                    line += (
                        f" | llama-server {anchor['aggregate_tok_s']:6.1f} tok/s, TTFT "
                        f"{anchor['median_ttft_s']:.2f} / {anchor['max_ttft_s']:.2f} | ratio "
                        f"{row['aggregate_tok_s'] / anchor['aggregate_tok_s']:.2f}"
                    )
                print(line)
    profile = results.get("llama.cpp_profile")
    if profile:
        print("\nllama.cpp engine in-process (no HTTP): where a token's time goes")
        for key, row in profile.items():
            print(
                f"  {key:12} {row['tok_s']:6.1f} tok/s; decode {row['decode_ms_per_step']:.1f} "
                f"ms/step for {row['tokens_per_step']:.1f} tokens ({100 * row['decode_share']:.0f} "
                f"% of wall); per token: sampler {row['sample_ms_per_token']:.2f} ms, "
                f"detokenize+stops {row['detok_ms_per_token']:.2f} ms"
            )
    sweep = results.get("llama.cpp_threads")
    if sweep:
        print("\nllama.cpp engine in-process, greedy, by thread count (aggregate tok/s)")
        for row in sweep.values():
            print(f"  {row['threads']} thread(s), {row['streams']:2} streams: {row['tok_s']:6.1f}")
    if results.get("anchor_note"):
        print(f"\nllama-server: {results['anchor_note']}")
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
    anchor = find_llama_server() if "llama.cpp" in engines else None
    if "llama.cpp" in engines and anchor is None:
        results["anchor_note"] = (
            "not built, skipped (bench/build_llama_server.sh builds it, a few minutes once)"
        )
    if "llama.cpp" in engines:
        results["llama.cpp_profile"] = profile_llamacpp(args.tokens)
        results["llama.cpp_threads"] = thread_sweep(args.tokens)
    for engine in engines:  # apps after the raw runs: nothing else holds the cores
        results["engines"][engine] = bench_app(
            engine, args.tokens, args.runs, anchor if engine == "llama.cpp" else None
        )
    results["targets"] = targets(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_name("throughput.png"))
    print_table(results)
    png = args.out.with_name("throughput.png")
    print(f"wrote {args.out.relative_to(ROOT)} and {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
