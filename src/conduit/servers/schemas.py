"""Bodies of the server registry: seed 000 `/api/servers` (snake_case) and seed 003
`/mcp-servers` (camelCase), field for field as documented, plus what a gateway operator needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Name = Field(min_length=1, max_length=200)
Args = Field(None, max_length=200)


# --- seed 000 ------------------------------------------------------------------------------


Headers = Field(
    None,
    description="HTTP headers sent to a URL upstream with every request (its credentials, say); "
    "stored encrypted and never shown again",
)
Timeout = Field(
    None,
    gt=0,
    le=3600,
    description="How long the gateway waits for this server's answer to one request "
    "(default CONDUIT_GATEWAY_TIMEOUT_SECONDS)",
)


class RegisterServer(BaseModel):
    name: str = Name
    upstream_url: str | None = Field(None, max_length=2048, description="Streamable HTTP or SSE endpoint")
    description: str | None = Field(None, max_length=2000)
    command: str | None = Field(None, max_length=1024, description="stdio command instead of a URL")
    args: list[str] | None = Args
    env: dict[str, str] | None = Field(None, description="Environment for the command; stored encrypted")
    transport: Literal["streamable_http", "sse", "stdio"] | None = Field(
        None, description="Detected from the URL or command when absent"
    )
    public: bool = Field(False, description="List the server in the public registry")
    timeout_seconds: float | None = Timeout
    headers: dict[str, str] | None = Headers


class ServerOut(BaseModel):
    id: str
    name: str
    slug: str
    description: str | None
    gateway_endpoint: str
    transport: str
    status: str
    health_status: str
    trust_score: int | None
    trust_grade: str | None
    public: bool
    created_at: datetime


# --- seed 003 ------------------------------------------------------------------------------


class CreateMcpServer(BaseModel):
    name: str = Name
    slug: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = Field(None, max_length=2000)
    kind: Literal["remote_mcp", "stdio"] | None = Field(
        None, description="remote_mcp (upstreamUrl) or stdio (command); OpenAPI generation comes later"
    )
    upstreamUrl: str | None = Field(None, max_length=2048)
    transport: Literal["streamable_http", "sse", "stdio"] | None = None
    command: str | None = Field(None, max_length=1024)
    args: list[str] | None = Args
    env: dict[str, str] | None = None
    isPublic: bool = False
    timeoutSeconds: float | None = Timeout
    headers: dict[str, str] | None = Headers


class UpdateMcpServer(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    upstreamUrl: str | None = Field(None, max_length=2048)
    transport: Literal["streamable_http", "sse", "stdio"] | None = None
    command: str | None = Field(None, max_length=1024)
    args: list[str] | None = Args
    env: dict[str, str] | None = Field(None, description="Replaces the whole environment when given")
    status: Literal["active", "disabled"] | None = None
    isPublic: bool | None = None
    timeoutSeconds: float | None = Timeout
    headers: dict[str, str] | None = Field(
        None, description="Replaces every upstream header when given; stored encrypted, never shown"
    )


class ToolSummary(BaseModel):
    id: str
    toolKey: str
    name: str
    displayName: str | None
    httpMethod: None = None
    httpPath: None = None
    isEnabled: bool
    status: str = Field(description="active, or removed when the upstream no longer lists it")
    definitionHash: str = Field(description="SHA-256 of the tool's definition as the upstream last listed it")


class McpServerOut(BaseModel):
    id: str
    organizationId: str
    slug: str
    gatewayPublicId: None = None
    name: str
    description: str | None
    status: str
    kind: str
    runtimeType: str
    openApiSpecUrl: None = None
    totalInvocations: int
    toolCount: int
    createdOn: datetime
    hasOpenApiSpec: bool = False
    hasGateway: bool = False
    toolsManaged: bool = True
    gateway: None = None
    catalogStatus: str
    catalogError: str | None
    installGuideEnabled: bool = True
    gatewayEndpoint: str
    transport: str
    upstreamUrl: str | None
    command: str | None
    args: list[str] | None
    healthStatus: str
    lastError: str | None
    trustScore: int | None
    trustGrade: str | None
    isPublic: bool
    timeoutSeconds: float | None = Field(None, description="Per-request upstream timeout; null: the default")


class McpServerDetail(McpServerOut):
    tools: list[ToolSummary]


class ToolCounts(BaseModel):
    added: int
    changed: int
    removed: int
    unchanged: int


class DiscoveryResult(McpServerDetail):
    summary: ToolCounts = Field(description="What changed in the tool list with this import")
    discoveredAt: datetime | None
    catalog: dict[str, Any] = Field(
        description="serverInfo, instructions, capabilities, protocolVersion, resources, "
        "resourceTemplates, prompts and modernVersions, as the upstream serves them"
    )


class SmokeToolsList(BaseModel):
    tools: list[dict[str, Any]] = Field(description="tools/list as the upstream answers it, all pages")
    durationMs: float


class SmokeToolCall(BaseModel):
    arguments: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments")


class SmokeToolResult(BaseModel):
    result: dict[str, Any] = Field(description="The upstream's tools/call result, unchanged")
    isError: bool = Field(description="The tool reported an error (result.isError)")
    durationMs: float


class ToolPatch(BaseModel):
    isEnabled: bool | None = None
    displayName: str | None = Field(None, max_length=256)
    descriptionOverride: str | None = Field(None, max_length=10_000)
    instructions: str | None = Field(None, max_length=10_000)
    whenToUse: str | None = Field(None, max_length=10_000)
    whenNotToUse: str | None = Field(None, max_length=10_000)


class BulkToolPatch(ToolPatch):
    id: str | None = Field(None, description="The tool's id, or give toolKey")
    toolKey: str | None = Field(None, description="The upstream tool name, or give id")


class ToolOut(BaseModel):
    id: str
    name: str
    toolKey: str
    displayName: str | None
    description: str | None
    httpMethod: None = None
    httpPath: None = None
    isEnabled: bool
    toolNamingVersion: int = 2
    source: str = "mcp"
    isManaged: bool = True
    instructions: str | None
    whenToUse: str | None
    whenNotToUse: str | None
    descriptionOverride: str | None
    definitionHash: str
    status: str
    inputSchema: dict[str, Any]


class EndpointOut(BaseModel):
    toolKey: str
    name: str
    isEnabled: bool


class EndpointsOut(BaseModel):
    endpoints: list[EndpointOut]


class EndpointsUpdate(BaseModel):
    enabled: list[str] = Field(description="toolKeys to expose; every other tool is disabled")


class ResolvedConfig(BaseModel):
    id: str
    name: str
    slug: str
    transport: str
    upstreamUrl: str | None
    command: str | None
    args: list[str] | None
    env: dict[str, str] = Field(description="Variable names with masked values")
    headers: dict[str, str] = Field(default_factory=dict, description="Upstream header names, masked values")
    gatewayEndpoint: str
    status: str
    tools: list[dict[str, Any]] = Field(description="tools/list as the gateway shows it")
    catalog: dict[str, Any]


class ToolStats(BaseModel):
    tool: str
    calls: int
    errors: int
    p50Ms: float | None


class DayStats(BaseModel):
    date: str
    calls: int
    errors: int


class ServerAnalytics(BaseModel):
    serverId: str
    days: int
    totalRequests: int
    errors: int
    errorRate: float
    p50Ms: float | None
    p95Ms: float | None
    requestBytes: int
    responseBytes: int
    byTool: list[ToolStats]
    byDay: list[DayStats]


class LogEntry(BaseModel):
    id: int
    method: str
    tool: str | None
    status: str
    errorCode: int | None
    durationMs: float
    requestBytes: int
    responseBytes: int
    keyId: str | None
    sessionId: str | None
    createdAt: datetime


class LogPage(BaseModel):
    logs: list[LogEntry]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class RuntimeLogLine(BaseModel):
    id: int
    stream: str = Field(description="stderr")
    line: str
    sessionId: str | None = Field(description="The gateway session whose process wrote it")
    createdAt: datetime


class RuntimeLogPage(BaseModel):
    logs: list[RuntimeLogLine]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
