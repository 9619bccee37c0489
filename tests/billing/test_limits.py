"""Count limits of a plan: creating beyond them is a 403 `plan_limit_reached`, at once and under
concurrency; the `/api/v1/plans` table is what is enforced."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from conduit.billing import service as billing
from conduit.kit.runtime import Runtime
from tests.conftest import User, sign_up
from tests.orgs.conftest import (
    API,
    accept,
    assert_error,
    invite,
    join,
    link_token,
    new_team,
    set_plan,
    unique_email,
)

FREE = billing.PLANS["free"]


def assert_plan_limit(response: httpx.Response, limit: int, used: int) -> dict[str, Any]:
    body = assert_error(response, 403, "plan_limit_reached")
    assert (body["limit"], body["used"]) == (limit, used)
    assert body["upgrade_url"].endswith("/api/v1/plans")
    return body


async def keys_of(client: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    listed = await client.get("/api/keys", headers=user.headers)
    assert listed.status_code == 200, listed.text
    result: list[dict[str, Any]] = listed.json()
    return result


async def test_the_free_plan_allows_five_keys(client: httpx.AsyncClient, user: User) -> None:
    assert FREE.keys == 5
    created = []
    for n in range(FREE.keys):
        response = await client.post("/api/keys", json={"name": f"key {n}"}, headers=user.headers)
        assert response.status_code == 201, response.text
        created.append(response.json())
    assert_plan_limit(
        await client.post("/api/keys", json={"name": "one too many"}, headers=user.headers), 5, 5
    )
    assert len(await keys_of(client, user)) == 5

    # A revoked key frees its place.
    await client.delete(f"/api/keys/{created[0]['id']}", headers=user.headers)
    assert (
        await client.post("/api/keys", json={"name": "replacement"}, headers=user.headers)
    ).status_code == 201


async def test_service_keys_and_cli_logins_count_toward_the_same_limit(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime, plan="free")
    for n in range(FREE.keys):
        response = await client.post(
            f"{team.path}/api-keys", json={"name": f"bot {n}"}, headers=team.owner.headers
        )
        assert response.status_code == 201, response.text
    refused = await client.post(f"{team.path}/api-keys", json={"name": "bot 6"}, headers=team.owner.headers)
    assert_plan_limit(refused, 5, 5)

    user = await sign_up(client)
    for n in range(FREE.keys):
        await client.post("/api/keys", json={"name": f"k{n}"}, headers=user.headers)
    token = (await client.post("/api/auth/cli-token", headers=user.headers)).json()["token"]
    assert_plan_limit(await client.post("/api/auth/cli-verify", json={"token": token}), 5, 5)
    # The refused exchange did not spend the token: after making room, it still works once.
    await client.delete(f"/api/keys/{(await keys_of(client, user))[0]['id']}", headers=user.headers)
    assert (await client.post("/api/auth/cli-verify", json={"token": token})).status_code == 200


async def test_concurrent_key_creation_stops_at_the_limit(client: httpx.AsyncClient, user: User) -> None:
    for n in range(FREE.keys - 1):
        await client.post("/api/keys", json={"name": f"key {n}"}, headers=user.headers)
    results = await asyncio.gather(
        *(client.post("/api/keys", json={"name": f"race {n}"}, headers=user.headers) for n in range(6))
    )
    assert sorted(r.status_code for r in results) == [201] + [403] * 5, [r.text for r in results]
    assert len(await keys_of(client, user)) == FREE.keys


async def test_the_member_limit_holds_at_invitation_and_at_acceptance(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert FREE.members == 3
    team = await new_team(client, runtime, plan="free")
    invitees = [await sign_up(client, unique_email(f"invitee{n}")) for n in range(3)]
    # Invitations do not count until accepted: three can be pending while there is one member.
    invitations = [await invite(client, team.owner.headers, team.id, u.email, "viewer") for u in invitees]
    for invitee, invitation in zip(invitees[:2], invitations[:2], strict=True):
        assert (
            await accept(client, invitee, invitation["id"], link_token(invitation["inviteUrl"]))
        ).status_code == 200
    refused = await accept(client, invitees[2], invitations[2]["id"], link_token(invitations[2]["inviteUrl"]))
    assert_plan_limit(refused, 3, 3)
    members = (await client.get(f"{team.path}/members", headers=team.owner.headers)).json()
    assert invitees[2].id not in [m["principalId"] for m in members]
    assert len(members) == 3
    pending = (await client.get(f"{team.path}/invitations", headers=team.owner.headers)).json()
    assert [i["id"] for i in pending] == [invitations[2]["id"]]

    more = await client.post(
        f"{team.path}/invitations",
        json={"email": unique_email(), "role": "viewer"},
        headers=team.owner.headers,
    )
    assert_plan_limit(more, 3, 3)

    # Upgrading lifts the limit, and the pending invitation can then be accepted.
    await set_plan(runtime, team.id, "pro")
    accepted = await accept(
        client, invitees[2], invitations[2]["id"], link_token(invitations[2]["inviteUrl"])
    )
    assert accepted.status_code == 200, accepted.text


async def test_concurrent_acceptances_stop_at_the_member_limit(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime, plan="free")
    await join(client, team.owner, team.id, "viewer")
    invitees = [await sign_up(client, unique_email(f"racer{n}")) for n in range(4)]
    invitations = [await invite(client, team.owner.headers, team.id, u.email, "viewer") for u in invitees]
    results = await asyncio.gather(
        *(
            accept(client, u, i["id"], link_token(i["inviteUrl"]))
            for u, i in zip(invitees, invitations, strict=True)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 403, 403, 403], [r.text for r in results]
    members = (await client.get(f"{team.path}/members", headers=team.owner.headers)).json()
    assert len(members) == FREE.members


async def test_enterprise_has_no_count_limits(
    client: httpx.AsyncClient, runtime: Runtime, user: User
) -> None:
    [org] = (await client.get(f"{API}/organizations", headers=user.headers)).json()
    await set_plan(runtime, org["id"], "enterprise")
    for n in range(FREE.keys + 2):
        assert (
            await client.post("/api/keys", json={"name": f"k{n}"}, headers=user.headers)
        ).status_code == 201
    status = (await client.get("/api/auth/cli-status", headers=user.headers)).json()
    assert (status["plan"], status["usage_limit"]) == ("enterprise", None)


async def test_account_tokens_count_against_the_plans_key_limit(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)  # a personal organization on the free plan: 5 keys
    for number in range(5):
        made = await client.post(
            "/api/v1/accounts/me/api-tokens", json={"name": f"t{number}"}, headers=user.headers
        )
        assert made.status_code == 201, made.text
    refused = await client.post("/api/v1/accounts/me/api-tokens", json={"name": "t6"}, headers=user.headers)
    assert refused.status_code == 403
    assert (refused.json()["code"], refused.json()["limit"], refused.json()["used"]) == (
        "plan_limit_reached",
        5,
        5,
    )
