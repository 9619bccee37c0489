"""Service-account keys of seed 003: roleKey, fullKey once, roles list, revoke; bound to one org."""

from __future__ import annotations

from datetime import timedelta

import httpx

from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from conduit.orgs.permissions import MATRIX
from tests.orgs.conftest import (
    API,
    assert_error,
    audit_actions,
    bearer,
    new_team,
    service_key,
    signed_in_again,
)

SERVICE_KEY_FIELDS = {
    "id",
    "name",
    "clientId",
    "fullKey",
    "createdAt",
    "expiresAt",
    "lastUsedAt",
    "roleKey",
    "roleName",
}


async def test_create_returns_the_full_key_once_with_viewer_by_default(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    response = await client.post(
        f"{team.path}/api-keys", json={"name": "automation-bot"}, headers=team.owner.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == SERVICE_KEY_FIELDS
    assert created["id"].startswith("key_")
    assert created["name"] == "automation-bot"
    assert (created["roleKey"], created["roleName"]) == ("viewer", "Viewer")
    assert created["fullKey"].startswith("cnd_live_")
    assert created["fullKey"].startswith(created["clientId"])
    assert len(created["clientId"]) < len(created["fullKey"])
    assert created["expiresAt"] is None
    assert created["createdAt"].endswith("Z")

    listed = await client.get(f"{team.path}/api-keys", headers=team.owner.headers)
    assert listed.status_code == 200
    [entry] = listed.json()
    assert entry["id"] == created["id"]
    assert entry["fullKey"] is None
    assert created["fullKey"] not in listed.text
    assert entry["lastUsedAt"] is None
    await client.get(team.path, headers=bearer(created["fullKey"]))
    [used] = (await client.get(f"{team.path}/api-keys", headers=team.owner.headers)).json()
    assert used["lastUsedAt"] is not None

    named = await service_key(client, team.owner.headers, team.id, role="developer")
    assert (named["roleKey"], named["roleName"]) == ("developer", "Developer")
    assert ("api_key.created", created["id"], "viewer") in [
        (a, m.get("api_key_id"), m.get("role")) for a, m in await audit_actions(runtime, team.id)
    ]


async def test_create_validates_role_name_and_expiry(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    for body, code in (
        ({"name": "x", "roleKey": "owner"}, "invalid_role"),
        ({"name": ""}, None),
        ({"name": "x", "expiresIn": 5}, None),
    ):
        assert_error(
            await client.post(f"{team.path}/api-keys", json=body, headers=team.owner.headers), 422, code
        )
    assert (await client.get(f"{team.path}/api-keys", headers=team.owner.headers)).json() == []


async def test_roles_lists_the_permission_matrix(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    key = await service_key(client, team.owner.headers, team.id, role="viewer")
    response = await client.get(f"{team.path}/api-keys/roles", headers=bearer(key["fullKey"]))
    assert response.status_code == 200, response.text
    roles = {r["roleKey"]: r for r in response.json()}
    assert set(roles) == set(MATRIX)
    for role, permissions in MATRIX.items():
        assert set(roles[role]["permissions"]) == permissions
        assert roles[role]["roleName"] == role.capitalize()
        assert roles[role]["description"]


async def test_a_developer_key_does_developer_things_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    dev = bearer((await service_key(client, team.owner.headers, team.id, role="developer"))["fullKey"])
    assert (await client.get(f"{team.path}/invitations", headers=dev)).status_code == 200
    assert (await client.get(f"{team.path}/api-keys", headers=dev)).status_code == 200
    assert (await client.get(f"{team.path}/members", headers=dev)).status_code == 200
    refused = [
        await client.patch(team.path, json={"name": "Hijacked"}, headers=dev),
        await client.post(f"{team.path}/api-keys", json={"name": "more", "roleKey": "admin"}, headers=dev),
        await client.post(
            f"{team.path}/invitations", json={"email": "x@example.com", "role": "admin"}, headers=dev
        ),
        await client.patch(f"{team.path}/members/{team.owner.id}", json={"role": "viewer"}, headers=dev),
        await client.delete(team.path, headers=dev),
    ]
    for response in refused:
        assert_error(response, 403, "permission_denied")
    org = (await client.get(team.path, headers=team.owner.headers)).json()
    assert (org["name"], org["memberCount"]) == ("Acme", 1)
    assert len((await client.get(f"{team.path}/api-keys", headers=team.owner.headers)).json()) == 1


async def test_a_revoked_key_stops_at_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    key = await service_key(client, team.owner.headers, team.id, role="admin")
    headers = bearer(key["fullKey"])
    assert (await client.get(team.path, headers=headers)).status_code == 200

    revoked = await client.delete(f"{team.path}/api-keys/{key['id']}", headers=team.owner.headers)
    assert revoked.status_code == 204, revoked.text
    assert_error(await client.get(team.path, headers=headers), 401, "invalid_api_key")
    assert_error(await client.get(team.path, headers={"X-API-Key": key["fullKey"]}), 401)
    assert (await client.get(f"{team.path}/api-keys", headers=team.owner.headers)).json() == []
    again = await client.delete(f"{team.path}/api-keys/{key['id']}", headers=team.owner.headers)
    assert_error(again, 404, "api_key_not_found")
    assert ("api_key.revoked", key["id"]) in [
        (a, m.get("api_key_id")) for a, m in await audit_actions(runtime, team.id)
    ]


async def test_a_key_with_an_expiry_stops_after_it(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    response = await client.post(
        f"{team.path}/api-keys", json={"name": "short", "expiresIn": 3600}, headers=team.owner.headers
    )
    key = response.json()
    assert key["expiresAt"] is not None
    assert (await client.get(team.path, headers=bearer(key["fullKey"]))).status_code == 200
    clock.advance(timedelta(hours=1, seconds=1))
    assert_error(await client.get(team.path, headers=bearer(key["fullKey"])), 401, "api_key_expired")


async def test_a_service_key_is_bound_to_its_organization(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    other = await new_team(client, runtime, name="Other")
    key = bearer((await service_key(client, team.owner.headers, team.id, role="admin"))["fullKey"])
    listed = await client.get(f"{API}/organizations", headers=key)
    assert [o["id"] for o in listed.json()] == [team.id]
    assert_error(await client.get(other.path, headers=key), 404, "organization_not_found")
    assert_error(await client.get(f"{other.path}/members", headers=key), 404)
    # Even an organization its creator belongs to: the key reaches only the one it was made in.
    [personal] = [
        o
        for o in (await client.get(f"{API}/organizations", headers=team.owner.headers)).json()
        if o["id"] != team.id
    ]
    assert_error(await client.get(f"{API}/organizations/{personal['id']}", headers=key), 404)


async def test_a_service_key_cannot_act_as_a_user(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    key = bearer((await service_key(client, team.owner.headers, team.id, role="admin"))["fullKey"])
    assert_error(await client.post("/api/keys", json={"name": "x"}, headers=key), 403, "account_required")
    assert_error(await client.post("/api/auth/cli-token", headers=key), 403, "account_required")
    owner = await signed_in_again(client, team.owner)
    assert (await client.get(f"{team.path}/api-keys", headers=owner.headers)).status_code == 200
