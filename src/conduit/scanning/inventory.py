"""What a scan looked at, as plain data: servers with their instructions, tools, prompts,
resources and templates; transport facts from probing a URL; launch commands from client
configs or the command line; uploaded files. Built by `collect` (live) or `files` (uploads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class Tool:
    name: str
    description: str = ""
    title: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Tool:
        schema = raw.get("inputSchema", raw.get("input_schema", raw.get("parameters")))
        output = raw.get("outputSchema")
        return cls(
            name=_text(raw.get("name")),
            description=_text(raw.get("description")),
            title=_text(raw.get("title")) or _text(_dict(raw.get("annotations")).get("title")),
            input_schema=_dict(schema),
            output_schema=output if isinstance(output, dict) else None,
            annotations=_dict(raw.get("annotations")),
            raw=raw,
        )


@dataclass
class Prompt:
    name: str
    description: str = ""
    arguments: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Prompt:
        arguments = raw.get("arguments")
        return cls(
            name=_text(raw.get("name")),
            description=_text(raw.get("description")),
            arguments=[a for a in arguments if isinstance(a, dict)] if isinstance(arguments, list) else [],
            raw=raw,
        )


@dataclass
class Resource:
    uri: str
    name: str = ""
    description: str = ""
    mime_type: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Resource:
        return cls(
            uri=_text(raw.get("uri")),
            name=_text(raw.get("name")),
            description=_text(raw.get("description")),
            mime_type=_text(raw.get("mimeType")),
            raw=raw,
        )


@dataclass
class ResourceTemplate:
    uri_template: str
    name: str = ""
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ResourceTemplate:
        return cls(
            uri_template=_text(raw.get("uriTemplate")),
            name=_text(raw.get("name")),
            description=_text(raw.get("description")),
            raw=raw,
        )


@dataclass
class ServerInventory:
    """One MCP server's catalog as a client sees it after `initialize` and the listings."""

    name: str
    server_info: dict[str, Any] = field(default_factory=dict)
    instructions: str = ""
    protocol_version: str | None = None
    tools: list[Tool] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    templates: list[ResourceTemplate] = field(default_factory=list)
    source: str = ""  # "live" or the uploaded file it came from
    timings_ms: dict[str, float] = field(default_factory=dict)  # initialize, tools/list, ...

    @classmethod
    def from_listing(cls, name: str, listing: dict[str, Any], *, source: str = "") -> ServerInventory:
        """From a dump shaped like the MCP results: {tools, prompts, resources, resourceTemplates,
        instructions, serverInfo}."""
        info = _dict(listing.get("serverInfo"))
        return cls(
            name=name or _text(info.get("name")) or "server",
            server_info=info,
            instructions=_text(listing.get("instructions")),
            protocol_version=listing.get("protocolVersion")
            if isinstance(listing.get("protocolVersion"), str)
            else None,
            tools=[Tool.from_dict(t) for t in _list(listing.get("tools"))],
            prompts=[Prompt.from_dict(p) for p in _list(listing.get("prompts"))],
            resources=[Resource.from_dict(r) for r in _list(listing.get("resources"))],
            templates=[ResourceTemplate.from_dict(t) for t in _list(listing.get("resourceTemplates"))],
            source=source,
        )


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass
class TransportFacts:
    """What probing a URL showed, beyond MCP itself. None means "not observed"."""

    url: str
    transport: str  # streamable_http | sse
    scheme: str = "http"
    host: str = ""
    loopback: bool = False
    tls_version: str | None = None
    cert_error: str | None = None
    cert_expires_days: float | None = None
    authenticated_with: str | None = None  # None: we sent no credentials
    unauthenticated_status: int | None = None  # HTTP status of initialize without credentials
    www_authenticate: str | None = None
    protected_resource_metadata: dict[str, Any] | None = None
    foreign_origin_status: int | None = None  # status of initialize sent with a foreign Origin
    cors_allow_origin: str | None = None
    cors_allow_credentials: bool = False
    error_bodies: list[str] = field(default_factory=list)  # answers to malformed requests


@dataclass
class LaunchCommand:
    """A command a client config (or the command line) starts an MCP server with."""

    server: str
    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    location: str = ""  # e.g. mcpServers.github
    file: str | None = None


@dataclass
class RemoteEndpoint:
    """A URL a client config points an MCP server at, with the headers it sends."""

    server: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    location: str = ""
    file: str | None = None


@dataclass
class SourceFile:
    path: str
    text: str
    kind: str  # python | javascript | config | manifest | lockfile | text
    # Python: whether a function is decorated as an MCP tool, resource or prompt, as found when
    # the upload was parsed; None when nobody has parsed it. The code check reads only these.
    declares_handlers: bool | None = None


@dataclass
class Inventory:
    target: str
    kind: str  # url | stdio | files | server
    servers: list[ServerInventory] = field(default_factory=list)
    transport: TransportFacts | None = None
    launch_commands: list[LaunchCommand] = field(default_factory=list)
    remote_endpoints: list[RemoteEndpoint] = field(default_factory=list)
    files: list[SourceFile] = field(default_factory=list)
    partial: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def tool_count(self) -> int:
        return sum(len(s.tools) for s in self.servers)

    def prefix(self, server: ServerInventory) -> str:
        """How locations name a server: nothing when there is only one."""
        return "" if len(self.servers) <= 1 else f"servers[{server.name}]."
