"""Per-visitor fairness (backends/fairness.py, api/limits.py, app.build_fairness): bounds
per session and per address, the API's rate limit with TGI's 429 body, and where a
visitor's address comes from."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

import app as app_module
from api.errors import add_error_handlers
from api.limits import FairnessMiddleware
from backends.errors import InputValidationError, OverloadedError
from backends.fairness import (
    PUBLIC_API_RATE,
    PUBLIC_PER_ADDRESS,
    PUBLIC_PER_SESSION,
    ConcurrencyLimits,
    Fairness,
    RateLimit,
    Visitor,
    client_address,
)


def test_a_session_past_its_bound_is_refused_with_what_to_do() -> None:
    limits = ConcurrencyLimits(per_session=2)
    a, b = Visitor("session-a", None), Visitor("session-b", None)
    limits.acquire(a)
    limits.acquire(a)
    with pytest.raises(OverloadedError) as refused:
        limits.acquire(a)
    assert "2 generations running in this browser session" in refused.value.user_message()
    assert "Stop" in refused.value.user_message()
    assert refused.value.status_code == 429 and refused.value.error_type == "overloaded"
    limits.acquire(b)  # another session is not affected
    limits.release(a)
    limits.acquire(a)  # a freed slot is usable again


def test_an_address_past_its_bound_is_refused_across_sessions() -> None:
    limits = ConcurrencyLimits(per_session=5, per_address=2)
    limits.acquire(Visitor("s1", "203.0.113.9"))
    limits.acquire(Visitor("s2", "203.0.113.9"))
    with pytest.raises(OverloadedError, match="at most 2 at once per address"):
        limits.acquire(Visitor("s3", "203.0.113.9"))
    limits.acquire(Visitor("s3", "198.51.100.4"))
    assert limits.running(Visitor("s1", "203.0.113.9")) == (1, 2)


def test_a_refused_acquire_takes_nothing() -> None:
    limits = ConcurrencyLimits(per_session=1, per_address=1)
    limits.acquire(Visitor("s1", "addr"))
    with pytest.raises(OverloadedError):
        limits.acquire(Visitor("s2", "addr"))  # the address is full: s2 gets no slot
    assert limits.running(Visitor("s2", None)) == (0, 0)


def test_a_held_stream_frees_its_slot_when_closed_early_or_failing() -> None:
    limits = ConcurrencyLimits(per_session=1)
    visitor = Visitor("s", None)

    def tokens():
        yield from ["a", "b", "c"]

    stream = limits.held(tokens(), visitor)
    assert next(stream) == "a"
    assert limits.running(visitor) == (1, 0)
    stream.close()  # Stop, or a closed tab
    assert limits.running(visitor) == (0, 0)

    def failing():
        yield "a"
        raise RuntimeError("upstream dropped")

    stream = limits.held(failing(), visitor)
    with pytest.raises(RuntimeError):
        list(stream)
    assert limits.running(visitor) == (0, 0)


def test_bounds_below_one_are_refused() -> None:
    with pytest.raises(InputValidationError):
        ConcurrencyLimits(per_session=0)


def test_the_rate_limit_refuses_past_the_rate_per_key_and_says_when_to_retry() -> None:
    rate = RateLimit("3/minute")
    for _ in range(3):
        rate.hit("address:a")
    with pytest.raises(OverloadedError) as refused:
        rate.hit("address:a")
    assert "at most 3 requests per minute" in refused.value.user_message()
    assert 1 <= refused.value.retry_after <= 60
    rate.hit("address:b")  # another key has its own window


def test_a_malformed_rate_is_refused() -> None:
    with pytest.raises(InputValidationError) as refused:
        RateLimit("lots")
    assert 'Write it like "60/minute"' in refused.value.user_message()


def test_forwarded_addresses_are_trusted_only_when_told() -> None:
    headers = {"x-forwarded-for": "198.51.100.7, 10.0.0.2"}
    assert client_address("10.0.0.2", headers, trust_forwarded=False) == "10.0.0.2"
    assert client_address("10.0.0.2", headers, trust_forwarded=True) == "198.51.100.7"
    assert client_address("10.0.0.2", {}, trust_forwarded=True) == "10.0.0.2"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, (None, None, None, False)),
        (["--public"], {}, (PUBLIC_PER_SESSION, PUBLIC_PER_ADDRESS, PUBLIC_API_RATE, False)),
        (["--public"], {"SPACE_ID": "u/s"}, (2, 4, PUBLIC_API_RATE, True)),
        (
            ["--public", "--max-per-session", "0", "--api-rate-limit", "off"],
            {},
            (None, PUBLIC_PER_ADDRESS, None, False),
        ),
        (
            ["--max-per-session", "3", "--max-per-address", "5", "--api-rate-limit", "9/second"],
            {},
            (3, 5, "9/second", False),
        ),
    ],
)
def test_build_fairness_defaults_to_bounds_in_public_mode_only(argv, env, expected) -> None:
    args = app_module.parse_args(argv)
    public = app_module.is_public(args, env)
    fairness = app_module.build_fairness(args, public, env)
    got = (
        fairness.limits.per_session,
        fairness.limits.per_address,
        fairness.api_rate.spec if fairness.api_rate else None,
        fairness.trust_forwarded,
    )
    assert got == expected


def test_bad_bounds_and_rates_are_usage_errors(capsys) -> None:
    with pytest.raises(SystemExit):
        app_module.parse_args(["--max-per-session", "-1"])
    assert "expected 0 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        app_module.parse_args(["--api-rate-limit", "lots"])
    assert "Not a rate: 'lots'" in capsys.readouterr().err


def test_oauth_is_on_for_a_space_with_hf_oauth_or_when_asked() -> None:
    args = app_module.parse_args([])
    assert not app_module.oauth_enabled(args, {})
    assert app_module.oauth_enabled(args, {"OAUTH_CLIENT_ID": "abc"})
    assert not app_module.oauth_enabled(
        app_module.parse_args(["--no-oauth"]), {"OAUTH_CLIENT_ID": "x"}
    )
    assert app_module.oauth_enabled(app_module.parse_args(["--oauth"]), {})


# -- the API middleware, in-process --------------------------------------------------------


def _api(fairness: Fairness, *, api_key: str | None = None) -> tuple[FastAPI, threading.Event]:
    app = FastAPI()
    add_error_handlers(app)
    release = threading.Event()

    @app.post("/api/generate")
    def generate() -> dict:
        return {"generated_text": "ok"}

    @app.post("/api/generate_stream")
    async def stream() -> StreamingResponse:
        async def events():
            yield b"data: first\n\n"
            while not release.is_set():
                await asyncio.sleep(0.01)
            yield b"data: last\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/api/info")
    def info() -> dict:
        return {"model_id": "m"}

    app.add_middleware(FairnessMiddleware, fairness=fairness, prefix="/api", api_key=api_key)
    return app, release


def test_the_api_answers_tgi_429_with_retry_after_past_the_rate() -> None:
    app, _ = _api(Fairness(ConcurrencyLimits(), api_rate=RateLimit("2/minute")))
    with TestClient(app) as client:
        assert client.post("/api/generate").status_code == 200
        assert client.post("/api/generate").status_code == 200
        refused = client.post("/api/generate")
        assert refused.status_code == 429
        assert refused.json()["error_type"] == "overloaded"
        assert "Rate limit reached" in refused.json()["error"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert client.get("/api/info").status_code == 200  # reads are not limited


def test_the_rate_is_per_key_when_the_server_has_one_and_per_address_otherwise() -> None:
    app, _ = _api(Fairness(ConcurrencyLimits(), api_rate=RateLimit("1/minute")), api_key="k1")
    with TestClient(app) as client:

        def status(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return client.post("/api/generate", headers=headers).status_code

        assert [status("k1"), status("k1")] == [200, 429]
        # A made-up key buys no fresh quota: it counts against the address.
        assert [status("nope"), status("other")] == [200, 429]


def test_a_stream_holds_its_address_slot_until_its_last_byte() -> None:
    limits = ConcurrencyLimits(per_address=1)
    app, release = _api(Fairness(limits))
    visitor = Visitor(None, "testclient")
    with TestClient(app) as client:
        with client.stream("POST", "/api/generate_stream") as streaming:
            lines = streaming.iter_lines()
            assert next(lines) == "data: first"
            assert limits.running(visitor) == (0, 1)
            refused = client.post("/api/generate")
            assert refused.status_code == 429
            assert "at most 1 at once per address" in refused.json()["error"]
            release.set()
            assert "data: last" in list(lines)
        assert limits.running(visitor) == (0, 0)
        assert client.post("/api/generate").status_code == 200
