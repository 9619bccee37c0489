"""Projects: CRUD, assigning a configuration, users in projects and what removing them revokes."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import Org, add_server, assert_envelope, assert_error, bearer


async def create_project(
    client: httpx.AsyncClient, org: Org, name: str, **extra: object
) -> dict[str, object]:
    data: dict[str, object] = assert_envelope(
        await client.post("/api/v1/projects", json={"project_name": name, **extra}, headers=org.headers), 201
    )
    return data


async def create_user(client: httpx.AsyncClient, org: Org, email: str, role: str = "viewer") -> None:
    assert_envelope(
        await client.post("/api/v1/users", json={"email": email, "role": role}, headers=org.headers), 201
    )


async def test_create_get_list_a_project(client: httpx.AsyncClient, admin: Org) -> None:
    assert assert_envelope(await client.get("/api/v1/projects", headers=admin.headers)) == []
    created = await create_project(client, admin, "web", description="The web team")
    assert created["project_name"] == "web"
    assert created["description"] == "The web team"
    assert created["config_name"] is None
    assert created["users"] == []
    assert str(created["id"]).startswith("prj_")
    await create_project(client, admin, "api")
    listed = assert_envelope(await client.get("/api/v1/projects", headers=admin.headers))
    assert [p["project_name"] for p in listed] == ["api", "web"]
    got = assert_envelope(await client.get("/api/v1/projects/web", headers=admin.headers))
    assert got["id"] == created["id"]


async def test_duplicate_invalid_and_missing_projects(client: httpx.AsyncClient, admin: Org) -> None:
    await create_project(client, admin, "web")
    assert_error(
        await client.post("/api/v1/projects", json={"project_name": "web"}, headers=admin.headers),
        409,
        "project_exists",
    )
    for bad in ("", "has space", "../etc", "-x", "x" * 201):
        assert_error(
            await client.post("/api/v1/projects", json={"project_name": bad}, headers=admin.headers), 422
        )
    assert_error(await client.post("/api/v1/projects", json={}, headers=admin.headers), 422)
    await client.post("/api/v1/configs", json={"config_name": "c"}, headers=admin.headers)
    for method, path, body in [
        ("GET", "/api/v1/projects/nope", None),
        ("PUT", "/api/v1/projects/nope", {"description": "x"}),
        ("DELETE", "/api/v1/projects/nope", None),
        ("POST", "/api/v1/projects/nope/assign-config", {"config_name": "c"}),
        ("POST", "/api/v1/projects/nope/unassign-config", None),
        ("GET", "/api/v1/projects/nope/config", None),
        ("GET", "/api/v1/projects/nope/users", None),
        ("POST", "/api/v1/projects/nope/users", {"email": "a@example.com"}),
        ("DELETE", "/api/v1/projects/nope/users/a@example.com", None),
    ]:
        response = await client.request(method, path, json=body, headers=admin.headers)
        error = assert_error(response, 404, "project_not_found")
        assert "nope" in error["detail"], (method, path)
    names = [
        p["project_name"]
        for p in assert_envelope(await client.get("/api/v1/projects", headers=admin.headers))
    ]
    assert names == ["web"]


async def test_rename_and_describe_a_project(client: httpx.AsyncClient, admin: Org) -> None:
    await create_project(client, admin, "web", description="before")
    await create_project(client, admin, "taken")
    described = assert_envelope(
        await client.put("/api/v1/projects/web", json={"description": "after"}, headers=admin.headers)
    )
    assert (described["project_name"], described["description"]) == ("web", "after")
    assert_error(
        await client.put("/api/v1/projects/web", json={"new_project_name": "taken"}, headers=admin.headers),
        409,
        "project_exists",
    )
    assert_error(
        await client.put("/api/v1/projects/web", json={"new_project_name": "no good"}, headers=admin.headers),
        422,
    )
    renamed = assert_envelope(
        await client.put("/api/v1/projects/web", json={"new_project_name": "site"}, headers=admin.headers)
    )
    assert (renamed["project_name"], renamed["description"]) == ("site", "after")
    assert_error(await client.get("/api/v1/projects/web", headers=admin.headers), 404, "project_not_found")


async def test_assign_and_unassign_a_configuration(client: httpx.AsyncClient, admin: Org) -> None:
    await create_project(client, admin, "web")
    await client.post("/api/v1/configs", json={"config_name": "prod"}, headers=admin.headers)
    await add_server(client, admin, "prod", "time", env={"TZ": "secret-zone"}, server_command="uvx")
    assert assert_envelope(await client.get("/api/v1/projects/web/config", headers=admin.headers)) is None

    assert_error(
        await client.post(
            "/api/v1/projects/web/assign-config", json={"config_name": "nope"}, headers=admin.headers
        ),
        404,
        "config_not_found",
    )
    assert_error(await client.post("/api/v1/projects/web/assign-config", json={}, headers=admin.headers), 422)
    assigned = assert_envelope(
        await client.post(
            "/api/v1/projects/web/assign-config", json={"config_name": "prod"}, headers=admin.headers
        )
    )
    assert assigned["config_name"] == "prod"
    response = await client.get("/api/v1/projects/web/config", headers=admin.headers)
    config = assert_envelope(response)
    assert config["config_name"] == "prod"
    assert [s["server_name"] for s in config["servers"]] == ["time"]
    assert "secret-zone" not in response.text

    unassigned = assert_envelope(
        await client.post("/api/v1/projects/web/unassign-config", headers=admin.headers)
    )
    assert unassigned["config_name"] is None
    assert assert_envelope(await client.get("/api/v1/configs/prod/projects", headers=admin.headers)) == []


async def test_add_and_remove_project_users(client: httpx.AsyncClient, admin: Org) -> None:
    await create_project(client, admin, "web")
    await create_user(client, admin, "b@example.com")
    await create_user(client, admin, "a@example.com")

    added = assert_envelope(
        await client.post(
            "/api/v1/projects/web/users", json={"email": "B@Example.com"}, headers=admin.headers
        ),
        201,
    )
    assert added["users"] == ["b@example.com"]
    await client.post("/api/v1/projects/web/users", json={"email": "a@example.com"}, headers=admin.headers)
    users = assert_envelope(await client.get("/api/v1/projects/web/users", headers=admin.headers))
    assert users == ["a@example.com", "b@example.com"]
    assert assert_envelope(
        await client.get("/api/v1/users/a@example.com/projects", headers=admin.headers)
    ) == ["web"]

    assert_error(
        await client.post(
            "/api/v1/projects/web/users", json={"email": "a@example.com"}, headers=admin.headers
        ),
        409,
        "project_user_exists",
    )
    assert_error(
        await client.post(
            "/api/v1/projects/web/users", json={"email": "stranger@example.com"}, headers=admin.headers
        ),
        404,
        "user_not_found",
    )
    assert_error(
        await client.post(
            "/api/v1/projects/web/users", json={"email": "not-an-email"}, headers=admin.headers
        ),
        422,
    )

    removed = assert_envelope(
        await client.delete("/api/v1/projects/web/users/a@example.com", headers=admin.headers)
    )
    assert removed["users"] == ["b@example.com"]
    assert_error(
        await client.delete("/api/v1/projects/web/users/a@example.com", headers=admin.headers),
        404,
        "project_user_not_found",
    )
    assert_error(
        await client.delete("/api/v1/projects/web/users/stranger@example.com", headers=admin.headers),
        404,
        "user_not_found",
    )
    assert (
        assert_envelope(await client.get("/api/v1/users/a@example.com/projects", headers=admin.headers)) == []
    )


async def user_key(client: httpx.AsyncClient, org: Org, email: str, project: str) -> str:
    created = assert_envelope(
        await client.post(
            f"/api/v1/users/{email}/api-keys", json={"project_name": project}, headers=org.headers
        ),
        201,
    )
    return str(created["api_key"])


@pytest.mark.parametrize("how", ["remove from project", "delete project", "delete user"])
async def test_removing_access_revokes_project_keys(client: httpx.AsyncClient, admin: Org, how: str) -> None:
    for project in ("web", "api"):
        await create_project(client, admin, project)
    await create_user(client, admin, "dev@example.com")
    for project in ("web", "api"):
        await client.post(
            f"/api/v1/projects/{project}/users", json={"email": "dev@example.com"}, headers=admin.headers
        )
    web_key = await user_key(client, admin, "dev@example.com", "web")
    api_key = await user_key(client, admin, "dev@example.com", "api")
    for key in (web_key, api_key):
        assert (await client.get("/api/v1/cli/whoami", headers=bearer(key))).status_code == 200

    if how == "remove from project":
        assert_envelope(
            await client.delete("/api/v1/projects/web/users/dev@example.com", headers=admin.headers)
        )
    elif how == "delete project":
        assert_envelope(await client.delete("/api/v1/projects/web", headers=admin.headers))
    else:
        assert_envelope(await client.delete("/api/v1/users/dev@example.com", headers=admin.headers))

    assert (await client.get("/api/v1/cli/whoami", headers=bearer(web_key))).status_code == 401
    still = (await client.get("/api/v1/cli/whoami", headers=bearer(api_key))).status_code
    assert still == (401 if how == "delete user" else 200)
    if how != "delete user":
        listed = assert_envelope(
            await client.get("/api/v1/users/dev@example.com/api-keys", headers=admin.headers)
        )
        assert [k["project_name"] for k in listed] == ["api"]


async def test_adding_a_user_back_does_not_revive_old_keys(client: httpx.AsyncClient, admin: Org) -> None:
    await create_project(client, admin, "web")
    await create_user(client, admin, "dev@example.com")
    await client.post("/api/v1/projects/web/users", json={"email": "dev@example.com"}, headers=admin.headers)
    key = await user_key(client, admin, "dev@example.com", "web")
    await client.delete("/api/v1/projects/web/users/dev@example.com", headers=admin.headers)
    await client.post("/api/v1/projects/web/users", json={"email": "dev@example.com"}, headers=admin.headers)
    assert (await client.get("/api/v1/cli/whoami", headers=bearer(key))).status_code == 401


async def test_delete_a_project(client: httpx.AsyncClient, admin: Org) -> None:
    await create_project(client, admin, "web")
    await client.post("/api/v1/configs", json={"config_name": "prod"}, headers=admin.headers)
    await client.post(
        "/api/v1/projects/web/assign-config", json={"config_name": "prod"}, headers=admin.headers
    )
    deleted = assert_envelope(await client.delete("/api/v1/projects/web", headers=admin.headers))
    assert deleted == {"project_name": "web"}
    assert assert_envelope(await client.get("/api/v1/projects", headers=admin.headers)) == []
    assert assert_envelope(await client.get("/api/v1/configs/prod", headers=admin.headers))["projects"] == []
    assert_error(await client.delete("/api/v1/projects/web", headers=admin.headers), 404, "project_not_found")
