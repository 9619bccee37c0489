"""Real MCP servers nobody here wrote, reached through the gateway with the official SDK client:
`@modelcontextprotocol/server-everything` (stdio, streamable HTTP, SSE) and `mcp-server-time`
(stdio). What the client sees must be what it sees directly (tests/test_mcp_servers.py)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import ImageContent

from tests.gateway.support import Live, Org, mcp_client
from tests.mcp_servers import ServerProcess, StdioCommand
from tests.test_mcp_servers import Progress, answer_elicitation, answer_sampling, text

pytestmark = pytest.mark.e2e


async def exercise_everything(url: str, key: str, mode: str) -> None:
    logged: list[Any] = []

    async def on_log(params: Any) -> None:
        logged.append(params)

    roots_asked: list[bool] = []

    async def list_roots(context: Any) -> Any:
        from mcp_types import ListRootsResult, Root

        roots_asked.append(True)
        return ListRootsResult(roots=[Root(uri="file:///tmp", name="tmp")])

    client = mcp_client(
        url,
        key,
        mode=mode,
        sampling_callback=answer_sampling,
        elicitation_callback=answer_elicitation,
        list_roots_callback=list_roots,
        logging_callback=on_log,
    )
    async with client:
        assert client.server_info.name == "mcp-servers/everything"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation"} <= names
        # Registered by the upstream after `initialized`, from the capabilities the client declared
        # through the gateway.
        assert {"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"} <= names

        assert text(await client.call_tool("echo", {"message": "hi"})) == "Echo: hi"
        assert text(await client.call_tool("get-sum", {"a": 2, "b": 3})) == "The sum of 2 and 3 is 5."
        image = await client.call_tool("get-tiny-image", {})
        assert any(isinstance(block, ImageContent) and block.data for block in image.content)

        progress = Progress()
        result = await client.call_tool(
            "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=progress
        )
        assert not result.is_error
        assert [p for p, _, _ in progress.updates] == [1, 2, 3]

        sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 10})
        assert "a sampled answer" in text(sampled)
        elicited = await client.call_tool("trigger-elicitation-request", {})
        assert "Name: Ada" in text(elicited)
        roots = await client.call_tool("get-roots-list", {})
        assert "file:///tmp" in text(roots)

        resources = (await client.list_resources()).resources
        first = next(r for r in resources if str(r.uri).startswith("demo://resource/static/"))
        contents = (await client.read_resource(first.uri)).contents
        assert str(contents[0].uri) == str(first.uri)
        templates = (await client.list_resource_templates()).resource_templates
        assert any("dynamic" in t.uri_template for t in templates)

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"simple-prompt", "args-prompt"} <= prompts
        prompt = await client.get_prompt("args-prompt", {"city": "Lisbon"})
        assert "Lisbon" in str(prompt.messages[0].content)
        completion = await client.complete(
            {"type": "ref/prompt", "name": "completable-prompt"}, {"name": "department", "value": "E"}
        )
        assert "Engineering" in completion.completion.values


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_everything_over_streamable_http(
    live: Live, org: Org, everything_http: ServerProcess, mode: str
) -> None:
    server = await org.register("everything", upstream_url=everything_http.url)
    await exercise_everything(server["gateway_endpoint"], org.key, mode)


async def test_everything_over_stdio(live: Live, org: Org, everything_stdio: StdioCommand) -> None:
    server = await org.register_stdio("everything", everything_stdio)
    await exercise_everything(server["gateway_endpoint"], org.key, "auto")


async def test_everything_over_sse(live: Live, org: Org, everything_sse: ServerProcess) -> None:
    server = await org.register("everything", upstream_url=everything_sse.url)
    assert server["transport"] == "sse"
    await exercise_everything(server["gateway_endpoint"], org.key, "legacy")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_server_time_over_stdio(live: Live, org: Org, time_stdio: StdioCommand, mode: str) -> None:
    server = await org.register_stdio("time", time_stdio)
    async with mcp_client(server["gateway_endpoint"], org.key, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"get_current_time", "convert_time"}
        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not result.is_error
        assert result.structured_content is not None
        assert result.structured_content["timezone"] == "UTC"
        converted = await client.call_tool(
            "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        )
        assert "Asia/Tokyo" in text(converted)
