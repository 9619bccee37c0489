"""Registering upstream MCP servers: names and slugs, transports, sealed environments, plan limits."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing import service as billing
from conduit.kit.clock import utcnow
from conduit.kit.errors import Conflict, NotFound, Unprocessable
from conduit.kit.http import unsendable_headers
from conduit.kit.ids import random_base62
from conduit.kit.jobs import JobContext, registry
from conduit.kit.mcp.upstream import UpstreamSpec
from conduit.kit.security import Keyring
from conduit.orgs.models import Organization
from conduit.orgs.service import lock_org
from conduit.servers.models import TRANSPORTS, RequestLog, Server, ServerLog, Tool

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_context(org_id: str) -> str:
    return f"server-env:{org_id}"


def seal_env(keyring: Keyring, org_id: str, env: dict[str, str] | None) -> str | None:
    if not env:
        return None
    bad = [name for name in env if not ENV_NAME.match(name)]
    if bad:
        raise Unprocessable(
            "Environment variable names must be letters, digits and _", code="invalid_env", detail=bad
        )
    return keyring.seal(json.dumps(env, sort_keys=True), context=_env_context(org_id))


def unseal_env(keyring: Keyring, server: Server) -> dict[str, str]:
    if not server.env_sealed:
        return {}
    env: dict[str, str] = json.loads(keyring.unseal(server.env_sealed, context=_env_context(server.org_id)))
    return env


def masked_env(keyring: Keyring, server: Server) -> dict[str, str]:
    return {name: "********" for name in unseal_env(keyring, server)}


# Set by the relay itself for every upstream request.
RESERVED_HEADERS = frozenset({"content-type", "accept", "last-event-id"})


def _headers_context(org_id: str) -> str:
    return f"server-headers:{org_id}"


def seal_headers(keyring: Keyring, org_id: str, headers: dict[str, str] | None) -> str | None:
    if not headers:
        return None
    bad = unsendable_headers(headers, reserved=RESERVED_HEADERS, prefixes=("mcp-",))
    if bad:
        raise Unprocessable(
            "Headers must be valid HTTP field names and values, and not ones the gateway sets "
            "(Host, Content-Type, Accept, Mcp-*, hop-by-hop headers)",
            code="invalid_headers",
            detail=bad,
        )
    return keyring.seal(json.dumps(headers, sort_keys=True), context=_headers_context(org_id))


def unseal_headers(keyring: Keyring, server: Server) -> dict[str, str]:
    if not server.headers_sealed:
        return {}
    headers: dict[str, str] = json.loads(
        keyring.unseal(server.headers_sealed, context=_headers_context(server.org_id))
    )
    return headers


def masked_headers(keyring: Keyring, server: Server) -> dict[str, str]:
    return {name: "********" for name in unseal_headers(keyring, server)}


def upstream_spec(keyring: Keyring, server: Server) -> UpstreamSpec:
    """How to reach the server: a stdio command with its environment, or a URL with its headers."""
    stdio = server.transport == "stdio"
    return UpstreamSpec(
        server_id=server.id,
        name=server.slug,
        transport=server.transport,
        url=server.upstream_url,
        command=server.command,
        args=tuple(server.args or ()),
        env=unseal_env(keyring, server) if stdio else {},
        headers={} if stdio else unseal_headers(keyring, server),
    )


def timeout_settings(timeout_seconds: float | None) -> dict[str, Any]:
    return {"timeoutSeconds": timeout_seconds} if timeout_seconds is not None else {}


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:56].strip("-") or "server"


async def _unique_slug(session: AsyncSession, org_id: str, name: str) -> str:
    base = slugify(name)
    candidate = base
    while await session.scalar(select(Server.id).where(Server.org_id == org_id, Server.slug == candidate)):
        candidate = f"{base[:49]}-{random_base62(6).lower()}"
    return candidate


def infer_transport(*, upstream_url: str | None, command: str | None, transport: str | None) -> str:
    if bool(upstream_url) == bool(command):
        raise Unprocessable(
            "Give either an upstream URL or a command, not both", code="invalid_server_target"
        )
    if transport is not None:
        if transport not in TRANSPORTS:
            raise Unprocessable(
                f"transport must be one of: {', '.join(TRANSPORTS)}", code="invalid_transport"
            )
        if (transport == "stdio") != bool(command):
            raise Unprocessable("stdio needs a command; http and sse need a URL", code="invalid_transport")
        return transport
    if command:
        return "stdio"
    assert upstream_url is not None
    return "sse" if upstream_url.rstrip("/").endswith("/sse") else "streamable_http"


def validate_url(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url):
        raise Unprocessable("upstream_url must be an http:// or https:// URL", code="invalid_url")
    return url


async def server_count(session: AsyncSession, org_id: str) -> int:
    return int(await session.scalar(select(func.count()).where(Server.org_id == org_id)) or 0)


async def by_name(session: AsyncSession, org_id: str, name: str) -> Server | None:
    return await session.scalar(select(Server).where(Server.org_id == org_id, Server.name == name))


async def get(session: AsyncSession, org_id: str, server_id: str) -> Server:
    server = await session.get(Server, server_id)
    if server is None or server.org_id != org_id:
        raise NotFound("Server not found", code="server_not_found")
    return server


async def create(
    session: AsyncSession,
    keyring: Keyring,
    org: Organization,
    *,
    name: str,
    upstream_url: str | None = None,
    command: str | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    description: str | None = None,
    transport: str | None = None,
    upgrade_url: str,
    settings: dict[str, Any] | None = None,
    slug: str | None = None,
    public: bool = False,
) -> Server:
    name = name.strip()
    if not name:
        raise Unprocessable("name must not be empty", code="invalid_name")
    if upstream_url:
        validate_url(upstream_url)
    resolved = infer_transport(upstream_url=upstream_url, command=command, transport=transport)
    if await by_name(session, org.id, name) is not None:
        raise Conflict("A server with this name already exists", code="server_exists")
    await lock_org(session, org.id)
    billing.ensure_capacity(org.plan, "servers", await server_count(session, org.id), upgrade_url=upgrade_url)
    if slug is not None:
        if not re.match(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$", slug):
            raise Unprocessable("slug must be lowercase letters, digits and dashes", code="invalid_slug")
        if await session.scalar(select(Server.id).where(Server.org_id == org.id, Server.slug == slug)):
            raise Conflict("A server with this slug already exists", code="slug_taken")
    server = Server(
        org_id=org.id,
        name=name,
        public=public,
        slug=slug or await _unique_slug(session, org.id, name),
        description=description,
        transport=resolved,
        upstream_url=upstream_url,
        command=command,
        args=list(args or []) if command else None,
        env_sealed=seal_env(keyring, org.id, env),
        headers_sealed=seal_headers(keyring, org.id, headers),
        settings=dict(settings or {}),
    )
    session.add(server)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("A server with this name already exists", code="server_exists") from exc
    return server


def update_definition(
    keyring: Keyring,
    server: Server,
    *,
    upstream_url: str | None,
    command: str | None,
    args: list[str] | None,
    env: dict[str, str] | None,
    description: str | None,
    headers: dict[str, str] | None = None,
) -> None:
    """Replace what is given; keep what is not (env and headers are replaced only when given)."""
    new_url = upstream_url if upstream_url is not None else (None if command else server.upstream_url)
    new_command = command if command is not None else (None if upstream_url else server.command)
    if new_url:
        validate_url(new_url)
    unchanged_target = upstream_url is None and command is None
    server.transport = infer_transport(
        upstream_url=new_url, command=new_command, transport=server.transport if unchanged_target else None
    )
    server.upstream_url, server.command = new_url, new_command
    if new_command is None:
        server.args = None
    elif args is not None:
        server.args = list(args)
    if env is not None:
        server.env_sealed = seal_env(keyring, server.org_id, env)
    if headers is not None:
        server.headers_sealed = seal_headers(keyring, server.org_id, headers)
    if description is not None:
        server.description = description


# --- gateway endpoint, tools and their curation ----------------------------------------------


def gateway_endpoint(public_url: str, org_slug: str, server: Server) -> str:
    return f"{public_url}/s/{org_slug}/{server.slug}/mcp"


def definition_hash(definition: dict[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def tool_held(tool: Tool, live_hash: str | None = None) -> bool:
    """Whether the gateway holds the tool back: its definition (as the upstream serves it now,
    else as discovery last stored it) is not the one that was scanned or approved."""
    if tool.pinned_hash is None:
        return False
    return (live_hash or tool.definition_hash) != tool.pinned_hash


def pin_tool(tool: Tool, definition_hash: str | None = None) -> None:
    """Approve the tool's definition as it is now (or the one with `definition_hash`)."""
    tool.pinned_hash = definition_hash or tool.definition_hash
    tool.pinned_at = utcnow()


async def tools_of(session: AsyncSession, server_id: str, *, include_removed: bool = False) -> list[Tool]:
    query = select(Tool).where(Tool.server_id == server_id).order_by(Tool.position, Tool.name)
    if not include_removed:
        query = query.where(Tool.removed_at.is_(None))
    return list((await session.scalars(query)).all())


async def tool_counts(session: AsyncSession, server_ids: list[str]) -> dict[str, int]:
    if not server_ids:
        return {}
    rows = await session.execute(
        select(Tool.server_id, func.count())
        .where(Tool.server_id.in_(server_ids), Tool.removed_at.is_(None))
        .group_by(Tool.server_id)
    )
    return {server_id: int(count) for server_id, count in rows.all()}


async def invocation_counts(session: AsyncSession, server_ids: list[str]) -> dict[str, int]:
    if not server_ids:
        return {}
    rows = await session.execute(
        select(RequestLog.server_id, func.count())
        .where(RequestLog.server_id.in_(server_ids), RequestLog.method == "tools/call")
        .group_by(RequestLog.server_id)
    )
    return {str(server_id): int(count) for server_id, count in rows.all()}


async def get_tool(session: AsyncSession, server: Server, tool_id: str) -> Tool:
    tool = await session.get(Tool, tool_id)
    if tool is None or tool.server_id != server.id:
        raise NotFound("Tool not found", code="tool_not_found")
    return tool


PATCHABLE = {
    "isEnabled": "is_enabled",
    "displayName": "display_name",
    "descriptionOverride": "description_override",
    "instructions": "instructions",
    "whenToUse": "when_to_use",
    "whenNotToUse": "when_not_to_use",
}
DEFAULTS: dict[str, Any] = {"is_enabled": True}


def patch_tool(tool: Tool, changes: dict[str, Any], *, replace: bool = False) -> None:
    """Apply the given fields; with `replace`, fields not given go back to their defaults."""
    if changes.get("isEnabled", True) is None:
        raise Unprocessable("isEnabled must be true or false", code="invalid_tool_patch")
    for field, column in PATCHABLE.items():
        if field in changes:
            setattr(tool, column, changes[field])
        elif replace:
            setattr(tool, column, DEFAULTS.get(column))


def effective_definition(
    tool: Tool, *, name: str | None = None, definition: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The tool as the gateway lists it: the upstream definition (the stored one, or `definition`
    as the upstream serves it now) with the curation applied.

    The input schema is never altered (clients derive request headers from it); the title and
    description carry the overrides, with instructions and use guidance appended.
    """
    definition = dict(tool.definition if definition is None else definition)
    if name is not None:
        definition["name"] = name
    if tool.display_name:
        definition["title"] = tool.display_name
    description = (
        tool.description_override if tool.description_override is not None else definition.get("description")
    )
    guidance = [
        (label, text)
        for label, text in (
            ("Instructions", tool.instructions),
            ("When to use", tool.when_to_use),
            ("When not to use", tool.when_not_to_use),
        )
        if text
    ]
    if guidance:
        parts = [description] if description else []
        parts += [f"{label}: {text}" for label, text in guidance]
        description = "\n\n".join(parts)
    if description is not None:
        definition["description"] = description
    return definition


async def upsert_tools(
    session: AsyncSession, server: Server, definitions: list[dict[str, Any]]
) -> dict[str, int]:
    """Store what the upstream lists now: new tools appear, changed ones get a new hash, tools
    no longer listed are marked removed (their curation is kept should they come back)."""
    existing = {tool.name: tool for tool in await tools_of(session, server.id, include_removed=True)}
    now = utcnow()
    seen: set[str] = set()
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
    for position, definition in enumerate(definitions):
        name = str(definition.get("name", ""))
        if not name or name in seen:
            continue
        seen.add(name)
        digest = definition_hash(definition)
        tool = existing.get(name)
        if tool is None:
            session.add(
                Tool(
                    server_id=server.id,
                    name=name,
                    definition=definition,
                    definition_hash=digest,
                    position=position,
                )
            )
            counts["added"] += 1
            continue
        changed = tool.definition_hash != digest or tool.removed_at is not None
        tool.definition, tool.definition_hash, tool.position, tool.removed_at = (
            definition,
            digest,
            position,
            None,
        )
        counts["changed" if changed else "unchanged"] += 1
    for name, tool in existing.items():
        if name not in seen and tool.removed_at is None:
            tool.removed_at = now
            counts["removed"] += 1
    await session.flush()
    return counts


# --- request logs ----------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return round(ordered[index], 3)


async def analytics(session: AsyncSession, server_id: str, days: int) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    rows = (
        await session.execute(
            select(
                RequestLog.tool,
                RequestLog.status,
                RequestLog.duration_ms,
                RequestLog.created_at,
                RequestLog.request_bytes,
                RequestLog.response_bytes,
            ).where(RequestLog.server_id == server_id, RequestLog.created_at >= since)
        )
    ).all()
    durations = [row.duration_ms for row in rows]
    errors = sum(1 for row in rows if row.status != "ok")
    by_tool: dict[str, list[Any]] = {}
    by_day: dict[str, list[int]] = {}
    for row in rows:
        if row.tool:
            by_tool.setdefault(row.tool, []).append(row)
        day = by_day.setdefault(row.created_at.strftime("%Y-%m-%d"), [0, 0])
        day[0] += 1
        day[1] += row.status != "ok"
    return {
        "serverId": server_id,
        "days": days,
        "totalRequests": len(rows),
        "errors": errors,
        "errorRate": round(errors / len(rows), 4) if rows else 0.0,
        "p50Ms": _percentile(durations, 0.5),
        "p95Ms": _percentile(durations, 0.95),
        "requestBytes": sum(row.request_bytes for row in rows),
        "responseBytes": sum(row.response_bytes for row in rows),
        "byTool": sorted(
            (
                {
                    "tool": tool,
                    "calls": len(items),
                    "errors": sum(1 for i in items if i.status != "ok"),
                    "p50Ms": _percentile([i.duration_ms for i in items], 0.5),
                }
                for tool, items in by_tool.items()
            ),
            key=lambda item: (-item["calls"], item["tool"]),
        ),
        "byDay": [{"date": date, "calls": c, "errors": e} for date, (c, e) in sorted(by_day.items())],
    }


async def logs_page(
    session: AsyncSession,
    server_id: str,
    *,
    limit: int,
    cursor: int | None,
    model: type[RequestLog] | type[ServerLog] = RequestLog,
) -> tuple[list[Any], int | None]:
    """Newest first: `limit` rows of the request log (or of `ServerLog`) older than `cursor`."""
    query: Any = select(model).where(model.server_id == server_id).order_by(model.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(model.id < cursor)
    rows: list[Any] = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def delete_server(session: AsyncSession, server: Server) -> None:
    """The server, its tools and its runtime log; its request log stays for the org's analytics."""
    await session.execute(delete(ServerLog).where(ServerLog.server_id == server.id))
    await session.delete(server)


@registry.handler("servers.logs_purge", every=timedelta(hours=6), max_attempts=3)
async def _purge_logs(ctx: JobContext) -> None:
    """Request and runtime logs older than CONDUIT_GATEWAY_LOG_RETENTION_DAYS go."""
    cutoff = utcnow() - timedelta(days=ctx.runtime.settings.gateway_log_retention_days)
    for model in (RequestLog, ServerLog):
        await ctx.session.execute(delete(model).where(model.created_at < cutoff))
