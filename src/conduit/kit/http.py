"""Outbound HTTP for user-supplied URLs (webhook targets, scan targets), guarded against SSRF.

The guard runs at connect time on the address actually dialled, after DNS resolution, so a
hostname that resolves (or re-resolves) to a private address is refused too. Redirects are not
followed and proxies from the environment are ignored: either would route around the guard.
Operators who need internal targets set `CONDUIT_ALLOW_PRIVATE_TARGETS=true`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import typing
from urllib.parse import urlsplit

import httpcore
import httpx

from conduit.kit.errors import Unprocessable

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]{0,4096}$")
# Hop-by-hop, or set by the HTTP client itself: never a user's to choose.
HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
        "te",
        "trailer",
        "expect",
    }
)


def unsendable_headers(
    headers: typing.Mapping[str, typing.Any],
    *,
    reserved: typing.AbstractSet[str] = frozenset(),
    prefixes: tuple[str, ...] = (),
) -> list[str]:
    """Names of user-supplied headers that must not be sent: bad field syntax, a value that is
    not printable ASCII, hop-by-hop ones, and what the caller `reserved` (lowercase names or
    name prefixes) because it sets them itself."""
    return sorted(
        name
        for name, value in headers.items()
        if not HEADER_NAME.match(name)
        or not isinstance(value, str)
        or not HEADER_VALUE.match(value)
        or name.lower() in HOP_BY_HOP
        or name.lower() in reserved
        or name.lower().startswith(prefixes)
    )


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(httpx.ConnectError):
    """The target resolved to an address outside what the operator allows."""


NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a global IPv6 address leads to through NAT64, 6to4 or Teredo."""
    embedded = [address.sixtofour, *(address.teredo or ())]
    if address in NAT64_PREFIX:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in embedded if a is not None]


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public_address(address.ipv4_mapped)
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    return all(is_public_address(a) for a in _embedded_ipv4(address))


def parse_address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


async def allowed_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to dial for `host`: what it resolves to now, less what the policy refuses.

    Dial these, not the name: a name checked once and resolved again at connect time can have
    changed its answer to a private address in between (DNS rebinding). Raises `BlockedAddress`
    when every address is refused, `OSError` (or `UnicodeError`) when the name does not resolve.
    """
    literal = parse_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    allowed = [
        a for a in addresses if allow_private or is_public_address(ipaddress.ip_address(a.split("%")[0]))
    ]
    if not allowed:
        raise BlockedAddress(f"{host} resolves to a private or reserved address; refused")
    return allowed


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself and dials only addresses the policy allows."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            allowed = await allowed_addresses(host, port, allow_private=self._allow_private)
        except (OSError, UnicodeError) as exc:
            # Callers catch httpx errors, not socket.gaierror (or the codec's error on a label
            # over 63 characters, raised before any lookup).
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private),
        )


def safe_client(
    *, allow_private: bool, timeout: float = 15.0, max_connections: int = 100, user_agent: str = "Conduit"
) -> httpx.AsyncClient:
    """A shared client for user-supplied URLs: SSRF-guarded, no redirects, no env proxies."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2)
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private, limits=limits),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent},
    )


def validate_target_url(url: str, *, allow_private: bool) -> str:
    """Early, friendly check of a user-supplied URL; the connect-time guard still applies."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError:
        raise Unprocessable("URL is malformed", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise Unprocessable("URL must be an absolute http:// or https:// URL", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise Unprocessable("URL must not contain credentials", code="invalid_url")
    literal = parse_address(hostname)
    name = hostname.lower().rstrip(".")
    host_is_local = name == "localhost" or name.endswith(".localhost")
    if not allow_private and (host_is_local or (literal is not None and not is_public_address(literal))):
        raise Unprocessable(
            "URL points to a private, loopback or reserved address", code="private_address_not_allowed"
        )
    return url
