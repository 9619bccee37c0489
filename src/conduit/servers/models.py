"""A registered upstream MCP server: reached by URL (streamable HTTP or SSE) or as a stdio command.

One table behind seed 000's servers, seed 001's configuration servers and seed 003's
mcp-servers. Environment values (often credentials) are stored sealed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
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
    status: Mapped[str] = mapped_column(String(24), default="active")
    health_status: Mapped[str] = mapped_column(String(24), default="unknown")
    last_error: Mapped[str | None] = mapped_column(Text)
    trust_score: Mapped[int | None]
    trust_grade: Mapped[str | None] = mapped_column(String(2))
    public: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
