"""Soak: simulated visitors chatting and generating on loopback for a while, then checks that
the app is left as it was found (issue 14 item 5).

Each visitor is a thread that loops until the time is up, on one of two channels (half of
them each): the local API (``/api/v1/chat/completions`` and ``/api/generate_stream``, SSE
over httpx) or the Gradio API (``gradio_client``: ``/chat`` and ``/text_generation``). Each
turn it picks, at random (seeded):

- ``chat`` / ``generate``: a streamed request of 8–32 new tokens (``--tokens``), read to
  its end;
- ``stop``: the same, closed after its first 1–3 events (the Stop button, a closed stream);
- ``abandon``: a 64-token stream (twice the most) whose reader stops reading after the
  first event and holds the socket open for 1–2 s before dropping it (a frozen tab), or,
  on Gradio, a page closed mid-reply (its queue's event stream dropped);
- ``reload`` (Gradio visitors): a new session (``Client``) before the next request;

then thinks 0.2–1.5 s. A warm-up phase with the same load comes first (pools and caches
grow to what this load needs), then the app is left idle until its engine is idle, and its
thread count and RSS are taken as the baseline; then the measured phase; then idle again.

Checks (``violations``): every request that was not stopped or abandoned completed (a 429
is counted apart and fails the check too: 30 visitors stay far below the default 128 in
flight); the engine's running/waiting gauges are back to 0 (stopped and abandoned requests
freed their slots), and its cancelled counter moved (the app noticed the closed sockets);
the thread count is back to the baseline (within ``THREAD_SLACK``: Gradio's and anyio's
pools grow with the load and shrink lazily), and, counted by kind through the app's
``playground_threads{kind}`` gauge, no thread of its own (a stream's puller, the engine,
the loader) is left beyond the baseline; RSS grew < 10 %.

Usage: ``python -m bench.soak --visitors 30 --duration 180`` (starts ``app.py`` on a free
port with the transformers engine) or ``--url http://127.0.0.1:7860/`` for a running app
(its process is found by its listening port). Prints a table, writes ``bench/soak.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

THREAD_SLACK = 3  # pool threads that may come or go between two idle counts
RSS_GROWTH_LIMIT = 0.10
SETTLE_S = 60.0
REQUEST_TIMEOUT_S = 300.0
PROMPTS = [
    "Say hello.",
    "Name three colours.",
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Give me a tip for learning Python.",
]
TEXT_PROMPTS = ["Once upon a time", "The best way to learn is", "In the year 3000,"]
METRIC = "playground_"


@dataclass
class Record:
    """One request: who, what, how it ended and how long it took."""

    visitor: int
    channel: str  # api | gradio
    action: str  # chat | generate | stop | abandon
    phase: str  # warmup | measured
    # completed | stopped | abandoned | reloaded | overloaded | failed
    outcome: str = "pending"
    latency_s: float = 0.0
    ttft_s: float | None = None
    events: int = 0
    error: str = ""


@dataclass
class Report:
    tokens: tuple[int, int]
    visitors: int
    duration_s: float
    warmup_s: float
    started_at: str
    machine: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    threads_baseline: int = 0
    threads_after: int = 0
    rss_baseline_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_peak_mb: float = 0.0
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    def measured(self) -> list[Record]:
        """The measured phase's requests (reloads are not requests: see ``reloads``)."""
        return [r for r in self.records if r.phase == "measured" and r.action != "reload"]

    def reloads(self) -> Counter:
        return Counter(
            r.outcome for r in self.records if r.phase == "measured" and r.action == "reload"
        )

    def outcomes(self) -> Counter:
        return Counter(r.outcome for r in self.measured())

    def latencies(self) -> dict[str, float]:
        done = sorted(r.latency_s for r in self.measured() if r.outcome == "completed")
        ttft = sorted(r.ttft_s for r in self.measured() if r.ttft_s is not None)
        if not done:
            return {}
        return {
            "p50_s": _quantile(done, 0.5),
            "p95_s": _quantile(done, 0.95),
            "max_s": done[-1],
            "ttft_p50_s": _quantile(ttft, 0.5) if ttft else float("nan"),
            "ttft_p95_s": _quantile(ttft, 0.95) if ttft else float("nan"),
        }

    def rss_growth(self) -> float:
        return self.rss_after_mb / self.rss_baseline_mb - 1 if self.rss_baseline_mb else 0.0

    def violations(self) -> list[str]:
        """The soak's invariants, broken ones as sentences (empty: all hold)."""
        problems = []
        outcomes = self.outcomes()
        failed = [
            r for r in self.records if r.phase == "measured" and r.outcome in ("failed", "pending")
        ]
        if failed:
            sample = "; ".join(f"{r.channel} {r.action}: {r.error}" for r in failed[:5])
            problems.append(f"{len(failed)} requests did not complete ({sample})")
        if outcomes["overloaded"]:
            problems.append(f"{outcomes['overloaded']} requests were refused with 429")
        if not outcomes["completed"]:
            problems.append("no request completed")
        for gauge in ("running", "waiting"):
            value = self.metrics_after.get(f"{METRIC}{gauge}", 0.0)
            if value:
                problems.append(f"{gauge} = {value:g} after the run (slots not freed)")
        if self.metrics_after.get(f"{METRIC}failed", 0.0):
            problems.append("the engine's worker died")
        closed = outcomes["stopped"] + outcomes["abandoned"]
        cancelled = self.metrics_after.get(f"{METRIC}requests_cancelled_total", 0.0)
        cancelled -= self.metrics_before.get(f"{METRIC}requests_cancelled_total", 0.0)
        if closed and not cancelled:
            problems.append(f"{closed} streams were closed early but the engine cancelled none")
        before, after = own_threads(self.metrics_before), own_threads(self.metrics_after)
        grown = {
            k: f"{before.get(k, 0):g} → {v:g}" for k, v in after.items() if v > before.get(k, 0)
        }
        if grown:
            problems.append(f"threads left behind, by kind: {grown}")
        if self.threads_after > self.threads_baseline + THREAD_SLACK:
            problems.append(
                f"threads {self.threads_baseline} → {self.threads_after} "
                f"(more than {THREAD_SLACK} left behind)"
            )
        if self.rss_growth() >= RSS_GROWTH_LIMIT:
            problems.append(
                f"RSS grew {self.rss_growth():.1%} ({self.rss_baseline_mb:.0f} → "
                f"{self.rss_after_mb:.0f} MB)"
            )
        return problems

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("records")
        data["outcomes"] = dict(self.outcomes())
        data["by_action"] = {
            f"{channel} {action}": dict(
                Counter(
                    r.outcome for r in self.measured() if (r.channel, r.action) == (channel, action)
                )
            )
            for channel, action in sorted({(r.channel, r.action) for r in self.measured()})
        }
        data["requests"] = len(self.measured())
        data["reloads"] = dict(self.reloads())
        data["warmup_requests"] = sum(
            r.phase == "warmup" and r.action != "reload" for r in self.records
        )
        data["latency"] = self.latencies()
        data["rss_growth"] = self.rss_growth()
        data["violations"] = self.violations()
        data["errors"] = dict(
            Counter(f"{r.channel} {r.action}: {r.error}" for r in self.measured() if r.error)
        )
        return data

    def table(self) -> str:
        outcomes = self.outcomes()
        lat = self.latencies()
        rows = [
            ("visitors", f"{self.visitors} (half local API, half Gradio API)"),
            ("new tokens", f"{self.tokens[0]}–{self.tokens[1]} per request"),
            ("duration", f"{self.duration_s:.0f} s measured after {self.warmup_s:.0f} s warm-up"),
            ("machine", self.machine),
            ("load average", f"{self.load_before[0]:.2f} before, {self.load_after[0]:.2f} after"),
            ("requests", f"{len(self.measured())}"),
            *((f"  {name}", str(outcomes[name])) for name in sorted(outcomes)),
            ("Gradio reloads", ", ".join(f"{v} {k}" for k, v in self.reloads().items()) or "0"),
            ("latency p50 / p95 / max", _fmt(lat, "p50_s", "p95_s", "max_s")),
            ("first event p50 / p95", _fmt(lat, "ttft_p50_s", "ttft_p95_s")),
            ("threads baseline → after", f"{self.threads_baseline} → {self.threads_after}"),
            (
                "  pools after",
                ", ".join(
                    f"{k.removeprefix('threads:')} {v:g}"
                    for k, v in sorted(self.metrics_after.items())
                    if k.startswith("threads:") and k.removeprefix("threads:").startswith(POOLS)
                )
                or "–",
            ),
            (
                "  own threads after",
                ", ".join(f"{k} {v:g}" for k, v in sorted(own_threads(self.metrics_after).items())),
            ),
            (
                "RSS baseline → after (peak)",
                f"{self.rss_baseline_mb:.0f} → {self.rss_after_mb:.0f} MB "
                f"({self.rss_growth():+.1%}; peak {self.rss_peak_mb:.0f} MB)",
            ),
            (
                "engine cancelled / failed",
                f"{_delta(self, 'requests_cancelled_total'):g} / "
                f"{_delta(self, 'requests_failed_total'):g}",
            ),
            ("verdict", "; ".join(self.violations()) or "all invariants hold"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _delta(report: Report, name: str) -> float:
    key = f"{METRIC}{name}"
    return report.metrics_after.get(key, 0.0) - report.metrics_before.get(key, 0.0)


def _fmt(values: dict, *keys: str) -> str:
    return " / ".join(f"{values[k]:.2f} s" if k in values else "–" for k in keys)


def _quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


# -- the app's process -----------------------------------------------------------------------


POOLS = ("AnyIO worker thread", "ThreadPoolExecutor")  # grow with load, shrink lazily


def metrics(url: str) -> dict[str, float]:
    """``/api/metrics`` by sample name (labels summed), plus ``threads:<kind>`` for
    ``playground_threads{kind}``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}api/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            counts[sample.name] = counts.get(sample.name, 0.0) + sample.value
            if sample.name == f"{METRIC}threads":
                counts[f"threads:{sample.labels['kind']}"] = sample.value
    return counts


def own_threads(counts: dict[str, float]) -> dict[str, float]:
    """The app's threads by kind, pools left out: these must not outlive the load."""
    return {
        name.removeprefix("threads:"): value
        for name, value in counts.items()
        if name.startswith("threads:") and not name.removeprefix("threads:").startswith(POOLS)
    }


def find_pid(url: str) -> int:
    """The process listening on ``url``'s port."""
    port = urlparse(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise SystemExit(f"no process of this user listens on port {port}; pass --pid")


def settle(url: str, process: psutil.Process, thread_limit: int | None = None) -> dict:
    """Wait (bounded) until the engine runs and waits for nothing and, given
    ``thread_limit``, the app has at most that many threads; the facts then."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        counts = metrics(url)
        facts = {
            "running": counts.get(f"{METRIC}running", 0.0),
            "waiting": counts.get(f"{METRIC}waiting", 0.0),
            "threads": process.num_threads(),
            "metrics": counts,
        }
        idle = facts["running"] == facts["waiting"] == 0
        pullers = own_threads(counts).get("stream-pull", 0)
        if idle and not pullers and (thread_limit is None or facts["threads"] <= thread_limit):
            return facts
        if time.monotonic() > deadline:
            return facts  # the report says what stayed
        time.sleep(0.2)


# -- visitors --------------------------------------------------------------------------------


class Visitor:
    """One simulated user on one channel, looping until ``stop_at``."""

    def __init__(
        self,
        index: int,
        url: str,
        channel: str,
        seed: int,
        sink: list[Record],
        tokens: tuple[int, int] = (8, 32),
    ):
        self.index = index
        self.tokens = tokens
        self.url = url
        self.channel = channel
        self.random = random.Random(seed * 1000 + index)
        self.sink = sink
        self.lock = threading.Lock()
        self.phase = "warmup"
        self.http = httpx.Client(timeout=REQUEST_TIMEOUT_S) if channel == "api" else None
        self.client = None

    # One turn -------------------------------------------------------------------------------

    def loop(self, stop_at: float, phase_at: float) -> None:
        try:
            while time.monotonic() < stop_at:
                self.phase = "warmup" if time.monotonic() < phase_at else "measured"
                actions = ["chat", "generate", "chat", "generate", "stop", "abandon"]
                if self.channel == "gradio":
                    actions.append("reload")
                action = self.random.choice(actions)
                if action == "reload":
                    record = Record(self.index, self.channel, "reload", self.phase)
                    started = time.perf_counter()
                    try:
                        self._new_session()
                        record.outcome = "reloaded"
                    except Exception as exc:  # the page did not load: a failure
                        record.outcome, record.error = "failed", f"{type(exc).__name__}: {exc}"
                    record.latency_s = time.perf_counter() - started
                    with self.lock:
                        self.sink.append(record)
                else:
                    self._request(action)
                time.sleep(self.random.uniform(0.2, 1.5))
        finally:
            if self.http is not None:
                self.http.close()
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close()

    def _request(self, action: str) -> None:
        record = Record(self.index, self.channel, action, self.phase)
        started = time.perf_counter()
        try:
            if self.channel == "api":
                self._api(action, record, started)
            else:
                self._gradio(action, record, started)
        except Exception as exc:  # anything unexpected is a failure, with its words
            record.outcome = "failed"
            record.error = f"{type(exc).__name__}: {exc}"[:300]
        record.latency_s = time.perf_counter() - started
        with self.lock:
            self.sink.append(record)

    def _tokens(self, action: str) -> int:
        """New tokens for a request: an abandoned one asks for twice the most, so it is
        still generating when its reader goes away."""
        low, high = self.tokens
        return 2 * high if action == "abandon" else self.random.randint(low, high)

    def _seen(self, record: Record, started: float) -> None:
        record.events += 1
        if record.ttft_s is None:
            record.ttft_s = time.perf_counter() - started

    # The local API ----------------------------------------------------------------------------

    def _api(self, action: str, record: Record, started: float) -> None:
        chat = action == "chat" or (action != "generate" and self.random.random() < 0.5)
        tokens = self._tokens(action)
        if chat:
            route = "api/v1/chat/completions"
            body = {
                "model": "local",
                "messages": [{"role": "user", "content": self.random.choice(PROMPTS)}],
                "max_tokens": tokens,
                "temperature": 0.7,
                "stream": True,
            }
        else:
            route = "api/generate_stream"
            body = {
                "inputs": self.random.choice(TEXT_PROMPTS),
                "parameters": {"max_new_tokens": tokens, "do_sample": True},
            }
        stop_after = self.random.randint(1, 3) if action == "stop" else None
        with self.http.stream("POST", f"{self.url}{route}", json=body) as response:
            if response.status_code == 429:
                record.outcome = "overloaded"
                return
            if response.status_code != 200:
                record.outcome = "failed"
                record.error = f"HTTP {response.status_code}: {response.read()[:200]!r}"
                return
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line.removeprefix("data:").strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    record.outcome = "failed"
                    record.error = str(event["error"])[:300]
                    return
                self._seen(record, started)
                if stop_after and record.events >= stop_after:
                    record.outcome = "stopped"
                    return  # leaving the block closes the stream
                if action == "abandon":
                    # Stop reading, keep the socket open a while, then drop it.
                    time.sleep(self.random.uniform(1.0, 2.0))
                    record.outcome = "abandoned"
                    return
                if not chat and event.get("generated_text") is not None:
                    break  # TGI's last event
            record.outcome = "completed" if record.events else "failed"
            record.error = "" if record.events else "no event"

    # The Gradio API -----------------------------------------------------------------------------

    def _new_session(self) -> None:
        from gradio_client import Client

        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        # A browser waits for a slow page; gradio_client's default is a 5 s read timeout.
        self.client = Client(self.url, verbose=False, httpx_kwargs={"timeout": REQUEST_TIMEOUT_S})

    def _closed_tab(self, chat: bool, record: Record, started: float) -> None:
        """A page closed mid-reply, as a browser does it: the job joins the queue of a fresh
        session, its event stream is read until the first partial output, then the
        connection drops. (``gradio_client`` cannot do this: its ``close()`` leaves the
        event stream open.) Gradio must notice and cancel the job, freeing the engine."""
        api_name = "/chat" if chat else "/text_generation"
        fn_index = self.client._infer_fn_index(api_name, None)
        info = self.client.view_api(print_info=False, return_format="dict")
        data = [p.get("parameter_default") for p in info["named_endpoints"][api_name]["parameters"]]
        data[0] = self.random.choice(PROMPTS if chat else TEXT_PROMPTS)
        data[3 if chat else 1] = self._tokens("abandon")  # max_tokens / max_new_tokens
        session = uuid.uuid4().hex[:11]
        root = self.client.src_prefixed
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            joined = http.post(
                f"{root}queue/join",
                json={"data": data, "fn_index": fn_index, "session_hash": session,
                      "event_data": None, "trigger_id": None},
            )  # fmt: skip
            joined.raise_for_status()
            with http.stream("GET", f"{root}queue/data", params={"session_hash": session}) as r:
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line.removeprefix("data:"))
                    if message.get("msg") == "process_generating":
                        self._seen(record, started)
                        record.outcome = "abandoned"
                        return  # the connection drops here
                    if message.get("msg") == "process_completed":
                        ok = message.get("success", True)
                        record.outcome = "completed" if ok else "failed"
                        record.error = "" if ok else str(message.get("output"))[:300]
                        return
        record.outcome, record.error = "failed", "the event stream ended without output"

    def _gradio(self, action: str, record: Record, started: float) -> None:
        from gradio_client.exceptions import AppError

        if self.client is None:
            self._new_session()
        chat = action == "chat" or (action != "generate" and self.random.random() < 0.5)
        if action == "abandon":
            self._closed_tab(chat, record, started)
            return
        tokens = self._tokens(action)
        if chat:
            job = self.client.submit(
                self.random.choice(PROMPTS), max_tokens=tokens, temperature=0.7, api_name="/chat"
            )
        else:
            job = self.client.submit(
                self.random.choice(TEXT_PROMPTS), max_new_tokens=tokens, api_name="/text_generation"
            )
        if action == "stop":
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            while not job.outputs() and not job.done():
                if time.monotonic() > deadline:
                    raise TimeoutError("no first output")
                time.sleep(0.02)
            if job.outputs():
                self._seen(record, started)
            if not job.done():
                job.cancel()
                record.outcome = "stopped"
                return
        try:
            job.result(timeout=REQUEST_TIMEOUT_S)
        except AppError as exc:
            busy = "busy" in str(exc).lower()
            record.outcome = "overloaded" if busy else "failed"
            record.error = str(exc)[:300]
            return
        if job.outputs():
            self._seen(record, started)
            record.events = len(job.outputs())
        record.outcome = "completed"


# -- the run ---------------------------------------------------------------------------------


def run_soak(
    url: str,
    pid: int,
    *,
    visitors: int,
    duration: float,
    warmup: float,
    seed: int = 0,
    tokens: tuple[int, int] = (8, 32),
) -> Report:
    """Warm up, settle, measure, settle; returns the report (see ``Report.violations``)."""
    url = url if url.endswith("/") else url + "/"
    process = psutil.Process(pid)
    report = Report(
        tokens=tokens,
        visitors=visitors,
        duration_s=duration,
        warmup_s=warmup,
        started_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB",
        load_before=os.getloadavg(),
    )
    sink: list[Record] = []
    peak = [0.0]

    def crowd(seconds: float, phase_at: float) -> None:
        stop_at = time.monotonic() + seconds
        people = [
            Visitor(i, url, "api" if i % 2 == 0 else "gradio", seed, sink, tokens)
            for i in range(visitors)
        ]
        threads = [
            threading.Thread(target=v.loop, args=(stop_at, phase_at), name=f"visitor-{v.index}")
            for v in people
        ]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            time.sleep(0.5)
        for thread in threads:
            thread.join()

    crowd(warmup, phase_at=float("inf"))  # every request of this phase is "warmup"
    idle = settle(url, process)
    report.threads_baseline = idle["threads"]
    report.rss_baseline_mb = process.memory_info().rss / 2**20
    report.metrics_before = idle["metrics"]
    crowd(duration, phase_at=time.monotonic())
    after = settle(url, process, thread_limit=report.threads_baseline + THREAD_SLACK)
    report.threads_after = after["threads"]
    report.rss_after_mb = process.memory_info().rss / 2**20
    report.rss_peak_mb = max(peak[0], report.rss_after_mb)
    report.metrics_after = after["metrics"]
    report.load_after = os.getloadavg()
    report.records = sink
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=30)
    parser.add_argument("--duration", type=float, default=180.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    parser.add_argument("--url", help="a running app (default: start app.py on a free port)")
    parser.add_argument("--pid", type=int, help="its process (default: found by its port)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tokens", type=int, nargs=2, default=(8, 32), metavar=("LOW", "HIGH"),
        help="new tokens per request, drawn between LOW and HIGH (default: 8 32)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "soak.json")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.url:
            url, pid = args.url, args.pid or find_pid(args.url)
        else:
            from bench.app_process import AppProcess

            app = stack.enter_context(AppProcess(["--engine", "transformers"]))
            url, pid = app.url, app.process.pid
        print(f"soak: {args.visitors} visitors on {url}: {args.warmup:.0f} s warm-up, "
              f"{args.duration:.0f} s measured", flush=True)  # fmt: skip
        report = run_soak(
            url,
            pid,
            visitors=args.visitors,
            duration=args.duration,
            warmup=args.warmup,
            seed=args.seed,
            tokens=tuple(args.tokens),
        )
    print(report.table())
    args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if report.violations() else 0


if __name__ == "__main__":
    sys.exit(main())
