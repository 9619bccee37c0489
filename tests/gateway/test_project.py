"""`/mcp`: a project key reaches the servers of its project's configuration as one MCP server,
tools named `{server}__{tool}`, limited to the configuration's tool allowlists."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import MCPError

from tests.gateway.support import ACCEPT, INIT, Live, Org, mcp_client
from tests.mcp_servers import ServerProcess
from tests.test_mcp_servers import Progress, text

pytestmark = pytest.mark.e2e


async def admin(org: Org, method: str, path: str, body: Any = None, status: int = 201) -> Any:
    response = await org.api.request(method, f"/api/v1{path}", json=body, headers=org.headers)
    assert response.status_code == status, response.text
    return response.json()["data"]


async def project_key(org: Org, servers: list[dict[str, Any]]) -> str:
    await admin(org, "POST", "/configs", {"config_name": "agents"})
    for server in servers:
        await admin(org, "POST", "/configs/agents/servers", server)
    await admin(org, "POST", "/projects", {"project_name": "support-bot"})
    await admin(org, "POST", "/projects/support-bot/assign-config", {"config_name": "agents"}, 200)
    me = (await org.api.get("/api/v1/accounts/me", headers=org.headers)).json()
    await admin(org, "POST", "/projects/support-bot/users", {"email": me["email"]})
    created = await admin(org, "POST", f"/users/{me['email']}/api-keys", {"project_name": "support-bot"})
    key: str = created["api_key"]
    return key


async def test_a_project_key_sees_its_configuration_as_one_server(
    live: Live, org: Org, fixture_http: ServerProcess, everything_http: ServerProcess
) -> None:
    key = await project_key(
        org,
        [
            {"server_name": "fixture", "url": fixture_http.url, "tools": ["echo", "slow"]},
            {"server_name": "everything", "url": everything_http.url},
        ],
    )
    url = f"{live.base_url}/mcp"
    async with mcp_client(url, key, mode="legacy") as client:
        assert client.server_info.name == "conduit"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"fixture__echo", "fixture__slow", "everything__echo", "everything__get-sum"} <= names
        assert "fixture__fail" not in names  # not in the configuration's allowlist
        assert not any(name.startswith("fixture__test_") for name in names)

        assert text(await client.call_tool("fixture__echo", {"message": "one"})) == "one"
        assert text(await client.call_tool("everything__echo", {"message": "two"})) == "Echo: two"
        progress = Progress()
        done = await client.call_tool(
            "fixture__slow", {"seconds": 0.2, "steps": 2}, progress_callback=progress
        )
        assert text(done) == "done"
        assert len(progress.updates) == 2

        for refused in ("fixture__fail", "nobody__echo", "echo"):
            with pytest.raises(MCPError) as error:
                await client.call_tool(refused, {})
            assert error.value.error.code == -32602

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"fixture__greeting", "everything__simple-prompt"} <= prompts
        greeting = await client.get_prompt("fixture__greeting", {"name": "Bob"})
        assert "Bob" in str(greeting.messages[0].content)

        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "fixture://hello" in resources
        read = await client.read_resource("fixture://hello")
        assert getattr(read.contents[0], "text", None) == "hello from the fixture server"
        document = next(uri for uri in resources if uri.startswith("demo://resource/static/"))
        assert str((await client.read_resource(document)).contents[0].uri) == document


async def test_project_endpoint_and_scope_are_enforced(
    live: Live, org: Org, fixture_http: ServerProcess, everything_http: ServerProcess
) -> None:
    key = await project_key(org, [{"server_name": "fixture", "url": fixture_http.url}])
    outside = await org.register("outside", upstream_url=everything_http.url)
    async with httpx.AsyncClient(timeout=10) as http:
        not_a_project_key = await http.post(
            f"{live.base_url}/mcp", json=INIT, headers={**ACCEPT, "X-API-Key": org.key}
        )
        assert not_a_project_key.status_code == 403
        assert "insufficient_scope" in not_a_project_key.headers["www-authenticate"]
        out_of_project = await http.post(
            outside["gateway_endpoint"], json=INIT, headers={**ACCEPT, "X-API-Key": key}
        )
        assert out_of_project.status_code == 403
        fixture_endpoint = outside["gateway_endpoint"].replace("/outside/", "/fixture/")
        in_project = await http.post(fixture_endpoint, json=INIT, headers={**ACCEPT, "X-API-Key": key})
        assert in_project.status_code == 200, in_project.text
        anonymous = await http.post(f"{live.base_url}/mcp", json=INIT, headers=ACCEPT)
        assert anonymous.status_code == 401


async def test_stateless_2026_clients_reach_the_project_endpoint(
    live: Live, org: Org, fixture_http: ServerProcess, everything_http: ServerProcess
) -> None:
    key = await project_key(
        org,
        [
            {"server_name": "fixture", "url": fixture_http.url, "tools": ["echo", "slow"]},
            {"server_name": "everything", "url": everything_http.url},
        ],
    )
    async with mcp_client(f"{live.base_url}/mcp", key, mode="2026-07-28") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"fixture__echo", "fixture__slow", "everything__get-sum"} <= names
        assert "fixture__fail" not in names
        assert text(await client.call_tool("fixture__echo", {"message": "one"})) == "one"
        assert text(await client.call_tool("everything__echo", {"message": "two"})) == "Echo: two"
        progress = Progress()
        await client.call_tool("fixture__slow", {"seconds": 0.2, "steps": 2}, progress_callback=progress)
        assert len(progress.updates) == 2
        with pytest.raises(MCPError) as error:
            await client.call_tool("fixture__fail", {})
        assert error.value.error.code == -32602
        read = await client.read_resource("fixture://hello")
        assert getattr(read.contents[0], "text", None) == "hello from the fixture server"
    assert not live.app.state.gateway.sessions  # stateless: no Conduit session was opened
