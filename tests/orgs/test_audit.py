"""Every admin action in an organization leaves an audit row naming who did it, and with which key."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from conduit.identity.models import AuditEvent
from conduit.kit.runtime import Runtime
from tests.conftest import sign_up
from tests.orgs.conftest import accept, bearer, join, link_token, new_team, service_key, unique_email


async def audit_rows(runtime: Runtime, org_id: str) -> list[AuditEvent]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return list(rows.all())


@pytest.mark.parametrize("actor", ["session", "admin key"])
async def test_admin_actions_are_audited_with_their_actor(
    client: httpx.AsyncClient, runtime: Runtime, actor: str
) -> None:
    team = await new_team(client, runtime)
    member = await join(client, team.owner, team.id, "viewer")
    actor_key = await service_key(client, team.owner.headers, team.id, role="admin", name="actor")
    headers = team.owner.headers if actor == "session" else bearer(actor_key["fullKey"])
    before = len(await audit_rows(runtime, team.id))

    steps = [
        ("organization.updated", await client.patch(team.path, json={"name": "Renamed"}, headers=headers)),
        (
            "member.role_changed",
            await client.patch(
                f"{team.path}/members/{member.id}", json={"role": "developer"}, headers=headers
            ),
        ),
    ]
    invitee = await sign_up(client, unique_email("invitee"))
    created = await client.post(
        f"{team.path}/invitations", json={"email": invitee.email, "role": "viewer"}, headers=headers
    )
    steps.append(("invitation.created", created))
    resent = await client.post(f"{team.path}/invitations/{created.json()['id']}/resend", headers=headers)
    steps.append(("invitation.resent", resent))
    other = await client.post(
        f"{team.path}/invitations", json={"email": unique_email("other"), "role": "viewer"}, headers=headers
    )
    steps.append(("invitation.created", other))
    steps.append(
        (
            "invitation.revoked",
            await client.post(f"{team.path}/invitations/{other.json()['id']}/revoke", headers=headers),
        )
    )
    key = await client.post(f"{team.path}/api-keys", json={"name": "made"}, headers=headers)
    steps.append(("api_key.created", key))
    steps.append(
        ("api_key.revoked", await client.delete(f"{team.path}/api-keys/{key.json()['id']}", headers=headers))
    )
    steps.append(("member.removed", await client.delete(f"{team.path}/members/{member.id}", headers=headers)))
    for action, response in steps:
        assert response.status_code < 300, (action, response.text)
    accepted = await accept(client, invitee, created.json()["id"], link_token(resent.json()["inviteUrl"]))
    assert accepted.status_code == 200, accepted.text

    rows = (await audit_rows(runtime, team.id))[before:]
    assert [r.action for r in rows] == [action for action, _ in steps] + ["invitation.accepted"]
    expected_account = team.owner.id if actor == "session" else None
    expected_key = None if actor == "session" else actor_key["id"]
    for row in rows[:-1]:
        assert (row.account_id, row.actor_key_id, row.ip) == (expected_account, expected_key, "127.0.0.1"), (
            row.action
        )
    assert rows[-1].account_id == invitee.id
    by_action = {r.action: r.meta for r in rows}
    assert by_action["member.role_changed"] == {"member_id": member.id, "role": "developer"}
    assert by_action["member.removed"] == {"member_id": member.id}
    assert by_action["api_key.revoked"]["api_key_id"] == key.json()["id"]
    assert by_action["invitation.accepted"]["invitation_id"] == created.json()["id"]


async def test_refused_actions_leave_no_audit_row(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    viewer = await join(client, team.owner, team.id, "viewer")
    before = await audit_rows(runtime, team.id)
    await client.patch(team.path, json={"name": "Nope"}, headers=viewer.headers)
    await client.post(f"{team.path}/api-keys", json={"name": "nope"}, headers=viewer.headers)
    await client.patch(
        f"{team.path}/members/{team.owner.id}", json={"role": "viewer"}, headers=team.owner.headers
    )
    assert [r.id for r in await audit_rows(runtime, team.id)] == [r.id for r in before]
