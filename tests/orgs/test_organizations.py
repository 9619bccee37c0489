"""Seed 003's organization endpoints: list, create, get, update, delete, with their documented fields."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from conduit.kit.runtime import Runtime
from tests.conftest import User, sign_up
from tests.orgs.conftest import (
    API,
    assert_error,
    audit_actions,
    bearer,
    create_org,
    join,
    new_team,
    org_path,
    service_key,
)

ORG_FIELDS = {
    "id",
    "slug",
    "name",
    "planTier",
    "mcpServerCount",
    "memberCount",
    "createdOn",
    "publicMcpGuidesEnabled",
}


async def test_sign_up_creates_a_personal_organization(client: httpx.AsyncClient, user: User) -> None:
    listed = await client.get(f"{API}/organizations", headers=user.headers)
    assert listed.status_code == 200, listed.text
    [personal] = listed.json()
    assert personal["memberCount"] == 1
    assert personal["role"] == "admin"
    assert personal["planTier"] == "free"
    assert personal["name"] == user.email.split("@")[0]


async def test_create_returns_the_documented_fields(client: httpx.AsyncClient, user: User) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = await client.post(
        f"{API}/organizations", json={"name": "Acme", "slug": "acme"}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    org = response.json()
    assert set(org) >= ORG_FIELDS
    assert org["id"].startswith("org_")
    assert (org["slug"], org["name"], org["planTier"]) == ("acme", "Acme", "free")
    assert (org["mcpServerCount"], org["memberCount"], org["publicMcpGuidesEnabled"]) == (0, 1, True)
    assert org["createdOn"].endswith("Z")
    assert datetime.fromisoformat(org["createdOn"]) >= before
    assert org["role"] == "admin"

    fetched = await client.get(org_path(org["id"]), headers=user.headers)
    assert fetched.status_code == 200
    assert fetched.json() == org
    listed = await client.get(f"{API}/organizations", headers=user.headers)
    assert org["id"] in [o["id"] for o in listed.json()]


async def test_create_derives_a_slug_when_none_is_given(client: httpx.AsyncClient, user: User) -> None:
    first = await client.post(f"{API}/organizations", json={"name": "Big Team!"}, headers=user.headers)
    second = await client.post(f"{API}/organizations", json={"name": "Big Team!"}, headers=user.headers)
    assert first.status_code == second.status_code == 201, second.text
    assert first.json()["slug"] == "big-team"
    assert second.json()["slug"].startswith("big-team-")


async def test_create_refuses_a_taken_or_malformed_slug(client: httpx.AsyncClient, user: User) -> None:
    await create_org(client, user, slug="taken")
    other = await sign_up(client)
    taken = await client.post(
        f"{API}/organizations", json={"name": "X", "slug": "taken"}, headers=other.headers
    )
    assert_error(taken, 409, "slug_taken")
    for bad in ("Has Caps", "-dash", "dash-", "a_b"):
        malformed = await client.post(
            f"{API}/organizations", json={"name": "X", "slug": bad}, headers=user.headers
        )
        assert_error(malformed, 422, "invalid_slug")
    for body in ({}, {"name": ""}, {"name": "   "}):
        invalid = await client.post(f"{API}/organizations", json=body, headers=user.headers)
        assert_error(invalid, 422)


async def test_create_needs_a_user_account(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    key = await service_key(client, team.owner.headers, team.id, role="admin")
    response = await client.post(
        f"{API}/organizations", json={"name": "Bot Org"}, headers=bearer(key["fullKey"])
    )
    assert_error(response, 403, "account_required")
    assert_error(await client.post(f"{API}/organizations", json={"name": "Anon"}), 401)


async def test_update_changes_name_slug_and_guides(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    response = await client.patch(
        team.path,
        json={"name": "Acme Corp", "slug": "acme-corp", "publicMcpGuidesEnabled": False},
        headers=team.owner.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["slug"], updated["publicMcpGuidesEnabled"]) == (
        "Acme Corp",
        "acme-corp",
        False,
    )
    fetched = (await client.get(team.path, headers=team.owner.headers)).json()
    assert (fetched["name"], fetched["slug"], fetched["publicMcpGuidesEnabled"]) == (
        "Acme Corp",
        "acme-corp",
        False,
    )
    assert (
        "organization.updated",
        {"changes": {"name": "Acme Corp", "slug": "acme-corp", "publicMcpGuidesEnabled": False}},
    ) in [
        (action, {"changes": meta.get("changes")}) for action, meta in await audit_actions(runtime, team.id)
    ]


async def test_update_refuses_a_slug_in_use(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    other = await create_org(client, team.owner, slug="elsewhere")
    response = await client.patch(team.path, json={"slug": other["slug"]}, headers=team.owner.headers)
    assert_error(response, 409, "slug_taken")
    assert_error(await client.patch(team.path, json={"slug": "Bad Slug"}, headers=team.owner.headers), 422)
    assert_error(await client.patch(team.path, json={"name": "  "}, headers=team.owner.headers), 422)
    assert (await client.get(team.path, headers=team.owner.headers)).json()["slug"] == team.org["slug"]


async def test_delete_removes_the_organization_and_its_keys(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    key = await service_key(client, team.owner.headers, team.id, role="viewer")
    assert (await client.get(team.path, headers=bearer(key["fullKey"]))).status_code == 200

    response = await client.delete(team.path, headers=team.owner.headers)
    assert response.status_code == 204, response.text
    assert_error(await client.get(team.path, headers=team.owner.headers), 404, "organization_not_found")
    listed = await client.get(f"{API}/organizations", headers=team.owner.headers)
    assert team.id not in [o["id"] for o in listed.json()]
    assert_error(await client.get(f"{API}/cli/whoami", headers=bearer(key["fullKey"])), 401)
    assert "organization.deleted" in [action for action, _ in await audit_actions(runtime, team.id)]


async def test_a_personal_organization_is_deleted_only_with_its_account(
    client: httpx.AsyncClient, user: User
) -> None:
    [personal] = (await client.get(f"{API}/organizations", headers=user.headers)).json()
    assert_error(
        await client.delete(org_path(personal["id"]), headers=user.headers), 409, "personal_organization"
    )
    assert (await client.get(org_path(personal["id"]), headers=user.headers)).status_code == 200


async def test_member_count_and_list_follow_membership(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    member = await join(client, team.owner, team.id, "developer")
    assert (await client.get(team.path, headers=team.owner.headers)).json()["memberCount"] == 2
    seen_by_member = {
        o["id"]: o["role"] for o in (await client.get(f"{API}/organizations", headers=member.headers)).json()
    }
    assert seen_by_member[team.id] == "developer"
    assert len(seen_by_member) == 2  # their personal organization and the team


async def test_unknown_organization_is_404(client: httpx.AsyncClient, user: User) -> None:
    assert_error(
        await client.get(org_path("org_doesnotexist"), headers=user.headers), 404, "organization_not_found"
    )


async def test_two_organizations_claiming_one_slug_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await new_team(client, runtime)
    second = await new_team(client, runtime)
    results = await asyncio.gather(
        client.patch(first.path, json={"slug": "contested"}, headers=first.owner.headers),
        client.patch(second.path, json={"slug": "contested"}, headers=second.owner.headers),
    )
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    assert_error(next(r for r in results if r.status_code != 200), 409, "slug_taken")
