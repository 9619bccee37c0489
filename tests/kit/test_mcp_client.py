"""Conduit's own MCP client against real upstreams: the SDK fixture server (HTTP and stdio),
server-everything (streamable HTTP and legacy SSE), mcp-server-time and a paginating server."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import conduit
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.client import McpCallError, McpClient, McpProtocolError, probe_modern
from conduit.kit.mcp.httpclient import HttpClient
from conduit.kit.mcp.upstream import UpstreamClosed, UpstreamError, UpstreamSpec, upstream_client
from tests.mcp_servers import ServerProcess, StdioCommand, free_port

PAGING_SERVER = Path(__file__).resolve().parent / "paging_server.py"


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[HttpClient]:
    client = upstream_client()
    yield client
    await client.aclose()


def remote(server: ServerProcess, transport: str = "streamable_http") -> UpstreamSpec:
    return UpstreamSpec("srv_test", "test", transport, url=server.url)


def stdio(command: StdioCommand) -> UpstreamSpec:
    return UpstreamSpec("srv_test", "test", "stdio", command=command.command, args=tuple(command.args))


def paging(*args: str, env: dict[str, str] | None = None) -> UpstreamSpec:
    return UpstreamSpec(
        "srv_test", "paging", "stdio", command=sys.executable, args=(str(PAGING_SERVER), *args), env=env or {}
    )


def text_of(result: dict[str, object]) -> str:
    content = result["content"]
    assert isinstance(content, list)
    return "".join(block["text"] for block in content if block.get("type") == "text")


async def test_initialize_over_streamable_http(fixture_http: ServerProcess, http: HttpClient) -> None:
    async with McpClient(remote(fixture_http), http) as client:
        assert client.server_info == {"name": "conduit-fixture", "version": "1.0.0"}
        assert client.protocol_version == "2025-11-25"
        assert client.instructions == "Conduit's test upstream."
        assert {"tools", "resources", "prompts"} <= set(client.capabilities)
        await client.ping()


async def test_lists_the_whole_catalog(fixture_stdio: StdioCommand, http: HttpClient) -> None:
    async with McpClient(stdio(fixture_stdio), http) as client:
        assert client.server_info["name"] == "conduit-fixture"
        tools = {tool["name"]: tool for tool in await client.list_tools()}
        assert {"echo", "slow", "big", "fail", "die", "never", "image", "ask"} <= set(tools)
        assert tools["echo"]["inputSchema"]["properties"]["message"]["type"] == "string"
        resources = [r["uri"] for r in await client.list_resources()]
        assert "fixture://hello" in resources
        templates = [t["uriTemplate"] for t in await client.list_resource_templates()]
        assert templates == ["test://template/{id}/data"]
        prompts = [p["name"] for p in await client.list_prompts()]
        assert "greeting" in prompts


async def test_call_tool_answers_results_and_errors(fixture_http: ServerProcess, http: HttpClient) -> None:
    async with McpClient(remote(fixture_http), http) as client:
        echoed = await client.call_tool("echo", {"message": "hello ünïcode"})
        assert (text_of(echoed), echoed["isError"]) == ("hello ünïcode", False)
        failed = await client.call_tool("fail", {"message": "boom"})
        assert failed["isError"] is True
        assert "boom" in text_of(failed)
        # An SDK MCPServer answers an unknown tool with a tool error, not a JSON-RPC one.
        unknown = await client.call_tool("no-such-tool", {})
        assert unknown["isError"] is True
        assert "no-such-tool" in text_of(unknown)
        # A JSON-RPC error: the method does not exist.
        with pytest.raises(McpCallError) as missing:
            await client.request("no/such/method")
        assert (missing.value.code, missing.value.as_dict()["code"]) == (jsonrpc.METHOD_NOT_FOUND,) * 2
        # The session survives it.
        assert text_of(await client.call_tool("echo", {"message": "still here"})) == "still here"


async def test_mcp_server_time_over_stdio(time_stdio: StdioCommand, http: HttpClient) -> None:
    async with McpClient(stdio(time_stdio), http) as client:
        assert client.server_info["name"] == "mcp-time"
        assert [t["name"] for t in await client.list_tools()] == ["get_current_time", "convert_time"]
        # Advertised but empty, as the server lists them.
        assert await client.list_resources() == []
        assert await client.list_prompts() == []
        now = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert now["isError"] is False
        assert "UTC" in text_of(now)
        with pytest.raises(McpCallError) as unknown:
            await client.call_tool("nope", {})
        assert (unknown.value.code, unknown.value.message) == (jsonrpc.INVALID_PARAMS, "Unknown tool: nope")


async def test_legacy_sse_transport(everything_sse: ServerProcess, http: HttpClient) -> None:
    async with McpClient(remote(everything_sse, "sse"), http) as client:
        assert client.server_info["name"] == "mcp-servers/everything"
        names = {tool["name"] for tool in await client.list_tools()}
        assert {"echo", "get-sum"} <= names
        assert len(await client.list_resources()) > 0
        assert text_of(await client.call_tool("echo", {"message": "hi"})) == "Echo: hi"
        await client.ping()


async def test_follows_next_cursor_across_pages(http: HttpClient) -> None:
    async with McpClient(paging("--tools", "25", "--page-size", "10"), http) as client:
        tools = await client.list_tools()
        assert [t["name"] for t in tools] == [f"tool-{n:03d}" for n in range(25)]
        # Capabilities without resources or prompts: not even asked.
        assert (await client.list_resources(), await client.list_prompts()) == ([], [])


async def test_a_cursor_loop_is_an_error_not_a_hang(http: HttpClient) -> None:
    async with McpClient(paging("--loop"), http) as client:
        started = time.monotonic()
        with pytest.raises(McpProtocolError, match="loop"):
            await client.list_tools()
        assert time.monotonic() - started < 5


async def test_a_method_the_server_lacks_lists_as_empty(http: HttpClient) -> None:
    async with McpClient(paging(), http) as client:
        # Pretend the server advertised prompts: prompts/list answers -32601, read as "none".
        client.capabilities["prompts"] = {}
        assert await client.list_prompts() == []
        with pytest.raises(McpCallError) as missing:
            await client.request("prompts/list")
        assert missing.value.code == jsonrpc.METHOD_NOT_FOUND


async def test_unreachable_upstreams_raise_upstream_errors(http: HttpClient) -> None:
    closed = UpstreamSpec("srv_test", "closed", "streamable_http", url=f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(UpstreamClosed):
        async with McpClient(closed, http):
            pass
    missing = UpstreamSpec("srv_test", "missing", "stdio", command="/nonexistent/conduit-test-binary")
    with pytest.raises(UpstreamError):
        async with McpClient(missing, http):
            pass


async def test_the_environment_reaches_a_stdio_process(http: HttpClient) -> None:
    async with McpClient(paging(env={"PAGING_TOOLS": "3"}), http) as client:
        assert len(await client.list_tools()) == 3


async def test_probe_modern(
    fixture_http: ServerProcess,
    everything_http: ServerProcess,
    time_stdio: StdioCommand,
    everything_stdio: StdioCommand,
    everything_sse: ServerProcess,
    http: HttpClient,
) -> None:
    assert await probe_modern(remote(fixture_http), http) == ["2026-07-28"]
    assert await probe_modern(stdio(time_stdio), http) == ["2026-07-28"]
    assert await probe_modern(remote(everything_http), http) == []
    assert await probe_modern(stdio(everything_stdio), http) == []
    assert await probe_modern(remote(everything_sse, "sse"), http) == []
    closed = UpstreamSpec("srv_test", "closed", "streamable_http", url=f"http://127.0.0.1:{free_port()}/mcp")
    assert await probe_modern(closed, http, timeout=2) == []


async def test_the_probe_leaves_the_upstream_usable_in_the_handshake_era(
    fixture_http: ServerProcess, http: HttpClient
) -> None:
    assert await probe_modern(remote(fixture_http), http) == ["2026-07-28"]
    async with McpClient(remote(fixture_http), http) as client:
        assert client.protocol_version == "2025-11-25"


async def test_client_info_is_conduits(fixture_http: ServerProcess, http: HttpClient) -> None:
    async with McpClient(remote(fixture_http), http) as client:
        # The fixture server's own view of its client is not exposed; the handshake we sent is.
        assert client.session.init_message is not None
        assert client.session.init_message["params"]["clientInfo"] == {
            "name": "conduit",
            "version": conduit.__version__,
        }
