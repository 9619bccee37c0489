"""`/mcp`: the servers of a project's configuration as one MCP server.

Tools and prompts are named `{server}__{name}` (the server's slug); resources keep their URIs
and are routed to the server that listed them. Lists are gathered from every server at once, each
bounded by its own timeout, so one slow or failing server leaves its tools out of the list rather
than holding up the others.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from conduit.gateway.targets import Target
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.jsonrpc import Message
from conduit.kit.mcp.upstream import UpstreamError, UpstreamSession

if TYPE_CHECKING:
    from conduit.gateway.relay import Call, Gateway, Session
    from conduit.gateway.wire import Exchange

log = structlog.get_logger("conduit.gateway.project")

SEPARATOR = "__"
LIST_TIMEOUT = 15.0
MAX_PAGES = 100
LISTS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
PREFIXED = {"tools", "prompts"}
BROADCAST = frozenset({"logging/setLevel"})


def split(name: Any, targets: list[Target]) -> tuple[Target, str] | None:
    if not isinstance(name, str) or SEPARATOR not in name:
        return None
    slug, _, rest = name.partition(SEPARATOR)
    target = next((t for t in targets if t.slug == slug), None)
    return (target, rest) if target is not None and rest else None


async def _list_all(upstream: UpstreamSession, method: str, field: str, timeout: float) -> list[Any]:
    items: list[Any] = []
    cursor: Any = None
    seen: set[str] = set()
    for page in range(MAX_PAGES):
        params = {"cursor": cursor} if cursor is not None else {}
        message = {"jsonrpc": "2.0", "id": f"list-{page}", "method": method, "params": params}
        reply = (await upstream.request(message, timeout=timeout)).message
        result = reply.get("result")
        if not isinstance(result, dict):
            break
        found = result.get(field)
        if isinstance(found, list):
            items.extend(found)
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str) or cursor in seen:
            break
        seen.add(cursor)
    return items


async def _gather_list(
    gateway: Gateway, session: Session, targets: list[Target], method: str, field: str
) -> list[Any]:
    async def one(target: Target) -> list[Any]:
        try:
            upstream = await session.upstream_for(target)
            capabilities = (upstream.init_result or {}).get("capabilities") or {}
            capability = field if field in ("tools", "prompts") else "resources"
            if capability not in capabilities:
                return []
            return await _list_all(upstream, method, field, min(target.timeout, LIST_TIMEOUT))
        except UpstreamError as exc:
            log.warning("project_list_failed", server=target.slug, method=method, error=str(exc))
            return []

    results = await asyncio.gather(*(one(t) for t in targets))
    merged: list[Any] = []
    for target, items in zip(targets, results, strict=True):
        if field == "tools":
            allowed = session.grant.tool_allowlists.get(target.server_id)
            items = target.curate(items, allowed)
        for item in items:
            if not isinstance(item, dict):
                continue
            if field in PREFIXED:
                item = {**item, "name": f"{target.slug}{SEPARATOR}{item.get('name')}"}
            elif field == "resources" and isinstance(item.get("uri"), str):
                session.resource_owner[item["uri"]] = target.server_id
            merged.append(item)
    return merged


async def dispatch(
    gateway: Gateway,
    session: Session,
    targets: list[Target],
    message: Message,
    exchange: Exchange,
    call: Call,
) -> Message:
    method = message["method"]
    request_id = message["id"]
    params = jsonrpc.params_of(message)
    if method == "ping":
        return {"jsonrpc": "2.0", "id": request_id, "result": {}}
    if method in LISTS:
        field = LISTS[method]
        items = await _gather_list(gateway, session, targets, method, field)
        return {"jsonrpc": "2.0", "id": request_id, "result": {field: items}}
    if method in BROADCAST:
        for each in targets:
            try:
                upstream = await session.upstream_for(each)
                await upstream.request(message, timeout=min(each.timeout, LIST_TIMEOUT))
            except UpstreamError as exc:
                log.warning("project_broadcast_failed", server=each.slug, method=method, error=str(exc))
        return {"jsonrpc": "2.0", "id": request_id, "result": {}}

    target: Target | None = None
    forwarded = message
    if method in ("tools/call", "prompts/get"):
        found = split(params.get("name"), targets)
        if found is None:
            kind = "tool" if method == "tools/call" else "prompt"
            return jsonrpc.error(request_id, jsonrpc.INVALID_PARAMS, f"Unknown {kind}: {params.get('name')}")
        target, name = found
        forwarded = {**message, "params": {**params, "name": name}}
    elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        target = await _owner(gateway, session, targets, params.get("uri"))
    elif method == "completion/complete":
        ref: dict[str, Any] = params["ref"] if isinstance(params.get("ref"), dict) else {}
        if ref.get("type") == "ref/prompt":
            found = split(ref.get("name"), targets)
            if found is not None:
                target = found[0]
                forwarded = {**message, "params": {**params, "ref": {**ref, "name": found[1]}}}
        else:
            target = await _owner(gateway, session, targets, ref.get("uri"))
    else:
        return jsonrpc.error(request_id, jsonrpc.METHOD_NOT_FOUND, "Method not found")
    if target is None:
        return jsonrpc.error(request_id, jsonrpc.INVALID_PARAMS, "No server of this project serves that")

    call.server_id = target.server_id
    refused = gateway.check_call(session.grant, target, forwarded, call)
    if refused is not None:
        return refused
    if method == "tools/call":
        call.tool = str(params.get("name"))
    if method in ("tools/call", "prompts/get", "resources/read"):
        await gateway.gatekeeper.consume_call(session.grant)
    upstream = await session.upstream_for(target)

    async def sink(related: Message) -> None:
        relayed = session.outbound(upstream, related)
        if relayed is not None:
            await exchange.interim(relayed)

    reply = await upstream.request(forwarded, sink=sink, timeout=target.timeout)
    return reply.message


async def _owner(gateway: Gateway, session: Session, targets: list[Target], uri: Any) -> Target | None:
    if not isinstance(uri, str):
        return None
    if uri not in session.resource_owner:
        await _gather_list(gateway, session, targets, "resources/list", "resources")
    server_id = session.resource_owner.get(uri)
    if server_id is not None:
        return next((t for t in targets if t.server_id == server_id), None)
    # A URI from a template: the first server that lists templates of the same scheme.
    scheme = uri.split(":", 1)[0]
    templates = await _gather_templates(session, targets)
    return next((t for t, s in templates if s == scheme), None)


async def _gather_templates(session: Session, targets: list[Target]) -> list[tuple[Target, str]]:
    found: list[tuple[Target, str]] = []
    for target in targets:
        try:
            upstream = await session.upstream_for(target)
            items = await _list_all(
                upstream, "resources/templates/list", "resourceTemplates", min(target.timeout, LIST_TIMEOUT)
            )
        except UpstreamError:
            continue
        for item in items:
            template = item.get("uriTemplate") if isinstance(item, dict) else None
            if isinstance(template, str):
                found.append((target, template.split(":", 1)[0]))
    return found
