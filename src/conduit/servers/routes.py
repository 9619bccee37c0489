"""The server registry over HTTP: seed 000 `/api/servers` and seed 003 `/mcp-servers` with its
tool curation, resolved configuration, analytics and request logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.identity.auth import ClientDep, RuntimeDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import Conflict, ErrorBody, NotFound, Unprocessable, responses
from conduit.kit.mcp.client import McpClient
from conduit.kit.runtime import Runtime
from conduit.orgs.access import current_org_access, org_access
from conduit.orgs.service import OrgAccess
from conduit.servers import discovery, service
from conduit.servers.models import Server, ServerLog, Tool
from conduit.servers.schemas import (
    BulkToolPatch,
    CreateMcpServer,
    DiscoveryResult,
    EndpointOut,
    EndpointsOut,
    EndpointsUpdate,
    LogEntry,
    LogPage,
    McpServerDetail,
    McpServerOut,
    RegisterServer,
    ResolvedConfig,
    RuntimeLogLine,
    RuntimeLogPage,
    ServerAnalytics,
    ServerOut,
    SmokeToolCall,
    SmokeToolResult,
    SmokeToolsList,
    ToolCounts,
    ToolOut,
    ToolPatch,
    ToolSummary,
    UpdateMcpServer,
)

router = APIRouter()
SERVERS = "/api/v1/organizations/{orgId}/mcp-servers"
SERVER = SERVERS + "/{serverId}"
TAG = "MCP servers"
NO_CONTENT = status.HTTP_204_NO_CONTENT
UPSTREAM_FAILED = {"model": ErrorBody, "description": "The upstream MCP server failed or answered an error"}
UPSTREAM_TIMED_OUT = {"model": ErrorBody, "description": "The upstream MCP server did not answer in time"}


def _upgrade_url(runtime: Runtime) -> str:
    return f"{runtime.settings.resolved_public_url}/api/v1/plans"


def _endpoint(runtime: Runtime, access: OrgAccess, server: Server) -> str:
    return service.gateway_endpoint(runtime.settings.resolved_public_url, access.org.slug, server)


def _audit(
    session: AsyncSession, access: OrgAccess, action: str, client: ClientDep, **metadata: object
) -> None:
    access.audit(session, action, client.ip, **metadata)


def _server_out(runtime: Runtime, access: OrgAccess, server: Server) -> ServerOut:
    return ServerOut(
        id=server.id,
        name=server.name,
        slug=server.slug,
        description=server.description,
        gateway_endpoint=_endpoint(runtime, access, server),
        transport=server.transport,
        status=server.status,
        health_status=server.health_status,
        trust_score=server.trust_score,
        trust_grade=server.trust_grade,
        public=server.public,
        created_at=server.created_at,
    )


def _mcp_out(
    runtime: Runtime, access: OrgAccess, server: Server, tools: int, invocations: int
) -> dict[str, Any]:
    return {
        "id": server.id,
        "organizationId": server.org_id,
        "slug": server.slug,
        "name": server.name,
        "description": server.description,
        "status": server.status,
        "kind": "stdio" if server.transport == "stdio" else "remote_mcp",
        "runtimeType": "stdio_process" if server.transport == "stdio" else "remote",
        "totalInvocations": invocations,
        "toolCount": tools,
        "createdOn": server.created_at,
        "catalogStatus": server.catalog_status,
        "catalogError": server.catalog_error,
        "gatewayEndpoint": _endpoint(runtime, access, server),
        "transport": server.transport,
        "upstreamUrl": server.upstream_url,
        "command": server.command,
        "args": server.args,
        "healthStatus": server.health_status,
        "lastError": server.last_error,
        "trustScore": server.trust_score,
        "trustGrade": server.trust_grade,
        "isPublic": server.public,
        "timeoutSeconds": server.settings.get("timeoutSeconds"),
    }


async def _register(
    session: AsyncSession,
    runtime: Runtime,
    access: OrgAccess,
    client: ClientDep,
    *,
    timeout_seconds: float | None,
    **fields: Any,
) -> Server:
    """Seed 000 and seed 003 registration alike: the server, its discovery job and the audit
    entry, in the request's transaction."""
    server = await service.create(
        session,
        runtime.keyring,
        access.org,
        upgrade_url=_upgrade_url(runtime),
        settings=service.timeout_settings(timeout_seconds),
        **fields,
    )
    discovery.enqueue_discovery(session, server)
    _audit(session, access, "server.created", client, server_id=server.id, name=server.name)
    return server


def _cursor(cursor: str | None) -> int | None:
    if cursor is not None and not cursor.isdigit():
        raise Unprocessable("cursor must be a value returned as nextCursor", code="invalid_cursor")
    return int(cursor) if cursor else None


def _tool_status(tool: Tool) -> str:
    """`removed` (no longer listed upstream), `held` (its definition changed since it was scanned
    or approved: the gateway hides it until it is approved or the server scanned again), `active`."""
    if tool.removed_at is not None:
        return "removed"
    return "held" if service.tool_held(tool) else "active"


def _tool_out(tool: Tool) -> ToolOut:
    effective = service.effective_definition(tool)
    return ToolOut(
        id=tool.id,
        name=tool.name,
        toolKey=tool.name,
        displayName=tool.display_name,
        description=effective.get("description"),
        isEnabled=tool.is_enabled,
        instructions=tool.instructions,
        whenToUse=tool.when_to_use,
        whenNotToUse=tool.when_not_to_use,
        descriptionOverride=tool.description_override,
        definitionHash=tool.definition_hash,
        status=_tool_status(tool),
        inputSchema=dict(tool.definition.get("inputSchema") or {}),
    )


async def _detail(
    session: AsyncSession, runtime: Runtime, access: OrgAccess, server: Server
) -> McpServerDetail:
    tools = await service.tools_of(session, server.id)
    invocations = (await service.invocation_counts(session, [server.id])).get(server.id, 0)
    return McpServerDetail(
        **_mcp_out(runtime, access, server, len(tools), invocations),
        tools=[
            ToolSummary(
                id=t.id,
                toolKey=t.name,
                name=t.name,
                displayName=t.display_name,
                isEnabled=t.is_enabled,
                status=_tool_status(t),
                definitionHash=t.definition_hash,
            )
            for t in tools
        ],
    )


async def _end_transaction(session: AsyncSession) -> None:
    """Commit what the request did so far before talking to an upstream, which can take
    seconds: no transaction (on SQLite a POST's holds the write lock) stays open meanwhile."""
    await session.commit()


# --- seed 000 ------------------------------------------------------------------------------


@router.post(
    "/api/servers",
    tags=["Servers"],
    summary="Register a new MCP server",
    status_code=201,
    response_model=ServerOut,
    responses=responses(401, 403, 409, 422),
)
async def register_server(
    body: RegisterServer,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, current_org_access("servers:write")],
) -> ServerOut:
    """By `upstream_url` (streamable HTTP, or legacy SSE for URLs ending in `/sse`) or by a stdio
    `command` with `args` and `env` (stored encrypted). 409 if the name is taken."""
    server = await _register(
        session,
        runtime,
        access,
        client,
        name=body.name,
        upstream_url=body.upstream_url,
        command=body.command,
        args=body.args,
        env=body.env,
        headers=body.headers,
        description=body.description,
        transport=body.transport,
        public=body.public,
        timeout_seconds=body.timeout_seconds,
    )
    return _server_out(runtime, access, server)


@router.get(
    "/api/servers",
    tags=["Servers"],
    summary="List all servers in your organization",
    response_model=list[ServerOut],
    responses=responses(401, 403),
)
async def list_servers(
    session: SessionDep, runtime: RuntimeDep, access: Annotated[OrgAccess, current_org_access("servers:read")]
) -> list[ServerOut]:
    rows = await session.scalars(select(Server).where(Server.org_id == access.org.id).order_by(Server.name))
    return [_server_out(runtime, access, server) for server in rows.all()]


# --- seed 003 ------------------------------------------------------------------------------


@router.get(
    SERVERS,
    tags=[TAG],
    summary="List MCP servers",
    response_model=list[McpServerOut],
    responses=responses(401, 403, 404),
)
async def list_mcp_servers(
    session: SessionDep, runtime: RuntimeDep, access: Annotated[OrgAccess, org_access("servers:read")]
) -> list[McpServerOut]:
    servers = list(
        (
            await session.scalars(select(Server).where(Server.org_id == access.org.id).order_by(Server.name))
        ).all()
    )
    ids = [s.id for s in servers]
    tools, calls = await service.tool_counts(session, ids), await service.invocation_counts(session, ids)
    return [
        McpServerOut(**_mcp_out(runtime, access, s, tools.get(s.id, 0), calls.get(s.id, 0))) for s in servers
    ]


@router.post(
    SERVERS,
    tags=[TAG],
    summary="Create a server",
    status_code=201,
    response_model=McpServerDetail,
    responses=responses(401, 403, 404, 409, 422),
)
async def create_mcp_server(
    body: CreateMcpServer,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> McpServerDetail:
    """`kind` remote_mcp with `upstreamUrl`, or stdio with `command`, `args`, `env`."""
    if (body.kind == "stdio" and not body.command) or (body.kind == "remote_mcp" and not body.upstreamUrl):
        raise Unprocessable(
            "kind stdio needs command; kind remote_mcp needs upstreamUrl", code="invalid_server_target"
        )
    server = await _register(
        session,
        runtime,
        access,
        client,
        name=body.name,
        slug=body.slug,
        upstream_url=body.upstreamUrl,
        command=body.command,
        args=body.args,
        env=body.env,
        headers=body.headers,
        description=body.description,
        transport=body.transport,
        public=body.isPublic,
        timeout_seconds=body.timeoutSeconds,
    )
    return await _detail(session, runtime, access, server)


@router.get(
    SERVER,
    tags=[TAG],
    summary="Get a server, including its tools",
    response_model=McpServerDetail,
    responses=responses(401, 403, 404),
)
async def get_mcp_server(
    serverId: str,
    session: SessionDep,
    runtime: RuntimeDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
) -> McpServerDetail:
    return await _detail(session, runtime, access, await service.get(session, access.org.id, serverId))


@router.patch(
    SERVER,
    tags=[TAG],
    summary="Update settings",
    response_model=McpServerDetail,
    responses=responses(401, 403, 404, 409, 422),
)
async def update_mcp_server(
    serverId: str,
    body: UpdateMcpServer,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> McpServerDetail:
    server = await service.get(session, access.org.id, serverId)
    if body.name is not None and body.name.strip() != server.name:
        if await service.by_name(session, access.org.id, body.name.strip()) is not None:
            raise Conflict("A server with this name already exists", code="server_exists")
        server.name = body.name.strip()
    target = discovery.target_of(server)
    service.update_definition(
        runtime.keyring,
        server,
        upstream_url=body.upstreamUrl,
        command=body.command,
        args=body.args,
        env=body.env,
        description=body.description,
        headers=body.headers,
    )
    if body.transport is not None:
        server.transport = service.infer_transport(
            upstream_url=server.upstream_url, command=server.command, transport=body.transport
        )
    if body.status is not None:
        server.status = body.status
    if body.isPublic is not None:
        server.public = body.isPublic
    if body.timeoutSeconds is not None:
        server.settings = {**server.settings, **service.timeout_settings(body.timeoutSeconds)}
    if discovery.target_of(server) != target:
        discovery.enqueue_discovery(session, server)
    _audit(
        session,
        access,
        "server.updated",
        client,
        server_id=server.id,
        changes=sorted(body.model_dump(exclude_unset=True, exclude={"env", "headers"}))
        + (["env"] if body.env is not None else [])
        + (["headers"] if body.headers is not None else []),
    )
    return await _detail(session, runtime, access, server)


@router.delete(
    SERVER, tags=[TAG], summary="Delete a server", status_code=NO_CONTENT, responses=responses(401, 403, 404)
)
async def delete_mcp_server(
    serverId: str,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> Response:
    server = await service.get(session, access.org.id, serverId)
    _audit(session, access, "server.deleted", client, server_id=server.id, name=server.name)
    await service.delete_server(session, server)
    return Response(status_code=NO_CONTENT)


@router.get(
    f"{SERVER}/config",
    tags=[TAG],
    summary="Get the resolved server configuration",
    response_model=ResolvedConfig,
    responses=responses(401, 403, 404),
)
async def server_config(
    serverId: str,
    session: SessionDep,
    runtime: RuntimeDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
) -> ResolvedConfig:
    """How the gateway reaches the upstream and what it shows: enabled tools with overrides."""
    server = await service.get(session, access.org.id, serverId)
    tools = [
        service.effective_definition(t) for t in await service.tools_of(session, server.id) if t.is_enabled
    ]
    return ResolvedConfig(
        id=server.id,
        name=server.name,
        slug=server.slug,
        transport=server.transport,
        upstreamUrl=server.upstream_url,
        command=server.command,
        args=server.args,
        env=service.masked_env(runtime.keyring, server),
        headers=service.masked_headers(runtime.keyring, server),
        gatewayEndpoint=_endpoint(runtime, access, server),
        status=server.status,
        tools=tools,
        catalog=server.catalog or {},
    )


@router.get(
    f"{SERVER}/analytics",
    tags=[TAG],
    summary="Get usage analytics",
    response_model=ServerAnalytics,
    responses=responses(401, 403, 404, 422),
)
async def server_analytics(
    serverId: str,
    session: SessionDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
    days: Annotated[int, Query(ge=1, le=90)] = 7,
) -> ServerAnalytics:
    """From the gateway's request log over the last `days` days."""
    server = await service.get(session, access.org.id, serverId)
    return ServerAnalytics.model_validate(await service.analytics(session, server.id, days))


@router.get(
    f"{SERVER}/logs",
    tags=[TAG],
    summary="Page through request logs",
    response_model=LogPage,
    responses=responses(401, 403, 404, 422),
)
async def server_logs(
    serverId: str,
    session: SessionDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> LogPage:
    """Newest first; `nextCursor` gives the next, older page."""
    server = await service.get(session, access.org.id, serverId)
    rows, next_cursor = await service.logs_page(session, server.id, limit=limit, cursor=_cursor(cursor))
    return LogPage(
        logs=[
            LogEntry(
                id=r.id,
                method=r.method,
                tool=r.tool,
                status=r.status,
                errorCode=r.error_code,
                durationMs=r.duration_ms,
                requestBytes=r.request_bytes,
                responseBytes=r.response_bytes,
                keyId=r.key_id,
                sessionId=r.session_id,
                createdAt=r.created_at,
            )
            for r in rows
        ],
        nextCursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.get(
    f"{SERVER}/deployment/logs",
    tags=[TAG],
    summary="Get hosted runtime logs",
    response_model=RuntimeLogPage,
    responses=responses(401, 403, 404, 422),
)
async def server_runtime_logs(
    serverId: str,
    session: SessionDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> RuntimeLogPage:
    """What a stdio server wrote to stderr while the gateway ran it, newest first. Lines are
    kept as written (up to 4,000 characters): they may carry whatever the server prints."""
    server = await service.get(session, access.org.id, serverId)
    rows, next_cursor = await service.logs_page(
        session, server.id, limit=limit, cursor=_cursor(cursor), model=ServerLog
    )
    return RuntimeLogPage(
        logs=[
            RuntimeLogLine(
                id=r.id, stream=r.stream, line=r.line, sessionId=r.session_id, createdAt=r.created_at
            )
            for r in rows
        ],
        nextCursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.patch(
    f"{SERVER}/tools/{{toolId}}",
    tags=[TAG],
    summary="Edit one tool",
    response_model=ToolOut,
    responses=responses(401, 403, 404, 422),
)
async def patch_tool(
    serverId: str,
    toolId: str,
    body: ToolPatch,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> ToolOut:
    """Fields: isEnabled, displayName, descriptionOverride, instructions, whenToUse,
    whenNotToUse. A disabled tool is absent from the gateway's tools/list and cannot be called."""
    server = await service.get(session, access.org.id, serverId)
    tool = await service.get_tool(session, server, toolId)
    changes = body.model_dump(exclude_unset=True)
    service.patch_tool(tool, changes)
    _audit(
        session, access, "tool.updated", client, server_id=server.id, tool=tool.name, changes=sorted(changes)
    )
    return _tool_out(tool)


@router.post(
    f"{SERVER}/tools/{{toolId}}/approve",
    tags=[TAG],
    summary="Approve a tool's current definition",
    response_model=ToolOut,
    responses=responses(401, 403, 404),
)
async def approve_tool(
    serverId: str,
    toolId: str,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> ToolOut:
    """Pin the tool's definition as discovery last saw it (a Conduit extension). A pinned tool
    whose definition changes upstream is held back by the gateway (`status: held`) until it is
    approved again or the server is scanned; scanning a server pins every tool it lists."""
    server = await service.get(session, access.org.id, serverId)
    tool = await service.get_tool(session, server, toolId)
    service.pin_tool(tool)
    _audit(
        session, access, "tool.approved", client, server_id=server.id, tool=tool.name, hash=tool.pinned_hash
    )
    return _tool_out(tool)


@router.put(
    f"{SERVER}/tools",
    tags=[TAG],
    summary="Bulk-replace tool settings",
    response_model=list[ToolOut],
    responses=responses(401, 403, 404, 422),
)
async def replace_tools(
    serverId: str,
    body: list[BulkToolPatch],
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> list[ToolOut]:
    """Body: an array of tool patches, each naming its tool by `id` or `toolKey`. Each listed
    tool's settings are replaced (fields not given return to their defaults); other tools are
    unchanged. All or nothing: one unknown tool fails the request."""
    server = await service.get(session, access.org.id, serverId)
    tools = await service.tools_of(session, server.id)
    by_id, by_key = {t.id: t for t in tools}, {t.name: t for t in tools}
    resolved: list[tuple[Tool, dict[str, Any]]] = []
    for patch in body:
        tool = by_id.get(patch.id or "") or by_key.get(patch.toolKey or "")
        if tool is None:
            raise NotFound(f"Tool {patch.id or patch.toolKey!r} not found", code="tool_not_found")
        resolved.append((tool, patch.model_dump(exclude_unset=True, exclude={"id", "toolKey"})))
    for tool, changes in resolved:
        service.patch_tool(tool, changes, replace=True)
    _audit(
        session,
        access,
        "tool.bulk_replaced",
        client,
        server_id=server.id,
        tools=[t.name for t, _ in resolved],
    )
    return [_tool_out(tool) for tool, _ in resolved]


@router.get(
    f"{SERVER}/endpoints",
    tags=[TAG],
    summary="Get the enabled endpoint set",
    response_model=EndpointsOut,
    responses=responses(401, 403, 404),
)
async def get_endpoints(
    serverId: str,
    session: SessionDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
) -> EndpointsOut:
    """For an MCP upstream the endpoints are its tools."""
    server = await service.get(session, access.org.id, serverId)
    return EndpointsOut(
        endpoints=[
            EndpointOut(toolKey=t.name, name=t.display_name or t.name, isEnabled=t.is_enabled)
            for t in await service.tools_of(session, server.id)
        ]
    )


@router.put(
    f"{SERVER}/endpoints",
    tags=[TAG],
    summary="Update which endpoints are exposed",
    response_model=EndpointsOut,
    responses=responses(401, 403, 404, 422),
)
async def put_endpoints(
    serverId: str,
    body: EndpointsUpdate,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> EndpointsOut:
    """Body `{"enabled": [toolKey, ...]}`: exactly these tools are exposed."""
    server = await service.get(session, access.org.id, serverId)
    tools = await service.tools_of(session, server.id)
    unknown = sorted(set(body.enabled) - {t.name for t in tools})
    if unknown:
        raise Unprocessable("Unknown tools", code="unknown_tools", detail=unknown)
    for tool in tools:
        tool.is_enabled = tool.name in body.enabled
    _audit(session, access, "tool.endpoints_set", client, server_id=server.id, enabled=sorted(body.enabled))
    return EndpointsOut(
        endpoints=[
            EndpointOut(toolKey=t.name, name=t.display_name or t.name, isEnabled=t.is_enabled) for t in tools
        ]
    )


# --- discovery and live smoke tests --------------------------------------------------------


@router.post(
    f"{SERVER}/discover-tools",
    tags=[TAG],
    summary="Re-import tools from the upstream",
    response_model=DiscoveryResult,
    responses={**responses(401, 403, 404), 502: UPSTREAM_FAILED},
)
async def discover_tools(
    serverId: str,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
) -> DiscoveryResult:
    """Connects to the upstream now and lists its tools, resources, resource templates and
    prompts (all pages). New tools appear, changed ones get a new `definitionHash`, tools no
    longer listed are marked removed. 502 when the upstream cannot be reached or answers an
    error; the failure is kept in `catalogStatus`/`catalogError` and the last good tools stay."""
    server = await service.get(session, access.org.id, serverId)
    await _end_transaction(session)
    counts = await discovery.discover(session, runtime, server)
    _audit(session, access, "server.tools_discovered", client, server_id=server.id, **counts)
    detail = await _detail(session, runtime, access, server)
    return DiscoveryResult(
        **detail.model_dump(),
        summary=ToolCounts(**counts),
        discoveredAt=server.discovered_at,
        catalog=server.catalog or {},
    )


SMOKE_RESPONSES = {**responses(401, 403, 404), 502: UPSTREAM_FAILED, 504: UPSTREAM_TIMED_OUT}


@router.get(
    f"{SERVER}/mcp-smoke/tools-list",
    tags=[TAG],
    summary="List tools over MCP against the live upstream",
    response_model=SmokeToolsList,
    responses=SMOKE_RESPONSES,
)
@router.post(
    f"{SERVER}/mcp-smoke/tools-list",
    tags=[TAG],
    summary="List tools over MCP against the live upstream",
    response_model=SmokeToolsList,
    responses=SMOKE_RESPONSES,
)
async def smoke_tools_list(
    serverId: str,
    session: SessionDep,
    runtime: RuntimeDep,
    access: Annotated[OrgAccess, org_access("servers:read")],
) -> SmokeToolsList:
    """Opens a session with the upstream and answers its tools/list (all pages) as it is,
    curation not applied, nothing stored. 502 if it cannot be reached or answers an error
    (the JSON-RPC error in `detail`), 504 if it does not answer within the server's timeout."""
    server = await service.get(session, access.org.id, serverId)
    await _end_transaction(session)
    tools, elapsed = await discovery.smoke(runtime, server, lambda c: c.list_all("tools/list", "tools"))
    return SmokeToolsList(tools=[t for t in tools if isinstance(t, dict)], durationMs=elapsed)


@router.post(
    f"{SERVER}/mcp-smoke/tools/{{toolName}}/call",
    tags=[TAG],
    summary="Invoke a tool over MCP against the live upstream",
    response_model=SmokeToolResult,
    responses={**SMOKE_RESPONSES, **responses(422)},
)
async def smoke_tool_call(
    serverId: str,
    toolName: str,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("servers:write")],
    body: SmokeToolCall | None = None,
) -> SmokeToolResult:
    """Body `{"arguments": {...}}`. Calls the tool on the upstream directly, past the gateway's
    curation (a disabled tool can be called), hence the write permission. A tool error is a
    result with `isError: true`; a JSON-RPC error (an unknown tool, bad arguments) is a 502
    carrying it in `detail`; 504 if the upstream does not answer within the server's timeout
    (`settings.timeoutSeconds`, default 30 s)."""
    server = await service.get(session, access.org.id, serverId)
    arguments = body.arguments if body is not None else {}
    # Audited before the call, in its own commit: the call has effects even if it then fails.
    _audit(session, access, "server.smoke_tool_called", client, server_id=server.id, tool=toolName)
    await _end_transaction(session)

    async def call(mcp: McpClient) -> dict[str, Any]:
        return await mcp.call_tool(toolName, arguments)

    result, elapsed = await discovery.smoke(runtime, server, call)
    return SmokeToolResult(result=result, isError=result.get("isError") is True, durationMs=elapsed)
