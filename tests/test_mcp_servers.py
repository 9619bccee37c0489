"""The real MCP upstreams, reached directly with the official SDK client (no gateway).

These prove the test infrastructure (tests/mcp_servers.py, tests/conftest_mcp.py) and are the
"direct path" half of the later direct-versus-through-Conduit comparisons.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp_types import (
    CallToolResult,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ImageContent,
    TextContent,
)

from tests.mcp_servers import ServerProcess, StdioCommand

pytestmark = pytest.mark.e2e


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def answer_sampling(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
    return CreateMessageResult(
        role="assistant",
        content=TextContent(type="text", text="a sampled answer"),
        model="test-model",
        stop_reason="endTurn",
    )


async def answer_elicitation(context: Any, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"name": "Ada", "check": True})


class Progress:
    def __init__(self) -> None:
        self.updates: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.updates.append((progress, total, message))


# --- server-everything --------------------------------------------------------------------------


async def test_everything_http_tools_resources_prompts(everything_http: ServerProcess) -> None:
    async with Client(everything_http.url) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation"} <= names

        assert text(await client.call_tool("echo", {"message": "hi"})) == "Echo: hi"

        resources = (await client.list_resources()).resources
        first = next(r for r in resources if r.uri.startswith("demo://resource/static/"))
        contents = (await client.read_resource(first.uri)).contents
        assert contents[0].uri == first.uri

        prompt = await client.get_prompt("args-prompt", {"city": "Lisbon"})
        assert "Lisbon" in str(prompt.messages[0].content)


async def test_everything_http_progress_sampling_elicitation(everything_http: ServerProcess) -> None:
    client = Client(
        everything_http.url, sampling_callback=answer_sampling, elicitation_callback=answer_elicitation
    )
    async with client:
        # Registered after `initialized`, from the capabilities the client declared.
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"trigger-sampling-request", "trigger-elicitation-request"} <= names

        progress = Progress()
        arguments = {"duration": 0.3, "steps": 3}
        result = await client.call_tool(
            "trigger-long-running-operation", arguments, progress_callback=progress
        )
        assert not result.is_error
        assert [p for p, _, _ in progress.updates] == [1, 2, 3]

        result = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 10})
        assert "a sampled answer" in text(result)

        result = await client.call_tool("trigger-elicitation-request", {})
        assert "Name: Ada" in text(result)


async def test_everything_sse(everything_sse: ServerProcess) -> None:
    assert everything_sse.url.endswith("/sse")
    async with Client(sse_client(everything_sse.url)) as client:
        assert "echo" in {tool.name for tool in (await client.list_tools()).tools}
        assert text(await client.call_tool("get-sum", {"a": 2, "b": 3})) == "The sum of 2 and 3 is 5."
        prompt = await client.get_prompt("simple-prompt")
        assert prompt.messages


async def test_everything_stdio(everything_stdio: StdioCommand) -> None:
    async with Client(everything_stdio.params()) as client:
        assert "echo" in {tool.name for tool in (await client.list_tools()).tools}
        assert text(await client.call_tool("echo", {"message": "over stdio"})) == "Echo: over stdio"
        image = await client.call_tool("get-tiny-image", {})
        assert any(isinstance(block, ImageContent) for block in image.content)


# --- mcp-server-time ----------------------------------------------------------------------------


async def test_time_stdio(time_stdio: StdioCommand) -> None:
    async with Client(time_stdio.params()) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"get_current_time", "convert_time"}
        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not result.is_error
        assert result.structured_content is not None
        assert result.structured_content["timezone"] == "UTC"


# --- the fixture server -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_fixture_http(fixture_http: ServerProcess, mode: str) -> None:
    """Both protocol eras: 2026-07-28 (`auto` finds it by `server/discover`) and 2025-11-25."""
    async with Client(fixture_http.url, mode=mode, elicitation_callback=answer_elicitation) as client:  # type: ignore[arg-type]
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "slow", "big", "fail", "die", "never", "image", "ask", "test_simple_text"} <= names

        assert text(await client.call_tool("echo", {"message": "hi"})) == "hi"

        progress = Progress()
        result = await client.call_tool("slow", {"seconds": 0.3, "steps": 3}, progress_callback=progress)
        assert text(result) == "done"
        assert progress.updates == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]

        assert text(await client.call_tool("ask", {})) == "hello Ada"

        failed = await client.call_tool("fail", {})
        assert failed.is_error
        assert text(failed).endswith("this tool always fails")

        image = (await client.call_tool("image", {})).content[0]
        assert isinstance(image, ImageContent)
        assert image.mime_type == "image/png"

        resource = (await client.read_resource("fixture://hello")).contents[0]
        assert getattr(resource, "text", None) == "hello from the fixture server"

        prompt = await client.get_prompt("greeting", {"name": "Bob"})
        assert prompt.messages[0].content == TextContent(type="text", text="Say hello to Bob.")


async def test_fixture_http_json_big_result(fixture_http_json: ServerProcess) -> None:
    """10 MB in one JSON response (the SDK client caps one SSE event at 1 MiB, JSON is uncapped)."""
    async with Client(fixture_http_json.url, mode="legacy") as client:
        result = await client.call_tool("big", {"size": 10_000_000})
        assert len(text(result)) == 10_000_000


async def test_fixture_stdio(fixture_stdio: StdioCommand) -> None:
    async with Client(fixture_stdio.params()) as client:
        assert (
            text(await client.call_tool("test_simple_text", {}))
            == "This is a simple text response for testing."
        )
