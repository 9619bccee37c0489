"""A small MCP server for the gateway tests, written with the official `mcp` SDK.

    python tests/fixture_server.py stdio
    python tests/fixture_server.py http --port 8123 [--json]     # http://127.0.0.1:8123/mcp

Tools for the gateway's edge cases: `echo`, `slow` (progress), `big` (a large result), `fail`
(a tool error), `die` (the process exits mid-call), `never` (no answer), `image`, `ask`
(elicitation); a resource and a prompt. Plus the tools, resources and prompts the conformance
suite (`@modelcontextprotocol/conformance`, server mode) looks for, named as it expects.
Over HTTP it listens on 127.0.0.1 only; `--json` answers with JSON bodies instead of SSE.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import struct
import zlib
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types import (
    AudioContent,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel


def _png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _wav(samples: int = 800) -> bytes:
    data = b"\x00\x00" * samples
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(_wav()).decode()

mcp: MCPServer[Any] = MCPServer("conduit-fixture", version="1.0.0", instructions="Conduit's test upstream.")


# --- tools for the gateway's own tests -------------------------------------------------------


@mcp.tool()
def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


@mcp.tool()
async def slow(ctx: Context, seconds: float = 1.0, steps: int = 5) -> str:
    """Sleep `seconds` in `steps` steps, reporting progress after each."""
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        await ctx.report_progress(step, steps, f"step {step}")
    return "done"


@mcp.tool()
def big(size: int = 10_000_000) -> str:
    """Return `size` bytes of text."""
    return "x" * size


@mcp.tool()
def fail(message: str = "this tool always fails") -> str:
    """Always fail with a tool error (isError: true)."""
    raise ToolError(message)


@mcp.tool()
async def die(code: int = 3) -> str:
    """Exit the server process in the middle of the call."""
    await asyncio.sleep(0.05)
    os._exit(code)


@mcp.tool()
async def never() -> str:
    """Never answer."""
    await asyncio.Event().wait()
    return "unreachable"


@mcp.tool()
def image() -> ImageContent:
    """A 2x2 red PNG."""
    return ImageContent(type="image", data=PNG_B64, mime_type="image/png")


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@mcp.tool()
def ask(answer: Annotated[ElicitationResult[Name], Resolve(ask_name)]) -> str:
    """Ask the client for a name (elicitation) and greet it.

    Works in both protocol eras: a real elicitation/create request up to 2025-11-25, an
    input-required result at 2026-07-28.
    """
    if isinstance(answer, AcceptedElicitation):
        return f"hello {answer.data.name}"
    return answer.action


@mcp.resource("fixture://hello", mime_type="text/plain")
def hello() -> str:
    """A fixed text resource."""
    return "hello from the fixture server"


@mcp.prompt()
def greeting(name: str) -> str:
    """A prompt with one argument."""
    return f"Say hello to {name}."


# --- the conformance suite's vocabulary (see its scenario descriptions) -----------------------


@mcp.tool()
def test_simple_text() -> str:
    """Return simple text."""
    return "This is a simple text response for testing."


@mcp.tool()
def test_image_content() -> ImageContent:
    """Return image content."""
    return ImageContent(type="image", data=PNG_B64, mime_type="image/png")


@mcp.tool()
def test_audio_content() -> AudioContent:
    """Return audio content."""
    return AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")


def _embedded(uri: str = "test://embedded-resource") -> EmbeddedResource:
    contents = TextResourceContents(
        uri=uri, mime_type="text/plain", text="This is an embedded resource content."
    )
    return EmbeddedResource(type="resource", resource=contents)


@mcp.tool()
def test_embedded_resource() -> EmbeddedResource:
    """Return an embedded resource."""
    return _embedded()


@mcp.tool()
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Return text, image and resource content."""
    text = TextContent(type="text", text="Multiple content types test:")
    return [text, ImageContent(type="image", data=PNG_B64, mime_type="image/png"), _embedded()]


@mcp.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Send three log messages while running."""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
        await asyncio.sleep(0.05)
    return "Tool with logging executed successfully"


@mcp.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Report progress 0, 50, 100."""
    for progress in (0, 50, 100):
        await ctx.report_progress(progress, 100, f"Completed step {progress}")
        await asyncio.sleep(0.05)
    return "Progress test completed"


@mcp.tool()
def test_error_handling() -> str:
    """Always fail."""
    raise ToolError("This tool intentionally returns an error for testing")


@mcp.tool()
async def test_sampling(ctx: Context, prompt: str) -> str:
    """Ask the client's LLM (sampling) and return its answer."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    result = await ctx.session.create_message([message], max_tokens=100, related_request_id=ctx.request_id)
    text = result.content.text if isinstance(result.content, TextContent) else str(result.content)
    return f"LLM response: {text}"


async def _elicit(ctx: Context, message: str, properties: dict[str, Any], required: list[str]) -> str:
    schema = {"type": "object", "properties": properties, "required": required}
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return f"action={result.action}, content={result.content}"


@mcp.tool()
async def test_elicitation(ctx: Context, message: str) -> str:
    """Ask the user for a username and an email."""
    properties = {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    }
    return "User response: " + await _elicit(ctx, message, properties, ["username", "email"])


@mcp.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicit a form whose fields all carry defaults."""
    properties = {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    }
    return "Elicitation completed: " + await _elicit(ctx, "Please review the defaults", properties, [])


@mcp.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicit a form with the five enum shapes."""
    titled = [{"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}]
    options = ["option1", "option2", "option3"]
    properties = {
        "untitledSingle": {"type": "string", "enum": options},
        "titledSingle": {"type": "string", "oneOf": titled},
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": options}},
        "titledMulti": {"type": "array", "items": {"anyOf": titled}},
    }
    return "Elicitation completed: " + await _elicit(ctx, "Pick options", properties, [])


@mcp.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """A static text resource."""
    return "This is the content of the static text resource."


@mcp.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A static binary resource."""
    return PNG


@mcp.resource("test://template/{id}/data", mime_type="application/json")
def template_data(id: str) -> str:
    """A resource template."""
    return f'{{"id": "{id}", "templateTest": true, "data": "Data for ID: {id}"}}'


@mcp.resource("test://watched-resource", mime_type="text/plain")
def watched() -> str:
    """A resource clients can subscribe to."""
    return "Watched resource content"


@mcp.prompt()
def test_simple_prompt() -> str:
    """A prompt without arguments."""
    return "This is a simple prompt for testing."


@mcp.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with two arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@mcp.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt carrying an embedded resource."""
    return [UserMessage(_embedded(resourceUri)), UserMessage("Please process the embedded resource above.")]


@mcp.prompt()
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt carrying an image."""
    picture = ImageContent(type="image", data=PNG_B64, mime_type="image/png")
    return [UserMessage(picture), UserMessage("Please analyze the image above.")]


@mcp.completion()
async def complete(ref: Any, argument: Any, context: Any) -> Completion:
    values = ["paris", "park", "party"]
    return Completion(values=[v for v in values if v.startswith(argument.value)], total=None, has_more=False)


async def _accept(ctx: Any, params: Any) -> EmptyResult:
    return EmptyResult()


# resources/subscribe, resources/unsubscribe and logging/setLevel: accepted, nothing more.
for _method, _params in (
    ("resources/subscribe", SubscribeRequestParams),
    ("resources/unsubscribe", UnsubscribeRequestParams),
    ("logging/setLevel", SetLevelRequestParams),
):
    mcp._lowlevel_server.add_request_handler(_method, _params, _accept)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--json", action="store_true", help="JSON responses instead of SSE streams")
    args = parser.parse_args()
    if args.transport == "stdio":
        mcp.run("stdio")
    else:
        mcp.settings.log_level = "WARNING"
        mcp.run("streamable-http", host="127.0.0.1", port=args.port, json_response=args.json)


if __name__ == "__main__":
    main()
