"""Helpers of the registry tests: an organization with servers registered and scanned through
the API, the real MCP servers they point at, and the fields the public may see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from conduit.kit.runtime import Runtime
from tests.conftest import User, sign_up
from tests.orgs.conftest import set_plan
from tests.scanning.support import POISONED_ARGV

PUBLIC_SERVER_FIELDS = {
    "id",
    "name",
    "slug",
    "description",
    "transport",
    "health_status",
    "trust_score",
    "trust_grade",
    "last_scanned_at",
    "created_at",
    "badge_url",
}
PUBLIC_FINDING_FIELDS = {
    "id",
    "title",
    "severity",
    "category",
    "owasp_category",
    "owasp_mcp_category",
    "cwe",
    "confidence",
    "description",
    "remediation",
    "location",
}
BREAKDOWN_FIELDS = {"security", "compliance", "auth", "performance", "runtime"}


@dataclass
class Owner:
    """A signed-up account and its personal organization, acting through the API."""

    client: httpx.AsyncClient
    user: User
    org_id: str

    @property
    def headers(self) -> dict[str, str]:
        return self.user.headers

    async def register(self, name: str, **target: Any) -> dict[str, Any]:
        created = await self.client.post("/api/servers", json={"name": name, **target}, headers=self.headers)
        assert created.status_code == 201, created.text
        server: dict[str, Any] = created.json()
        return server

    async def register_poisoned(self, name: str = "Poisoned math", **extra: Any) -> dict[str, Any]:
        """tests/scanning/poisoned_server.py over stdio: hidden orders, graded F."""
        return await self.register(name, command=POISONED_ARGV[0], args=POISONED_ARGV[1:], **extra)

    async def scan(self, slug: str) -> httpx.Response:
        return await self.client.post(f"/api/servers/{slug}/scan", headers=self.headers)

    async def scanned(self, slug: str) -> dict[str, Any]:
        response = await self.scan(slug)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["error"] is None, body
        return body

    async def set_public(self, server_id: str, public: bool) -> dict[str, Any]:
        """Seed 003's update, the way an owner publishes or withdraws a server."""
        response = await self.client.patch(
            f"/api/v1/organizations/{self.org_id}/mcp-servers/{server_id}",
            json={"isPublic": public},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def new_owner(client: httpx.AsyncClient, runtime: Runtime, plan: str | None = None) -> Owner:
    user = await sign_up(client)
    orgs = await client.get("/api/v1/organizations", headers=user.headers)
    assert orgs.status_code == 200, orgs.text
    org_id = orgs.json()[0]["id"]
    if plan is not None:
        await set_plan(runtime, org_id, plan)
    return Owner(client, user, org_id)


async def registry(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/registry", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def names(page: dict[str, Any]) -> list[str]:
    return [server["name"] for server in page["servers"]]
