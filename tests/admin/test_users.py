"""Users of the organization and their project keys: create, list, rotate, disable, enable, delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conduit.kit.runtime import Runtime
from tests.admin.conftest import Org, assert_envelope, assert_error, bearer, make_org
from tests.conftest import sign_up


async def whoami_status(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/api/v1/cli/whoami", headers=bearer(key))).status_code


async def test_create_get_list_users(client: httpx.AsyncClient, admin: Org) -> None:
    listed = assert_envelope(await client.get("/api/v1/users", headers=admin.headers))
    assert [(u["email"], u["role"]) for u in listed] == [(admin.owner.email, "admin")]

    created = assert_envelope(
        await client.post("/api/v1/users", json={"email": " Dev@Example.com "}, headers=admin.headers), 201
    )
    assert (created["email"], created["role"], created["projects"]) == ("dev@example.com", "viewer", [])
    assert created["id"].startswith("usr_")
    assert_envelope(
        await client.post(
            "/api/v1/users", json={"email": "lead@example.com", "role": "developer"}, headers=admin.headers
        ),
        201,
    )
    got = assert_envelope(await client.get("/api/v1/users/DEV@example.com", headers=admin.headers))
    assert got["email"] == "dev@example.com"
    emails = [u["email"] for u in assert_envelope(await client.get("/api/v1/users", headers=admin.headers))]
    assert emails == sorted([admin.owner.email, "dev@example.com", "lead@example.com"])


async def test_user_errors(client: httpx.AsyncClient, admin: Org) -> None:
    await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=admin.headers)
    assert_error(
        await client.post("/api/v1/users", json={"email": "DEV@example.com"}, headers=admin.headers),
        409,
        "user_exists",
    )
    assert_error(await client.post("/api/v1/users", json={"email": "nope"}, headers=admin.headers), 422)
    assert_error(await client.post("/api/v1/users", json={}, headers=admin.headers), 422)
    assert_error(
        await client.post(
            "/api/v1/users", json={"email": "x@example.com", "role": "owner"}, headers=admin.headers
        ),
        422,
        "invalid_role",
    )
    for method, path, body in [
        ("GET", "/api/v1/users/ghost@example.com", None),
        ("PUT", "/api/v1/users/ghost@example.com", {"role": "viewer"}),
        ("DELETE", "/api/v1/users/ghost@example.com", None),
        ("GET", "/api/v1/users/ghost@example.com/projects", None),
        ("GET", "/api/v1/users/ghost@example.com/api-keys", None),
        ("POST", "/api/v1/users/ghost@example.com/api-keys", {"project_name": "p"}),
    ]:
        error = assert_error(
            await client.request(method, path, json=body, headers=admin.headers), 404, "user_not_found"
        )
        assert "ghost@example.com" in error["detail"]


async def test_an_existing_account_becomes_a_member(client: httpx.AsyncClient, admin: Org) -> None:
    someone = await sign_up(client)
    created = assert_envelope(
        await client.post(
            "/api/v1/users", json={"email": someone.email, "role": "developer"}, headers=admin.headers
        ),
        201,
    )
    assert created["id"] == someone.id
    assert created["role"] == "developer"


async def test_change_a_users_role(client: httpx.AsyncClient, admin: Org) -> None:
    await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=admin.headers)
    updated = assert_envelope(
        await client.put("/api/v1/users/dev@example.com", json={"role": "developer"}, headers=admin.headers)
    )
    assert updated["role"] == "developer"
    assert_error(
        await client.put("/api/v1/users/dev@example.com", json={"role": "god"}, headers=admin.headers),
        422,
        "invalid_role",
    )
    assert_error(await client.put("/api/v1/users/dev@example.com", json={}, headers=admin.headers), 422)
    assert_error(
        await client.put(
            f"/api/v1/users/{admin.owner.email}", json={"role": "viewer"}, headers=admin.headers
        ),
        409,
        "last_admin",
    )


async def test_delete_a_user(client: httpx.AsyncClient, admin: Org) -> None:
    await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=admin.headers)
    await client.post("/api/v1/projects", json={"project_name": "web"}, headers=admin.headers)
    await client.post("/api/v1/projects/web/users", json={"email": "dev@example.com"}, headers=admin.headers)
    deleted = assert_envelope(await client.delete("/api/v1/users/dev@example.com", headers=admin.headers))
    assert deleted == {"email": "dev@example.com"}
    assert_error(
        await client.get("/api/v1/users/dev@example.com", headers=admin.headers), 404, "user_not_found"
    )
    assert assert_envelope(await client.get("/api/v1/projects/web/users", headers=admin.headers)) == []
    assert_error(
        await client.delete(f"/api/v1/users/{admin.owner.email}", headers=admin.headers), 409, "last_admin"
    )
    # Created again: a new member, in no project.
    again = assert_envelope(
        await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=admin.headers), 201
    )
    assert again["projects"] == []


async def test_free_plan_caps_members_with_a_403(client: httpx.AsyncClient, runtime: Runtime) -> None:
    free = await make_org(client, runtime, plan="free")
    for n in range(2):
        await client.post("/api/v1/users", json={"email": f"u{n}@example.com"}, headers=free.headers)
    body = assert_error(
        await client.post("/api/v1/users", json={"email": "u9@example.com"}, headers=free.headers),
        403,
        "plan_limit_reached",
    )
    assert body["limit"] == 3


# --- project keys -----------------------------------------------------------------------------


@pytest.fixture
async def member(client: httpx.AsyncClient, admin: Org) -> str:
    """dev@example.com, a viewer in project `web`."""
    await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=admin.headers)
    await client.post("/api/v1/projects", json={"project_name": "web"}, headers=admin.headers)
    await client.post("/api/v1/projects/web/users", json={"email": "dev@example.com"}, headers=admin.headers)
    return "dev@example.com"


KEYS = "/api/v1/users/dev@example.com/api-keys"


async def create_key(client: httpx.AsyncClient, admin: Org, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_envelope(
        await client.post(KEYS, json={"project_name": "web", **body}, headers=admin.headers), 201
    )
    return data


async def test_create_a_key(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    key = await create_key(client, admin, name="laptop")
    assert key["api_key"].startswith("cnd_live_")
    assert key["prefix"]
    assert key["api_key"].startswith(key["prefix"])
    assert (key["name"], key["project_name"], key["status"]) == ("laptop", "web", "active")
    assert key["key_id"].startswith("key_")
    default_name = await create_key(client, admin)
    assert default_name["name"] == "web key"

    whoami = (await client.get("/api/v1/cli/whoami", headers=bearer(key["api_key"]))).json()
    assert (whoami["email"], whoami["organizationId"], whoami["keyId"]) == (member, admin.id, key["key_id"])


async def test_key_creation_errors(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    await client.post("/api/v1/projects", json={"project_name": "other"}, headers=admin.headers)
    assert_error(
        await client.post(KEYS, json={"project_name": "other"}, headers=admin.headers),
        422,
        "user_not_in_project",
    )
    assert_error(
        await client.post(KEYS, json={"project_name": "missing"}, headers=admin.headers),
        404,
        "project_not_found",
    )
    assert_error(await client.post(KEYS, json={}, headers=admin.headers), 422)
    assert_error(await client.post(KEYS, json={"project_name": "bad name"}, headers=admin.headers), 422)
    assert assert_envelope(await client.get(KEYS, headers=admin.headers)) == []


async def test_list_keys_hides_the_key(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    first = await create_key(client, admin, name="one")
    second = await create_key(client, admin, name="two")
    response = await client.get(KEYS, headers=admin.headers)
    listed = assert_envelope(response)
    assert {k["key_id"] for k in listed} == {first["key_id"], second["key_id"]}
    assert all(k["api_key"] is None for k in listed)
    assert first["api_key"] not in response.text
    assert second["api_key"] not in response.text
    assert {k["prefix"] for k in listed} == {first["prefix"], second["prefix"]}


async def test_rotate_a_key(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    old = await create_key(client, admin, name="ci")
    rotated = assert_envelope(await client.post(f"{KEYS}/{old['key_id']}/rotate", headers=admin.headers))
    assert rotated["api_key"] != old["api_key"]
    assert rotated["key_id"] != old["key_id"]
    assert (rotated["name"], rotated["project_name"], rotated["status"]) == ("ci", "web", "active")
    assert await whoami_status(client, old["api_key"]) == 401
    assert await whoami_status(client, rotated["api_key"]) == 200
    listed = assert_envelope(await client.get(KEYS, headers=admin.headers))
    assert [k["key_id"] for k in listed] == [rotated["key_id"]]
    assert_error(
        await client.post(f"{KEYS}/{old['key_id']}/rotate", headers=admin.headers), 404, "api_key_not_found"
    )


async def test_disable_and_enable_a_key(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    key = await create_key(client, admin)
    disabled = assert_envelope(await client.post(f"{KEYS}/{key['key_id']}/disable", headers=admin.headers))
    assert disabled["status"] == "disabled"
    assert disabled["api_key"] is None
    assert await whoami_status(client, key["api_key"]) == 401
    listed = assert_envelope(await client.get(KEYS, headers=admin.headers))
    assert [k["status"] for k in listed] == ["disabled"]

    enabled = assert_envelope(await client.post(f"{KEYS}/{key['key_id']}/enable", headers=admin.headers))
    assert enabled["status"] == "active"
    assert await whoami_status(client, key["api_key"]) == 200


async def test_delete_a_key(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    key = await create_key(client, admin)
    deleted = assert_envelope(await client.delete(f"{KEYS}/{key['key_id']}", headers=admin.headers))
    assert deleted == {"key_id": key["key_id"]}
    assert await whoami_status(client, key["api_key"]) == 401
    assert assert_envelope(await client.get(KEYS, headers=admin.headers)) == []
    for method, suffix in [("POST", "/rotate"), ("POST", "/disable"), ("POST", "/enable"), ("DELETE", "")]:
        response = await client.request(method, f"{KEYS}/{key['key_id']}{suffix}", headers=admin.headers)
        assert_error(response, 404, "api_key_not_found")


async def test_key_ids_are_per_user(client: httpx.AsyncClient, admin: Org, member: str) -> None:
    """A key id of one user does not work under another user's path, nor do non-project keys."""
    key = await create_key(client, admin)
    await client.post("/api/v1/users", json={"email": "other@example.com"}, headers=admin.headers)
    for method, suffix in [("POST", "/rotate"), ("POST", "/disable"), ("POST", "/enable"), ("DELETE", "")]:
        response = await client.request(
            method, f"/api/v1/users/other@example.com/api-keys/{key['key_id']}{suffix}", headers=admin.headers
        )
        assert_error(response, 404, "api_key_not_found")
    assert await whoami_status(client, key["api_key"]) == 200

    owner_keys = f"/api/v1/users/{admin.owner.email}/api-keys"
    assert assert_envelope(await client.get(owner_keys, headers=admin.headers)) == []
    admin_key_id = (await client.get("/api/v1/cli/whoami", headers=admin.headers)).json()["keyId"]
    assert_error(await client.delete(f"{owner_keys}/{admin_key_id}", headers=admin.headers), 404)
    assert await whoami_status(client, admin.key) == 200


async def test_free_plan_caps_keys_with_a_403(client: httpx.AsyncClient, runtime: Runtime) -> None:
    free = await make_org(client, runtime, plan="free")
    await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=free.headers)
    await client.post("/api/v1/projects", json={"project_name": "web"}, headers=free.headers)
    await client.post("/api/v1/projects/web/users", json={"email": "dev@example.com"}, headers=free.headers)
    for _ in range(4):  # the admin key is the fifth
        await create_key(client, free)
    body = assert_error(
        await client.post(KEYS, json={"project_name": "web"}, headers=free.headers), 403, "plan_limit_reached"
    )
    assert body["limit"] == 5


async def test_a_project_key_of_an_admin_reads_like_a_viewer(client: httpx.AsyncClient, admin: Org) -> None:
    await client.post(
        "/api/v1/users", json={"email": "boss@example.com", "role": "admin"}, headers=admin.headers
    )
    await client.post("/api/v1/projects", json={"project_name": "ops"}, headers=admin.headers)
    await client.post("/api/v1/projects/ops/users", json={"email": "boss@example.com"}, headers=admin.headers)
    created = await client.post(
        "/api/v1/users/boss@example.com/api-keys", json={"project_name": "ops"}, headers=admin.headers
    )
    project_key = bearer(assert_envelope(created, 201)["api_key"])
    assert (await client.get("/api/v1/configs", headers=project_key)).status_code == 200
    refused = await client.post("/api/v1/configs", json={"config_name": "x"}, headers=project_key)
    assert refused.status_code == 403
    assert (await client.get("/api/v1/cli/whoami", headers=project_key)).json()["role"] == "viewer"
