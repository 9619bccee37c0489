"""The registry's business: scanning a registered server on request (charged to the plan), and
reading public servers (list, search, trust report) and what their badges show.

Only servers whose owners set `public` are read here, and only through the `Public*` views:
nothing of the upstream's URL, command, headers, environment or the organization leaves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing import service as billing
from conduit.kit.errors import BadRequest, NotFound
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization
from conduit.registry.schemas import (
    Breakdown,
    HistoryEntry,
    PublicFinding,
    PublicScan,
    PublicServer,
    TrustReport,
)
from conduit.scanning import service as scanning
from conduit.scanning.models import COMPLETE, Scan
from conduit.servers.models import Server

GRADES = ("A", "B", "C", "D", "F")
SORTS = ("score", "name", "recent")
HISTORY_LIMIT = 100
MAX_SEARCH_TERMS = 10
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
BREAKDOWN_KEYS = ("security", "compliance", "auth", "performance", "runtime")
# What a public viewer may read of a finding, besides its `location`. Not `evidence` (it may
# quote the upstream URL, a redacted secret's name, an error page), nor `server`, `file`, `line`
# or `analyzer`.
PUBLIC_FINDING_FIELDS = (
    "id",
    "title",
    "severity",
    "category",
    "owasp_category",
    "owasp_mcp_category",
    "cwe",
    "confidence",
    "description",
    "remediation",
)

# A location naming an environment variable or a header ("command.env.GITHUB_TOKEN") says which
# credentials the owner configured: the public sees "command.env".
PRIVATE_LOCATION = re.compile(r"^(?P<public>(?:.*?\.)?(?:env|headers))\..*$", re.DOTALL)


# --- scanning a registered server ------------------------------------------------------------------


async def server_by_slug(session: AsyncSession, org_id: str, slug: str) -> Server:
    server = await session.scalar(select(Server).where(Server.org_id == org_id, Server.slug == slug))
    if server is None:
        raise NotFound("Server not found", code="server_not_found")
    return server


async def scan_registered_server(
    session: AsyncSession, runtime: Runtime, org: Organization, account_id: str | None, slug: str
) -> Scan:
    """One scan off the plan's monthly allowance (429 beyond it), then the scan itself. A scan
    that could not reach the server still counts, as a seed 004 scan that fails does: the
    allowance is spent when the scan is attempted."""
    server = await server_by_slug(session, org.id, slug)
    await billing.consume(session, org.id, org.plan, "scans", upgrade_url=scanning.upgrade_url(runtime))
    return await scanning.scan_server(session, runtime, server, account_id)


def breakdown_of(scan: Scan) -> Breakdown:
    values = scan.breakdown or {}
    return Breakdown(**{key: values.get(key) for key in BREAKDOWN_KEYS})


# --- reading the public registry -------------------------------------------------------------------


def check_grade(grade: str | None) -> str | None:
    if grade is None:
        return None
    letter = grade.strip().upper()
    if letter not in GRADES:
        raise BadRequest("grade is one of A, B, C, D, F", code="invalid_grade")
    return letter


def check_sort(sort: str) -> str:
    if sort not in SORTS:
        raise BadRequest("sort is one of score, name, recent", code="invalid_sort")
    return sort


def search_terms(q: str) -> list[str]:
    terms = q.lower().split()
    if not terms:
        raise BadRequest("q needs at least one word to search for", code="invalid_query")
    return terms[:MAX_SEARCH_TERMS]


def _last_scans() -> Any:
    """When each server's latest complete scan ended."""
    return (
        select(Scan.server_id, func.max(Scan.completed_at).label("last_scanned_at"))
        .where(Scan.server_id.is_not(None), Scan.status == COMPLETE)
        .group_by(Scan.server_id)
        .subquery()
    )


def _public(*where: ColumnElement[bool]) -> tuple[Select[Any], Any]:
    last = _last_scans()
    query = (
        select(Server, last.c.last_scanned_at)
        .outerjoin(last, last.c.server_id == Server.id)
        .where(Server.public, *where)
    )
    return query, last


def _ordered(query: Select[Any], last: Any, sort: str) -> Select[Any]:
    if sort == "name":
        return query.order_by(func.lower(Server.name), Server.id)
    if sort == "recent":
        return query.order_by(
            last.c.last_scanned_at.is_(None),
            last.c.last_scanned_at.desc(),
            Server.created_at.desc(),
            Server.id,
        )
    return query.order_by(
        Server.trust_score.is_(None), Server.trust_score.desc(), func.lower(Server.name), Server.id
    )


@dataclass(frozen=True)
class Listed:
    server: Server
    last_scanned_at: datetime | None


async def _page(
    session: AsyncSession, query: Select[Any], last: Any, *, sort: str, limit: int, offset: int
) -> tuple[list[Listed], int]:
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.execute(_ordered(query, last, sort).limit(limit).offset(offset))
    return [Listed(server, scanned) for server, scanned in rows.all()], int(total or 0)


async def public_page(
    session: AsyncSession, *, grade: str | None, sort: str, limit: int, offset: int
) -> tuple[list[Listed], int]:
    query, last = _public(*([Server.trust_grade == grade] if grade else []))
    return await _page(session, query, last, sort=sort, limit=limit, offset=offset)


async def search(
    session: AsyncSession, terms: Sequence[str], *, limit: int, offset: int
) -> tuple[list[Listed], int]:
    """Every term in the name or the description, case-insensitively; best score first."""
    matches = [
        or_(
            func.lower(Server.name).contains(term, autoescape=True),
            func.lower(func.coalesce(Server.description, "")).contains(term, autoescape=True),
        )
        for term in terms
    ]
    query, last = _public(*matches)
    return await _page(session, query, last, sort="score", limit=limit, offset=offset)


async def public_server(session: AsyncSession, server_id: str) -> Server:
    """The server if its owner made it public; any other id, existing or not, is the same 404."""
    server = await session.get(Server, server_id)
    if server is None or not server.public:
        raise NotFound("Server not found", code="server_not_found")
    return server


async def latest_scan(session: AsyncSession, server_id: str) -> Scan | None:
    scan: Scan | None = await session.scalar(
        select(Scan)
        .where(Scan.server_id == server_id, Scan.status == COMPLETE)
        .order_by(Scan.completed_at.desc(), Scan.id.desc())
        .limit(1)
    )
    return scan


async def history(session: AsyncSession, server_id: str) -> list[HistoryEntry]:
    rows = await session.execute(
        select(Scan.overall_score, Scan.letter_grade, Scan.finding_count, Scan.completed_at)
        .where(Scan.server_id == server_id, Scan.status == COMPLETE)
        .order_by(Scan.completed_at.desc(), Scan.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return [
        HistoryEntry(total_score=score or 0, grade=grade or "F", findings_count=count, scanned_at=at)
        for score, grade, count, at in rows.all()
    ]


def public_location(location: str | None) -> str:
    match = PRIVATE_LOCATION.match(location or "")
    return match.group("public") if match else location or ""


def public_findings(findings: Sequence[Mapping[str, Any]]) -> list[PublicFinding]:
    shown = [
        PublicFinding(
            **{field: finding.get(field) for field in PUBLIC_FINDING_FIELDS},
            location=public_location(finding.get("location")),
        )
        for finding in findings
    ]
    return sorted(shown, key=lambda f: SEVERITY_RANK.get(f.severity, len(SEVERITY_RANK)))


def public_scan(scan: Scan) -> PublicScan:
    assert scan.completed_at is not None
    return PublicScan(
        total_score=scan.overall_score or 0,
        grade=scan.letter_grade or "F",
        breakdown=breakdown_of(scan),
        findings_count=scan.finding_count,
        severity_counts={key: int(value) for key, value in (scan.severity_counts or {}).items()},
        partial=scan.partial,
        capped_by=scan.capped_by,
        scanned_at=scan.completed_at,
    )


def badge_url(runtime: Runtime, server_id: str) -> str:
    return f"{runtime.settings.resolved_public_url}/api/badges/{server_id}"


def public_view(runtime: Runtime, server: Server, last_scanned_at: datetime | None) -> PublicServer:
    return PublicServer(
        id=server.id,
        name=server.name,
        slug=server.slug,
        description=server.description,
        transport=server.transport,
        health_status=server.health_status,
        trust_score=server.trust_score,
        trust_grade=server.trust_grade,
        last_scanned_at=last_scanned_at,
        created_at=server.created_at,
        badge_url=badge_url(runtime, server.id),
    )


async def trust_report(session: AsyncSession, runtime: Runtime, server_id: str) -> TrustReport:
    server = await public_server(session, server_id)
    scan = await latest_scan(session, server.id)
    return TrustReport(
        server=public_view(runtime, server, scan.completed_at if scan else None),
        latestScan=public_scan(scan) if scan else None,
        findings=public_findings(scan.findings) if scan else [],
        history=await history(session, server.id),
    )
