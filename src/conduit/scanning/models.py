"""Scans: one row per scan request (a URL, uploaded files, or a registered server), its result
once complete, the uploaded files while the scan waits, and the PDF reports made from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base, JSONType
from conduit.kit.ids import new_id

QUEUED, RUNNING, COMPLETE, FAILED = "queued", "running", "complete", "failed"
SCAN_STATUSES = (QUEUED, RUNNING, COMPLETE, FAILED)
SCAN_TYPES = ("mcp", "upload", "server")


class Scan(Base):
    """A scan and, once `complete`, its result: the score, grade and breakdown, and the findings
    as the engine reported them (every field; the API filters them by plan when it answers).

    `hashes` are the tool-definition hashes the scan saw: the next scan of the same server
    compares against them (rug pulls). An MCP scan's `auth_token` is sealed and cleared when
    the scan ends.
    """

    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_org_id_created_at", "org_id", "created_at"),
        Index("ix_scans_server_id_created_at", "server_id", "created_at"),
        Index("ix_scans_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("scn"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    server_id: Mapped[str | None] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    scan_type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    progress: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    overall_score: Mapped[int | None]
    letter_grade: Mapped[str | None] = mapped_column(String(2))
    breakdown: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    capped_by: Mapped[str | None] = mapped_column(String(200))
    partial: Mapped[bool] = mapped_column(default=False)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    finding_count: Mapped[int] = mapped_column(default=0)
    severity_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    files_accepted: Mapped[list[str]] = mapped_column(JSONType, default=list)
    auth_token_sealed: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class ScanUpload(Base):
    """A file of an upload scan, kept until the scan has read it."""

    __tablename__ = "scan_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("upl"))
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class ScanReport(Base):
    """A PDF report of a complete scan, downloadable by its unguessable id until `expires_at`."""

    __tablename__ = "scan_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rpt"))
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
