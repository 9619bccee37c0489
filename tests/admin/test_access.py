"""Who may call the admin API: 401 without a key, 403 without the role's grant, 404 across tenants;
and the seed 001 envelopes on every path prefix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from conduit.admin.routes import router
from conduit.kit.runtime import Runtime
from tests.admin.conftest import Org, RoleKey, add_server, assert_envelope, assert_error, bearer, server_rows

EMAIL = "dev@example.com"


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    permission: str  # configs:read | configs:write | users:manage | system:manage
    body: Any = None

    def path(self, key_id: str = "key_x") -> str:
        return (
            self.template.replace("{config_name}", "prod")
            .replace("{server_name}", "time")
            .replace("{project_name}", "web")
            .replace("{email}", EMAIL)
            .replace("{key_id}", key_id)
        )


ENDPOINTS = [
    Endpoint("GET", "/api/v1/configs", "configs:read"),
    Endpoint("POST", "/api/v1/configs", "configs:write", {"config_name": "new"}),
    Endpoint("GET", "/api/v1/configs/{config_name}", "configs:read"),
    Endpoint("PUT", "/api/v1/configs/{config_name}", "configs:write", {"description": "changed"}),
    Endpoint("DELETE", "/api/v1/configs/{config_name}", "configs:write"),
    Endpoint("POST", "/api/v1/configs/{config_name}/copy", "configs:write", {"new_config_name": "copy"}),
    Endpoint("GET", "/api/v1/configs/{config_name}/servers", "configs:read"),
    Endpoint(
        "POST",
        "/api/v1/configs/{config_name}/servers",
        "configs:write",
        {"server_name": "other", "server_command": "uvx"},
    ),
    Endpoint("GET", "/api/v1/configs/{config_name}/servers/{server_name}", "configs:read"),
    Endpoint(
        "PUT", "/api/v1/configs/{config_name}/servers/{server_name}", "configs:write", {"description": "x"}
    ),
    Endpoint("DELETE", "/api/v1/configs/{config_name}/servers/{server_name}", "configs:write"),
    Endpoint("GET", "/api/v1/configs/{config_name}/projects", "configs:read"),
    Endpoint("GET", "/api/v1/projects", "configs:read"),
    Endpoint("POST", "/api/v1/projects", "configs:write", {"project_name": "new"}),
    Endpoint("GET", "/api/v1/projects/{project_name}", "configs:read"),
    Endpoint("PUT", "/api/v1/projects/{project_name}", "configs:write", {"description": "changed"}),
    Endpoint("DELETE", "/api/v1/projects/{project_name}", "configs:write"),
    Endpoint(
        "POST", "/api/v1/projects/{project_name}/assign-config", "configs:write", {"config_name": "prod"}
    ),
    Endpoint("POST", "/api/v1/projects/{project_name}/unassign-config", "configs:write"),
    Endpoint("GET", "/api/v1/projects/{project_name}/config", "configs:read"),
    Endpoint("GET", "/api/v1/projects/{project_name}/users", "configs:read"),
    Endpoint(
        "POST", "/api/v1/projects/{project_name}/users", "configs:write", {"email": "second@example.com"}
    ),
    Endpoint("DELETE", "/api/v1/projects/{project_name}/users/{email}", "configs:write"),
    Endpoint("GET", "/api/v1/users", "configs:read"),
    Endpoint("POST", "/api/v1/users", "users:manage", {"email": "new@example.com"}),
    Endpoint("GET", "/api/v1/users/{email}", "configs:read"),
    Endpoint("PUT", "/api/v1/users/{email}", "users:manage", {"role": "developer"}),
    Endpoint("DELETE", "/api/v1/users/{email}", "users:manage"),
    Endpoint("GET", "/api/v1/users/{email}/projects", "configs:read"),
    Endpoint("POST", "/api/v1/users/{email}/api-keys", "users:manage", {"project_name": "web"}),
    Endpoint("GET", "/api/v1/users/{email}/api-keys", "users:manage"),
    Endpoint("POST", "/api/v1/users/{email}/api-keys/{key_id}/rotate", "users:manage"),
    Endpoint("POST", "/api/v1/users/{email}/api-keys/{key_id}/disable", "users:manage"),
    Endpoint("POST", "/api/v1/users/{email}/api-keys/{key_id}/enable", "users:manage"),
    Endpoint("DELETE", "/api/v1/users/{email}/api-keys/{key_id}", "users:manage"),
    Endpoint("GET", "/api/v1/system/health", "configs:read"),
    Endpoint("POST", "/api/v1/system/backup", "system:manage"),
    Endpoint("POST", "/api/v1/system/restore", "system:manage", {"backup": {"format": "x"}}),
]
GRANTS = {
    "viewer": {"configs:read"},
    "developer": {"configs:read", "configs:write"},
    "admin": {"configs:read", "configs:write", "users:manage", "system:manage"},
}


def test_the_table_lists_every_admin_endpoint() -> None:
    routes = {(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
    assert routes == {(e.method, e.template) for e in ENDPOINTS}


async def populate(client: httpx.AsyncClient, org: Org) -> str:
    """Configuration `prod` with server `time`, project `web` using it, dev@example.com in it
    with a project key; returns the key's id."""
    h = org.headers
    assert_envelope(await client.post("/api/v1/configs", json={"config_name": "prod"}, headers=h), 201)
    await add_server(
        client,
        org,
        "prod",
        "time",
        server_command="uvx",
        args=["mcp-server-time"],
        env={"TZ_SECRET": "very-secret-value"},
    )
    assert_envelope(await client.post("/api/v1/projects", json={"project_name": "web"}, headers=h), 201)
    await client.post("/api/v1/projects/web/assign-config", json={"config_name": "prod"}, headers=h)
    for email in (EMAIL, "second@example.com"):
        assert_envelope(await client.post("/api/v1/users", json={"email": email}, headers=h), 201)
    await client.post("/api/v1/projects/web/users", json={"email": EMAIL}, headers=h)
    key = assert_envelope(
        await client.post(f"/api/v1/users/{EMAIL}/api-keys", json={"project_name": "web"}, headers=h), 201
    )
    return str(key["key_id"])


@pytest.mark.parametrize(
    "credential", [None, "Bearer cnd_live_notarealkey", "Bearer not-even-a-key", "Basic eDp5"]
)
async def test_no_valid_credential_is_401(client: httpx.AsyncClient, credential: str | None) -> None:
    headers = {"Authorization": credential} if credential else {}
    for endpoint in ENDPOINTS:
        response = await client.request(endpoint.method, endpoint.path(), json=endpoint.body, headers=headers)
        assert response.status_code == 401, f"{endpoint.method} {endpoint.path()}"
        assert_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_revoked_admin_key_is_401(client: httpx.AsyncClient, admin: Org) -> None:
    key_id = (await client.get("/api/v1/cli/whoami", headers=admin.headers)).json()["keyId"]
    assert (await client.delete(f"/api/keys/{key_id}", headers=admin.headers)).status_code == 200
    assert_error(await client.get("/api/v1/configs", headers=admin.headers), 401)


@pytest.mark.parametrize("role", ["viewer", "developer", "admin"])
async def test_each_role_gets_exactly_its_grants(
    client: httpx.AsyncClient, admin: Org, role_key: RoleKey, role: str
) -> None:
    await populate(client, admin)
    snapshot = assert_envelope(await client.post("/api/v1/system/backup", headers=admin.headers))
    headers = await role_key(role)
    changed = True
    for endpoint in ENDPOINTS:
        if changed:  # every allowed call finds what it acts on
            key_id = await _reset(client, admin, snapshot)
        response = await client.request(
            endpoint.method, endpoint.path(key_id), json=endpoint.body, headers=headers
        )
        label = f"{role}: {endpoint.method} {endpoint.path(key_id)}"
        changed = response.status_code < 300 and endpoint.method != "GET"
        if endpoint.permission not in GRANTS[role]:
            assert_error(response, 403, "permission_denied")
        elif endpoint.template.endswith("/restore"):
            assert_error(response, 400, "invalid_backup")
        else:
            assert response.status_code < 300, (label, response.text)


async def _reset(client: httpx.AsyncClient, org: Org, snapshot: dict[str, Any]) -> str:
    """Back to what `populate` made; returns the id of a fresh project key."""
    await client.delete("/api/v1/users/new@example.com", headers=org.headers)
    assert_envelope(
        await client.post("/api/v1/system/restore", json={"backup": snapshot}, headers=org.headers)
    )
    key = assert_envelope(
        await client.post(
            f"/api/v1/users/{EMAIL}/api-keys", json={"project_name": "web"}, headers=org.headers
        ),
        201,
    )
    return str(key["key_id"])


async def test_the_seed_001_envelope_on_every_prefix(client: httpx.AsyncClient, admin: Org) -> None:
    for path in ("/api/v1/configs", "/api/v1/projects", "/api/v1/users", "/api/v1/system/health"):
        assert_error(await client.get(path), 401)
        assert_envelope(await client.get(path, headers=admin.headers))
    for path, code in [
        ("/api/v1/configs/nope", "config_not_found"),
        ("/api/v1/projects/nope", "project_not_found"),
        ("/api/v1/users/nobody@example.com", "user_not_found"),
        ("/api/v1/system/nothing-here", "not_found"),
        ("/api/v1/configs/prod/nothing-here", "not_found"),
    ]:
        assert_error(await client.get(path, headers=admin.headers), 404, code)
    assert_error(await client.patch("/api/v1/configs", headers=admin.headers), 405, "method_not_allowed")
    assert_error(await client.get("/api/v1/system/backup", headers=admin.headers), 405, "method_not_allowed")
    for path, body in [
        ("/api/v1/configs", {"config_name": "a b"}),
        ("/api/v1/projects", {"project_name": ""}),
        ("/api/v1/users", {"email": "x"}),
        ("/api/v1/system/backup", {"include_secrets": "maybe"}),
    ]:
        error = assert_error(
            await client.post(path, json=body, headers=admin.headers), 422, "validation_error"
        )
        assert error["detail"]["problems"], path
    # Other parts of the API keep their own error body.
    other = await client.get("/api/v1/accounts/me")
    assert other.status_code == 401
    assert "timestamp" not in other.json()
    assert other.json()["code"]


async def test_a_project_key_of_a_viewer_cannot_administer(client: httpx.AsyncClient, admin: Org) -> None:
    await populate(client, admin)
    created = await client.post(
        f"/api/v1/users/{EMAIL}/api-keys", json={"project_name": "web"}, headers=admin.headers
    )
    headers = bearer(assert_envelope(created, 201)["api_key"])
    assert_error(await client.post("/api/v1/configs", json={"config_name": "x"}, headers=headers), 403)
    assert_error(await client.post("/api/v1/system/backup", headers=headers), 403)
    assert_error(await client.get(f"/api/v1/users/{EMAIL}/api-keys", headers=headers), 403)


# --- tenant isolation -------------------------------------------------------------------------


async def test_another_organization_sees_and_changes_nothing(
    client: httpx.AsyncClient, admin: Org, other: Org, runtime: Runtime
) -> None:
    key_id = await populate(client, admin)
    before = await _everything(client, admin)
    for endpoint in ENDPOINTS:
        response = await client.request(
            endpoint.method, endpoint.path(key_id), json=endpoint.body, headers=other.headers
        )
        label = f"{endpoint.method} {endpoint.path(key_id)}"
        assert "very-secret-value" not in response.text, label
        if "{" in endpoint.template:
            assert_error(response, 404)
        elif endpoint.method == "GET" and endpoint.template != "/api/v1/system/health":
            listed = assert_envelope(response)
            mine = [other.owner.email] if endpoint.template == "/api/v1/users" else []
            assert [item.get("email") for item in listed] == mine, label
    assert await _everything(client, admin) == before

    document = assert_envelope(await client.post("/api/v1/system/backup", headers=other.headers))
    text = json.dumps(document)
    for name in ("prod", "time", "web", EMAIL, admin.owner.email, admin.id):
        assert name not in text.replace(other.id, ""), name


async def test_same_names_in_two_organizations_are_separate(
    client: httpx.AsyncClient, admin: Org, other: Org, runtime: Runtime
) -> None:
    key_id = await populate(client, admin)
    other_key_id = await populate(client, other)
    await add_server(client, other, "prod", "other-only")
    await client.delete("/api/v1/configs/prod/servers/time", headers=other.headers)
    assert set(await server_rows(runtime, admin.id)) == {"time"}
    assert set(await server_rows(runtime, other.id)) == {"other-only"}

    # A key id of org A under org B's same-named user: not found, and A's key still works.
    for suffix in ("/disable", "/rotate"):
        assert_error(
            await client.post(f"/api/v1/users/{EMAIL}/api-keys/{key_id}{suffix}", headers=other.headers), 404
        )
    assert_error(await client.delete(f"/api/v1/users/{EMAIL}/api-keys/{key_id}", headers=other.headers), 404)
    listed = assert_envelope(await client.get(f"/api/v1/users/{EMAIL}/api-keys", headers=admin.headers))
    assert [(k["key_id"], k["status"]) for k in listed] == [(key_id, "active")]
    other_listed = assert_envelope(await client.get(f"/api/v1/users/{EMAIL}/api-keys", headers=other.headers))
    assert [k["key_id"] for k in other_listed] == [other_key_id]

    # B deletes its user, project and configuration; A keeps all of its own.
    before = await _everything(client, admin)
    assert_envelope(await client.delete(f"/api/v1/users/{EMAIL}", headers=other.headers))
    assert_envelope(await client.delete("/api/v1/projects/web", headers=other.headers))
    assert_envelope(await client.delete("/api/v1/configs/prod", headers=other.headers))
    assert await _everything(client, admin) == before


async def test_restore_in_one_organization_leaves_the_other_alone(
    client: httpx.AsyncClient, admin: Org, other: Org
) -> None:
    await populate(client, admin)
    await populate(client, other)
    before = await _everything(client, admin)
    empty = assert_envelope(await client.post("/api/v1/system/backup", headers=other.headers))
    empty["configuration"].update(servers=[], configs=[], projects=[])
    assert_envelope(
        await client.post("/api/v1/system/restore", json={"backup": empty}, headers=other.headers)
    )
    assert assert_envelope(await client.get("/api/v1/configs", headers=other.headers)) == []
    assert await _everything(client, admin) == before


async def _everything(client: httpx.AsyncClient, org: Org) -> str:
    parts = {
        path: assert_envelope(await client.get(path, headers=org.headers))
        for path in (
            "/api/v1/configs",
            "/api/v1/projects",
            "/api/v1/users",
            f"/api/v1/users/{EMAIL}/api-keys",
        )
    }
    return json.dumps(parts, sort_keys=True, default=str)


async def test_openapi_documents_the_seed_001_bodies(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    error = spec["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "timestamp", "code"}
    for endpoint in ENDPOINTS:
        operation = spec["paths"][endpoint.template][endpoint.method.lower()]
        for status in ("401", "403", "404", "422"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (endpoint, status)
