"""Endpoints above the org root (`/auth/me`, `/cli/config`, `/cli/whoami`, `/dashboard/*`), and 401
for every endpoint of the organization router that needs a caller."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.routing import APIRoute

import conduit
from conduit.billing import service as billing
from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from conduit.orgs.routes import router
from tests.conftest import User
from tests.orgs.conftest import (
    API,
    assert_error,
    audit_actions,
    bearer,
    invite,
    join,
    new_team,
    service_key,
    signed_in_again,
    unique_email,
)

PUBLIC = {
    ("GET", "/api/v1/cli/config"),
    ("GET", "/api/v1/plans"),
    ("GET", "/api/v1/invitations/{invitationId}"),
    ("POST", "/api/auth/cli-verify"),
}
GUARDED = sorted(
    (method, route.path)
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
    if (method, route.path) not in PUBLIC
)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x_123", path)


def test_the_router_has_the_documented_organization_endpoints() -> None:
    documented = {
        ("GET", "/api/v1/organizations"),
        ("POST", "/api/v1/organizations"),
        ("GET", "/api/v1/organizations/{orgId}"),
        ("PATCH", "/api/v1/organizations/{orgId}"),
        ("DELETE", "/api/v1/organizations/{orgId}"),
        ("GET", "/api/v1/organizations/{orgId}/members"),
        ("PATCH", "/api/v1/organizations/{orgId}/members/{principalId}"),
        ("DELETE", "/api/v1/organizations/{orgId}/members/{principalId}"),
        ("GET", "/api/v1/organizations/{orgId}/invitations"),
        ("POST", "/api/v1/organizations/{orgId}/invitations"),
        ("POST", "/api/v1/organizations/{orgId}/invitations/{invitationId}/resend"),
        ("POST", "/api/v1/organizations/{orgId}/invitations/{invitationId}/revoke"),
        ("GET", "/api/v1/organizations/{orgId}/api-keys"),
        ("GET", "/api/v1/organizations/{orgId}/api-keys/roles"),
        ("POST", "/api/v1/organizations/{orgId}/api-keys"),
        ("DELETE", "/api/v1/organizations/{orgId}/api-keys/{keyId}"),
        ("POST", "/api/v1/organizations/{orgId}/authorization/check"),
        ("POST", "/api/v1/organizations/{orgId}/authorization/check-entities"),
        ("GET", "/api/v1/dashboard/stats"),
        ("GET", "/api/v1/dashboard/analytics"),
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/cli/config"),
        ("GET", "/api/v1/cli/whoami"),
        ("POST", "/api/keys"),
        ("GET", "/api/keys"),
        ("DELETE", "/api/keys/{id}"),
        ("POST", "/api/auth/cli-token"),
        ("POST", "/api/auth/cli-verify"),
        ("GET", "/api/auth/cli-whoami"),
        ("GET", "/api/auth/cli-status"),
    }
    served = {(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
    assert documented <= served, documented - served


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_every_guarded_endpoint_answers_401_without_a_caller(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {} if method in ("POST", "PATCH") else None
    assert_error(await client.request(method, concrete(path), json=body), 401)
    bad = {"Authorization": "Bearer cnd_live_0000000000000000000000000000000000000000"}
    assert_error(await client.request(method, concrete(path), json=body, headers=bad), 401)
    assert_error(
        await client.request(method, concrete(path), json=body, headers={"X-API-Key": "garbage"}), 401
    )


async def test_cli_config_needs_no_authentication(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.get(f"{API}/cli/config")
    assert response.status_code == 200, response.text
    base = runtime.settings.resolved_public_url
    assert response.json() == {
        "apiUrl": base,
        "gatewayUrl": f"{base}/s",
        "loginUrl": f"{base}/cli/login",
        "docsUrl": f"{base}/docs",
        "version": conduit.__version__,
        "keyPrefix": "cnd_live_",
    }
    assert (await client.get("/cli/login")).status_code == 200


async def test_auth_me_describes_the_user_and_their_organizations(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime, name="Acme")
    member = await join(client, team.owner, team.id, "developer")
    me = await client.get(f"{API}/auth/me", headers=member.headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["id"], body["email"], body["type"], body["timezone"]) == (
        member.id,
        member.email,
        "user",
        "UTC",
    )
    orgs = {o["id"]: o for o in body["organizations"]}
    assert orgs[team.id] == {
        "id": team.id,
        "name": "Acme",
        "slug": team.org["slug"],
        "role": "developer",
        "planTier": "team",
    }
    assert body["organizationId"] in orgs
    assert orgs[body["organizationId"]]["role"] == body["role"] == "admin"  # their personal organization

    key = await service_key(client, team.owner.headers, team.id, role="developer")
    as_key = (await client.get(f"{API}/auth/me", headers=bearer(key["fullKey"]))).json()
    assert (as_key["type"], as_key["email"], as_key["organizationId"], as_key["role"]) == (
        "service_account",
        None,
        team.id,
        "developer",
    )
    assert [o["id"] for o in as_key["organizations"]] == [team.id]


async def test_cli_whoami_identifies_session_and_key(
    client: httpx.AsyncClient, runtime: Runtime, user: User
) -> None:
    as_session = (await client.get(f"{API}/cli/whoami", headers=user.headers)).json()
    assert (as_session["type"], as_session["email"], as_session["userId"]) == ("user", user.email, user.id)
    assert (as_session["authMethod"], as_session["keyId"], as_session["role"]) == ("session", None, "admin")

    team = await new_team(client, runtime, name="Acme")
    key = await service_key(client, team.owner.headers, team.id, role="viewer")
    as_key = (await client.get(f"{API}/cli/whoami", headers={"X-API-Key": key["fullKey"]})).json()
    assert as_key == {
        "type": "service_account",
        "email": None,
        "userId": None,
        "organizationId": team.id,
        "organizationName": "Acme",
        "role": "viewer",
        "keyId": key["id"],
        "authMethod": "api_key",
    }


async def test_dashboard_counts_come_from_real_data(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime, plan="pro")
    await join(client, team.owner, team.id, "developer")
    await join(client, team.owner, team.id, "viewer", label="viewer")
    await invite(client, team.owner.headers, team.id, unique_email("pending"), "viewer")
    admin = bearer((await service_key(client, team.owner.headers, team.id, role="admin"))["fullKey"])
    await service_key(client, team.owner.headers, team.id, role="viewer")
    for config in ("dev", "prod"):
        assert (
            await client.post(f"{API}/configs", json={"config_name": config}, headers=admin)
        ).status_code == 201
    for server in ("time", "fetch", "git"):
        added = await client.post(
            f"{API}/configs/dev/servers",
            json={"server_name": server, "server_command": "uvx", "args": [f"mcp-server-{server}"]},
            headers=admin,
        )
        assert added.status_code == 201, added.text
    assert (
        await client.post(f"{API}/projects", json={"project_name": "agents"}, headers=admin)
    ).status_code == 201
    async with runtime.db.session() as session:
        await billing.consume(session, team.id, "pro", "gateway_calls", upgrade_url="u", amount=17)

    response = await client.get(f"{API}/dashboard/stats", headers=admin)
    assert response.status_code == 200, response.text
    stats = response.json()
    audit_rows = len(await audit_actions(runtime, team.id))
    assert stats == {
        "organizationId": team.id,
        "planTier": "pro",
        "members": 3,
        "pendingInvitations": 1,
        "apiKeys": 2,
        "servers": 3,
        "configs": 2,
        "projects": 1,
        "gatewayCallsToday": 17,
        "gatewayCallsLimit": billing.PLANS["pro"].gateway_calls_per_day,
        "auditEventsLast24h": audit_rows,
    }
    assert audit_rows >= 8  # org, 2 invitations + 2 acceptances + 1 invitation, 2 keys, configs...
    by_session = await client.get(
        f"{API}/dashboard/stats", params={"organizationId": team.id}, headers=team.owner.headers
    )
    assert by_session.json() == stats
    assert (await client.get(team.path, headers=admin)).json()["mcpServerCount"] == 3


async def test_dashboard_analytics_is_a_daily_series(client: httpx.AsyncClient, runtime: Runtime) -> None:
    clock.freeze(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    team = await new_team(client, runtime)
    await service_key(client, team.owner.headers, team.id)
    async with runtime.db.session() as session:
        await billing.consume(session, team.id, "team", "gateway_calls", upgrade_url="u", amount=5)
    clock.advance(timedelta(days=2))
    owner = await signed_in_again(client, team.owner)
    await service_key(client, owner.headers, team.id)
    await service_key(client, owner.headers, team.id)
    async with runtime.db.session() as session:
        await billing.consume(session, team.id, "team", "gateway_calls", upgrade_url="u", amount=9)

    response = await client.get(
        f"{API}/dashboard/analytics", params={"organizationId": team.id, "days": 7}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["organizationId"], body["days"]) == (team.id, 7)
    dates = [p["date"] for p in body["series"]["gatewayCalls"]]
    assert dates == [f"2026-03-{day:02d}" for day in range(6, 13)]
    calls = {p["date"]: p["value"] for p in body["series"]["gatewayCalls"]}
    assert (calls["2026-03-10"], calls["2026-03-11"], calls["2026-03-12"], sum(calls.values())) == (
        5,
        0,
        9,
        14,
    )
    created = {p["date"]: p["value"] for p in body["series"]["apiKeysCreated"]}
    assert (created["2026-03-10"], created["2026-03-12"], sum(created.values())) == (1, 2, 3)
    audit = {p["date"]: p["value"] for p in body["series"]["auditEvents"]}
    assert sum(audit.values()) == len(await audit_actions(runtime, team.id))

    for days in (0, 91):
        bad = await client.get(f"{API}/dashboard/analytics", params={"days": days}, headers=owner.headers)
        assert_error(bad, 422)


async def test_plans_are_listed_without_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/plans")
    assert response.status_code == 200, response.text
    plans = {p["key"]: p for p in response.json()}
    assert list(plans) == ["free", "pro", "team", "scale", "enterprise"]
    assert plans["free"]["limits"] == {
        "servers": 3,
        "keys": 5,
        "members": 3,
        "scans_per_month": 3,
        "gateway_calls_per_day": 1000,
        "gateway_requests_per_minute_per_key": 120,
    }
    assert set(plans["enterprise"]["limits"].values()) == {None}
    for key, plan in billing.PLANS.items():
        assert plans[key]["name"] == plan.name
        assert plans[key]["limits"]["keys"] == plan.keys
