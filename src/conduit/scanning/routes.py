"""Seed 004's scanner API: submit a live or upload scan, poll it, list scans, PDF reports, the
account with its scan allowance, and the scan-completed webhook."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from conduit.billing import service as billing
from conduit.identity.auth import RuntimeDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import BadRequest, Conflict, PayloadTooLarge, responses
from conduit.orgs.access import current_org_access
from conduit.orgs.service import OrgAccess
from conduit.scanning import service
from conduit.scanning.files import UploadedFile
from conduit.scanning.models import COMPLETE, FAILED, QUEUED, RUNNING, SCAN_STATUSES, Scan
from conduit.scanning.report import render_report
from conduit.scanning.schemas import (
    AccountInfo,
    ReportCreated,
    ScanAccepted,
    ScanList,
    ScanMcpRequest,
    ScanStatusResponse,
    ScanSummary,
    UploadAccepted,
    WebhookRequest,
    WebhookSet,
)

router = APIRouter(tags=["Scanner"])
Reader = Annotated[OrgAccess, current_org_access("scans:read")]
Runner = Annotated[OrgAccess, current_org_access("scans:run")]
# Multipart framing on top of the 10 MB of files.
UPLOAD_OVERHEAD_BYTES = 256 * 1024

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Configs, dumps, manifests, lockfiles, source; 10 MB in all",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/v1/scan/mcp",
    status_code=202,
    summary="Submit MCP server scan",
    response_model=ScanAccepted,
    responses=responses(400, 401, 403, 422, 429),
)
async def submit_mcp_scan(
    body: ScanMcpRequest, session: SessionDep, runtime: RuntimeDep, access: Runner
) -> ScanAccepted:
    """Queue a scan of a live MCP server (streamable HTTP, or SSE for URLs ending in `/sse`). It
    connects, initializes and enumerates tools, prompts and resources; it never calls a tool.
    URLs in private ranges are refused unless the operator allows private targets."""
    row = await service.submit_url_scan(
        session, runtime, access.org, access.principal.account_id, body.url, body.auth_token
    )
    return ScanAccepted(
        scan_id=row.id, status="queued", estimated_seconds=await service.estimated_seconds(session, row)
    )


@router.post(
    "/v1/scan/upload",
    status_code=202,
    summary="Submit file upload scan",
    response_model=UploadAccepted,
    responses=responses(400, 401, 403, 413, 429),
    openapi_extra=_UPLOAD_BODY,
)
async def submit_upload_scan(
    request: Request, session: SessionDep, runtime: RuntimeDep, access: Runner
) -> UploadAccepted:
    """Queue a scan of MCP client configs, tool-list dumps, dependency manifests, lockfiles and
    server source. Executables and unknown types are refused (400); more than 10 MB in all, 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > service.MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD_BYTES:
        raise PayloadTooLarge("The upload exceeds 10 MB in total", code="payload_too_large")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest(
            "Send the files as multipart/form-data in the `files` field", code="multipart_required"
        )
    limited = Request(
        request.scope, _BodyLimit(request.receive, service.MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD_BYTES)
    )
    try:
        form = await limited.form(max_files=service.MAX_UPLOAD_FILES + 1)
    except PayloadTooLarge:
        raise
    except Exception as exc:  # a malformed multipart body
        raise BadRequest(f"The multipart body could not be read: {exc}", code="invalid_multipart") from None
    try:
        parts = [part for part in form.getlist("files") if isinstance(part, UploadFile)]
        files = []
        total = 0
        for part in parts:
            content = await part.read(service.MAX_UPLOAD_BYTES + 1 - total)
            total += len(content)
            if total > service.MAX_UPLOAD_BYTES:
                raise PayloadTooLarge("The upload exceeds 10 MB in total", code="payload_too_large")
            files.append(UploadedFile(part.filename or "", content))
    finally:
        await form.close()
    row = await service.submit_upload_scan(session, runtime, access.org, access.principal.account_id, files)
    return UploadAccepted(
        scan_id=row.id,
        status="queued",
        files_accepted=list(row.files_accepted),
        estimated_seconds=await service.estimated_seconds(session, row),
    )


class _BodyLimit:
    """The request's `receive`, refusing with 413 once the body passes `limit` bytes: a chunked
    upload (no Content-Length) is stopped there rather than spooled to disk whole."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive, self.limit, self.size = receive, limit, 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise PayloadTooLarge("The upload exceeds 10 MB in total", code="payload_too_large")
        return message


@router.get(
    "/v1/scan/{scan_id}",
    summary="Get scan results",
    response_model=ScanStatusResponse,
    response_model_exclude_unset=True,
    responses=responses(401, 403, 404),
)
async def get_scan(scan_id: str, session: SessionDep, access: Reader) -> dict[str, Any]:
    row = await service.get_scan(session, access.org.id, scan_id)
    body: dict[str, Any] = {"scan_id": row.id, "status": row.status, "scan_type": row.scan_type}
    if row.status == QUEUED:
        body["position"] = await service.queue_position(session, row)
    elif row.status == RUNNING:
        body["progress"] = row.progress or "Starting"
    elif row.status == COMPLETE:
        body.update(
            overall_score=row.overall_score,
            letter_grade=row.letter_grade,
            breakdown=row.breakdown,
            partial=row.partial,
            findings=service.present_findings(row.findings, access.org.plan),
        )
    elif row.status == FAILED:
        body["error"] = row.error
    return body


@router.get(
    "/v1/scans",
    summary="List scan history",
    response_model=ScanList,
    responses=responses(400, 401, 403),
)
async def list_scans(
    session: SessionDep,
    runtime: RuntimeDep,
    access: Reader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    status: Annotated[str | None, Query(description="queued, running, complete or failed")] = None,
) -> ScanList:
    """Newest first. Developer plan (pro here) or above."""
    service.require_plan(access.org, service.DEVELOPER_PLANS, "Scan history", runtime)
    if status is not None and status not in SCAN_STATUSES:
        raise BadRequest("status is one of queued, running, complete, failed", code="invalid_status")
    rows, total = await service.scans_page(
        session, access.org.id, page=page, per_page=per_page, status=status
    )
    return ScanList(scans=[_summary(row) for row in rows], page=page, per_page=per_page, total=total)


def _summary(row: Scan) -> ScanSummary:
    return ScanSummary(
        scan_id=row.id,
        scan_type=row.scan_type,
        status=row.status,  # type: ignore[arg-type]
        overall_score=row.overall_score,
        letter_grade=row.letter_grade,
        finding_count=row.finding_count,
        created_at=row.created_at,
    )


@router.post(
    "/v1/scan/{scan_id}/report",
    summary="Generate PDF report",
    response_model=ReportCreated,
    responses=responses(401, 403, 404, 409),
)
async def create_report(
    scan_id: str, session: SessionDep, runtime: RuntimeDep, access: Reader
) -> ReportCreated:
    """A PDF of a complete scan, at a link that works for 24 hours. Developer plan or above."""
    service.require_plan(access.org, service.DEVELOPER_PLANS, "PDF reports", runtime)
    row = await service.get_scan(session, access.org.id, scan_id)
    if row.status != COMPLETE:
        raise Conflict(
            f"The scan is {row.status}: reports are made of complete scans", code="scan_not_complete"
        )
    # Seconds of CPU for a scan with hundreds of findings: off the event loop, which serves
    # every other request (and the gateway) meanwhile.
    pdf = await asyncio.to_thread(
        render_report,
        scan_id=row.id,
        target=row.target,
        scan_type=row.scan_type,
        completed_at=row.completed_at,
        score=row.overall_score,
        grade=row.letter_grade,
        breakdown=row.breakdown,
        capped_by=row.capped_by,
        partial=row.partial,
        findings=row.findings,
    )
    report = await service.create_report(session, row, pdf)
    url = f"{runtime.settings.resolved_public_url}/v1/reports/{report.id}.pdf"
    return ReportCreated(report_url=url, expires_at=report.expires_at)


@router.get(
    "/v1/reports/{report_file}",
    summary="Download a PDF report",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **responses(404)},
)
async def download_report(report_file: str, session: SessionDep) -> Response:
    """The link `POST /v1/scan/{scan_id}/report` returned; no key needed until it expires."""
    report = await service.live_report(session, report_file.removesuffix(".pdf"))
    return Response(
        report.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="conduit-report-{report.scan_id}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get(
    "/v1/account", summary="Get account info", response_model=AccountInfo, responses=responses(401, 403)
)
async def account(session: SessionDep, access: Reader) -> AccountInfo:
    usage = await billing.usage(session, access.org.id, access.org.plan, "scans")
    endpoint = await service.scan_endpoint(session, access.org.id)
    principal = access.principal
    key = principal.api_key
    return AccountInfo(
        email=principal.account.email if principal.account else None,
        tier=access.org.plan,
        api_key=f"{key.prefix}..." if key else None,
        scans_used=usage.used,
        scans_limit=usage.limit,
        resets_at=usage.resets_at,
        webhook_url=endpoint.url if endpoint else None,
    )


@router.put(
    "/v1/account/webhook",
    summary="Set webhook URL",
    response_model=WebhookSet,
    responses=responses(400, 401, 403, 422),
)
async def set_webhook(
    body: WebhookRequest, session: SessionDep, runtime: RuntimeDep, access: Runner
) -> WebhookSet:
    """Team plan or above. Each scan that ends is POSTed there, signed (Standard Webhooks, and
    `X-TrustTrace-Signature` keyed with the webhook secret shown when it is created)."""
    service.require_plan(access.org, service.TEAM_PLANS, "The scan webhook", runtime)
    endpoint, secret = await service.set_account_webhook(session, runtime, access.org, body.webhook_url)
    return WebhookSet(webhook_url=endpoint.url if endpoint else None, webhook_secret=secret)
