"""Invitations: emailed single-use links valid for 7 days; accept, preview, resend, revoke."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx

from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from tests.conftest import sign_up
from tests.orgs.conftest import (
    API,
    Team,
    accept,
    assert_error,
    audit_actions,
    emailed_links,
    invite,
    link_token,
    new_team,
    signed_in_again,
    unique_email,
)

INVITATION_FIELDS = {
    "id",
    "organizationId",
    "organizationName",
    "email",
    "role",
    "status",
    "inviteUrl",
    "createdAt",
    "expiresAt",
    "lastSentAt",
    "acceptedAt",
    "acceptedByUserId",
    "revokedAt",
    "revokedReason",
    "lastSendError",
}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def pending_ids(client: httpx.AsyncClient, team: Team) -> list[str]:
    listed = await client.get(f"{team.path}/invitations", headers=team.owner.headers)
    assert listed.status_code == 200, listed.text
    return [i["id"] for i in listed.json()]


async def members(client: httpx.AsyncClient, team: Team) -> dict[str, str]:
    listed = await client.get(f"{team.path}/members", headers=team.owner.headers)
    return {m["email"]: m["role"] for m in listed.json()}


async def test_invite_emails_a_link_that_makes_the_invitee_a_member(
    client: httpx.AsyncClient, runtime: Runtime, worker: JobWorker
) -> None:
    team = await new_team(client, runtime, name="Acme")
    invitee = await sign_up(client, unique_email("teammate"))
    response = await client.post(
        f"{team.path}/invitations",
        json={"email": invitee.email, "role": "developer"},
        headers=team.owner.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == INVITATION_FIELDS
    assert created["id"].startswith("inv_")
    assert (created["organizationId"], created["organizationName"]) == (team.id, "Acme")
    assert (created["email"], created["role"], created["status"]) == (invitee.email, "developer", "pending")
    assert at(created["expiresAt"]) - at(created["createdAt"]) == timedelta(days=7)
    assert created["lastSentAt"] is not None
    assert [
        created[f] for f in ("acceptedAt", "acceptedByUserId", "revokedAt", "revokedReason", "lastSendError")
    ] == [None] * 5
    assert created["inviteUrl"].startswith(
        f"{runtime.settings.resolved_public_url}/invitations/{created['id']}?token="
    )
    assert await pending_ids(client, team) == [created["id"]]

    [(url, invitation_id, token)] = await emailed_links(runtime, worker, invitee.email)
    assert (url, invitation_id) == (created["inviteUrl"], created["id"])

    accepted = await accept(client, invitee, invitation_id, token)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["principalId"], accepted.json()["role"]) == (invitee.id, "developer")
    assert (await members(client, team))[invitee.email] == "developer"
    assert (await client.get(team.path, headers=invitee.headers)).json()["role"] == "developer"
    assert await pending_ids(client, team) == []

    preview = await client.get(f"{API}/invitations/{invitation_id}", params={"token": token})
    assert preview.json()["status"] == "accepted"
    assert preview.json()["acceptedByUserId"] == invitee.id
    actions = [(a, m.get("invitation_id")) for a, m in await audit_actions(runtime, team.id)]
    assert ("invitation.created", invitation_id) in actions
    assert ("invitation.accepted", invitation_id) in actions


async def test_a_link_works_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    invitee = await sign_up(client, unique_email("once"))
    invitation = await invite(client, team.owner.headers, team.id, invitee.email, "viewer")
    token = link_token(invitation["inviteUrl"])
    assert (await accept(client, invitee, invitation["id"], token)).status_code == 200
    assert_error(await accept(client, invitee, invitation["id"], token), 410, "invitation_accepted")


async def test_preview_needs_only_the_token_and_the_page_is_served(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime, name="Preview Org")
    invitation = await invite(client, team.owner.headers, team.id, unique_email("preview"), "viewer")
    token = link_token(invitation["inviteUrl"])

    preview = await client.get(f"{API}/invitations/{invitation['id']}", params={"token": token})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["organizationName"], body["role"], body["status"]) == ("Preview Org", "viewer", "pending")
    assert body["inviteUrl"] is None  # the link is not handed out again
    wrong = await client.get(f"{API}/invitations/{invitation['id']}", params={"token": "cnd_inv_wrong"})
    assert_error(wrong, 404, "invitation_not_found")
    assert_error(await client.get(f"{API}/invitations/{invitation['id']}"), 422)

    page = await client.get(f"/invitations/{invitation['id']}", params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/accept" in page.text


async def test_another_account_cannot_accept(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    invitee = await sign_up(client, unique_email("right"))
    intruder = await sign_up(client, unique_email("wrong"))
    invitation = await invite(client, team.owner.headers, team.id, invitee.email, "admin")
    token = link_token(invitation["inviteUrl"])

    assert_error(await accept(client, intruder, invitation["id"], token), 403, "invitation_email_mismatch")
    assert intruder.email not in await members(client, team)
    unauthenticated = await client.post(f"{API}/invitations/{invitation['id']}/accept", json={"token": token})
    assert_error(unauthenticated, 401)
    assert (await accept(client, invitee, invitation["id"], token)).status_code == 200


async def test_an_invitation_expires_after_seven_days(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    late = await sign_up(client, unique_email("late"))
    timely = await sign_up(client, unique_email("timely"))
    late_invitation = await invite(client, team.owner.headers, team.id, late.email, "viewer")
    timely_invitation = await invite(client, team.owner.headers, team.id, timely.email, "viewer")

    clock.advance(timedelta(days=6, hours=23))
    team.owner, late, timely = [await signed_in_again(client, u) for u in (team.owner, late, timely)]
    assert (
        await accept(client, timely, timely_invitation["id"], link_token(timely_invitation["inviteUrl"]))
    ).status_code == 200
    clock.advance(timedelta(days=1, hours=1))
    team.owner, late = [await signed_in_again(client, u) for u in (team.owner, late)]
    expired = await accept(client, late, late_invitation["id"], link_token(late_invitation["inviteUrl"]))
    assert_error(expired, 410, "invitation_expired")
    assert await pending_ids(client, team) == []
    assert late.email not in await members(client, team)


async def test_a_revoked_invitation_cannot_be_accepted(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    invitee = await sign_up(client, unique_email("revoked"))
    invitation = await invite(client, team.owner.headers, team.id, invitee.email, "developer")

    revoked = await client.post(
        f"{team.path}/invitations/{invitation['id']}/revoke",
        json={"reason": "hired elsewhere"},
        headers=team.owner.headers,
    )
    assert revoked.status_code == 200, revoked.text
    body = revoked.json()
    assert (body["status"], body["revokedReason"]) == ("revoked", "hired elsewhere")
    assert body["revokedAt"] is not None
    assert await pending_ids(client, team) == []
    assert_error(
        await accept(client, invitee, invitation["id"], link_token(invitation["inviteUrl"])),
        410,
        "invitation_revoked",
    )
    again = await client.post(
        f"{team.path}/invitations/{invitation['id']}/revoke", headers=team.owner.headers
    )
    assert_error(again, 410, "invitation_revoked")
    assert_error(
        await client.post(f"{team.path}/invitations/{invitation['id']}/resend", headers=team.owner.headers),
        410,
    )
    assert ("invitation.revoked", "hired elsewhere") in [
        (a, m.get("reason")) for a, m in await audit_actions(runtime, team.id)
    ]

    # Revoking without a body works too, and the same email may be invited again.
    reinvited = await invite(client, team.owner.headers, team.id, invitee.email, "viewer")
    plain = await client.post(f"{team.path}/invitations/{reinvited['id']}/revoke", headers=team.owner.headers)
    assert plain.status_code == 200, plain.text
    assert plain.json()["revokedReason"] is None


async def test_resend_replaces_the_link_and_restarts_the_expiry(
    client: httpx.AsyncClient, runtime: Runtime, worker: JobWorker
) -> None:
    team = await new_team(client, runtime)
    invitee = await sign_up(client, unique_email("resend"))
    invitation = await invite(client, team.owner.headers, team.id, invitee.email, "developer")
    [(_, _, first_token)] = await emailed_links(runtime, worker, invitee.email)

    clock.advance(timedelta(days=5))
    team.owner, invitee = [await signed_in_again(client, u) for u in (team.owner, invitee)]
    resent = await client.post(
        f"{team.path}/invitations/{invitation['id']}/resend", headers=team.owner.headers
    )
    assert resent.status_code == 200, resent.text
    body = resent.json()
    assert at(body["expiresAt"]) - at(invitation["expiresAt"]) >= timedelta(days=5)
    assert at(body["lastSentAt"]) > at(invitation["lastSentAt"])
    links = await emailed_links(runtime, worker, invitee.email)
    assert len(links) == 2
    new_token = links[-1][2]
    assert links[-1][0] == body["inviteUrl"]
    assert new_token != first_token

    assert_error(await accept(client, invitee, invitation["id"], first_token), 404, "invitation_not_found")
    preview = await client.get(f"{API}/invitations/{invitation['id']}", params={"token": first_token})
    assert_error(preview, 404)
    clock.advance(timedelta(days=5))  # 10 days after the first email, 5 after the second
    team.owner, invitee = [await signed_in_again(client, u) for u in (team.owner, invitee)]
    accepted = await accept(client, invitee, invitation["id"], new_token)
    assert accepted.status_code == 200, accepted.text
    assert_error(
        await client.post(f"{team.path}/invitations/{invitation['id']}/resend", headers=team.owner.headers),
        410,
    )
    assert "invitation.resent" in [a for a, _ in await audit_actions(runtime, team.id)]


async def test_only_the_newest_link_is_mailed_when_resent_before_delivery(
    client: httpx.AsyncClient, runtime: Runtime, worker: JobWorker
) -> None:
    team = await new_team(client, runtime)
    address = unique_email("quick")
    invitation = await invite(client, team.owner.headers, team.id, address, "viewer")
    resent = await client.post(
        f"{team.path}/invitations/{invitation['id']}/resend", headers=team.owner.headers
    )
    links = await emailed_links(runtime, worker, address)
    assert [url for url, _, _ in links] == [resent.json()["inviteUrl"]]


async def test_an_expired_invitation_can_be_resent(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    invitee = await sign_up(client, unique_email("expired"))
    invitation = await invite(client, team.owner.headers, team.id, invitee.email, "viewer")
    clock.advance(timedelta(days=8))
    team.owner, invitee = [await signed_in_again(client, u) for u in (team.owner, invitee)]
    resent = await client.post(
        f"{team.path}/invitations/{invitation['id']}/resend", headers=team.owner.headers
    )
    assert resent.status_code == 200, resent.text
    assert resent.json()["status"] == "pending"
    assert (
        await accept(client, invitee, invitation["id"], link_token(resent.json()["inviteUrl"]))
    ).status_code == 200


async def test_no_duplicate_invitations_or_members(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    address = unique_email("dup")
    await invite(client, team.owner.headers, team.id, address, "viewer")
    twice = await client.post(
        f"{team.path}/invitations",
        json={"email": address.upper(), "role": "admin"},
        headers=team.owner.headers,
    )
    assert_error(twice, 409, "already_invited")
    member = await client.post(
        f"{team.path}/invitations",
        json={"email": team.owner.email, "role": "viewer"},
        headers=team.owner.headers,
    )
    assert_error(member, 409, "already_member")
    assert len(await pending_ids(client, team)) == 1


async def test_invitation_input_is_validated(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    bad_role = await client.post(
        f"{team.path}/invitations",
        json={"email": unique_email(), "role": "owner"},
        headers=team.owner.headers,
    )
    assert_error(bad_role, 422, "invalid_role")
    bad_email = await client.post(
        f"{team.path}/invitations",
        json={"email": "not-an-email", "role": "viewer"},
        headers=team.owner.headers,
    )
    assert_error(bad_email, 422)
    missing = await client.post(f"{team.path}/invitations/inv_nope/resend", headers=team.owner.headers)
    assert_error(missing, 404, "invitation_not_found")
    assert await pending_ids(client, team) == []


async def test_inviting_one_email_twice_at_once_makes_one_invitation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    address = unique_email("twice")
    results = await asyncio.gather(
        *(
            client.post(
                f"{team.path}/invitations",
                json={"email": address, "role": "viewer"},
                headers=team.owner.headers,
            )
            for _ in range(3)
        )
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409], [r.text for r in results]
    assert len(await pending_ids(client, team)) == 1
