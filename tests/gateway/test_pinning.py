"""Trust enforcement: a scan pins each tool's definition; a tool whose definition the upstream
changes afterwards is held back by the gateway (absent from tools/list, refused on tools/call)
until its owner approves the new definition or scans the server again."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import MCPError
from mcp_types import TextContent
from sqlalchemy import update

from conduit.kit.runtime import Runtime
from conduit.servers.models import Tool
from tests.gateway.support import Live, Org, mcp_client
from tests.mcp_servers import ServerProcess

pytestmark = pytest.mark.e2e
RUG_PULLED = "0" * 64  # what the pin says after the upstream swapped the definition under it


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def tool_statuses(org: Org, server_id: str) -> dict[str, dict[str, Any]]:
    response = await org.api.get(org.server_path(server_id), headers=org.headers)
    assert response.status_code == 200, response.text
    return {tool["name"]: tool for tool in response.json()["tools"]}


async def test_a_changed_definition_is_held_back_until_approved(
    live: Live, org: Org, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    live.app.state.gateway.targets.ttl = 0
    server = await org.register("fixture", upstream_url=fixture_http.url)
    scanned = await org.api.post(f"/api/servers/{server['slug']}/scan", headers=org.headers)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["error"] is None
    tools = await tool_statuses(org, server["id"])
    assert {tool["status"] for tool in tools.values()} == {"active"}  # pinned as scanned

    # The upstream now serves `echo` with another definition than the scanned one.
    async with runtime.db.session() as session:
        await session.execute(
            update(Tool)
            .where(Tool.server_id == server["id"], Tool.name == "echo")
            .values(pinned_hash=RUG_PULLED)
        )
    assert (await tool_statuses(org, server["id"]))["echo"]["status"] == "held"
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo" not in listed
        assert "slow" in listed  # the others are untouched
        with pytest.raises(MCPError) as refused:
            await client.call_tool("echo", {"message": "held"})
        assert refused.value.error.code == -32602

    approved = await org.api.post(
        f"{org.server_path(server['id'])}/tools/{tools['echo']['id']}/approve", headers=org.headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        assert "echo" in {tool.name for tool in (await client.list_tools()).tools}
        assert text(await client.call_tool("echo", {"message": "approved"})) == "approved"


async def test_tools_never_scanned_or_approved_are_not_held(
    live: Live, org: Org, fixture_http: ServerProcess
) -> None:
    live.app.state.gateway.targets.ttl = 0
    server = await org.register("fixture", upstream_url=fixture_http.url)
    discovered = await org.api.post(f"{org.server_path(server['id'])}/discover-tools", headers=org.headers)
    assert discovered.status_code == 200, discovered.text
    assert {tool["status"] for tool in discovered.json()["tools"]} == {"active"}
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        assert text(await client.call_tool("echo", {"message": "unpinned"})) == "unpinned"


async def test_a_rug_pull_discovery_has_not_seen_is_caught_from_the_live_listing(
    live: Live, org: Org, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    live.app.state.gateway.targets.ttl = 0
    server = await org.register("fixture", upstream_url=fixture_http.url)
    scanned = await org.api.post(f"/api/servers/{server['slug']}/scan", headers=org.headers)
    assert scanned.json()["error"] is None
    # Stored and pinned agree, as after the scan; the upstream serves something else now.
    async with runtime.db.session() as session:
        await session.execute(
            update(Tool)
            .where(Tool.server_id == server["id"], Tool.name == "echo")
            .values(pinned_hash=RUG_PULLED, definition_hash=RUG_PULLED)
        )
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        assert text(await client.call_tool("echo", {"message": "not listed yet"})) == "not listed yet"
        assert "echo" not in {tool.name for tool in (await client.list_tools()).tools}
        with pytest.raises(MCPError) as refused:  # seen changed in the listing: calls stop too
            await client.call_tool("echo", {"message": "after the listing"})
        assert refused.value.error.code == -32602
