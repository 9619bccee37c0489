"""The SSRF-guarded outbound client, against a real HTTP server on 127.0.0.1.

Nothing here sends traffic beyond the loopback interface: refused targets are refused before any
connection, and the only server ever reached listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from conduit.kit.errors import Unprocessable
from conduit.kit.http import BlockedAddress, is_public_address, safe_client, validate_target_url


@dataclass
class LoopbackServer:
    """A minimal HTTP/1.1 server: `/redirect` answers 302, anything else 200."""

    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        path = request_line.split(" ")[1]
        self.requests.append((path, headers))
        if path == "/redirect":
            head = f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{self.port}/final\r\n"
            body = b""
        else:
            head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            body = b"hello from loopback"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    loopback = LoopbackServer()
    listener = await asyncio.start_server(loopback.handle, "127.0.0.1", 0)
    loopback.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield loopback


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    async with safe_client(allow_private=False, timeout=5) as client:
        yield client


@pytest.fixture
async def unguarded() -> AsyncIterator[httpx.AsyncClient]:
    async with safe_client(allow_private=True, timeout=5) as client:
        yield client


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",  # a name that resolves to loopback
        "[::1]",
        "[::ffff:127.0.0.1]",  # loopback in IPv6 clothing
        "127.1",  # short forms the resolver expands to 127.0.0.1
        "2130706433",
        "0.0.0.0",
    ],
)
async def test_guarded_client_refuses_loopback_before_connecting(
    server: LoopbackServer, guarded: httpx.AsyncClient, host: str
) -> None:
    with pytest.raises(httpx.ConnectError) as refused:
        await guarded.get(f"http://{host}:{server.port}/")

    assert isinstance(refused.value, BlockedAddress)
    assert "private or reserved" in str(refused.value)
    assert server.requests == []


async def test_guarded_client_refuses_private_ranges(guarded: httpx.AsyncClient) -> None:
    # Refused before dialling, so these never leave the machine.
    for url in ("http://10.0.0.1/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(BlockedAddress):
            await guarded.get(url)


async def test_client_allowing_private_targets_reaches_loopback(
    server: LoopbackServer, unguarded: httpx.AsyncClient
) -> None:
    response = await unguarded.get(f"http://127.0.0.1:{server.port}/hello")

    assert response.status_code == 200
    assert response.text == "hello from loopback"
    [(path, headers)] = server.requests
    assert path == "/hello"
    assert headers["user-agent"] == "Conduit"


async def test_hostname_is_resolved_and_each_address_tried(
    server: LoopbackServer, unguarded: httpx.AsyncClient
) -> None:
    # "localhost" may resolve to ::1 first, where nothing listens; 127.0.0.1 must still be reached.
    response = await unguarded.get(f"http://localhost:{server.port}/by-name")

    assert response.status_code == 200
    assert server.paths == ["/by-name"]


async def test_redirects_are_not_followed(server: LoopbackServer, unguarded: httpx.AsyncClient) -> None:
    response = await unguarded.get(f"http://127.0.0.1:{server.port}/redirect")

    assert response.status_code == 302
    assert response.headers["location"] == f"http://127.0.0.1:{server.port}/final"
    assert server.paths == ["/redirect"]


async def test_proxies_from_the_environment_are_ignored(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on loopback: were the proxy used, the request would fail to connect.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async with safe_client(allow_private=True, timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/direct")

    assert response.status_code == 200
    assert server.paths == ["/direct"]


async def test_unresolvable_host_is_an_httpx_connect_error(guarded: httpx.AsyncClient) -> None:
    # A label over 63 characters fails in the resolver's encoder, before any lookup is sent.
    with pytest.raises(httpx.ConnectError, match="cannot resolve") as failed:
        await guarded.get(f"http://{'a' * 64}.example/")

    assert not isinstance(failed.value, BlockedAddress)


async def test_unix_sockets_are_refused(guarded: httpx.AsyncClient) -> None:
    with pytest.raises(BlockedAddress):
        await guarded.get("http://localhost/", extensions={"unix_socket": "/var/run/docker.sock"})


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo with client 127.0.0.1
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/file", "invalid_url"),
        ("file:///etc/passwd", "invalid_url"),
        ("gopher://example.com/", "invalid_url"),
        ("example.com/hook", "invalid_url"),
        ("http:///no-host", "invalid_url"),
        ("http://user:pass@example.com/hook", "invalid_url"),
        ("https://token@example.com/hook", "invalid_url"),
        ("http://[::1/", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("http://127.0.0.1/", "private_address_not_allowed"),
        ("http://10.0.0.8:8080/hook", "private_address_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "private_address_not_allowed"),
        ("http://[::1]:8080/", "private_address_not_allowed"),
        ("http://[::ffff:127.0.0.1]/", "private_address_not_allowed"),
        ("http://localhost:8080/", "private_address_not_allowed"),
        ("http://LOCALHOST/", "private_address_not_allowed"),
        ("http://localhost./", "private_address_not_allowed"),
        ("http://api.localhost/", "private_address_not_allowed"),
    ],
)
def test_validate_target_url_refuses(url: str, code: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        validate_target_url(url, allow_private=False)

    assert refused.value.code == code
    assert refused.value.status == 422


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "http://93.184.216.34:8080/x?y=1", "https://[2606:4700::1111]/"]
)
def test_validate_target_url_accepts_public_urls(url: str) -> None:
    assert validate_target_url(url, allow_private=False) == url


def test_validate_target_url_lets_operators_allow_private_targets() -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/", "http://10.0.0.8/"):
        assert validate_target_url(url, allow_private=True) == url
    with pytest.raises(Unprocessable):
        validate_target_url("http://user:pass@127.0.0.1/", allow_private=True)
    with pytest.raises(Unprocessable):
        validate_target_url("file:///etc/passwd", allow_private=True)
