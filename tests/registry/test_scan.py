"""Seed 000's `POST /api/servers/{slug}/scan` against real MCP servers: the answer's exact
shape, the score kept on the server, an unreachable server, who may scan, and the plan's
monthly allowance."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from conduit.billing import service as billing
from conduit.identity.models import AuditEvent
from conduit.kit.runtime import Runtime
from conduit.scanning.models import Scan
from tests.mcp_servers import ServerProcess, free_port
from tests.orgs.conftest import assert_error, service_key
from tests.registry.support import BREAKDOWN_FIELDS, new_owner


async def scans_stored(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Scan)) or 0)


async def scan_audits(runtime: Runtime, org_id: str) -> list[AuditEvent]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.action == "server.scanned")
        )
        return list(rows.all())


async def test_a_poisoned_stdio_server_is_scanned_and_graded_f(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register_poisoned()
    body = await owner.scanned(server["slug"])

    assert set(body) == {"scores", "findingsCount", "error"}
    assert set(body["scores"]) == {"total", "grade", "breakdown"}
    assert set(body["scores"]["breakdown"]) == BREAKDOWN_FIELDS
    assert body["scores"]["grade"] == "F"
    assert body["scores"]["total"] <= 59  # a critical finding caps the grade at F
    assert body["scores"]["breakdown"]["runtime"] is None  # no gateway traffic yet
    assert body["findingsCount"] >= 2
    listed = (await client.get("/api/servers", headers=owner.headers)).json()
    assert (listed[0]["trust_score"], listed[0]["trust_grade"]) == (body["scores"]["total"], "F")
    [audited] = await scan_audits(runtime, owner.org_id)
    assert (audited.account_id, audited.meta["server_id"]) == (owner.user.id, server["id"])
    assert audited.meta["scan_id"].startswith("scn_")


async def test_an_http_server_is_scanned(
    client: httpx.AsyncClient, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Fixture", upstream_url=fixture_http.url)
    body = await owner.scanned(server["slug"])
    assert body["scores"]["grade"] in ("A", "B", "C", "D", "F")
    assert body["scores"]["breakdown"]["auth"] is not None  # a live transport was probed
    assert isinstance(body["findingsCount"], int)


async def test_an_unreachable_server_answers_200_with_the_error(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Down", upstream_url=f"http://127.0.0.1:{free_port()}/mcp")
    response = await owner.scan(server["slug"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scores"] is None
    assert body["findingsCount"] is None
    assert body["error"].startswith(("Unable to scan the MCP server", "Connection timeout"))
    listed = (await client.get("/api/servers", headers=owner.headers)).json()
    assert listed[0]["trust_score"] is None
    usage = await billing_usage(runtime, owner.org_id)
    assert usage == 1  # the attempt counts


async def billing_usage(runtime: Runtime, org_id: str) -> int:
    async with runtime.db.session() as session:
        return (await billing.usage(session, org_id, "free", "scans")).used


async def test_unknown_slugs_and_other_organizations_servers_are_404(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await new_owner(client, runtime)
    other = await new_owner(client, runtime)
    theirs = await other.register("Theirs", upstream_url="http://127.0.0.1:9/mcp")
    assert_error(await owner.scan("no-such-server"), 404, "server_not_found")
    assert_error(await owner.scan(theirs["slug"]), 404, "server_not_found")
    assert await scans_stored(runtime) == 0
    assert await billing_usage(runtime, owner.org_id) == 0  # a 404 costs nothing


async def test_scanning_needs_a_key_with_scans_run(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Mine", upstream_url="http://127.0.0.1:9/mcp")
    path = f"/api/servers/{server['slug']}/scan"
    assert_error(await client.post(path), 401)
    assert_error(await client.post(path, headers={"Authorization": "Bearer cnd_live_nope"}), 401)
    viewer = await service_key(client, owner.headers, owner.org_id, role="viewer")
    assert_error(await client.post(path, headers={"X-API-Key": viewer["fullKey"]}), 403)
    assert await scans_stored(runtime) == 0


async def test_scans_beyond_the_monthly_allowance_are_429(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await new_owner(client, runtime)  # free: 3 scans a month
    server = await owner.register("Down", upstream_url=f"http://127.0.0.1:{free_port()}/mcp")
    allowance = billing.PLANS["free"].scans_per_month
    assert allowance == 3
    for _ in range(allowance):
        assert (await owner.scan(server["slug"])).status_code == 200
    refused = await owner.scan(server["slug"])
    body = assert_error(refused, 429)
    assert (body["limit"], body["used"]) == (allowance, allowance)
    assert body["resets_at"]
    assert body["upgrade_url"].endswith("/api/v1/plans")
    assert int(refused.headers["Retry-After"]) > 0
    assert await scans_stored(runtime) == allowance  # refused before anything was attempted
