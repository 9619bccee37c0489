"""Tenant isolation: whatever organization A's session or keys send at organization B's paths and
ids is a 404, and B is exactly as it was afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conduit.kit.runtime import Runtime
from tests.orgs.conftest import (
    API,
    Team,
    assert_error,
    audit_actions,
    bearer,
    invite,
    join,
    member_key,
    new_team,
    service_key,
    unique_email,
)


async def snapshot(
    client: httpx.AsyncClient, runtime: Runtime, team: Team, personal_key: str
) -> dict[str, Any]:
    """Everything B's owner can see of B: compared before and after A's attempts."""
    owner = team.owner.headers
    seen: dict[str, Any] = {}
    for name, path in (
        ("org", team.path),
        ("members", f"{team.path}/members"),
        ("invitations", f"{team.path}/invitations"),
        ("service_keys", f"{team.path}/api-keys"),
    ):
        response = await client.get(path, headers=owner)
        assert response.status_code == 200, response.text
        seen[name] = response.json()
    seen["personal_keys"] = (await client.get("/api/keys", headers=owner)).json()
    seen["audit"] = await audit_actions(runtime, team.id)
    for key in seen["service_keys"] + seen["personal_keys"]:
        key.pop("lastUsedAt", None)
        key.pop("last_used_at", None)
    assert (await client.get(f"{API}/cli/whoami", headers=bearer(personal_key))).status_code == 200
    return seen


@pytest.mark.parametrize("caller", ["session", "admin service key", "member key"])
async def test_organization_a_cannot_reach_organization_b(
    client: httpx.AsyncClient, runtime: Runtime, caller: str
) -> None:
    a = await new_team(client, runtime, name="Alpha")
    b = await new_team(client, runtime, name="Bravo")
    b_member = await join(client, b.owner, b.id, "developer")
    b_invitation = await invite(client, b.owner.headers, b.id, unique_email("b-invitee"), "viewer")
    b_service = await service_key(client, b.owner.headers, b.id, role="admin")
    b_personal = (await client.post("/api/keys", json={"name": "b laptop"}, headers=b.owner.headers)).json()
    before = await snapshot(client, runtime, b, b_personal["key"])

    headers = {
        "session": a.owner.headers,
        "admin service key": bearer(
            (await service_key(client, a.owner.headers, a.id, role="admin"))["fullKey"]
        ),
        "member key": bearer(await member_key(runtime, a.id, a.owner.id)),
    }[caller]
    stats = f"{API}/dashboard/stats?organizationId={b.id}"
    analytics = f"{API}/dashboard/analytics?organizationId={b.id}"
    entity_check = {"checks": [{"entityType": "organization", "entityId": b.id, "permission": "org:read"}]}
    probes: list[tuple[str, str, Any]] = [
        ("GET", b.path, None),
        ("PATCH", b.path, {"name": "Pwned", "slug": "pwned"}),
        ("DELETE", b.path, None),
        ("GET", f"{b.path}/members", None),
        ("PATCH", f"{b.path}/members/{b_member.id}", {"role": "admin"}),
        ("DELETE", f"{b.path}/members/{b_member.id}", None),
        ("DELETE", f"{b.path}/members/{b.owner.id}", None),
        ("GET", f"{b.path}/invitations", None),
        ("POST", f"{b.path}/invitations", {"email": "spy@example.com", "role": "admin"}),
        ("POST", f"{b.path}/invitations/{b_invitation['id']}/resend", None),
        ("POST", f"{b.path}/invitations/{b_invitation['id']}/revoke", {"reason": "x"}),
        ("GET", f"{b.path}/api-keys", None),
        ("GET", f"{b.path}/api-keys/roles", None),
        ("POST", f"{b.path}/api-keys", {"name": "backdoor", "roleKey": "admin"}),
        ("DELETE", f"{b.path}/api-keys/{b_service['id']}", None),
        ("POST", f"{b.path}/authorization/check", {"permissions": ["org:read"]}),
        ("POST", f"{b.path}/authorization/check-entities", entity_check),
        ("GET", stats, None),
        ("GET", analytics, None),
        ("DELETE", f"/api/keys/{b_service['id']}", None),
        ("DELETE", f"/api/keys/{b_personal['id']}", None),
        # B's ids under A's own root.
        ("PATCH", f"{a.path}/members/{b_member.id}", {"role": "viewer"}),
        ("DELETE", f"{a.path}/members/{b_member.id}", None),
        ("POST", f"{a.path}/invitations/{b_invitation['id']}/resend", None),
        ("POST", f"{a.path}/invitations/{b_invitation['id']}/revoke", None),
        ("DELETE", f"{a.path}/api-keys/{b_service['id']}", None),
    ]
    leaks = []
    for method, path, body in probes:
        response = await client.request(method, path, json=body, headers=headers)
        if response.status_code != 404:
            leaks.append(f"{method} {path}: {response.status_code} {response.text}")
        else:
            assert_error(response, 404)
    assert leaks == []

    assert await snapshot(client, runtime, b, b_personal["key"]) == before
    assert (await client.get(b.path, headers=bearer(b_service["fullKey"]))).status_code == 200

    # Lists and checks on A's side show nothing of B.
    listed = await client.get(f"{API}/organizations", headers=headers)
    assert b.id not in [o["id"] for o in listed.json()]
    key_ids = [k["id"] for k in (await client.get("/api/keys", headers=headers)).json()]
    assert b_service["id"] not in key_ids
    assert b_personal["id"] not in key_ids
    me = (await client.get(f"{API}/auth/me", headers=headers)).json()
    assert b.id not in [o["id"] for o in me["organizations"]]
    foreign = {
        "organization": b.id,
        "member": b_member.id,
        "invitation": b_invitation["id"],
        "api_key": b_service["id"],
    }
    checks = [{"entityType": t, "entityId": i, "permission": "org:read"} for t, i in foreign.items()]
    answered = await client.post(
        f"{a.path}/authorization/check-entities", json={"checks": checks}, headers=headers
    )
    assert answered.status_code == 200, answered.text
    assert [r["allowed"] for r in answered.json()["results"]] == [False] * 4


async def test_a_member_of_both_reaches_both_by_session_but_a_key_only_its_own(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    a = await new_team(client, runtime, name="Alpha")
    b = await new_team(client, runtime, name="Bravo")
    both = await join(client, a.owner, a.id, "admin")
    invitation = await invite(client, b.owner.headers, b.id, both.email, "viewer")
    token = invitation["inviteUrl"].split("token=")[1]
    accepted = await client.post(
        f"{API}/invitations/{invitation['id']}/accept", json={"token": token}, headers=both.headers
    )
    assert accepted.status_code == 200, accepted.text

    assert (await client.get(a.path, headers=both.headers)).json()["role"] == "admin"
    assert (await client.get(b.path, headers=both.headers)).json()["role"] == "viewer"
    key = bearer(await member_key(runtime, a.id, both.id))
    assert (await client.get(a.path, headers=key)).status_code == 200
    assert_error(await client.get(b.path, headers=key), 404, "organization_not_found")
