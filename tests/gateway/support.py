"""Helpers for the relay tests: Conduit served by a real uvicorn on 127.0.0.1 in the test's own
event loop (the relay streams, which an in-memory ASGI transport cannot show), an organization
with a key, servers registered through the API, and the official SDK client pointed at them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conduit.app import create_app
from conduit.gateway.relay import front
from conduit.kit.runtime import Runtime
from tests.conftest import sign_up
from tests.mcp_servers import StdioCommand


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Live:
    """A running Conduit: `base_url`, the app (for its gateway), and a REST client."""

    base_url: str
    app: Any
    api: httpx.AsyncClient


@contextlib.asynccontextmanager
async def serve(runtime: Runtime) -> AsyncIterator[Live]:
    port = free_port()
    runtime.settings.public_url = f"http://127.0.0.1:{port}"
    app = create_app(runtime=runtime)
    config = uvicorn.Config(front(app), host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:
            yield Live(base_url, app, api)
    finally:
        await app.state.gateway.aclose()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        runtime.settings.public_url = None


@dataclass
class Org:
    """A signed-up account, its personal organization and an API key in it."""

    api: httpx.AsyncClient
    headers: dict[str, str]
    org_id: str
    org_slug: str
    key: str

    async def register(self, name: str, **target: Any) -> dict[str, Any]:
        created = await self.api.post("/api/servers", json={"name": name, **target}, headers=self.headers)
        assert created.status_code == 201, created.text
        server: dict[str, Any] = created.json()
        return server

    async def register_stdio(self, name: str, command: StdioCommand, **extra: Any) -> dict[str, Any]:
        return await self.register(
            name, command=command.command, args=list(command.args), env=dict(command.env or {}), **extra
        )

    def server_path(self, server_id: str) -> str:
        return f"/api/v1/organizations/{self.org_id}/mcp-servers/{server_id}"


async def new_org(api: httpx.AsyncClient) -> Org:
    user = await sign_up(api)
    me = await api.get("/api/v1/organizations", headers=user.headers)
    assert me.status_code == 200, me.text
    org = me.json()[0]
    key = await api.post("/api/keys", json={"name": "agent"}, headers=user.headers)
    assert key.status_code == 201, key.text
    return Org(api, user.headers, org["id"], org["slug"], key.json()["key"])


def mcp_client(url: str, key: str | None, **options: Any) -> Client:
    """The official SDK client over streamable HTTP with a Conduit key."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    return Client(streamable_http_client(url, http_client=http), **options)


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
