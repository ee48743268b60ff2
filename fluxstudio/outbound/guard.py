"""The outbound rules (API.md §9): http and https only; every address of every hop public, or in
IMPORT_ALLOWED_NETWORKS; and the connection made to the very address that was checked.

The last point is what defeats DNS rebinding: a name that resolves to a public address when checked and
to 127.0.0.1 a moment later would slip past a check made before httpx resolves the name itself. Here
httpcore's network backend is wrapped, so the name is resolved once, by us, every address it has is
checked, and the TCP connection goes to one of those addresses. TLS still verifies the certificate for the
name (httpcore passes the URL's host as SNI and to the certificate check), and `Host` is the URL's.

Redirects are never followed by httpx: `open_following` follows at most MAX_REDIRECTS itself, checking
each `Location` like the first URL (and every hop is checked again at connect time).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from fluxstudio.errors import RefusedUrl

MAX_REDIRECTS = 5
#: A name resolved by an ordinary resolver that we still refuse without asking DNS.
_LOCAL_NAMES = ("localhost", "localhost.", "localhost.localdomain")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: (host, port) -> every address the name has. A seam: tests inject one to simulate DNS rebinding.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address of `host` from the system's resolver (getaddrinfo), in its order, deduplicated."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedUrl(f"the host name {host[:100]!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4, Teredo's client, or NAT64."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(address: str | IpAddress) -> str | None:
    """Why an address may not be reached from here (None: it is a public address)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
        reason = blocked_reason(inner)
        return f"{reason} (inside an IPv6 address)" if reason else None
    for test, reason in (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata lives there)"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    ):
        if test:
            return reason
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """The rules for one deployment: which private networks are allowed anyway, and how names resolve."""

    allowed: tuple[IpNetwork, ...] = ()
    resolver: Resolver = system_resolver
    timeout_s: float = 30.0
    #: Extra keyword arguments of httpx.AsyncHTTPTransport (e.g. `verify` for a test's TLS server).
    transport_options: dict[str, Any] = field(default_factory=dict)

    def refusal(self, address: str) -> str | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "not an IP address"
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return None
        return blocked_reason(ip)

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """The URL if what can be known without DNS allows it, else RefusedUrl (never quoting secrets)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise RefusedUrl("the URL is not valid") from exc
        if parsed.scheme not in ("http", "https"):
            raise RefusedUrl("only http:// and https:// URLs can be fetched")
        host = parsed.host
        if not host:
            raise RefusedUrl("the URL has no host")
        if host.lower() in _LOCAL_NAMES:
            raise RefusedUrl("the URL names this machine (localhost)")
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            if reason := self.refusal(host):
                raise RefusedUrl(f"the URL's address is {reason}")
        return parsed

    async def resolve(self, host: str, port: int) -> str:
        """One address of `host` to connect to, after checking every address it has."""
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            if host.lower() in _LOCAL_NAMES:
                raise RefusedUrl("the URL names this machine (localhost)") from None
            addresses = await self.resolver(host, port)
        if not addresses:
            raise RefusedUrl(f"the host name {host[:100]!r} has no address")
        for address in addresses:
            if reason := self.refusal(address):
                raise RefusedUrl(f"the host {host[:100]!r} resolves to {reason}")
        return addresses[0]

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client whose every connection is checked; redirects off, no proxies from the env."""
        return httpx.AsyncClient(
            transport=GuardedTransport(self, **self.transport_options),
            follow_redirects=False,
            trust_env=False,
            timeout=kwargs.pop("timeout", self.timeout_s),
            **kwargs,
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, connecting to the address the policy checked instead of the name."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self.policy.resolve(host, port)
        return await self.inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise RefusedUrl("Unix sockets are never reached from outbound requests")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over the guarded backend (httpx exposes no backend argument, so the pool that
    its constructor built is replaced by the same pool with our backend)."""

    def __init__(self, policy: OutboundPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        old = self._pool
        assert isinstance(old, httpcore.AsyncConnectionPool)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=old._ssl_context,
            max_connections=old._max_connections,
            max_keepalive_connections=old._max_keepalive_connections,
            keepalive_expiry=old._keepalive_expiry,
            http1=old._http1,
            http2=old._http2,
            retries=old._retries,
            network_backend=_GuardedBackend(policy),
        )


@contextlib.asynccontextmanager
async def open_following(
    client: httpx.AsyncClient, policy: OutboundPolicy, url: str, *, max_redirects: int = MAX_REDIRECTS
) -> AsyncIterator[httpx.Response]:
    """GET `url` as a stream, following up to `max_redirects` redirects, each hop checked."""
    current = policy.check_url(url)
    for _ in range(max_redirects + 1):
        try:
            response = await client.send(client.build_request("GET", current), stream=True)
        except httpx.HTTPError as exc:
            if isinstance(exc.__context__, RefusedUrl):
                raise exc.__context__ from None
            raise
        if not response.is_redirect:
            try:
                yield response
            finally:
                await response.aclose()
            return
        location = response.headers.get("location", "")
        await response.aclose()
        current = policy.check_url(current.join(location))
    raise RefusedUrl(f"the URL redirects more than {max_redirects} times")
