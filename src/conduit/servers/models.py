"""A registered upstream MCP server: reached by URL (streamable HTTP or SSE) or as a stdio command.

One table behind seed 000's servers, seed 001's configuration servers and seed 003's
mcp-servers. Environment values (often credentials) are stored sealed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base, JSONType
from conduit.kit.ids import new_id

TRANSPORTS = ("streamable_http", "sse", "stdio")


class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("org_id", "name"), UniqueConstraint("org_id", "slug"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("srv"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(24))
    upstream_url: Mapped[str | None] = mapped_column(String(2048))
    command: Mapped[str | None] = mapped_column(String(1024))
    args: Mapped[list[str] | None] = mapped_column(JSONType)
    env_sealed: Mapped[str | None] = mapped_column(Text)
    # HTTP headers for a URL upstream (its credentials, typically), sealed like the environment.
    headers_sealed: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), default="active")
    health_status: Mapped[str] = mapped_column(String(24), default="unknown")
    last_error: Mapped[str | None] = mapped_column(Text)
    trust_score: Mapped[int | None]
    trust_grade: Mapped[str | None] = mapped_column(String(2))
    public: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What discovery last found: server info, instructions, capabilities, resources, prompts.
    catalog: Mapped[dict[str, Any]] = mapped_column(default=dict)
    catalog_status: Mapped[str] = mapped_column(String(24), default="unknown")
    catalog_error: Mapped[str | None] = mapped_column(Text)
    discovered_at: Mapped[datetime | None]
    last_health_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Tool(Base):
    """One upstream tool: its definition as the upstream last served it, and the curation on top.

    `definition_hash` is a SHA-256 of the canonical JSON of the definition: a change upstream
    (a rug pull) is visible as a new hash. `pinned_hash` is the definition that was scanned or
    approved: while the upstream serves another one, the gateway holds the tool back.
    """

    __tablename__ = "tools"
    __table_args__ = (UniqueConstraint("server_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tool"))
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition_hash: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(default=0)
    is_enabled: Mapped[bool] = mapped_column(default=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    description_override: Mapped[str | None] = mapped_column(Text)
    instructions: Mapped[str | None] = mapped_column(Text)
    when_to_use: Mapped[str | None] = mapped_column(Text)
    when_not_to_use: Mapped[str | None] = mapped_column(Text)
    pinned_hash: Mapped[str | None] = mapped_column(String(64))
    pinned_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RequestLog(Base):
    """One relayed MCP message: written in batches by the gateway, read by /analytics and /logs."""

    __tablename__ = "request_logs"
    __table_args__ = (
        Index("ix_request_logs_server_id_created_at", "server_id", "created_at"),
        Index("ix_request_logs_org_id_created_at", "org_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(String(32))
    server_id: Mapped[str | None] = mapped_column(String(32))
    key_id: Mapped[str | None] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(128))
    tool: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # ok | error
    error_code: Mapped[int | None]
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    request_bytes: Mapped[int] = mapped_column(default=0)
    response_bytes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServerLog(Base):
    """A line a stdio server wrote to its stderr, captured by the gateway (`/deployment/logs`)."""

    __tablename__ = "server_logs"
    __table_args__ = (Index("ix_server_logs_server_id_id", "server_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # No foreign key: lines buffered for a server being deleted must not fail a whole batch.
    server_id: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(16), default="stderr")
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
