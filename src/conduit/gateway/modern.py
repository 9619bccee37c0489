"""Stateless 2026-07-28 clients of servers that only speak the handshake revisions, and of `/mcp`.

Such a request is self-contained: it carries the client's capabilities and identity in
`params._meta`. Conduit relays it on a handshake-era upstream session it holds itself (one per
server and capability set, shared by every stateless client: ids and progress tokens are
rewritten per request by the connection), with the envelope taken off, and completes the
result as the 2026 revision wants (`resultType`, `ttlMs` and `cacheScope` on cacheable results,
`serverInfo` in `_meta`).

Such an endpoint answers the optional `server/discover` probe with `-32022`, naming the
handshake revisions: a probing client (the SDK's default `auto` mode) then takes the handshake,
where sampling, elicitation, roots and subscriptions all pass through, as it would talking to
the upstream directly. A client that adopts 2026-07-28 without probing is served all the same.

What the revision has no room for is not offered: the upstream session declares no sampling,
elicitation or roots capability (a stateless client cannot be asked mid-call; upstreams then
do not offer tools that need them), log messages reach the client only when its request asked
for a log level, and `subscriptions/listen` is not served.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import conduit
from conduit.gateway import project
from conduit.gateway.targets import Target
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.jsonrpc import Message
from conduit.kit.mcp.upstream import UpstreamError, UpstreamSession

if TYPE_CHECKING:
    from conduit.gateway.policy import Grant
    from conduit.gateway.relay import Call, Gateway
    from conduit.gateway.wire import Exchange

VERSION = jsonrpc.MODERN_VERSIONS[0]
LOG_LEVEL = "io.modelcontextprotocol/logLevel"
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
RESERVED_PREFIX = "io.modelcontextprotocol/"
CACHEABLE = frozenset(
    {
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "server/discover",
    }
)
MODERN_METHODS = frozenset(
    {
        "server/discover",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "completion/complete",
    }
)
# The HTTP status of an error reply, as SDK servers choose it.
ERROR_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
UNOFFERED_CAPABILITIES = ("sampling", "elicitation", "roots")


def http_status(reply: Message) -> int:
    error = reply.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return ERROR_STATUS.get(code, 200) if isinstance(code, int) else 200


def check_envelope(message: Message, header_version: str) -> Message | None:
    """The SDK's first checks on a stateless request: a JSON-RPC error, or None if it is sound."""
    meta = jsonrpc.meta_of(message)
    if not isinstance(meta.get(jsonrpc.ENVELOPE_VERSION), str) or not isinstance(
        meta.get(jsonrpc.ENVELOPE_CAPABILITIES), dict
    ):
        return jsonrpc.error(
            message["id"],
            jsonrpc.INVALID_PARAMS,
            "params._meta must be an object carrying io.modelcontextprotocol/protocolVersion and "
            "io.modelcontextprotocol/clientCapabilities",
        )
    if meta[jsonrpc.ENVELOPE_VERSION] != header_version:
        return jsonrpc.error(
            message["id"],
            jsonrpc.HEADER_MISMATCH,
            "mcp-protocol-version header does not match the request body's protocol version",
        )
    return None


def strip_envelope(message: Message) -> Message:
    params = jsonrpc.params_of(message)
    meta = {k: v for k, v in jsonrpc.meta_of(message).items() if not k.startswith(RESERVED_PREFIX)}
    stripped = {k: v for k, v in params.items() if k != "_meta"}
    if meta:
        stripped["_meta"] = meta
    return {**message, "params": stripped}


def complete(reply: Message, method: str, server_info: Any) -> Message:
    result = reply.get("result")
    if not isinstance(result, dict):
        return reply
    result = {"resultType": "complete", **result}
    if method in CACHEABLE:
        result.setdefault("ttlMs", 0)
        result.setdefault("cacheScope", "private")
    if server_info:
        meta: dict[str, Any] = result["_meta"] if isinstance(result.get("_meta"), dict) else {}
        result["_meta"] = {**meta, SERVER_INFO: server_info}
    return {**reply, "result": result}


def offered(capabilities: dict[str, Any]) -> dict[str, Any]:
    """Capabilities of the Conduit-held session: those of the client it may ask nothing of."""
    return {k: v for k, v in capabilities.items() if k not in UNOFFERED_CAPABILITIES}


class Bridge:
    """One stateless request's view of the Conduit-held upstream sessions (duck-types the parts
    of `relay.Session` that `project.dispatch` uses)."""

    def __init__(self, gateway: Gateway, grant: Grant, message: Message) -> None:
        self.gateway = gateway
        self.grant = grant
        meta = jsonrpc.meta_of(message)
        self.capabilities = offered(meta.get(jsonrpc.ENVELOPE_CAPABILITIES) or {})
        client_info = meta.get(jsonrpc.ENVELOPE_CLIENT_INFO)
        self.client_info = (
            client_info if isinstance(client_info, dict) else {"name": "stateless", "version": "0"}
        )
        self.log_level = meta.get(LOG_LEVEL)
        self.resource_owner: dict[str, str] = {}

    async def upstream_for(self, target: Target) -> UpstreamSession:
        return await self.gateway.held_session(target, self.capabilities, self.client_info)

    def outbound(self, upstream: UpstreamSession, message: Message) -> Message | None:
        if jsonrpc.is_request(message):
            refusal = jsonrpc.error(
                message["id"], jsonrpc.METHOD_NOT_FOUND, "The client cannot be asked anything mid-request"
            )
            task = asyncio.get_running_loop().create_task(upstream.send(refusal))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
            return None
        if message.get("method") == "notifications/message" and self.log_level is None:
            return None
        return message


_pending: set[asyncio.Task[Any]] = set()


def held_init(capabilities: dict[str, Any], client_info: dict[str, Any]) -> Message:
    return {
        "jsonrpc": "2.0",
        "id": "conduit-initialize",
        "method": "initialize",
        "params": {
            "protocolVersion": jsonrpc.LATEST_HANDSHAKE,
            "capabilities": capabilities,
            "clientInfo": client_info,
        },
    }


def capability_key(server_id: str, capabilities: dict[str, Any]) -> str:
    return f"{server_id}:{json.dumps(capabilities, sort_keys=True, separators=(',', ':'))}"


async def dispatch(
    gateway: Gateway,
    grant: Grant,
    targets: list[Target],
    message: Message,
    exchange: Exchange,
    call: Call,
    *,
    single: bool,
    timeout: Callable[[Target, str], float],
) -> Message:
    """The complete 2026 reply to one stateless request, relayed over held handshake sessions."""
    method = message["method"]
    request_id = message["id"]
    if method not in MODERN_METHODS:
        return jsonrpc.error(request_id, jsonrpc.METHOD_NOT_FOUND, "Method not found")
    if method == "server/discover":
        return jsonrpc.error(
            request_id,
            jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
            f"Unsupported protocol version: {VERSION}; this endpoint prefers the handshake",
            {"supported": list(jsonrpc.HANDSHAKE_VERSIONS), "requested": VERSION},
        )
    bridge = Bridge(gateway, grant, message)
    forwarded = strip_envelope(message)
    if not single:
        reply = await project.dispatch(gateway, bridge, targets, forwarded, exchange, call)  # type: ignore[arg-type]
        return complete(reply, method, {"name": "conduit", "version": conduit.__version__})
    target = targets[0]
    call.server_id = target.server_id
    upstream = await bridge.upstream_for(target)
    init = upstream.init_result or {}
    refused = gateway.check_call(grant, target, forwarded, call)
    if refused is not None:
        return refused
    if method in ("tools/call", "prompts/get", "resources/read"):
        await gateway.gatekeeper.consume_call(grant)

    async def sink(related: Message) -> None:
        relayed = bridge.outbound(upstream, related)
        if relayed is not None:
            await exchange.interim(relayed)

    try:
        reply = (await upstream.request(forwarded, sink=sink, timeout=timeout(target, method))).message
    except UpstreamError as exc:
        return jsonrpc.error(request_id, exc.code, str(exc))
    reply = gateway.curated(grant, target, method, reply)
    return complete(reply, method, init.get("serverInfo"))
