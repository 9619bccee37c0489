"""Organizations and keys for the admin API tests, built through the real endpoints.

`admin` is an organization admin key on an uncapped plan (like the one `conduit init` prints);
`other` is a second organization for tenant isolation; `role_key` makes a service key with a
given role in an organization, for the permission checks.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization
from conduit.servers.models import Server
from tests.conftest import User, sign_up


@dataclass
class Org:
    id: str
    owner: User
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_org(client: httpx.AsyncClient, runtime: Runtime, plan: str = "enterprise") -> Org:
    owner = await sign_up(client)
    created = await client.post("/api/keys", json={"name": "admin"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    whoami = await client.get("/api/v1/cli/whoami", headers=bearer(key))
    org_id = whoami.json()["organizationId"]
    async with runtime.db.session() as session:
        await session.execute(update(Organization).where(Organization.id == org_id).values(plan=plan))
    return Org(org_id, owner, key)


@pytest.fixture
async def admin(client: httpx.AsyncClient, runtime: Runtime) -> Org:
    return await make_org(client, runtime)


@pytest.fixture
async def other(client: httpx.AsyncClient, runtime: Runtime) -> Org:
    return await make_org(client, runtime)


RoleKey = Callable[[str], Coroutine[Any, Any, dict[str, str]]]


@pytest.fixture
def role_key(client: httpx.AsyncClient, admin: Org) -> RoleKey:
    """Headers of a service key with `role` in the `admin` organization."""

    async def make(role: str) -> dict[str, str]:
        created = await client.post(
            f"/api/v1/organizations/{admin.id}/api-keys",
            json={"name": f"{role} key", "roleKey": role},
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
        return bearer(created.json()["fullKey"])

    return make


def assert_envelope(response: httpx.Response, status: int = 200) -> Any:
    """The seed 001 success body; returns its `data`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "data", "timestamp"}
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["timestamp"].endswith("Z")
    return body["data"]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The seed 001 error body `{error, detail, timestamp}` (plus our `code`)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert {"error", "detail", "timestamp"} <= set(body), body
    assert "message" not in body
    assert "data" not in body
    assert body["timestamp"].endswith("Z")
    if code is not None:
        assert body["error"] == code, body
    return body


async def server_rows(runtime: Runtime, org_id: str) -> dict[str, Server]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(select(Server).where(Server.org_id == org_id))
        return {s.name: s for s in rows.all()}


async def add_server(
    client: httpx.AsyncClient, org: Org, config: str, name: str, **definition: Any
) -> dict[str, Any]:
    body = {"server_name": name, **(definition or {"server_command": "uvx", "args": [name]})}
    data: dict[str, Any] = assert_envelope(
        await client.post(f"/api/v1/configs/{config}/servers", json=body, headers=org.headers), 201
    )
    return data
