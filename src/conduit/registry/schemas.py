"""Bodies of seed 000's scan, registry and search endpoints. Field names follow the seed:
`findingsCount` and `latestScan` in camelCase, the server's and the scan's fields snake_case."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["critical", "high", "medium", "low", "info"]


class Breakdown(BaseModel):
    security: int | None
    compliance: int | None
    auth: int | None
    performance: int | None
    runtime: int | None = Field(description="From the gateway's traffic to the server; null without traffic")


class Scores(BaseModel):
    total: int
    grade: str
    breakdown: Breakdown


class ScanOutcome(BaseModel):
    """A completed scan: `scores`, `findingsCount`, `error` null. A server that could not be
    scanned: `scores` and `findingsCount` null, `error` says why."""

    scores: Scores | None
    findingsCount: int | None
    error: str | None


class PublicServer(BaseModel):
    """What the registry shows of a public server: never its URL, command, headers,
    environment or organization."""

    id: str
    name: str
    slug: str
    description: str | None
    transport: str
    health_status: str
    trust_score: int | None
    trust_grade: str | None
    last_scanned_at: datetime | None
    created_at: datetime
    badge_url: str


class RegistryPage(BaseModel):
    servers: list[PublicServer]
    total: int
    limit: int
    offset: int


class SearchResults(BaseModel):
    servers: list[PublicServer]
    total: int


class PublicScan(BaseModel):
    total_score: int
    grade: str
    breakdown: Breakdown
    findings_count: int
    severity_counts: dict[str, int]
    partial: bool = Field(description="Something could not be enumerated; a partial scan is never graded A")
    capped_by: str | None = Field(description="Why the grade is lower than the score alone would give")
    scanned_at: datetime


class PublicFinding(BaseModel):
    """A finding as the public sees it: what was found and how to fix it, without the evidence
    (the matched text may quote the server's URL, configuration or internals)."""

    id: str
    title: str
    severity: Severity
    category: str
    owasp_category: str
    owasp_mcp_category: str | None
    cwe: str | None
    confidence: str
    description: str
    remediation: str
    location: str


class HistoryEntry(BaseModel):
    total_score: int
    grade: str
    findings_count: int
    scanned_at: datetime


class TrustReport(BaseModel):
    server: PublicServer
    latestScan: PublicScan | None = Field(description="The latest complete scan; null if never scanned")
    findings: list[PublicFinding] = Field(description="Of the latest complete scan, most severe first")
    history: list[HistoryEntry] = Field(description="Complete scans, newest first (at most 100)")
