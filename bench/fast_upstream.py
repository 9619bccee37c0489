"""A minimal, fast streamable-HTTP MCP server for bench/gateway.py: one `echo` tool, JSON responses
with Content-Length, a raw ASGI app on uvicorn (httptools, uvloop), so the upstream costs as
little as possible and what the gateway adds shows.

    .venv/bin/python bench/fast_upstream.py --port 8931     # serves http://127.0.0.1:8931/mcp
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

HOST = "127.0.0.1"
SERVER_INFO = {"name": "fast-upstream", "version": "1"}
ECHO_TOOL = {
    "name": "echo",
    "description": "Returns the message it is given.",
    "inputSchema": {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    },
}

Scope = MutableMapping[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def respond(
    send: Send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-length", str(len(body)).encode())]
    if body:
        head.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def result(request_id: Any, value: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": value}).encode()


def error(request_id: Any, code: int, text: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}).encode()


def call_tool(request_id: Any, params: dict[str, Any]) -> bytes:
    if params.get("name") != "echo":
        return error(request_id, -32602, f"Unknown tool: {params.get('name')}")
    text = str((params.get("arguments") or {}).get("message", ""))
    return result(request_id, {"content": [{"type": "text", "text": text}], "isError": False})


def answer(request_id: Any, method: str, params: dict[str, Any]) -> bytes:
    if method == "tools/call":
        return call_tool(request_id, params)
    if method == "tools/list":
        return result(request_id, {"tools": [ECHO_TOOL]})
    if method == "ping":
        return result(request_id, {})
    return error(request_id, -32601, f"Method not found: {method}")


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        event = await receive()
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            return b"".join(chunks)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await respond(send, 405, headers=[(b"allow", b"POST")])
        return
    try:
        message = json.loads(await read_body(receive))
    except ValueError:
        await respond(send, 400, error(None, -32700, "Parse error"))
        return
    if not isinstance(message, dict):
        await respond(send, 400, error(None, -32600, "Invalid Request"))
        return
    if "id" not in message or "method" not in message:  # a notification or a response
        await respond(send, 202)
        return
    request_id, method, params = message["id"], message["method"], message.get("params") or {}
    if method == "initialize":
        info: dict[str, Any] = {
            "protocolVersion": params.get("protocolVersion"),
            "capabilities": {"tools": {}},
            "serverInfo": SERVER_INFO,
        }
        session = [(b"mcp-session-id", uuid.uuid4().hex.encode())]
        await respond(send, 200, result(request_id, info), session)
        return
    await respond(send, 200, answer(request_id, method, params))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help=f"port on {HOST}")
    port = parser.parse_args().port
    uvicorn.run(
        app, host=HOST, port=port, http="httptools", loop="uvloop", lifespan="off", log_level="warning"
    )


if __name__ == "__main__":
    main()
