"""Seed 000's scan of a registered server, its public registry and its badges over HTTP. The
registry and the badges need no authentication and show only servers their owners made public."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from conduit.identity.auth import ClientDep, RuntimeDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import BadRequest, TooManyRequests, responses
from conduit.kit.ratelimit import TokenBuckets
from conduit.orgs.access import current_org_access
from conduit.orgs.service import OrgAccess
from conduit.registry import badges, service
from conduit.registry.schemas import RegistryPage, ScanOutcome, Scores, SearchResults, TrustReport
from conduit.scanning.models import COMPLETE

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=100, description="At most 100")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
CACHE_CONTROL = "public, max-age=3600"
# The badge is an image: nothing in it may run if someone opens its URL directly.
BADGE_HEADERS = {
    "Cache-Control": CACHE_CONTROL,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
SVG = "image/svg+xml"


def _public_rate_limit(request: Request, runtime: RuntimeDep, client: ClientDep) -> None:
    """The public registry answers anyone: `registry_rate_limit` requests per minute per IP
    (per process), then 429 with `Retry-After`."""
    limit = runtime.settings.registry_rate_limit
    if not limit:
        return
    buckets = getattr(request.app.state, "registry_buckets", None)
    if buckets is None:
        buckets = request.app.state.registry_buckets = TokenBuckets()
    wait = buckets.take(client.ip or "unknown", limit)
    if wait is not None:
        raise TooManyRequests(f"More than {limit} registry requests a minute; slow down", retry_after=wait)


PublicRateLimit = [Depends(_public_rate_limit)]
_BADGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The badge", "content": {SVG: {"schema": {"type": "string"}}}},
    304: {"description": "Not modified: the `ETag` sent in `If-None-Match` is current"},
    **responses(400, 404, 422),
}


@router.post(
    "/api/servers/{slug}/scan",
    tags=["Scanning"],
    summary="Trigger a trust scan for a server",
    response_model=ScanOutcome,
    responses=responses(401, 403, 404, 422, 429),
)
async def scan_server(
    slug: str,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, current_org_access("scans:run")],
) -> ScanOutcome:
    """Scan the server now and answer when the scan is done (typically seconds; at most two
    minutes). The score is kept on the server (`trust_score`, `trust_grade`) and in its history.

    A server that cannot be reached (down, refusing, timing out) is still a 200: `scores` and
    `findingsCount` are null and `error` says what went wrong; the previous score stays. Such an
    attempt counts against the plan's monthly scans like any other (429 when none are left,
    before anything is attempted). 404 for a slug not in your organization."""
    row = await service.scan_registered_server(
        session, runtime, access.org, access.principal.account_id, slug
    )
    access.audit(session, "server.scanned", client.ip, server_id=row.server_id, scan_id=row.id)
    if row.status != COMPLETE:
        return ScanOutcome(scores=None, findingsCount=None, error=row.error or "The scan failed")
    scores = Scores(
        total=row.overall_score or 0, grade=row.letter_grade or "F", breakdown=service.breakdown_of(row)
    )
    return ScanOutcome(scores=scores, findingsCount=row.finding_count, error=None)


@router.get(
    "/api/registry",
    dependencies=PublicRateLimit,
    tags=["Public registry"],
    summary="List public servers",
    response_model=RegistryPage,
    responses=responses(400, 422, 429),
)
async def list_public_servers(
    session: SessionDep,
    runtime: RuntimeDep,
    grade: Annotated[str | None, Query(max_length=8, description="A, B, C, D or F")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
    sort: Annotated[
        str, Query(max_length=16, description="score (best first), name, or recent (latest scanned first)")
    ] = "score",
) -> RegistryPage:
    """Servers their owners made public. No authentication."""
    rows, total = await service.public_page(
        session, grade=service.check_grade(grade), sort=service.check_sort(sort), limit=limit, offset=offset
    )
    return RegistryPage(
        servers=[service.public_view(runtime, row.server, row.last_scanned_at) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/api/registry/search",
    dependencies=PublicRateLimit,
    tags=["Public registry"],
    summary="Search public servers by name or description",
    response_model=SearchResults,
    responses=responses(400, 422, 429),
)
async def search_public_servers(
    session: SessionDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words, all of which must match")],
    limit: Limit = 20,
    offset: Offset = 0,
) -> SearchResults:
    """Every word of `q` in the name or the description, case-insensitively; best score first.
    `total` counts every match. No authentication."""
    rows, total = await service.search(session, service.search_terms(q), limit=limit, offset=offset)
    return SearchResults(
        servers=[service.public_view(runtime, row.server, row.last_scanned_at) for row in rows], total=total
    )


@router.get(
    "/api/registry/{serverId}",
    dependencies=PublicRateLimit,
    tags=["Public registry"],
    summary="Get the full trust report of a public server",
    response_model=TrustReport,
    responses=responses(404, 422, 429),
)
async def trust_report(serverId: str, session: SessionDep, runtime: RuntimeDep) -> TrustReport:
    """The server, its latest complete scan, that scan's findings (without their evidence, which
    may quote the server's internals) and its score history. A server that is not public is a
    404, as is an id that does not exist. No authentication."""
    return await service.trust_report(session, runtime, serverId)


@router.get(
    "/api/badges/{serverId}",
    tags=["Badges"],
    summary="Get the trust score badge as SVG",
    response_class=Response,
    responses=_BADGE_RESPONSES,
)
async def badge(
    serverId: str,
    session: SessionDep,
    style: Annotated[str, Query(max_length=16, description="standard, compact or detailed")] = "standard",
    if_none_match: Annotated[str | None, Header(max_length=2048)] = None,
) -> Response:
    """The grade and score in the grade's colour ("not scanned" in grey before the first scan).
    Cached for an hour (`Cache-Control: public, max-age=3600`) with a strong `ETag`; send it
    back in `If-None-Match` for a 304. A server that is not public is a 404, like an id that
    does not exist: the badge says nothing the registry would not. No authentication."""
    if style not in badges.STYLES:
        raise BadRequest("style is one of standard, compact, detailed", code="invalid_style")
    server = await service.public_server(session, serverId)
    latest = await service.latest_scan(session, server.id)
    facts = badges.BadgeFacts(
        name=server.name,
        grade=latest.letter_grade if latest else None,
        score=latest.overall_score if latest else None,
        findings=latest.finding_count if latest else None,
    )
    svg = badges.render(style, facts)
    tag = badges.etag(svg)
    headers = {**BADGE_HEADERS, "ETag": tag}
    if badges.matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(svg, media_type=SVG, headers=headers)


@router.head("/api/badges/{serverId}", include_in_schema=False)
async def badge_head(
    serverId: str,
    session: SessionDep,
    style: Annotated[str, Query(max_length=16)] = "standard",
    if_none_match: Annotated[str | None, Header(max_length=2048)] = None,
) -> Response:
    """The badge's headers (`ETag`, `Content-Length`, caching) without the SVG: what link
    checkers and image proxies ask before fetching."""
    full = await badge(serverId, session, style, if_none_match)
    return Response(status_code=full.status_code, headers=dict(full.headers))
