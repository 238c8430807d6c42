"""Public mode's guard on endpoint URLs: no visitor-typed URL reaches this machine's network.

On a public Space anyone can type an endpoint URL, and the server makes the request: without
a guard a visitor can read ``http://169.254.169.254/`` (cloud metadata), ``http://localhost``
services or the private network. ``Guard`` refuses any host that resolves to a loopback,
private, link-local, multicast, reserved, unspecified or otherwise non-global address (IPv4,
IPv6, IPv4 inside IPv6: mapped, 6to4, Teredo, NAT64), unless the operator allowed it
(``PLAYGROUND_ALLOWED_ENDPOINTS``).

The check is made where the connection is opened (``CheckingNetworkBackend``): the host is
resolved once, every address is checked, and the socket connects to a checked address — so a
name cannot resolve to a public address for the check and a private one for the connection
(DNS rebinding). The URL keeps its name, so the Host header and TLS SNI/certificate check
are the name's. Each redirect hop opens its connection through the same check.

huggingface_hub sends every request through one shared ``httpx2.Client`` (``get_session``),
and ``InferenceClient`` takes no client of its own. ``guarding(guard)`` marks the requests
made inside it (a context variable); the session installed with huggingface_hub's
``set_client_factory`` sends marked requests through the guard's transport (its own
connection pools, never shared with unguarded traffic) and the others through a plain
``httpx2.HTTPTransport``, as before.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpcore2
import httpx2
from httpcore2 import SyncBackend
from huggingface_hub.utils import get_session, set_client_factory
from huggingface_hub.utils._http import hf_request_event_hook  # the default session's hook

from backends.errors import InputValidationError

ALLOWED_ENV = "PLAYGROUND_ALLOWED_ENDPOINTS"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]
"""``(host, port)`` → the addresses ``host`` resolves to, as strings."""

# RFC 6052's well-known NAT64 prefix: `ipaddress` has no property for it.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# (property, the words for it), in the order a refusal names them.
_RULES = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
    ("is_site_local", "a site-local"),
)
REFUSED_KINDS = "loopback, private, link-local, multicast, reserved, unspecified and non-global"


class RefusedEndpointError(InputValidationError):
    """Public mode refused an endpoint: it resolves to an address inside this network."""


def default_resolver(host: str, port: int) -> list[str]:
    """Every address ``socket.getaddrinfo`` gives for ``host`` (TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _normal_host(host: str) -> str:
    """Lower case, no IPv6 brackets, no zone id, no trailing dots (``localhost.``)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.partition("%")[0].rstrip(".")


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one in any form a resolver accepts: standard
    (``10.0.0.1``, ``::1``), or the legacy IPv4 forms ``inet_aton`` reads (``127.1``,
    ``0x7f.1``, ``2130706433``, ``017700000001``, ``0``). ``None`` for a name."""
    host = _normal_host(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo client, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    inner = [address.ipv4_mapped, address.sixtofour]
    if address.teredo:
        inner.append(address.teredo[1])
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in inner if a is not None]


def classify(address: str | IPAddress) -> str | None:
    """Why ``address`` is refused (``"a private"``, ``"a loopback"``, …), or ``None`` when
    it is a global address. An IPv6 address is also judged by the IPv4 address it carries."""
    if isinstance(address, str):
        address = ipaddress.ip_address(_normal_host(address))
    for candidate in (*_embedded(address), address):
        for prop, words in _RULES:
            if getattr(candidate, prop, False):
                return words
        if not candidate.is_global:
            return "a non-global"
    return None


@dataclass(frozen=True)
class _Allowed:
    """One ``PLAYGROUND_ALLOWED_ENDPOINTS`` entry: a host (any port), or a URL prefix."""

    host: str
    scheme: str | None = None
    port: int | None = None
    path: str = ""

    @classmethod
    def parse(cls, entry: str) -> _Allowed:
        if "://" not in entry:
            return cls(_canonical(entry))
        url = httpx2.URL(entry)
        return cls(_canonical(url.host), url.scheme, url.port or _PORTS.get(url.scheme), url.path)

    def matches(self, url: httpx2.URL) -> bool:
        if _canonical(url.host) != self.host:
            return False
        if self.scheme is None:
            return True
        path = self.path.rstrip("/")
        return (
            url.scheme == self.scheme
            and (url.port or _PORTS.get(url.scheme)) == self.port
            and (not path or url.path == path or url.path.startswith(path + "/"))
        )


_PORTS = {"http": 80, "https": 443}


def _canonical(host: str) -> str:
    address = literal_address(host)
    return str(address) if address is not None else _normal_host(host)


def parse_allowed(value: str | None) -> tuple[str, ...]:
    """``PLAYGROUND_ALLOWED_ENDPOINTS``'s comma-separated entries."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


@dataclass(frozen=True, eq=False)
class Guard:
    """Refuses hosts inside this network; ``allowed``: hosts or URL prefixes let through
    (``PLAYGROUND_ALLOWED_ENDPOINTS``); ``resolver``: name → addresses (``getaddrinfo``);
    ``classifier``: address → why it is refused, or ``None`` (``classify``)."""

    allowed: tuple[str, ...] = ()
    resolver: Resolver = default_resolver
    classifier: Callable[[IPAddress], str | None] = classify
    _entries: tuple[_Allowed, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_entries", tuple(_Allowed.parse(e) for e in self.allowed))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Guard:
        environ = os.environ if environ is None else environ
        return cls(parse_allowed(environ.get(ALLOWED_ENV)))

    def is_allowed(self, url: str | httpx2.URL) -> bool:
        """Whether the operator's allow-list opens ``url``."""
        url = httpx2.URL(url)
        return any(entry.matches(url) for entry in self._entries)

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, every one of them checked.

        Raises:
            RefusedEndpointError: ``host`` is, or resolves to (any of its addresses), an
                address inside this network; or it does not resolve.
        """
        name = _normal_host(host)
        literal = literal_address(name)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        elif name == "localhost" or name.endswith(".localhost"):
            raise self._refusal(host, "a loopback")
        else:
            try:
                found = self.resolver(name, port)
                addresses = [ipaddress.ip_address(_normal_host(a)) for a in found]
            except (OSError, UnicodeError, ValueError) as exc:
                raise RefusedEndpointError(
                    f"{host} could not be resolved ({type(exc).__name__}).",
                    field="base_url",
                    hint="Check the host name.",
                ) from exc
            if not addresses:
                raise RefusedEndpointError(f"{host} does not resolve.", field="base_url")
        for address in addresses:
            if (words := self.classifier(address)) is not None:
                raise self._refusal(host, words)
        return [str(a) for a in addresses]

    def check_url(self, url: str | httpx2.URL) -> None:
        """Refuse ``url`` unless it is allowed or its host resolves to global addresses only
        (raises ``RefusedEndpointError``)."""
        url = httpx2.URL(url)
        if url.scheme not in _PORTS or not url.host:
            raise RefusedEndpointError(
                f"{url} is not an http(s) URL with a host.", field="base_url"
            )
        if not self.is_allowed(url):
            self.resolve(url.host, url.port or _PORTS[url.scheme])

    @staticmethod
    def _refusal(host: str, words: str) -> RefusedEndpointError:
        # Never the resolved address: a visitor must not learn this network's layout.
        verb = "is" if literal_address(host) is not None else "resolves to"
        return RefusedEndpointError(
            f"{host} {verb} {words} address; public mode refuses {REFUSED_KINDS} targets.",
            field="base_url",
            hint=f"An operator can allow it with {ALLOWED_ENV}.",
        )


# -- the connection path ---------------------------------------------------------------------


class CheckingNetworkBackend(httpcore2.NetworkBackend):
    """httpcore's network backend that resolves a host through ``guard`` (which refuses
    addresses inside this network) and connects to a checked address, never to the name."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._inner = SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        error: Exception | None = None
        for address in self.guard.resolve(host, port):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore2.NetworkStream:
        raise RefusedEndpointError("Unix sockets are refused in public mode.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx2.BaseTransport):
    """Requests ``guard`` allows by URL go through a plain transport; all others through one
    whose connections are opened by ``CheckingNetworkBackend``. Visitor targets neither get
    nor set cookies in the shared session (no cookie crosses from one visitor to another)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._allowed = httpx2.HTTPTransport(trust_env=False)
        self._checked = httpx2.HTTPTransport(trust_env=False)
        # httpx2's HTTPTransport takes no network backend: give its pool one.
        self._checked._pool = httpcore2.ConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=100,  # httpx2's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=CheckingNetworkBackend(guard),
        )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.scheme not in _PORTS:
            raise RefusedEndpointError(f"{request.url.scheme}:// URLs are refused in public mode.")
        request.headers.pop("cookie", None)
        transport = self._allowed if self.guard.is_allowed(request.url) else self._checked
        response = transport.handle_request(request)
        response.headers.pop("set-cookie", None)
        return response

    def close(self) -> None:
        self._allowed.close()
        self._checked.close()


_ACTIVE: ContextVar[Guard | None] = ContextVar("netguard_active", default=None)


class SessionTransport(httpx2.BaseTransport):
    """huggingface_hub's session transport: requests made inside ``guarding(guard)`` go
    through that guard's ``GuardedTransport``, all others through a plain transport."""

    def __init__(self) -> None:
        self._plain = httpx2.HTTPTransport()
        self._guarded: weakref.WeakKeyDictionary[Guard, GuardedTransport] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def for_guard(self, guard: Guard) -> GuardedTransport:
        with self._lock:
            if guard not in self._guarded:
                self._guarded[guard] = GuardedTransport(guard)
            return self._guarded[guard]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        guard = _ACTIVE.get()
        if guard is None:
            return self._plain.handle_request(request)
        return self.for_guard(guard).handle_request(request)

    def close(self) -> None:
        self._plain.close()
        with self._lock:
            for transport in list(self._guarded.values()):
                transport.close()


_SESSIONS: weakref.WeakSet[httpx2.Client] = weakref.WeakSet()
_INSTALL_LOCK = threading.Lock()


def session_factory() -> httpx2.Client:
    """huggingface_hub's ``default_client_factory`` with a ``SessionTransport``."""
    client = httpx2.Client(
        transport=SessionTransport(),
        event_hooks={"request": [hf_request_event_hook]},
        follow_redirects=True,
        timeout=None,
    )
    _SESSIONS.add(client)
    return client


def install() -> None:
    """Make huggingface_hub's shared session one that ``guarding`` can guard (idempotent).
    Call it at startup: installing replaces (closes) the session in use."""
    with _INSTALL_LOCK:
        if get_session() not in _SESSIONS:
            set_client_factory(session_factory)


@contextlib.contextmanager
def guarding(guard: Guard | None) -> Iterator[None]:
    """Requests huggingface_hub's session sends inside this block go through ``guard``."""
    if guard is None:
        yield
        return
    install()
    token = _ACTIVE.set(guard)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


_PUBLIC: Guard | None = None


def enable_public_mode(guard: Guard) -> None:
    """Public mode for this process: every ``RemoteBackend`` built without a ``guard``
    argument uses ``guard``."""
    global _PUBLIC
    install()
    _PUBLIC = guard


def public_guard() -> Guard | None:
    """The process's public-mode guard (``None``: not in public mode)."""
    return _PUBLIC
