"""Long-lived API tokens: creation shown once, use as Bearer or X-API-Key, IP allowlists, expiry
and revocation (seed 002, API Tokens)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conduit.identity.models import ApiKey
from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from conduit.kit.security import looks_like_api_key
from tests.conftest import User, client_for, sign_up
from tests.identity.conftest import API, assert_error, create_api_token

TOKENS = f"{API}/accounts/me/api-tokens"


def as_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_api_key(token: str) -> dict[str, str]:
    return {"X-API-Key": token}


async def list_tokens(client: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    response = await client.get(TOKENS, headers=user.headers)
    assert response.status_code == 200
    body: list[dict[str, Any]] = response.json()
    return body


async def test_create_returns_the_token_once(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(TOKENS, headers=user.headers, json={"name": "deploy bot"})
    assert response.status_code == 201
    body = response.json()
    assert {"id", "name", "token", "allowed_ips", "created_at", "expires_at", "last_used_at"} <= set(body)
    assert body["name"] == "deploy bot"
    assert body["allowed_ips"] == []
    assert body["expires_at"] is None
    assert body["last_used_at"] is None
    assert body["created_at"].endswith("Z")
    token = body["token"]
    assert token.startswith("cnd_live_")
    assert len(token) == len("cnd_live_") + 32 + 6
    assert looks_like_api_key(token)

    listed = await list_tokens(client, user)
    assert [t["id"] for t in listed] == [body["id"]]
    assert listed[0].get("token") is None
    assert token not in (await client.get(TOKENS, headers=user.headers)).text


async def test_only_an_hmac_of_the_token_is_stored(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    token = (await create_api_token(client, user))["token"]
    async with runtime.db.session() as session:
        row = (await session.scalars(select(ApiKey))).one()
    assert row.key_hash == runtime.keyring.hash_token(token)
    assert token not in (row.key_hash, row.prefix)
    assert token.startswith(row.prefix)


async def test_list_shows_newest_first_and_only_my_tokens(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    await create_api_token(client, other, name="theirs")
    first = await create_api_token(client, user, name="first")
    clock.advance(timedelta(seconds=2))
    second = await create_api_token(client, user, name="second")
    assert [t["id"] for t in await list_tokens(client, user)] == [second["id"], first["id"]]


@pytest.mark.parametrize("headers", [as_bearer, as_api_key], ids=["bearer", "x-api-key"])
async def test_token_authenticates_requests(client: httpx.AsyncClient, user: User, headers: Any) -> None:
    token = (await create_api_token(client, user))["token"]
    me = await client.get(f"{API}/accounts/me", headers=headers(token))
    assert me.status_code == 200
    assert me.json()["id"] == user.id
    # Writing requests too.
    tz = await client.put(
        f"{API}/accounts/me/timezone", headers=headers(token), json={"timezone": "Asia/Tokyo"}
    )
    assert tz.status_code == 204


async def test_last_used_at_is_set_after_use(client: httpx.AsyncClient, user: User) -> None:
    created = await create_api_token(client, user)
    assert (await client.get(f"{API}/accounts/me", headers=as_api_key(created["token"]))).status_code == 200
    [listed] = await list_tokens(client, user)
    assert listed["last_used_at"] is not None
    used = datetime.fromisoformat(listed["last_used_at"].replace("Z", "+00:00"))
    assert abs((used - clock.now()).total_seconds()) < 60


async def test_last_used_at_moves_on_with_later_use(client: httpx.AsyncClient, user: User) -> None:
    token = (await create_api_token(client, user))["token"]
    await client.get(f"{API}/accounts/me", headers=as_api_key(token))
    [first] = await list_tokens(client, user)
    clock.advance(timedelta(minutes=5))
    await client.post(f"{API}/accounts/me/2fa/setup", headers=as_api_key(token))
    [second] = await list_tokens(client, user)
    assert second["last_used_at"] > first["last_used_at"]


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("192.168.1.7", True),
        ("192.168.1.254", True),
        ("192.168.2.7", False),
        ("10.0.0.5", True),
        ("10.0.0.6", False),
        ("2001:db8::5", True),
        ("2001:db8:0:ffff::1", True),
        ("2001:db9::1", False),
        ("::ffff:192.168.1.9", True),
    ],
)
async def test_allowed_ips_limit_where_a_token_works(
    app: Any, client: httpx.AsyncClient, user: User, ip: str, allowed: bool
) -> None:
    created = await create_api_token(
        client, user, allowed_ips=["192.168.1.0/24", "10.0.0.5", "2001:db8::/32"]
    )
    assert created["allowed_ips"] == ["192.168.1.0/24", "10.0.0.5/32", "2001:db8::/32"]
    async with client_for(app, ip=ip) as remote:
        response = await remote.get(f"{API}/accounts/me", headers=as_api_key(created["token"]))
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 403, "ip_not_allowed")


async def test_allowed_ips_do_not_limit_session_tokens(
    app: Any, client: httpx.AsyncClient, user: User
) -> None:
    await create_api_token(client, user, allowed_ips=["192.168.1.0/24"])
    async with client_for(app, ip="172.16.0.1") as remote:
        assert (await remote.get(f"{API}/accounts/me", headers=user.headers)).status_code == 200


@pytest.mark.parametrize(
    "allowed_ips", [["not-an-ip"], ["10.0.0.0/33"], ["192.168.1.0/24", "300.1.1.1"], ["2001:db8::/129"], [""]]
)
async def test_invalid_allowed_ips_are_422(
    client: httpx.AsyncClient, user: User, allowed_ips: list[str]
) -> None:
    response = await client.post(TOKENS, headers=user.headers, json={"name": "x", "allowed_ips": allowed_ips})
    assert_error(response, 422, "invalid_allowed_ips")
    assert await list_tokens(client, user) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "x", "expires_in": -1},
        {"name": "x", "allowed_ips": "10.0.0.1"},
        {"name": "x", "expires_in": 11 * 365 * 86400},
        {"name": "x", "allowed_ips": [f"10.0.0.{n}" for n in range(101)]},
    ],
)
async def test_invalid_create_bodies_are_422(
    client: httpx.AsyncClient, user: User, body: dict[str, Any]
) -> None:
    assert_error(await client.post(TOKENS, headers=user.headers, json=body), 422, "validation_error")


async def test_a_blank_name_is_422(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await client.post(TOKENS, headers=user.headers, json={"name": "   "}), 422)
    assert await list_tokens(client, user) == []


async def test_the_name_is_trimmed(client: httpx.AsyncClient, user: User) -> None:
    assert (await create_api_token(client, user, name="  deploy  "))["name"] == "deploy"


async def test_token_expires_after_expires_in(client: httpx.AsyncClient, user: User) -> None:
    clock.freeze()
    created = await create_api_token(client, user, expires_in=3600)
    expires_at = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert expires_at == clock.now() + timedelta(hours=1)

    clock.advance(timedelta(minutes=59))
    assert (await client.get(f"{API}/accounts/me", headers=as_api_key(created["token"]))).status_code == 200
    clock.advance(timedelta(minutes=1, seconds=1))
    assert_error(
        await client.get(f"{API}/accounts/me", headers=as_api_key(created["token"])), 401, "api_key_expired"
    )


async def test_expires_in_zero_never_expires(client: httpx.AsyncClient, user: User) -> None:
    created = await create_api_token(client, user, expires_in=0)
    assert created["expires_at"] is None
    clock.advance(timedelta(days=3650))
    assert (await client.get(f"{API}/accounts/me", headers=as_bearer(created["token"]))).status_code == 200


async def test_revocation_is_immediate(client: httpx.AsyncClient, user: User) -> None:
    created = await create_api_token(client, user)
    keep = await create_api_token(client, user, name="keep")
    assert (await client.get(f"{API}/accounts/me", headers=as_api_key(created["token"]))).status_code == 200

    response = await client.delete(f"{TOKENS}/{created['id']}", headers=user.headers)
    assert response.status_code == 204
    assert response.content == b""

    assert_error(
        await client.get(f"{API}/accounts/me", headers=as_api_key(created["token"])), 401, "invalid_api_key"
    )
    assert_error(await client.get(f"{API}/accounts/me", headers=as_bearer(created["token"])), 401)
    assert [t["id"] for t in await list_tokens(client, user)] == [keep["id"]]
    assert (await client.get(f"{API}/accounts/me", headers=as_api_key(keep["token"]))).status_code == 200


async def test_a_token_can_revoke_itself(client: httpx.AsyncClient, user: User) -> None:
    created = await create_api_token(client, user)
    response = await client.delete(f"{TOKENS}/{created['id']}", headers=as_api_key(created["token"]))
    assert response.status_code == 204
    assert_error(await client.get(f"{API}/accounts/me", headers=as_api_key(created["token"])), 401)


async def test_revoking_someone_elses_token_is_404(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    theirs = await create_api_token(client, other)
    assert_error(
        await client.delete(f"{TOKENS}/{theirs['id']}", headers=user.headers), 404, "api_token_not_found"
    )
    assert (await client.get(f"{API}/accounts/me", headers=as_api_key(theirs["token"]))).status_code == 200


async def test_revoking_an_unknown_or_revoked_token_is_404(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await client.delete(f"{TOKENS}/key_doesnotexist", headers=user.headers), 404)
    created = await create_api_token(client, user)
    assert (await client.delete(f"{TOKENS}/{created['id']}", headers=user.headers)).status_code == 204
    assert_error(await client.delete(f"{TOKENS}/{created['id']}", headers=user.headers), 404)


@pytest.mark.parametrize(
    "token",
    [
        "cnd_live_" + "A" * 38,  # well-formed, checksum wrong
        "cnd_live_short",
        "cnd_live_",
    ],
)
async def test_malformed_tokens_are_401(client: httpx.AsyncClient, token: str) -> None:
    assert_error(await client.get(f"{API}/accounts/me", headers=as_api_key(token)), 401, "invalid_api_key")


async def test_a_token_with_one_character_changed_is_401(client: httpx.AsyncClient, user: User) -> None:
    token = (await create_api_token(client, user))["token"]
    index = len("cnd_live_") + 3
    tampered = token[:index] + ("a" if token[index] != "a" else "b") + token[index + 1 :]
    assert_error(await client.get(f"{API}/accounts/me", headers=as_api_key(tampered)), 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", TOKENS), ("POST", TOKENS), ("DELETE", f"{TOKENS}/key_whatever")],
)
async def test_token_endpoints_need_authentication(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={"name": "x"} if method == "POST" else None)
    assert_error(response, 401)
