"""Request and response bodies of seed 004's scanner API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ScanStatus = Literal["queued", "running", "complete", "failed"]


class ScanMcpRequest(BaseModel):
    url: str = Field(
        min_length=1, max_length=2048, description="MCP server endpoint URL (http:// or https://)"
    )
    auth_token: str | None = Field(
        None,
        max_length=8192,
        description="Sent as `Authorization: Bearer` to the server; kept sealed until the scan ends",
    )


class ScanAccepted(BaseModel):
    scan_id: str
    status: ScanStatus
    estimated_seconds: int = Field(description="Until the result, counting the scans queued before this one")


class UploadAccepted(ScanAccepted):
    files_accepted: list[str]


class Finding(BaseModel):
    """Fields beyond severity, title and OWASP category depend on the plan (seed 004's tiers)."""

    model_config = {"extra": "allow"}

    id: str
    title: str
    severity: Literal["critical", "high", "medium", "low", "info"]
    owasp_category: str
    confidence: str | None = None
    monitor_candidate: bool | None = None
    description: str | None = None
    remediation: str | None = None
    evidence: str | None = None
    upgrade_message: str | None = Field(None, description="On the Free plan, instead of the details")


class ScanStatusResponse(BaseModel):
    """By status: `position` while queued, `progress` while running, the score, grade and
    findings once complete, `error` when failed."""

    model_config = {"extra": "allow"}

    scan_id: str
    status: ScanStatus
    scan_type: str | None = None
    position: int | None = None
    progress: str | None = None
    overall_score: int | None = None
    letter_grade: str | None = None
    breakdown: dict[str, int | None] | None = None
    partial: bool | None = None
    findings: list[Finding] | None = None
    error: str | None = None


class ScanSummary(BaseModel):
    scan_id: str
    scan_type: str
    status: ScanStatus
    overall_score: int | None
    letter_grade: str | None
    finding_count: int
    created_at: datetime


class ScanList(BaseModel):
    scans: list[ScanSummary]
    page: int
    per_page: int
    total: int


class ReportCreated(BaseModel):
    report_url: str
    expires_at: datetime


class AccountInfo(BaseModel):
    email: str | None
    tier: str = Field(description="The organization's plan")
    api_key: str | None = Field(description="The prefix of the key in use; keys are never shown again")
    scans_used: int
    scans_limit: int | None = Field(description="Scans per month; null: unlimited")
    resets_at: datetime
    webhook_url: str | None


class WebhookRequest(BaseModel):
    webhook_url: str | None = Field(
        None, max_length=2048, description="Where scan results are POSTed; null or empty removes the webhook"
    )


class WebhookSet(BaseModel):
    webhook_url: str | None
    webhook_secret: str | None = Field(
        description=(
            "Signs each delivery (Standard Webhooks headers, and `X-TrustTrace-Signature`: hex "
            "HMAC-SHA256 of the body keyed with this secret). Shown only when the webhook is created"
        )
    )
