"""Live collection: connect to a server (streamable HTTP, legacy SSE or a stdio command) with
Conduit's own MCP client, list everything on every page, and, for URLs, probe the transport
(TLS, auth, OAuth metadata, Origin, CORS, error pages). Only the target is contacted, and no tool
is called."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiohttp.abc
from aiohttp.abc import ResolveResult

from conduit.kit.http import BlockedAddress, allowed_addresses, is_public_address
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.client import CLIENT_INFO, McpCallError, McpClient
from conduit.kit.mcp.upstream import MAX_MESSAGE_BYTES, UpstreamError, UpstreamSpec, upstream_client
from conduit.scanning.checks.transport import FOREIGN_ORIGIN, is_loopback
from conduit.scanning.inventory import (
    Inventory,
    LaunchCommand,
    Prompt,
    Resource,
    ResourceTemplate,
    ServerInventory,
    Tool,
    TransportFacts,
)

Progress = Callable[[str], Awaitable[None] | None]
PROBE_TIMEOUT = 10.0
MAX_ERROR_BODY = 4096


def spec_for_url(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    transport: str | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> UpstreamSpec:
    """An upstream spec for a URL: legacy SSE when the path ends in /sse, else streamable HTTP."""
    chosen = transport or ("sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "streamable_http")
    return UpstreamSpec(
        server_id="scan",
        name=urlsplit(url).hostname or "server",
        transport=chosen,
        url=url,
        headers=dict(headers or {}),
        max_message_bytes=max_message_bytes,
    )


def spec_for_command(
    command: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> UpstreamSpec:
    return UpstreamSpec(
        server_id="scan",
        name=command.rsplit("/", 1)[-1],
        transport="stdio",
        command=command,
        args=tuple(args),
        env=dict(env or {}),
    )


async def _say(progress: Progress | None, message: str) -> None:
    if progress is None:
        return
    result = progress(message)
    if asyncio.iscoroutine(result):
        await result


def _dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)]


async def collect(
    spec: UpstreamSpec,
    *,
    http_client: Any = None,
    timeout: float = 30.0,
    probe: bool = True,
    progress: Progress | None = None,
    allow_private: bool = True,
) -> Inventory:
    """The inventory of one live server. Failures after connecting mark it partial; failing to
    connect at all raises `UpstreamError` (or `McpCallError` if initialize was refused).
    `http_client` is the upstream client `McpClient` takes (default: a new one, closed after).
    `allow_private=False`: every connection, the probes' too, dials only public addresses."""
    own_client = http_client is None
    client = http_client or upstream_client(allow_private=allow_private)
    target = spec.url if spec.transport != "stdio" else " ".join([spec.command or "", *spec.args])
    inventory = Inventory(target=target or "", kind="stdio" if spec.transport == "stdio" else "url")
    if spec.transport == "stdio":
        inventory.launch_commands.append(
            LaunchCommand(
                server=spec.name,
                command=spec.command or "",
                args=list(spec.args),
                env=dict(spec.env),
                location="command",
            )
        )
    try:
        await _say(progress, "Connecting and initializing")
        server = await _catalog(spec, client, timeout, inventory, progress)
        inventory.servers.append(server)
        if probe and spec.transport != "stdio" and spec.url:
            await _say(progress, "Probing transport and authentication")
            inventory.transport = await probe_transport(spec, allow_private=allow_private)
    finally:
        if own_client:
            await _close(client)
    return inventory


async def _close(client: Any) -> None:
    closer = getattr(client, "aclose", None) or client.close
    result = closer()
    if asyncio.iscoroutine(result):
        await result


async def _catalog(
    spec: UpstreamSpec, client: Any, timeout: float, inventory: Inventory, progress: Progress | None
) -> ServerInventory:
    started = time.monotonic()
    async with McpClient(spec, client, timeout=timeout) as mcp:
        server = ServerInventory(
            name=str(mcp.server_info.get("name") or spec.name),
            server_info=mcp.server_info,
            instructions=mcp.instructions or "",
            protocol_version=mcp.protocol_version,
            source="live",
        )
        server.timings_ms["initialize"] = (time.monotonic() - started) * 1000
        listings: list[tuple[str, Callable[[], Awaitable[list[Any]]]]] = [
            ("tools", mcp.list_tools),
            ("prompts", mcp.list_prompts),
            ("resources", mcp.list_resources),
            ("resourceTemplates", mcp.list_resource_templates),
        ]
        for kind, lister in listings:
            await _say(progress, f"Listing {kind}")
            begun = time.monotonic()
            try:
                items = _dicts(await lister())
            except (UpstreamError, McpCallError) as exc:
                inventory.partial = True
                inventory.errors.append(f"{kind}: {exc}")
                continue
            server.timings_ms[f"{kind}/list"] = (time.monotonic() - begun) * 1000
            if kind == "tools":
                server.tools = [Tool.from_dict(t) for t in items]
            elif kind == "prompts":
                server.prompts = [Prompt.from_dict(p) for p in items]
            elif kind == "resources":
                server.resources = [Resource.from_dict(r) for r in items]
            else:
                server.templates = [ResourceTemplate.from_dict(t) for t in items]
    return server


def _initialize_body() -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": "conduit-scan-probe",
        "method": "initialize",
        "params": {
            "protocolVersion": jsonrpc.LATEST_HANDSHAKE,
            "capabilities": {},
            "clientInfo": CLIENT_INFO,
        },
    }
    return json.dumps(message).encode()


class _PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, less the addresses the SSRF policy refuses."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if is_public_address(ipaddress.ip_address(r["host"].split("%")[0]))]
        if not allowed:
            raise OSError(f"{host} resolves to a private or reserved address; refused")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


async def probe_transport(spec: UpstreamSpec, *, allow_private: bool = True) -> TransportFacts:
    """What the URL answers beyond MCP, asked with a client of its own (no cookies, no proxy
    from the environment)."""
    assert spec.url is not None
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT * 2, connect=PROBE_TIMEOUT)
    connector = aiohttp.TCPConnector(resolver=None if allow_private else _PublicOnlyResolver())
    async with aiohttp.ClientSession(
        timeout=timeout, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), connector=connector
    ) as client:
        return await _probe(spec, client, allow_private)


async def _probe(spec: UpstreamSpec, client: aiohttp.ClientSession, allow_private: bool) -> TransportFacts:
    assert spec.url is not None
    parts = urlsplit(spec.url)
    host = parts.hostname or ""
    facts = TransportFacts(
        url=spec.url,
        transport=spec.transport,
        scheme=parts.scheme,
        host=host,
        loopback=is_loopback(host),
        authenticated_with="headers" if spec.headers else None,
    )
    if parts.scheme == "https":
        await _probe_tls(facts, parts.hostname or "", parts.port or 443, allow_private)
    if spec.transport == "sse":
        await _probe_sse_auth(facts, client, spec.url)
    else:
        await _probe_initialize(facts, client, spec.url)
    if facts.unauthenticated_status in (401, 403) or facts.www_authenticate:
        facts.protected_resource_metadata = await _resource_metadata(facts, client, spec.url)
    await _probe_cors(facts, client, spec.url)
    await _probe_errors(facts, client, spec)
    return facts


async def _post(
    client: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], str] | None:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with client.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                text = await _read_some(resp)
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, text
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None


async def _read_some(resp: aiohttp.ClientResponse) -> str:
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        chunk = b""
        try:
            async with asyncio.timeout(2):
                async for piece in resp.content.iter_any():
                    chunk += piece
                    if b"\n\n" in chunk or len(chunk) > MAX_ERROR_BODY:
                        break
        except TimeoutError:
            pass
        return chunk[:MAX_ERROR_BODY].decode(errors="replace")
    return (await resp.content.read(MAX_ERROR_BODY)).decode(errors="replace")


BASE_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


async def _probe_initialize(facts: TransportFacts, client: aiohttp.ClientSession, url: str) -> None:
    body = _initialize_body()
    answer = await _post(client, url, body, dict(BASE_HEADERS))
    if answer is not None:
        status, headers, _text = answer
        facts.unauthenticated_status = status
        facts.www_authenticate = headers.get("www-authenticate")
        await _close_session(client, url, headers)
    foreign = await _post(client, url, body, {**BASE_HEADERS, "origin": FOREIGN_ORIGIN})
    if foreign is not None:
        facts.foreign_origin_status = foreign[0]
        await _close_session(client, url, foreign[1])


async def _close_session(client: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    """End a session a probe opened, so the server does not keep it."""
    session_id = headers.get("mcp-session-id")
    if not session_id:
        return
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with client.delete(
                url, headers={"mcp-session-id": session_id}, allow_redirects=False
            ) as resp:
                await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass


async def _probe_sse_auth(facts: TransportFacts, client: aiohttp.ClientSession, url: str) -> None:
    for origin in (None, FOREIGN_ORIGIN):
        headers = {"accept": "text/event-stream", **({"origin": origin} if origin else {})}
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                async with client.get(url, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    if origin is None:
                        facts.www_authenticate = resp.headers.get("www-authenticate")
        except (aiohttp.ClientError, OSError, TimeoutError):
            continue
        if origin is None:
            facts.unauthenticated_status = status
        else:
            facts.foreign_origin_status = status


async def _resource_metadata(
    facts: TransportFacts, client: aiohttp.ClientSession, url: str
) -> dict[str, Any] | None:
    parts = urlsplit(url)
    candidates = []
    if facts.www_authenticate and "resource_metadata=" in facts.www_authenticate:
        value = facts.www_authenticate.split("resource_metadata=", 1)[1].split(",")[0].strip().strip('"')
        if urlsplit(value).netloc == parts.netloc:  # never follow it to another host
            candidates.append(value)
    path = parts.path.rstrip("/")
    candidates.append(
        urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-protected-resource{path}", "", ""))
    )
    candidates.append(
        urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-protected-resource", "", ""))
    )
    for candidate in dict.fromkeys(candidates):
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                async with client.get(candidate, allow_redirects=False) as resp:
                    if resp.status == 200:
                        document = json.loads(await resp.content.read(65536))
                        if isinstance(document, dict):
                            return document
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            continue
    return None


async def _probe_cors(facts: TransportFacts, client: aiohttp.ClientSession, url: str) -> None:
    headers = {
        "origin": FOREIGN_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, mcp-session-id, authorization",
    }
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with client.options(url, headers=headers, allow_redirects=False) as resp:
                facts.cors_allow_origin = resp.headers.get("access-control-allow-origin")
                facts.cors_allow_credentials = (
                    resp.headers.get("access-control-allow-credentials", "").lower() == "true"
                )
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass


async def _probe_errors(facts: TransportFacts, client: aiohttp.ClientSession, spec: UpstreamSpec) -> None:
    """Malformed requests, answered with whatever the server says when things go wrong."""
    assert spec.url is not None
    headers = {**BASE_HEADERS, **spec.headers}
    for body in (
        b'{"jsonrpc": "2.0", "id": 1, "method": ',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": 7}',
    ):
        answer = await _post(client, spec.url, body, headers)
        if answer is not None and answer[2]:
            facts.error_bodies.append(answer[2])


async def _probe_tls(facts: TransportFacts, host: str, port: int, allow_private: bool) -> None:
    """TLS version and certificate validity, from a verified handshake (and an unverified one
    to learn the version when verification fails)."""
    context = ssl.create_default_context()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            address = host if allow_private else (await allowed_addresses(host, port, allow_private=False))[0]
            _reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=host)
    except BlockedAddress:
        return
    except ssl.SSLCertVerificationError as exc:
        facts.cert_error = exc.verify_message or str(exc)
        context = ssl._create_unverified_context()  # noqa: S323 - only to read the TLS version
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                _reader, writer = await asyncio.open_connection(
                    address, port, ssl=context, server_hostname=host
                )
        except (OSError, TimeoutError, ssl.SSLError):
            return
    except (OSError, TimeoutError, ssl.SSLError):
        return
    ssl_object = writer.get_extra_info("ssl_object")
    if isinstance(ssl_object, ssl.SSLObject):
        facts.tls_version = ssl_object.version()
        certificate = ssl_object.getpeercert()
        not_after = certificate.get("notAfter") if certificate else None
        if isinstance(not_after, str):
            expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
            facts.cert_expires_days = (expires - datetime.now(UTC)).total_seconds() / 86400
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
