"""Real MCP upstreams as module-scoped fixtures (see tests/mcp_servers.py), all on 127.0.0.1.

HTTP fixtures give a running `ServerProcess` (`.url`, `.alive()`, `.log()`); stdio fixtures give
a `StdioCommand` (`.command`, `.args`, `.env`, and `.params()` for the SDK's `stdio_client`).
A server starts the first time a module asks for it and stops when that module ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import mcp_servers
from tests.mcp_servers import ServerProcess, StdioCommand


@pytest.fixture(scope="module")
def everything_http() -> Iterator[ServerProcess]:
    """server-everything over streamable HTTP: `everything_http.url` ends in `/mcp`."""
    with mcp_servers.running(mcp_servers.start_everything("streamableHttp")) as server:
        yield server


@pytest.fixture(scope="module")
def everything_sse() -> Iterator[ServerProcess]:
    """server-everything over the legacy HTTP+SSE transport: `everything_sse.url` ends in `/sse`."""
    with mcp_servers.running(mcp_servers.start_everything("sse")) as server:
        yield server


@pytest.fixture(scope="module")
def everything_stdio() -> StdioCommand:
    return mcp_servers.everything_stdio_command()


@pytest.fixture(scope="module")
def time_stdio() -> StdioCommand:
    """mcp-server-time; its first answer takes 2-3 s (importing the SDK)."""
    return mcp_servers.time_stdio_command()


@pytest.fixture(scope="module")
def fixture_http() -> Iterator[ServerProcess]:
    """tests/fixture_server.py over streamable HTTP with SSE responses."""
    with mcp_servers.running(mcp_servers.start_fixture_http()) as server:
        yield server


@pytest.fixture(scope="module")
def fixture_http_json() -> Iterator[ServerProcess]:
    """tests/fixture_server.py over streamable HTTP with JSON responses."""
    with mcp_servers.running(mcp_servers.start_fixture_http(json_response=True)) as server:
        yield server


@pytest.fixture(scope="module")
def fixture_stdio() -> StdioCommand:
    return mcp_servers.fixture_stdio_command()
