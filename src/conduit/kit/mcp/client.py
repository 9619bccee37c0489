"""A small MCP client for Conduit's own use: discovery, health checks, smoke tests, the scanner.

It speaks the handshake era (`initialize` at 2025-11-25, which every server answers) over one
`UpstreamSession`, lists catalogs across all pages and calls tools, returning raw result dicts
so nothing the upstream sent is lost to a typed model. `probe_modern` asks separately, and
cheaply, whether the upstream also serves the stateless 2026-07-28 revision.
"""

from __future__ import annotations

import contextlib
import itertools
from types import TracebackType
from typing import Any

import conduit
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.httpclient import HttpClient
from conduit.kit.mcp.jsonrpc import Message
from conduit.kit.mcp.upstream import (
    UpstreamError,
    UpstreamSession,
    UpstreamSpec,
    open_upstream,
    upstream_client,
)
from conduit.kit.runtime import Runtime

MODERN_VERSION = jsonrpc.MODERN_VERSIONS[-1]
MAX_PAGES = 1000
PROBE_TIMEOUT = 10.0
CLIENT_INFO = {"name": "conduit", "version": conduit.__version__}
# The listing each capability gates: (capability, method, result key).
CATALOG_LISTS = {
    "tools": ("tools", "tools/list", "tools"),
    "resources": ("resources", "resources/list", "resources"),
    "resourceTemplates": ("resources", "resources/templates/list", "resourceTemplates"),
    "prompts": ("prompts", "prompts/list", "prompts"),
}


class McpCallError(Exception):
    """The upstream answered a request with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def from_reply(cls, reply: Message) -> McpCallError:
        error = reply.get("error")
        if not isinstance(error, dict):
            return cls(jsonrpc.INTERNAL_ERROR, "The upstream sent a malformed error")
        code = error.get("code")
        return cls(
            code if isinstance(code, int) and not isinstance(code, bool) else jsonrpc.INTERNAL_ERROR,
            str(error.get("message") or "Unknown error"),
            error.get("data"),
        )

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


class McpProtocolError(UpstreamError):
    """The upstream answered, but not as MCP allows (no result object, a cursor loop, ...)."""


def upstream_http(runtime: Runtime) -> HttpClient:
    """The process's shared client for upstream traffic, created on first use and closed with
    the runtime."""
    client = runtime.extras.get("upstream_http")
    if client is None:
        client = runtime.extras["upstream_http"] = upstream_client()
    assert isinstance(client, HttpClient)
    return client


class McpClient:
    """`async with McpClient(spec, http_client) as c:` opens a session (initialize and
    notifications/initialized); leaving the block closes it (and stops a stdio process)."""

    def __init__(self, spec: UpstreamSpec, http_client: HttpClient, *, timeout: float = 30.0) -> None:
        self.spec = spec
        self.timeout = timeout
        self.session = UpstreamSession(spec, http_client, on_message=self._on_message)
        self.server_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self.protocol_version: str | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> McpClient:
        try:
            await self.connect()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        params = {"protocolVersion": jsonrpc.LATEST_HANDSHAKE, "capabilities": {}, "clientInfo": CLIENT_INFO}
        reply = await self.session.initialize(self._message("initialize", params), timeout=self.timeout)
        result = _result_of(reply.message)
        version = result.get("protocolVersion")
        if version not in jsonrpc.HANDSHAKE_VERSIONS:
            raise McpProtocolError(f"The upstream answered protocol version {str(version)[:40]!r}")
        self.protocol_version = str(version)
        self.server_info = _dict(result.get("serverInfo"))
        self.capabilities = _dict(result.get("capabilities"))
        instructions = result.get("instructions")
        self.instructions = instructions if isinstance(instructions, str) else None
        await self.session.send(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout=self.timeout
        )

    async def aclose(self) -> None:
        await self.session.aclose()

    def _message(self, method: str, params: dict[str, Any] | None = None) -> Message:
        message: Message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        return message

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The result object of one request; McpCallError if the upstream answered an error."""
        reply = await self.session.request(self._message(method, params), timeout=timeout or self.timeout)
        return _result_of(reply.message)

    async def list_all(self, method: str, key: str) -> list[Any]:
        """Every item of a paginated list, following `nextCursor` to the last page."""
        items: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            result = await self.request(method, {"cursor": cursor} if cursor is not None else None)
            page = result.get(key)
            if not isinstance(page, list):
                raise McpProtocolError(f"The upstream's {method} result has no {key!r} list")
            items.extend(page)
            following = result.get("nextCursor")
            if following is None or following == "":
                return items
            if not isinstance(following, str):
                raise McpProtocolError(f"The upstream's {method} nextCursor is not a string")
            if following in seen:
                raise McpProtocolError(f"The upstream's {method} pages loop (a cursor came back)")
            seen.add(following)
            cursor = following
        raise McpProtocolError(f"The upstream's {method} has more than {MAX_PAGES} pages")

    async def _list(self, which: str) -> list[Any]:
        capability, method, key = CATALOG_LISTS[which]
        if capability not in self.capabilities:
            return []
        try:
            return await self.list_all(method, key)
        except McpCallError as exc:
            if exc.code == jsonrpc.METHOD_NOT_FOUND:
                return []
            raise

    async def list_tools(self) -> list[Any]:
        return await self._list("tools")

    async def list_resources(self) -> list[Any]:
        return await self._list("resources")

    async def list_resource_templates(self) -> list[Any]:
        return await self._list("resourceTemplates")

    async def list_prompts(self) -> list[Any]:
        return await self._list("prompts")

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The raw `tools/call` result (a tool error is a result with `isError: true`)."""
        return await self.request("tools/call", {"name": name, "arguments": arguments or {}}, timeout=timeout)

    async def ping(self, *, timeout: float | None = None) -> None:
        await self.request("ping", timeout=timeout)

    async def _on_message(self, message: Message) -> None:
        """Answer what the upstream asks of us: ping; nothing else was declared, so -32601."""
        if not jsonrpc.is_request(message):
            return
        upstream = self.session.upstream
        if upstream is None:
            return
        if message.get("method") == "ping":
            answer: Message = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        else:
            answer = jsonrpc.error(message["id"], jsonrpc.METHOD_NOT_FOUND, "Method not found")
        with contextlib.suppress(UpstreamError):
            await upstream.send(answer)


def _result_of(reply: Message) -> dict[str, Any]:
    if "error" in reply:
        raise McpCallError.from_reply(reply)
    result = reply.get("result")
    if not isinstance(result, dict):
        raise McpProtocolError("The upstream answered without a result object")
    return result


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def probe_modern(
    spec: UpstreamSpec, http_client: HttpClient, *, timeout: float = PROBE_TIMEOUT
) -> list[str]:
    """The versions the upstream lists in answer to a 2026-07-28 `server/discover`, when that
    list holds 2026-07-28; else []. A stdio upstream is probed in a throwaway process, since
    the first request fixes a process's era; the legacy HTTP+SSE transport predates 2026."""
    if spec.transport == "sse":
        return []
    message: Message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {
            "_meta": {
                jsonrpc.ENVELOPE_VERSION: MODERN_VERSION,
                jsonrpc.ENVELOPE_CAPABILITIES: {},
                jsonrpc.ENVELOPE_CLIENT_INFO: CLIENT_INFO,
            }
        },
    }
    headers = {"mcp-protocol-version": MODERN_VERSION, "mcp-method": "server/discover"}
    upstream = open_upstream(spec, http_client)
    try:
        await upstream.connect()
        reply = await upstream.request(message, timeout=timeout, headers=headers)
        result = _result_of(reply.message)
    except (UpstreamError, McpCallError):
        return []
    finally:
        await upstream.aclose()
    versions = result.get("supportedVersions")
    if not isinstance(versions, list) or MODERN_VERSION not in versions:
        return []
    return [v for v in versions if isinstance(v, str)]
