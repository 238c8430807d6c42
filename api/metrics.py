"""``GET /api/metrics``: the local engine's counts in Prometheus' text format (as TGI serves
``/metrics``), for a dashboard, a load balancer — and the tests, which read engine facts
here instead of from log text.

Built with ``prometheus_client`` (a collector reading the engine on every scrape, in a
registry of this app's own, so two apps in one process never mix their counts).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "playground_"
COUNTERS = (  # metric name, RequestQueue.metrics() key, help
    ("requests_cancelled", "cancelled", "Requests their client cancelled while generating"),
    ("cancelled_tokens", "cancelled_tokens", "Tokens the cancelled requests had generated"),
    ("generated_tokens", "tokens", "Tokens generated"),
    ("batch_admissions", "admitted", "Requests admitted into the running batch"),
    ("requests_failed", "errors", "Requests that ended with an error (e.g. out of memory)"),
)


class EngineCollector(Collector):
    """Turns ``read()`` (``RequestQueue.metrics``'s dict) into metric families."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        counts = self.read()
        if not counts:  # the model is still loading
            return
        finished = CounterMetricFamily(
            f"{PREFIX}requests_finished", "Requests that ran to their end", labels=["finish"]
        )
        for reason, value in sorted(counts["finished"].items()):
            finished.add_metric([reason], value)
        yield finished
        for name, key, text in COUNTERS:
            yield CounterMetricFamily(f"{PREFIX}{name}", text, value=counts[key])
        for name, text in (
            ("running", "Requests being generated now"),
            ("waiting", "Requests waiting for the engine"),
            ("max_queue", "Requests in flight past which the API answers 429"),
            ("failed", "1 once the engine's worker has died"),
        ):
            yield GaugeMetricFamily(f"{PREFIX}{name}", text, value=counts[name])


def thread_kind(name: str) -> str:
    """A thread's name without its serial number or address: "Thread-12 (pull)" →
    "Thread", "asyncio-portal-7f3a…" → "asyncio-portal"; "stream-pull", "engine" stay."""
    return re.sub(r"[-_ ](\d+|[0-9a-f]{8,})$", "", name.split(" (")[0])


class ThreadCollector(Collector):
    """``playground_threads{kind}``: this process's Python threads by kind, so a leak (a
    stream's puller, a connection's reader left running) shows as a count that grows."""

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            f"{PREFIX}threads", "Python threads of this process, by kind", labels=["kind"]
        )
        for kind, count in sorted(
            Counter(thread_kind(t.name) for t in threading.enumerate()).items()
        ):
            family.add_metric([kind], count)
        yield family


def metrics_routes(read: Callable[[], dict[str, Any]]) -> APIRouter:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(read))
    registry.register(ThreadCollector())
    router = APIRouter()

    async def metrics() -> Response:
        """The local engine's counts, Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    router.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    return router
