"""Scans as a service: accepting them (quota, URL and file checks), running them as jobs or at
once for a registered server, storing results, the scan-completed webhook, and PDF reports.

A scan request is a `scans` row and its `scanning.run` job, written in the request's
transaction. The job collects the target (connect and enumerate, or read the uploaded files),
runs the offline engine, and stores the result; a target that cannot be reached is a `failed`
scan, not a job to retry. Findings are stored whole; `present_findings` filters them by plan.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing import service as billing
from conduit.kit.clock import utcnow
from conduit.kit.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from conduit.kit.http import is_public_address, parse_address, validate_target_url
from conduit.kit.jobs import JobContext, enqueue, registry
from conduit.kit.mcp.upstream import UpstreamSpec
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization
from conduit.scanning.collect import collect, spec_for_url
from conduit.scanning.engine import ScanResult, scan
from conduit.scanning.files import REJECTED_SUFFIXES, UploadedFile, accepts, inventory_from_files
from conduit.scanning.inventory import Inventory
from conduit.scanning.judge import Judge, JudgeConfig
from conduit.scanning.models import COMPLETE, FAILED, QUEUED, RUNNING, Scan, ScanReport, ScanUpload
from conduit.servers import service as servers
from conduit.servers.models import RequestLog, Server
from conduit.servers.service import upstream_spec
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import WebhookEndpoint

log = structlog.get_logger("conduit.scanning")

SCAN_JOB = "scanning.run"
SCAN_EVENT = "scan.completed"
SCAN_ENDPOINT_KIND = "scan"
SIGNATURE_HEADER = "X-TrustTrace-Signature"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_FILES = 200
CONNECT_TIMEOUT_SECONDS = 10.0
# Seed 004: "Maximum response size: 1MB" for a scanned URL, each answer of the server.
MAX_RESPONSE_BYTES = 1 << 20
SCAN_TIMEOUT_SECONDS = 120.0
RESOLVE_TIMEOUT_SECONDS = 5.0
REPORT_LIFETIME = timedelta(hours=24)
RUNTIME_WINDOW = timedelta(days=7)
# The seed's first estimates, until this installation has timed scans of its own.
DEFAULT_ESTIMATES = {"mcp": 60, "upload": 90, "server": 30}
SEVERITIES = ("critical", "high", "medium", "low", "info")

# Plans by what seed 004 lets them see and do: history and reports from "Developer" up (pro and
# above here), the scan webhook from Team up, HIPAA mappings on Enterprise.
DEVELOPER_PLANS = frozenset({"pro", "team", "scale", "enterprise"})
TEAM_PLANS = frozenset({"team", "scale", "enterprise"})
ENTERPRISE_PLANS = frozenset({"enterprise"})
FREE_FIELDS = ("id", "title", "severity", "owasp_category", "confidence", "monitor_candidate")
UPGRADE_MESSAGE = "Upgrade to see the description, evidence and remediation of this finding"


def upgrade_url(runtime: Runtime) -> str:
    return f"{runtime.settings.resolved_public_url}/api/v1/plans"


# --- accepting scans ------------------------------------------------------------------------------


def check_scan_url(runtime: Runtime, url: str) -> str:
    """An http(s) URL whose host is not private, loopback or reserved, unless the operator
    allows private targets (`CONDUIT_ALLOW_PRIVATE_TARGETS`)."""
    try:
        return validate_target_url(url.strip(), allow_private=runtime.settings.allow_private_targets)
    except Unprocessable as exc:
        raise BadRequest(exc.message, code=exc.code) from None


def check_upload_name(name: str) -> str:
    """The file's base name, or 400 for an executable or a type the scanner does not read."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    if not base or base in (".", ".."):
        raise BadRequest("Every uploaded file needs a file name", code="invalid_file")
    suffix = PurePosixPath(base).suffix.lower()
    if suffix in REJECTED_SUFFIXES:
        raise BadRequest(f"{base}: executable files are not accepted", code="executable_file")
    if not accepts(base):
        raise BadRequest(
            f"{base}: unsupported file type; accepted: .json .yaml .yml .txt .py .js .ts .toml and lockfiles",
            code="unsupported_file_type",
        )
    return base


class PrivateTarget(Exception):
    """The target's host name resolves to an address the operator does not let scans reach."""


async def check_resolved_target(runtime: Runtime, url: str) -> None:
    """Raise `PrivateTarget` when the URL's host name resolves to a private, loopback or reserved
    address and private targets are not allowed: the name is not the address that is dialled.
    A name that does not resolve now passes; its scan fails when it runs."""
    if runtime.settings.allow_private_targets:
        return
    host = urlsplit(url).hostname or ""
    if parse_address(host) is not None:
        return  # a literal address: check_scan_url has judged it
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, TimeoutError):
        return
    for info in infos:
        if not is_public_address(ipaddress.ip_address(str(info[4][0]).split("%")[0])):
            raise PrivateTarget(f"{host} resolves to a private, loopback or reserved address")


async def _charge(session: AsyncSession, runtime: Runtime, org: Organization) -> None:
    """One scan off the plan's monthly allowance, or 429 with when it resets."""
    await billing.consume(session, org.id, org.plan, "scans", upgrade_url=upgrade_url(runtime))


async def submit_url_scan(
    session: AsyncSession,
    runtime: Runtime,
    org: Organization,
    account_id: str | None,
    url: str,
    auth_token: str | None,
) -> Scan:
    url = check_scan_url(runtime, url)
    try:
        await check_resolved_target(runtime, url)
    except PrivateTarget as exc:
        raise BadRequest(str(exc), code="private_address_not_allowed") from None
    await _charge(session, runtime, org)
    scan_row = Scan(org_id=org.id, account_id=account_id, scan_type="mcp", target=url, status=QUEUED)
    session.add(scan_row)
    await session.flush()
    if auth_token:
        scan_row.auth_token_sealed = runtime.keyring.seal(auth_token, context=_token_context(scan_row.id))
    enqueue(session, SCAN_JOB, {"scan_id": scan_row.id})
    return scan_row


async def submit_upload_scan(
    session: AsyncSession,
    runtime: Runtime,
    org: Organization,
    account_id: str | None,
    files: Sequence[UploadedFile],
) -> Scan:
    if not files:
        raise BadRequest("Upload at least one file in the `files` field", code="no_files")
    if len(files) > MAX_UPLOAD_FILES:
        raise BadRequest(f"At most {MAX_UPLOAD_FILES} files per scan", code="too_many_files")
    names = [check_upload_name(file.name) for file in files]
    if sum(len(file.content) for file in files) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge("The upload exceeds 10 MB in total", code="payload_too_large")
    await _charge(session, runtime, org)
    scan_row = Scan(
        org_id=org.id,
        account_id=account_id,
        scan_type="upload",
        target=", ".join(names)[:2048],
        status=QUEUED,
        files_accepted=names,
    )
    session.add(scan_row)
    await session.flush()
    for name, file in zip(names, files, strict=True):
        session.add(ScanUpload(scan_id=scan_row.id, name=name, content=file.content))
    enqueue(session, SCAN_JOB, {"scan_id": scan_row.id})
    return scan_row


def _token_context(scan_id: str) -> str:
    return f"scan-auth-token:{scan_id}"


# --- reading scans --------------------------------------------------------------------------------


async def get_scan(session: AsyncSession, org_id: str, scan_id: str) -> Scan:
    scan_row = await session.get(Scan, scan_id)
    if scan_row is None or scan_row.org_id != org_id:
        raise NotFound("Scan not found", code="scan_not_found")
    return scan_row


async def queue_position(session: AsyncSession, scan_row: Scan) -> int:
    """1 for the next scan to run: queued scans of every organization run oldest first."""
    ahead = await session.scalar(
        select(func.count())
        .select_from(Scan)
        .where(Scan.status == QUEUED, Scan.created_at < scan_row.created_at)
    )
    return int(ahead or 0) + 1


async def estimated_seconds(session: AsyncSession, scan_row: Scan) -> int:
    """The mean duration of this installation's last scans of the kind, times the scans ahead."""
    recent = (
        select(Scan.duration_ms)
        .where(Scan.scan_type == scan_row.scan_type, Scan.status == COMPLETE, Scan.duration_ms.is_not(None))
        .order_by(Scan.completed_at.desc())
        .limit(20)
        .subquery()
    )
    mean_ms = await session.scalar(select(func.avg(recent.c.duration_ms)))
    each = (float(mean_ms) / 1000 + 1) if mean_ms is not None else DEFAULT_ESTIMATES[scan_row.scan_type]
    return max(1, math.ceil(each * await queue_position(session, scan_row)))


async def scans_page(
    session: AsyncSession, org_id: str, *, page: int, per_page: int, status: str | None
) -> tuple[list[Scan], int]:
    query = select(Scan).where(Scan.org_id == org_id)
    if status:
        query = query.where(Scan.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Scan.created_at.desc(), Scan.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return list(rows.all()), int(total or 0)


def can_see_details(plan: str) -> bool:
    return plan in DEVELOPER_PLANS


def require_plan(org: Organization, plans: frozenset[str], feature: str, runtime: Runtime) -> None:
    if org.plan not in plans:
        raise Forbidden(
            f"{feature} is not available on the {org.plan} plan",
            code="plan_required",
            upgrade_url=upgrade_url(runtime),
        )


def present_findings(findings: Sequence[Mapping[str, Any]], plan: str) -> list[dict[str, Any]]:
    """Findings as seed 004's tiers show them: severity, title and OWASP category for everyone;
    description, remediation, evidence and where it was found from Developer up (with an
    `upgrade_message` instead on Free); `hipaa_mapping` on Enterprise."""
    shown = []
    for finding in findings:
        if plan in DEVELOPER_PLANS:
            entry = {key: value for key, value in finding.items() if key != "hipaa_mapping"}
            if plan in ENTERPRISE_PLANS:
                entry["hipaa_mapping"] = finding.get("hipaa_mapping")
        else:
            entry = {key: finding.get(key) for key in FREE_FIELDS}
            entry["upgrade_message"] = UPGRADE_MESSAGE
        shown.append(entry)
    return shown


# --- running scans --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Work:
    scan_id: str
    scan_type: str
    target: str
    auth_token: str | None
    files: list[UploadedFile]


async def _progress_writer(runtime: Runtime, scan_id: str) -> Any:
    last = [0.0]

    async def say(message: str, *_: Any) -> None:
        now = asyncio.get_running_loop().time()
        if now - last[0] < 0.5:  # progress is for people polling, not a write per step
            return
        last[0] = now
        async with runtime.db.session() as session:
            row = await session.get(Scan, scan_id)
            if row is not None and row.status == RUNNING:
                row.progress = message[:200]

    return say


async def _inventory(runtime: Runtime, work: _Work, progress: Any) -> Inventory:
    if work.scan_type == "upload":
        return await asyncio.to_thread(inventory_from_files, work.files, target=work.target)
    # Again when it runs: what a name resolves to can change after the scan was accepted.
    await check_resolved_target(runtime, work.target)
    headers = {"Authorization": f"Bearer {work.auth_token}"} if work.auth_token else None
    spec = spec_for_url(work.target, headers=headers, max_message_bytes=MAX_RESPONSE_BYTES)
    # Dialled by address, each checked again: the name may answer differently now (rebinding).
    allow_private = runtime.settings.allow_private_targets
    return await collect(
        spec, timeout=CONNECT_TIMEOUT_SECONDS, progress=progress, allow_private=allow_private
    )


async def run_engine(
    runtime: Runtime,
    inventory: Inventory,
    *,
    previous_hashes: Mapping[str, Any] | None = None,
    runtime_score: int | None = None,
    progress: Any = None,
) -> ScanResult:
    return await scan(
        inventory,
        previous_hashes=previous_hashes or None,
        runtime=runtime_score,
        progress=progress,
        judge=configured_judge(),
    )


def configured_judge() -> Judge | None:
    """The LLM judge when the operator configured one (CONDUIT_SCANNER_JUDGE_URL, _MODEL,
    _API_KEY), the same one `conduit scan` uses; read at each scan. Off by default."""
    config = JudgeConfig.from_environment()
    return Judge(config) if config else None


def store_result(scan_row: Scan, result: ScanResult) -> None:
    findings = [finding.to_dict() for finding in result.findings]
    counts = {severity: 0 for severity in SEVERITIES}
    for finding in findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    scan_row.status = COMPLETE
    scan_row.progress = None
    scan_row.error = None
    scan_row.overall_score = result.score.total
    scan_row.letter_grade = result.score.grade
    scan_row.breakdown = dict(result.score.breakdown)
    scan_row.capped_by = result.score.capped_by
    scan_row.partial = result.partial
    scan_row.findings = findings
    scan_row.finding_count = len(findings)
    scan_row.severity_counts = counts
    scan_row.hashes = dict(result.hashes)
    scan_row.summary = {**result.summary, "errors": result.errors}
    scan_row.duration_ms = round(result.duration_ms)
    scan_row.completed_at = utcnow()
    scan_row.auth_token_sealed = None


def store_failure(scan_row: Scan, error: str) -> None:
    scan_row.status = FAILED
    scan_row.progress = None
    scan_row.error = error[:2000]
    scan_row.completed_at = utcnow()
    scan_row.auth_token_sealed = None


def failure_message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "Connection timeout: unable to reach MCP server"
    return f"Unable to scan the MCP server: {text}"


@registry.handler(SCAN_JOB, max_attempts=3, timeout_seconds=SCAN_TIMEOUT_SECONDS + 60)
async def _run_scan(ctx: JobContext) -> None:
    scan_id = str(ctx.payload["scan_id"])
    work = await _start(ctx.runtime, scan_id)
    if work is None:
        return
    progress = await _progress_writer(ctx.runtime, scan_id)
    result: ScanResult | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(SCAN_TIMEOUT_SECONDS):
            inventory = await _inventory(ctx.runtime, work, progress)
            result = await run_engine(ctx.runtime, inventory, progress=progress)
    except Exception as exc:  # the target's failure is the scan's result, not the job's
        error = failure_message(exc)
        log.info("scan_failed", scan_id=scan_id, error=error)
    row = await ctx.session.get(Scan, scan_id)
    if row is None:
        return
    if result is not None:
        store_result(row, result)
    else:
        store_failure(row, error or "The scan failed")
    for upload in (await ctx.session.scalars(select(ScanUpload).where(ScanUpload.scan_id == scan_id))).all():
        await ctx.session.delete(upload)
    await notify_completed(ctx.session, ctx.runtime, row)


async def _start(runtime: Runtime, scan_id: str) -> _Work | None:
    """Mark the scan running and read what it needs, in a short transaction of its own."""
    async with runtime.db.session() as session:
        row = await session.get(Scan, scan_id)
        if row is None or row.status in (COMPLETE, FAILED):
            return None
        row.status, row.started_at, row.progress = RUNNING, utcnow(), "Starting"
        token = (
            runtime.keyring.unseal(row.auth_token_sealed, context=_token_context(row.id))
            if row.auth_token_sealed
            else None
        )
        uploads = (await session.scalars(select(ScanUpload).where(ScanUpload.scan_id == scan_id))).all()
        return _Work(
            scan_id=row.id,
            scan_type=row.scan_type,
            target=row.target,
            auth_token=token,
            files=[UploadedFile(upload.name, upload.content) for upload in uploads],
        )


# --- registered servers (seed 000) ----------------------------------------------------------------


async def previous_hashes(session: AsyncSession, server_id: str) -> dict[str, Any]:
    hashes = await session.scalar(
        select(Scan.hashes)
        .where(Scan.server_id == server_id, Scan.status == COMPLETE)
        .order_by(Scan.created_at.desc())
        .limit(1)
    )
    return dict(hashes or {})


async def runtime_score(session: AsyncSession, server_id: str) -> int | None:
    """From the gateway's own traffic to the server over the last 7 days: 100 less the error
    rate in points, less up to 20 points for a median call slower than 1 s. None without
    traffic."""
    since = utcnow() - RUNTIME_WINDOW
    row = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((RequestLog.status == "error", 1), else_=0)),
                func.avg(RequestLog.duration_ms),
            ).where(RequestLog.server_id == server_id, RequestLog.created_at >= since)
        )
    ).one()
    total, errors, mean_ms = int(row[0] or 0), float(row[1] or 0), float(row[2] or 0)
    if total == 0:
        return None
    slowness = min(20.0, max(0.0, (mean_ms - 1000) / 1000 * 10))
    return max(0, round(100 - 100 * errors / total - slowness))


async def scan_server(
    session: AsyncSession, runtime: Runtime, server: Server, account_id: str | None
) -> Scan:
    """Scan a registered server now (synchronously) and keep its score on the server. The caller
    has ended its transaction: connecting takes seconds, and no write lock may be held meanwhile."""
    spec: UpstreamSpec = upstream_spec(runtime.keyring, server)
    server_id, org_id = server.id, server.org_id
    hashes = await previous_hashes(session, server_id)
    score_from_traffic = await runtime_score(session, server_id)
    await session.commit()
    started = utcnow()
    result: ScanResult | None = None
    error: str | None = None
    scanned_definitions: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(SCAN_TIMEOUT_SECONDS):
            inventory = await collect(spec, timeout=CONNECT_TIMEOUT_SECONDS)
            inventory.kind = "server"
            scanned_definitions = [tool.raw for listing in inventory.servers for tool in listing.tools]
            # The environment comes from Conduit's sealed store, not from a file in plain text:
            # judging its values as leaked credentials would mark every well-kept server down.
            for command in inventory.launch_commands:
                command.env = {}
            result = await run_engine(
                runtime, inventory, previous_hashes=hashes, runtime_score=score_from_traffic
            )
    except Exception as exc:
        error = failure_message(exc)
    if await session.get(Server, server_id) is None:
        raise NotFound("Server not found", code="server_not_found")  # deleted while being scanned
    row = Scan(
        org_id=org_id,
        account_id=account_id,
        server_id=server_id,
        scan_type="server",
        target=server.name,
        status=RUNNING,
        created_at=started,
        started_at=started,
    )
    session.add(row)
    if result is not None:
        store_result(row, result)
        current = await session.get(Server, server_id)
        if current is not None:
            current.trust_score, current.trust_grade = result.score.total, result.score.grade
            await _pin_scanned_tools(session, current, scanned_definitions)
    else:
        store_failure(row, error or "The scan failed")
    await session.flush()
    await notify_completed(session, runtime, row)
    return row


async def _pin_scanned_tools(
    session: AsyncSession, server: Server, definitions: list[dict[str, Any]]
) -> None:
    """The gateway serves the tools as this scan saw them: their definitions are stored and
    pinned, and one that changes upstream afterwards is held back until approved or re-scanned."""
    if not definitions:
        return
    await servers.upsert_tools(session, server, definitions)
    for tool in await servers.tools_of(session, server.id):
        servers.pin_tool(tool)


# --- the scan-completed webhook -------------------------------------------------------------------


def completed_payload(row: Scan) -> dict[str, Any]:
    payload: dict[str, Any] = {"scan_id": row.id, "status": row.status}
    if row.status == COMPLETE:
        counts = row.severity_counts or {}
        payload.update(
            overall_score=row.overall_score,
            letter_grade=row.letter_grade,
            findings_count={severity: int(counts.get(severity, 0)) for severity in SEVERITIES[:4]},
        )
    else:
        payload["error"] = row.error
    return payload


async def scan_endpoint(session: AsyncSession, org_id: str) -> WebhookEndpoint | None:
    return await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.org_id == org_id, WebhookEndpoint.kind == SCAN_ENDPOINT_KIND
        )
    )


async def notify_completed(session: AsyncSession, runtime: Runtime, row: Scan) -> None:
    """Queue the scan-completed event for the organization's webhook, in the caller's
    transaction; only while the organization's plan includes the webhook (Team and above)."""
    endpoint = await scan_endpoint(session, row.org_id)
    if endpoint is None:
        return
    org = await session.get(Organization, row.org_id)
    if org is None or org.plan not in TEAM_PLANS:
        return
    webhooks.enqueue_delivery(
        session,
        endpoint,
        event_type=SCAN_EVENT,
        payload=completed_payload(row),
        event_id=f"{row.id}.completed",
        attributes={"scan_id": row.id},
    )


def trusttrace_signature(secret: str, body: bytes) -> str:
    """Seed 004's `X-TrustTrace-Signature`: hex HMAC-SHA256 of the body. The key is the webhook's
    signing secret (shown once when the webhook is set), not an API key: Conduit keeps API keys
    only as hashes, so it could not sign with one."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@webhooks.header_signer(SCAN_ENDPOINT_KIND)
def _sign_scan_delivery(secret: str, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: trusttrace_signature(secret, body)}


async def set_account_webhook(
    session: AsyncSession, runtime: Runtime, org: Organization, url: str | None
) -> tuple[WebhookEndpoint | None, str | None]:
    """Point the organization's scan webhook at `url` (None removes it). Returns the endpoint
    and, when it was created, its signing secret, shown this once."""
    endpoint = await scan_endpoint(session, org.id)
    if not url:
        if endpoint is not None:
            await webhooks.delete_endpoint(session, endpoint)
        return None, None
    # An unusable URL is a 400 here, as seed 004 answers a bad scan URL.
    url = check_scan_url(runtime, url)
    if endpoint is not None:
        webhooks.update_endpoint(runtime, endpoint, url=url)
        if endpoint.status != "active":
            webhooks.enable_endpoint(endpoint)
        return endpoint, None
    created, secret = await webhooks.create_endpoint(
        session,
        runtime,
        org_id=org.id,
        url=url,
        kind=SCAN_ENDPOINT_KIND,
        description="Scan results (PUT /v1/account/webhook)",
    )
    return created, secret


# --- reports --------------------------------------------------------------------------------------


async def create_report(session: AsyncSession, row: Scan, pdf: bytes) -> ScanReport:
    report = ScanReport(scan_id=row.id, pdf=pdf, expires_at=utcnow() + REPORT_LIFETIME)
    session.add(report)
    await session.flush()
    return report


async def live_report(session: AsyncSession, report_id: str) -> ScanReport:
    report = await session.get(ScanReport, report_id)
    if report is None or report.expires_at <= utcnow():
        raise NotFound("Report not found or expired", code="report_not_found")
    return report


async def purge_reports(session: AsyncSession, now: datetime | None = None) -> int:
    rows = (await session.scalars(select(ScanReport).where(ScanReport.expires_at <= (now or utcnow())))).all()
    for report in rows:
        await session.delete(report)
    return len(rows)


@registry.handler("scanning.purge_reports", every=timedelta(hours=1))
async def _purge_reports(ctx: JobContext) -> None:
    await purge_reports(ctx.session)


STUCK_AFTER = timedelta(seconds=SCAN_TIMEOUT_SECONDS * 5)


async def fail_stuck_scans(session: AsyncSession, now: datetime | None = None) -> int:
    """Scans still `running` long after any attempt could have ended: their job died on every
    attempt (a crash, say). They are marked failed, so nobody polls them forever."""
    cutoff = (now or utcnow()) - STUCK_AFTER
    rows = (await session.scalars(select(Scan).where(Scan.status == RUNNING, Scan.started_at < cutoff))).all()
    for row in rows:
        store_failure(row, "The scan did not finish: the worker running it stopped")
    return len(rows)


@registry.handler("scanning.fail_stuck", every=timedelta(minutes=5))
async def _fail_stuck(ctx: JobContext) -> None:
    await fail_stuck_scans(ctx.session)
