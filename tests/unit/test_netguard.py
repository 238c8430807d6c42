"""Public mode's endpoint guard (backends/netguard.py).

No test sends traffic anywhere but loopback: the address rules are tested on the classifier
and on stubbed resolvers without connecting; end-to-end refusals target recording HTTP
servers on 127.0.0.1, which must receive nothing.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backends import netguard
from backends.errors import InputValidationError
from backends.netguard import Guard, RefusedEndpointError, classify, literal_address
from backends.remote import RemoteBackend

SECRET = "hf_visitor_SECRET_token_789"
MESSAGES = [{"role": "user", "content": "Hi"}]


def no_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not be resolved")


def stub(*addresses: str):
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    resolve.calls = calls
    return resolve


# -- the classifier --------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("0x7f.0.0.1", "loopback"),
    ("2130706433", "loopback"),
    ("017700000001", "loopback"),
    ("127.0.0.1.", "loopback"),
    ("0", "unspecified"),
    ("0.0.0.0", "unspecified"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "non-global"),  # shared address space (carrier-grade NAT)
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", ""),  # reserved (Python calls it private too)
    ("255.255.255.255", ""),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fd00::1", "private"),
    ("ff02::1", "multicast"),
    ("fec0::1", ""),  # site-local
    ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ""),  # Teredo
    ("2001:db8::1", ""),  # documentation
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::"]


@pytest.mark.parametrize(("host", "kind"), REFUSED)
def test_refused_literal_forms(host, kind):
    guard = Guard(resolver=no_resolver)
    with pytest.raises(RefusedEndpointError) as err:
        guard.resolve(host, 80)
    assert kind in err.value.message
    assert isinstance(err.value, InputValidationError)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_literals_are_allowed_without_resolving(address):
    assert classify(address) is None
    assert Guard(resolver=no_resolver).resolve(address, 443) == [str(ipaddress.ip_address(address))]


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
     ("017700000001", "127.0.0.1"), ("0", "0.0.0.0"), ("[::1]", "::1"),
     ("example.com", None), ("cafe.be", None), ("localhost.", None)],
)  # fmt: skip
def test_literal_forms_parse_as_a_resolver_reads_them(host, expected):
    address = literal_address(host)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize("host", ["localhost", "localhost.", "LOCALHOST", "api.localhost."])
def test_localhost_names_are_refused_without_resolving(host):
    with pytest.raises(RefusedEndpointError, match="loopback"):
        Guard(resolver=no_resolver).resolve(host, 80)


# -- the resolver hook -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "kind"),
    [
        (["10.0.0.1"], "private"),
        (["169.254.169.254"], "link-local"),
        (["fd00::1"], "private"),
        (["::ffff:10.0.0.1"], "private"),
        (["fe80::1%eth0"], "link-local"),
        (["8.8.8.8", "10.0.0.1"], "private"),  # any private address refuses the name
        (["2606:4700:4700::1111", "::1"], "loopback"),
    ],
)
def test_a_name_resolving_inside_the_network_is_refused(addresses, kind):
    resolver = stub(*addresses)
    with pytest.raises(RefusedEndpointError) as err:
        Guard(resolver=resolver).check_url("https://endpoint.example/v1")
    assert resolver.calls == ["endpoint.example"]
    message = err.value.user_message()
    assert f"endpoint.example resolves to a {kind} address" in message
    assert "public mode refuses" in message and netguard.ALLOWED_ENV in message
    for address in addresses:  # the visitor never learns the network's addresses
        assert address.partition("%")[0] not in message
        assert str(ipaddress.ip_address(address.partition("%")[0])) not in message


def test_a_name_resolving_to_public_addresses_passes():
    resolver = stub("8.8.8.8", "2606:4700:4700::1111")
    assert Guard(resolver=resolver).resolve("endpoint.example.", 443) == [
        "8.8.8.8",
        "2606:4700:4700::1111",
    ]
    assert resolver.calls == ["endpoint.example"]  # the trailing dot is dropped


def test_a_name_that_does_not_resolve_is_refused():
    def fail(host, port):
        raise socket.gaierror("Name or service not known")

    with pytest.raises(RefusedEndpointError, match="could not be resolved"):
        Guard(resolver=fail).check_url("http://nowhere.example")


# -- the allow-list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "url", "allowed"),
    [
        ("gpu.internal", "http://gpu.internal:8080/v1", True),
        ("GPU.internal.", "https://gpu.internal./", True),
        ("gpu.internal", "http://other.internal", False),
        ("127.0.0.1", "http://127.1:8080", True),  # the same address, another form
        ("http://10.0.0.5:8080/v1", "http://10.0.0.5:8080/v1/chat/completions", True),
        ("http://10.0.0.5:8080/v1", "http://10.0.0.5:8080/v10", False),
        ("http://10.0.0.5:8080/v1", "http://10.0.0.5:8080/admin", False),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8081/", False),
        ("http://10.0.0.5:8080", "https://10.0.0.5:8080/", False),
        ("https://10.0.0.5", "https://10.0.0.5:443/info", True),
    ],
)
def test_allow_list(entry, url, allowed):
    guard = Guard((entry,), resolver=stub("10.0.0.5"))
    assert guard.is_allowed(url) is allowed
    if allowed:
        guard.check_url(url)
    else:
        with pytest.raises(RefusedEndpointError):
            guard.check_url(url)


def test_allow_list_from_the_environment():
    guard = Guard.from_env({netguard.ALLOWED_ENV: " gpu.internal , http://10.0.0.5:8080/v1,"})
    assert guard.allowed == ("gpu.internal", "http://10.0.0.5:8080/v1")
    assert Guard.from_env({}).allowed == ()


# -- end to end, on loopback only ---------------------------------------------------------------


class Recorder(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records every request; ``redirect``: answer 302."""

    def __init__(self, redirect: str | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.redirect = redirect
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        if self.server.redirect:
            self.send_response(302)
            self.send_header("Location", self.server.redirect)
            self.send_header("Set-Cookie", "session=visitor-a; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.endswith("/chat/completions"):
            body = {
                "id": "1",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "system_fingerprint": "",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hello"},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        else:
            body = {"model_id": "recorded", "version": "test"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


def _serve(server: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from _serve(Recorder())


@pytest.fixture
def second() -> Iterator[Recorder]:
    yield from _serve(Recorder())


CALLS = {
    "info": lambda b: b.get_endpoint_info(),
    "health": lambda b: b.health_check(),
    "chat": lambda b: b.chat_completion(MESSAGES, max_tokens=4),
    "chat stream": lambda b: list(b.chat_completion(MESSAGES, max_tokens=4, stream=True)),
    "text generation": lambda b: b.text_generation("Hi", max_new_tokens=4),
    "text stream": lambda b: list(b.text_generation("Hi", max_new_tokens=4, stream=True)),
    "task": lambda b: b.run_task("text_classification", {"text": "Hi"}),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_public_mode_refuses_a_loopback_endpoint_before_any_request(recorder, call):
    backend = RemoteBackend(base_url=recorder.url + "/v1", token=SECRET, guard=Guard())
    if call is CALLS["text generation"] or call is CALLS["text stream"]:
        backend = RemoteBackend(base_url=recorder.url, token=SECRET, guard=Guard())
    with pytest.raises(RefusedEndpointError, match="127.0.0.1 is a loopback address"):
        call(backend)
    assert recorder.requests == []


def test_the_process_guard_is_the_default(recorder, monkeypatch):
    monkeypatch.setattr(netguard, "_PUBLIC", Guard())
    with pytest.raises(RefusedEndpointError):
        RemoteBackend(base_url=recorder.url).get_endpoint_info()
    assert recorder.requests == []


def test_outside_public_mode_loopback_endpoints_work(recorder):
    assert netguard.public_guard() is None
    assert RemoteBackend(base_url=recorder.url).get_endpoint_info()["model_id"] == "recorded"
    assert len(recorder.requests) == 1


def test_an_allowed_endpoint_goes_through(recorder):
    guard = Guard((recorder.url,))
    backend = RemoteBackend(base_url=recorder.url + "/v1", token=SECRET, guard=guard)
    assert backend.get_endpoint_info()["model_id"] == "recorded"
    assert backend.chat_completion(MESSAGES).choices[0].message.content == "hello"
    routes = [request[:2] for request in recorder.requests]
    assert routes == [("GET", "/info"), ("POST", "/v1/chat/completions")]
    assert recorder.requests[1][2]["authorization"] == f"Bearer {SECRET}"


def test_a_redirect_to_a_refused_address_is_refused(second):
    with _serve_redirect(second.url + "/info") as first:
        backend = RemoteBackend(base_url=first.url, token=SECRET, guard=Guard((first.url,)))
        with pytest.raises(RefusedEndpointError, match="loopback"):
            backend.get_endpoint_info()
        assert len(first.requests) == 1
    assert second.requests == []


def test_a_redirect_to_another_host_carries_no_token_nor_cookie(second):
    with _serve_redirect(second.url + "/info") as first:
        guard = Guard((first.url, second.url))
        backend = RemoteBackend(base_url=first.url, token=SECRET, guard=guard)
        assert backend.get_endpoint_info()["model_id"] == "recorded"
        assert first.requests[0][2]["authorization"] == f"Bearer {SECRET}"
    [(_, _, headers)] = second.requests
    assert "authorization" not in {k.lower() for k in headers}
    assert "cookie" not in {k.lower() for k in headers}


class _serve_redirect:
    def __init__(self, location: str) -> None:
        self._gen = _serve(Recorder(redirect=location))

    def __enter__(self) -> Recorder:
        return next(self._gen)

    def __exit__(self, *exc) -> None:
        self._gen.close()


def test_the_connection_goes_to_the_checked_address(recorder, monkeypatch):
    """DNS rebinding: the name is resolved once, and the socket connects to that address
    (the Host header keeps the name). Real DNS is stubbed out: only literals resolve."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding resolver
    resolver_calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        resolver_calls.append(host)
        return next(answers)

    real = socket.getaddrinfo

    def literals_only(host, *args, **kwargs):
        if literal_address(str(host)) is None:
            raise socket.gaierror(f"test: no DNS for {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", literals_only)
    # Loopback stands in for a public address here: nothing else may be contacted.
    guard = Guard(resolver=rebinding, classifier=lambda a: None if a.is_loopback else "a test")
    port = recorder.server_address[1]
    backend = RemoteBackend(base_url=f"http://rebind.example:{port}", guard=guard)
    assert backend.get_endpoint_info()["model_id"] == "recorded"
    assert resolver_calls == ["rebind.example"]
    assert recorder.requests[0][2]["Host"] == f"rebind.example:{port}"


def test_guarded_traffic_never_shares_the_plain_connection_pool(recorder):
    """A connection opened without the guard is not reused by a guarded request."""
    assert RemoteBackend(base_url=recorder.url).get_endpoint_info()
    with pytest.raises(RefusedEndpointError):
        RemoteBackend(base_url=recorder.url, guard=Guard()).get_endpoint_info()
    assert len(recorder.requests) == 1


def test_check_connection_shows_the_refusal(recorder, monkeypatch):
    from components.connection import REMOTE, Connection, check

    monkeypatch.setattr(netguard, "_PUBLIC", Guard())
    text = check(Connection(REMOTE, recorder.url, token=SECRET), local=None)
    assert text.startswith("🔴") and "loopback address" in text and netguard.ALLOWED_ENV in text
    assert recorder.requests == []
