"""Seed 000's `/api/keys` and the CLI login exchange (`/api/auth/cli-*`)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from conduit.billing import service as billing
from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from tests.conftest import User, sign_up
from tests.orgs.conftest import (
    API,
    assert_error,
    audit_actions,
    bearer,
    join,
    member_key,
    new_team,
    service_key,
    signed_in_again,
)


async def personal_org(client: httpx.AsyncClient, user: User) -> dict[str, object]:
    [org] = [
        o
        for o in (await client.get(f"{API}/organizations", headers=user.headers)).json()
        if o["role"] == "admin"
    ]
    return dict(org)


async def test_create_shows_the_key_once_and_list_shows_only_its_prefix(
    client: httpx.AsyncClient, runtime: Runtime, user: User
) -> None:
    response = await client.post("/api/keys", json={"name": "Production key"}, headers=user.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) >= {"id", "name", "key", "created_at", "prefix"}
    assert created["name"] == "Production key"
    assert created["key"].startswith("cnd_live_")
    assert created["key"].startswith(created["prefix"])
    assert len(created["prefix"]) < len(created["key"])

    listed = await client.get("/api/keys", headers=user.headers)
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()
    assert set(entry) == {"id", "name", "prefix", "last_used_at", "created_at"}
    assert (entry["id"], entry["prefix"], entry["last_used_at"]) == (created["id"], created["prefix"], None)
    assert created["key"] not in listed.text

    assert (await client.get("/api/auth/cli-whoami", headers=bearer(created["key"]))).status_code == 200
    [used] = (await client.get("/api/keys", headers=user.headers)).json()
    assert used["last_used_at"] is not None
    org = await personal_org(client, user)
    assert ("api_key.created", created["id"]) in [
        (a, m.get("api_key_id")) for a, m in await audit_actions(runtime, str(org["id"]))
    ]


async def test_delete_revokes_at_once(client: httpx.AsyncClient, runtime: Runtime, user: User) -> None:
    created = (await client.post("/api/keys", json={"name": "ci"}, headers=user.headers)).json()
    keep = (await client.post("/api/keys", json={"name": "keep"}, headers=user.headers)).json()
    headers = bearer(created["key"])
    assert (await client.get("/api/keys", headers=headers)).status_code == 200

    deleted = await client.delete(f"/api/keys/{created['id']}", headers=user.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"success": True}
    assert_error(await client.get("/api/keys", headers=headers), 401, "invalid_api_key")
    assert [k["id"] for k in (await client.get("/api/keys", headers=user.headers)).json()] == [keep["id"]]
    assert_error(
        await client.delete(f"/api/keys/{created['id']}", headers=user.headers), 404, "api_key_not_found"
    )
    assert_error(await client.delete("/api/keys/key_doesnotexist", headers=user.headers), 404)
    org = await personal_org(client, user)
    assert ("api_key.revoked", created["id"]) in [
        (a, m.get("api_key_id")) for a, m in await audit_actions(runtime, str(org["id"]))
    ]


async def test_a_key_can_revoke_itself(client: httpx.AsyncClient, user: User) -> None:
    created = (await client.post("/api/keys", json={"name": "self"}, headers=user.headers)).json()
    response = await client.delete(f"/api/keys/{created['id']}", headers=bearer(created["key"]))
    assert response.json() == {"success": True}
    assert_error(await client.get("/api/keys", headers=bearer(created["key"])), 401)


async def test_keys_need_authentication_and_a_name(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await client.get("/api/keys"), 401)
    assert_error(await client.post("/api/keys", json={"name": "x"}), 401)
    assert_error(await client.delete("/api/keys/key_x"), 401)
    assert_error(await client.get("/api/keys", headers=bearer("cnd_live_notarealkey")), 401)
    assert_error(await client.post("/api/keys", json={"name": " "}, headers=user.headers), 422)
    assert (await client.get("/api/keys", headers=user.headers)).json() == []


async def test_viewers_see_only_their_own_keys(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    viewer = await join(client, team.owner, team.id, "viewer")
    dev = await join(client, team.owner, team.id, "developer", label="dev")
    viewer_key = await member_key(runtime, team.id, viewer.id, "viewer laptop")
    dev_key = await member_key(runtime, team.id, dev.id, "dev laptop")
    bot = await service_key(client, team.owner.headers, team.id, role="viewer", name="viewer bot")
    other_bot = await service_key(client, team.owner.headers, team.id, role="admin", name="admin bot")

    as_viewer = await client.get("/api/keys", headers=bearer(viewer_key))
    assert [k["name"] for k in as_viewer.json()] == ["viewer laptop"]
    as_bot = await client.get("/api/keys", headers=bearer(bot["fullKey"]))
    assert [k["name"] for k in as_bot.json()] == ["viewer bot"]
    as_dev = await client.get("/api/keys", headers=bearer(dev_key))
    assert {k["name"] for k in as_dev.json()} == {"viewer laptop", "dev laptop", "viewer bot", "admin bot"}

    # Revoking someone else's key needs api_keys:manage, which only admins hold.
    assert_error(
        await client.delete(f"/api/keys/{other_bot['id']}", headers=bearer(dev_key)), 403, "permission_denied"
    )
    assert_error(await client.delete(f"/api/keys/{other_bot['id']}", headers=bearer(bot["fullKey"])), 403)
    assert (await client.get("/api/keys", headers=bearer(other_bot["fullKey"]))).status_code == 200
    admin_key = await member_key(runtime, team.id, team.owner.id, "owner laptop")
    assert (await client.delete(f"/api/keys/{other_bot['id']}", headers=bearer(admin_key))).json() == {
        "success": True
    }
    assert_error(await client.get("/api/keys", headers=bearer(other_bot["fullKey"])), 401)


async def test_a_key_acts_with_its_creators_role(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    viewer = await join(client, team.owner, team.id, "viewer")
    key = bearer(await member_key(runtime, team.id, viewer.id))
    whoami = (await client.get(f"{API}/cli/whoami", headers=key)).json()
    assert (whoami["role"], whoami["organizationId"]) == ("viewer", team.id)
    assert_error(await client.get(f"{team.path}/api-keys", headers=key), 403, "permission_denied")


async def test_cli_login_exchanges_a_token_for_a_key_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await sign_up(client)
    org = await personal_org(client, user)
    issued = await client.post("/api/auth/cli-token", headers=user.headers)
    assert issued.status_code == 200, issued.text
    assert issued.json()["expires_in"] == 300
    token = issued.json()["token"]

    verified = await client.post("/api/auth/cli-verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert set(body) == {"api_key", "email", "org_name"}
    assert body["api_key"].startswith("cnd_live_")
    assert (body["email"], body["org_name"]) == (user.email, org["name"])
    whoami = await client.get("/api/auth/cli-whoami", headers=bearer(body["api_key"]))
    assert whoami.json() == {"email": user.email, "org_name": org["name"]}
    assert len((await client.get("/api/keys", headers=user.headers)).json()) == 1

    assert_error(await client.post("/api/auth/cli-verify", json={"token": token}), 401, "invalid_cli_token")
    assert_error(
        await client.post("/api/auth/cli-verify", json={"token": "cnd_cli_made_up"}), 401, "invalid_cli_token"
    )
    assert len((await client.get("/api/keys", headers=user.headers)).json()) == 1


async def test_a_cli_token_expires_after_five_minutes(client: httpx.AsyncClient, user: User) -> None:
    timely = (await client.post("/api/auth/cli-token", headers=user.headers)).json()["token"]
    late = (await client.post("/api/auth/cli-token", headers=user.headers)).json()["token"]
    clock.advance(timedelta(minutes=4, seconds=55))
    assert (await client.post("/api/auth/cli-verify", json={"token": timely})).status_code == 200
    clock.advance(timedelta(seconds=10))
    assert_error(await client.post("/api/auth/cli-verify", json={"token": late}), 401, "invalid_cli_token")


async def test_a_cli_token_is_issued_only_to_a_signed_in_user(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await client.post("/api/auth/cli-token"), 401)
    key = (await client.post("/api/keys", json={"name": "limited"}, headers=user.headers)).json()["key"]
    assert_error(await client.post("/api/auth/cli-token", headers=bearer(key)), 403, "session_required")
    assert_error(await client.post("/api/auth/cli-verify", json={}), 422)


async def test_cli_whoami_and_status_describe_the_caller(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await sign_up(client)
    org = await personal_org(client, user)
    admin = bearer(
        (await client.post("/api/keys", json={"name": "admin"}, headers=user.headers)).json()["key"]
    )
    assert_error(await client.get("/api/auth/cli-whoami"), 401)
    assert_error(await client.get("/api/auth/cli-status"), 401)
    session_whoami = await client.get("/api/auth/cli-whoami", headers=user.headers)
    assert session_whoami.json() == {"email": user.email, "org_name": org["name"]}

    status = await client.get("/api/auth/cli-status", headers=admin)
    assert status.status_code == 200, status.text
    assert status.json() == {
        "email": user.email,
        "org_name": org["name"],
        "plan": "free",
        "server_count": 0,
        "usage_today": 0,
        "usage_limit": billing.PLANS["free"].gateway_calls_per_day,
    }

    await client.post("/api/v1/configs", json={"config_name": "main"}, headers=admin)
    for name in ("time", "fetch"):
        added = await client.post(
            "/api/v1/configs/main/servers",
            json={"server_name": name, "server_command": "uvx", "args": [f"mcp-server-{name}"]},
            headers=admin,
        )
        assert added.status_code == 201, added.text
    async with runtime.db.session() as session:
        await billing.consume(session, str(org["id"]), "free", "gateway_calls", upgrade_url="u", amount=41)
        await billing.consume(session, str(org["id"]), "free", "gateway_calls", upgrade_url="u")
    status = (await client.get("/api/auth/cli-status", headers=admin)).json()
    assert (status["server_count"], status["usage_today"]) == (2, 42)

    # A new day starts a new count.
    clock.advance(timedelta(days=1))
    user = await signed_in_again(client, user)
    assert (await client.get("/api/auth/cli-status", headers=user.headers)).json()["usage_today"] == 0


async def test_a_member_gets_a_key_for_a_team_org_by_naming_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    dev = await join(client, team.owner, team.id, "developer")
    headers = {**dev.headers, "X-Organization-Id": team.id}
    created = await client.post("/api/keys", json={"name": "team key"}, headers=headers)
    assert created.status_code == 201, created.text
    whoami = await client.get(
        "/api/v1/cli/whoami", headers={"Authorization": f"Bearer {created.json()['key']}"}
    )
    assert (whoami.json()["organizationId"], whoami.json()["role"]) == (team.id, "developer")
    stranger = await sign_up(client)
    refused = await client.post(
        "/api/keys", json={"name": "x"}, headers={**stranger.headers, "X-Organization-Id": team.id}
    )
    assert refused.status_code == 404


async def test_a_restricted_key_cannot_mint_unrestricted_keys(client: httpx.AsyncClient, user: User) -> None:
    limited = await client.post(
        "/api/v1/accounts/me/api-tokens",
        json={"name": "ci", "allowed_ips": ["127.0.0.1/32"]},
        headers=user.headers,
    )
    headers = {"Authorization": f"Bearer {limited.json()['token']}"}
    for path, body in (
        ("/api/keys", {"name": "escape"}),
        ("/api/v1/accounts/me/api-tokens", {"name": "escape"}),
    ):
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "restricted_key"
