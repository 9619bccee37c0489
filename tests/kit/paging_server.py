"""A stdio MCP server (the SDK's low-level `Server`) that lists its tools in pages.

    python tests/kit/paging_server.py --tools 25 --page-size 10     # three pages
    python tests/kit/paging_server.py --loop                        # nextCursor comes back forever
    python tests/kit/paging_server.py --secret-sha256 HEX           # lists tools only if the env fits
    python tests/kit/paging_server.py --slow-ping 2.5               # answers ping after 2.5 s

Each tool `tool-<n>` echoes its arguments. The fixture server cannot paginate; this one does.
`PAGING_TOOLS` in the environment overrides `--tools`; with `--secret-sha256`, tools/list
answers an error unless the SHA-256 of `PAGING_SECRET` matches, so a test can see that a
secret reached the process without the process ever showing it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError


def build(
    tools: int, page_size: int, loop: bool, secret_sha256: str | None, ping_delay: float
) -> Server[Any]:
    names = [f"tool-{n:03d}" for n in range(tools)]
    secret = os.environ.get("PAGING_SECRET", "").encode()

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        if secret_sha256 is not None and hashlib.sha256(secret).hexdigest() != secret_sha256:
            raise MCPError(-32001, "PAGING_SECRET is missing or wrong")
        start = 0 if loop or params is None or params.cursor is None else int(params.cursor)
        page = names[start : start + page_size]
        following = start + page_size
        cursor = "0" if loop else (str(following) if following < len(names) else None)
        return types.ListToolsResult(
            tools=[
                types.Tool(name=name, description=f"Tool {name}", input_schema={"type": "object"})
                for name in page
            ],
            next_cursor=cursor,
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = f"{params.name} {params.arguments or {}}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    async def ping(ctx: Any, params: types.RequestParams | None) -> types.EmptyResult:
        await asyncio.sleep(ping_delay)
        return types.EmptyResult()

    return Server(
        "paging-server", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool, on_ping=ping
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tools", type=int, default=25)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--loop", action="store_true", help="always answer nextCursor '0'")
    parser.add_argument("--secret-sha256", help="list tools only if sha256(PAGING_SECRET) is this")
    parser.add_argument("--slow-ping", type=float, default=0.0, help="seconds before answering ping")
    args = parser.parse_args()
    tools = int(os.environ.get("PAGING_TOOLS", args.tools))
    server = build(tools, args.page_size, args.loop, args.secret_sha256, args.slow_ping)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    asyncio.run(main())
