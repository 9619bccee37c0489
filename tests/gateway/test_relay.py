"""The relay with real upstreams and the official SDK client: what passes through, what policy
changes, and how failures reach the client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import uvicorn
from mcp import MCPError
from mcp_types import TextContent

from conduit.kit.runtime import Runtime
from tests import mcp_servers
from tests.gateway.support import ACCEPT, INIT, Live, Org, free_port, mcp_client, new_org, serve
from tests.mcp_servers import ServerProcess, StdioCommand
from tests.test_mcp_servers import Progress, answer_elicitation

pytestmark = pytest.mark.e2e
MODES = ["legacy", "auto"]


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_tools_pass_through_from_a_streamable_http_upstream(
    live: Live, org: Org, fixture_http: ServerProcess, mode: str
) -> None:
    server = await org.register("fixture", upstream_url=fixture_http.url)
    async with mcp_client(server["gateway_endpoint"], org.key, mode=mode) as client:
        assert client.server_info.name == "conduit-fixture"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "slow", "big", "never"} <= names
        assert (
            text(await client.call_tool("echo", {"message": "through the gateway"})) == "through the gateway"
        )
        failed = await client.call_tool("fail", {"message": "boom"})
        assert failed.is_error
        assert "boom" in text(failed)


async def test_a_wrong_key_is_refused_at_initialize_and_on_every_later_message(
    live: Live, org: Org, fixture_http: ServerProcess
) -> None:
    server = await org.register("fixture", upstream_url=fixture_http.url)
    url = server["gateway_endpoint"]
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in ({}, {"Authorization": "Bearer cnd_live_notakey"}, {"X-API-Key": "nonsense"}):
            refused = await http.post(url, json=INIT, headers={**ACCEPT, **headers})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error"]["code"] < 0
        opened = await http.post(url, json=INIT, headers={**ACCEPT, "X-API-Key": org.key})
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        later = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        for headers in ({}, {"Authorization": "Bearer cnd_live_notakey"}):
            refused = await http.post(
                url, json=later, headers={**ACCEPT, "mcp-session-id": session, **headers}
            )
            assert refused.status_code == 401
            assert "www-authenticate" in refused.headers
        other = await new_org(org.api)
        wrong_org = await http.post(
            url, json=later, headers={**ACCEPT, "mcp-session-id": session, "X-API-Key": other.key}
        )
        assert wrong_org.status_code == 401
        allowed = await http.post(
            url, json=later, headers={**ACCEPT, "mcp-session-id": session, "X-API-Key": org.key}
        )
        assert allowed.status_code == 200
        assert "echo" in allowed.text


async def test_malformed_messages_get_json_rpc_errors_and_change_nothing(
    live: Live, org: Org, fixture_http: ServerProcess
) -> None:
    server = await org.register("fixture", upstream_url=fixture_http.url)
    url = server["gateway_endpoint"]
    headers = {**ACCEPT, "X-API-Key": org.key}
    async with httpx.AsyncClient(timeout=10) as http:
        not_json = await http.post(url, content=b'{"jsonrpc": "2.0", "id": 1, "method": ', headers=headers)
        assert not_json.status_code == 400
        assert not_json.json()["error"]["code"] == -32700
        for body in (
            {"id": 1, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 1, "method": 7},
            [INIT],
            "x",
        ):
            bad = await http.post(url, json=body, headers=headers)
            assert bad.status_code == 400, body
            assert bad.json()["error"]["code"] == -32600
        no_session = await http.post(
            url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
        )
        assert no_session.status_code == 400
        unknown = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={**headers, "mcp-session-id": "nope"},
        )
        assert unknown.status_code == 404
    assert not live.app.state.gateway.sessions


async def test_a_disabled_tool_is_absent_and_refused_and_an_override_changes_the_listing(
    live: Live, org: Org, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    runtime.settings.gateway_cache_seconds = 0
    live.app.state.gateway.targets.ttl = 0
    server = await org.register("fixture", upstream_url=fixture_http.url)
    discovered = await org.api.post(f"{org.server_path(server['id'])}/discover-tools", headers=org.headers)
    assert discovered.status_code == 200, discovered.text
    tools = {t["name"]: t["id"] for t in discovered.json()["tools"]}
    patch = org.api.patch
    path = org.server_path(server["id"])
    assert (
        await patch(f"{path}/tools/{tools['fail']}", json={"isEnabled": False}, headers=org.headers)
    ).status_code == 200
    renamed = await patch(
        f"{path}/tools/{tools['echo']}",
        json={
            "displayName": "Say it back",
            "descriptionOverride": "Repeats the message.",
            "whenToUse": "Tests",
        },
        headers=org.headers,
    )
    assert renamed.status_code == 200
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert "fail" not in listed
        assert listed["echo"].title == "Say it back"
        assert listed["echo"].description == "Repeats the message.\n\nWhen to use: Tests"
        assert listed["echo"].input_schema["properties"]["message"]["type"] == "string"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fail", {})
        assert refused.value.error.code == -32602
        assert text(await client.call_tool("echo", {"message": "still works"})) == "still works"


async def test_an_upstream_that_never_answers_gets_a_timely_error(
    live: Live, org: Org, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    live.app.state.gateway.targets.ttl = 0
    server = await org.register("fixture", upstream_url=fixture_http.url, timeout_seconds=30)
    changed = await org.api.patch(
        org.server_path(server["id"]), json={"timeoutSeconds": 1.5}, headers=org.headers
    )
    assert changed.json()["timeoutSeconds"] == 1.5
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as timed_out:
            await client.call_tool("never", {})
        assert 1.4 < time.monotonic() - started < 5
        assert timed_out.value.error.code == -32001
        assert text(await client.call_tool("echo", {"message": "next"})) == "next"


async def test_an_upstream_process_that_dies_mid_call_fails_that_call_and_is_restarted(
    live: Live, org: Org, fixture_stdio: StdioCommand
) -> None:
    server = await org.register_stdio("fixture", fixture_stdio)
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        assert text(await client.call_tool("echo", {"message": "before"})) == "before"
        started = time.monotonic()
        with pytest.raises(MCPError) as died:
            await client.call_tool("die", {"code": 3})
        assert time.monotonic() - started < 5
        assert died.value.error.code == -32000
        assert "exited" in died.value.error.message
        assert text(await client.call_tool("echo", {"message": "after"})) == "after"


async def test_ten_megabytes_pass_through_intact(
    live: Live, org: Org, fixture_http_json: ServerProcess
) -> None:
    server = await org.register("fixture", upstream_url=fixture_http_json.url)
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        result = await client.call_tool("big", {"size": 10_000_000})
        assert len(text(result)) == 10_000_000


async def test_a_stuck_upstream_does_not_slow_another(
    live: Live, org: Org, runtime: Runtime, fixture_http: ServerProcess, fixture_http_json: ServerProcess
) -> None:
    stuck = await org.register("stuck", upstream_url=fixture_http.url, timeout_seconds=3)
    healthy = await org.register("healthy", upstream_url=fixture_http_json.url)
    async with (
        mcp_client(stuck["gateway_endpoint"], org.key, mode="legacy") as slow_client,
        mcp_client(healthy["gateway_endpoint"], org.key, mode="legacy") as fast_client,
    ):
        hanging = [asyncio.create_task(slow_client.call_tool("never", {})) for _ in range(5)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        for n in range(20):
            assert text(await fast_client.call_tool("echo", {"message": str(n)})) == str(n)
        assert time.monotonic() - started < 2
        assert not any(task.done() for task in hanging)
        # The stuck calls end on their own, each with the timeout error, and the client is fine.
        outcomes = await asyncio.gather(*hanging, return_exceptions=True)
        assert all(isinstance(o, MCPError) and o.error.code == -32001 for o in outcomes), outcomes


async def test_a_cancelled_request_is_cancelled_upstream_and_answered(
    live: Live, org: Org, fixture_http: ServerProcess
) -> None:
    server = await org.register("fixture", upstream_url=fixture_http.url)
    url = server["gateway_endpoint"]
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(url, json=INIT, headers={**ACCEPT, "X-API-Key": org.key})
        headers = {**ACCEPT, "X-API-Key": org.key, "mcp-session-id": opened.headers["mcp-session-id"]}
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "never", "arguments": {}},
        }
        pending = asyncio.create_task(http.post(url, json=call, headers=headers))
        await asyncio.sleep(0.3)
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 7, "reason": "bored"},
        }
        assert (await http.post(url, json=cancel, headers=headers)).status_code == 202
        answered = await asyncio.wait_for(pending, 5)
        assert '"code":-32800' in answered.text
        assert '"id":7' in answered.text


async def test_delete_ends_the_session_and_its_upstream_process(
    live: Live, org: Org, fixture_stdio: StdioCommand
) -> None:
    server = await org.register_stdio("fixture", fixture_stdio)
    gateway = live.app.state.gateway
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        await client.call_tool("echo", {"message": "x"})
        (session,) = gateway.sessions.values()
        process = session.upstreams[server["id"]].upstream.process
        assert process.returncode is None
    assert not gateway.sessions  # the SDK client sends DELETE on exit
    assert process.returncode is not None


async def test_an_idle_stdio_process_is_stopped_and_started_again_on_demand(
    runtime: Runtime, fixture_stdio: StdioCommand
) -> None:
    runtime.settings.gateway_stdio_idle_seconds = 1
    try:
        async with serve(runtime) as live:
            org = await new_org(live.api)
            server = await org.register_stdio("fixture", fixture_stdio)
            async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
                await client.call_tool("echo", {"message": "x"})
                (session,) = live.app.state.gateway.sessions.values()
                upstream = session.upstreams[server["id"]]
                first = upstream.upstream.process
                for _ in range(50):
                    if first.returncode is not None:
                        break
                    await asyncio.sleep(0.1)
                assert first.returncode is not None
                assert text(await client.call_tool("echo", {"message": "again"})) == "again"
                assert upstream.upstream.process is not first
    finally:
        runtime.settings.gateway_stdio_idle_seconds = 600


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
async def test_every_handshake_revision_is_negotiated_end_to_end(
    live: Live, org: Org, everything_http: ServerProcess, version: str
) -> None:
    server = await org.register("everything", upstream_url=everything_http.url)
    url = server["gateway_endpoint"]
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": version}}
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(url, json=init, headers={**ACCEPT, "X-API-Key": org.key})
        assert opened.status_code == 200, opened.text
        assert f'"protocolVersion":"{version}"' in opened.text
        headers = {
            **ACCEPT,
            "X-API-Key": org.key,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": version,
        }
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(url, json=initialized, headers=headers)).status_code == 202
        call = {
            "jsonrpc": "2.0",
            "id": "a",
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": version}},
        }
        answered = await http.post(url, json=call, headers=headers)
        assert f"Echo: {version}" in answered.text
        assert (await http.delete(url, headers=headers)).status_code == 200
        gone = await http.post(url, json=call, headers=headers)
        assert gone.status_code == 404


async def discover(org: Org, server: dict[str, Any]) -> dict[str, Any]:
    discovered = await org.api.post(f"{org.server_path(server['id'])}/discover-tools", headers=org.headers)
    assert discovered.status_code == 200, discovered.text
    result: dict[str, Any] = discovered.json()
    return result


@pytest.mark.parametrize("upstream", ["fixture_http", "fixture_http_json", "fixture_stdio"])
async def test_stateless_2026_clients_pass_through_to_upstreams_that_speak_it(
    live: Live, org: Org, runtime: Runtime, upstream: str, request: pytest.FixtureRequest
) -> None:
    live.app.state.gateway.targets.ttl = 0
    found = request.getfixturevalue(upstream)
    if isinstance(found, StdioCommand):
        server = await org.register_stdio("fixture", found)
    else:
        server = await org.register("fixture", upstream_url=found.url)
    detail = await discover(org, server)
    assert "2026-07-28" in detail["catalog"]["modernVersions"]
    tools = {t["name"]: t["id"] for t in detail["tools"]}
    path = org.server_path(server["id"])
    await org.api.patch(f"{path}/tools/{tools['fail']}", json={"isEnabled": False}, headers=org.headers)
    await org.api.patch(f"{path}/tools/{tools['echo']}", json={"displayName": "Echo!"}, headers=org.headers)
    client = mcp_client(
        server["gateway_endpoint"], org.key, mode="2026-07-28", elicitation_callback=answer_elicitation
    )
    async with client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert "fail" not in listed
        assert listed["echo"].title == "Echo!"
        assert text(await client.call_tool("echo", {"message": "modern"})) == "modern"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fail", {})
        assert refused.value.error.code == -32602
        if upstream != "fixture_http_json":  # a JSON-mode upstream drops progress, as it does directly
            progress = Progress()
            assert (
                text(await client.call_tool("slow", {"seconds": 0.2, "steps": 2}, progress_callback=progress))
                == "done"
            )
            assert [p for p, _, _ in progress.updates] == [1, 2]
        assert text(await client.call_tool("ask", {})) == "hello Ada"  # input_required, answered, retried
        resource = (await client.read_resource("fixture://hello")).contents[0]
        assert getattr(resource, "text", None) == "hello from the fixture server"
        prompt = await client.get_prompt("greeting", {"name": "Bob"})
        assert "Bob" in str(prompt.messages[0].content)
    assert not live.app.state.gateway.sessions  # stateless: no Conduit session was opened


async def test_stateless_2026_clients_of_a_handshake_only_upstream_are_bridged(
    live: Live, org: Org, everything_http: ServerProcess
) -> None:
    server = await org.register("everything", upstream_url=everything_http.url)
    detail = await discover(org, server)
    assert detail["catalog"]["modernVersions"] == []  # server-everything speaks 2025-11-25 at most
    async with httpx.AsyncClient(timeout=10) as http:
        headers = {
            **ACCEPT,
            "X-API-Key": org.key,
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "server/discover",
        }
        bare = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
        refused = await http.post(server["gateway_endpoint"], json=bare, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == -32602
        probe = {
            **bare,
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        }
        # The probe is steered to the handshake, where everything passes through...
        steered = await http.post(server["gateway_endpoint"], json=probe, headers=headers)
        assert steered.status_code == 400
        error = steered.json()["error"]
        assert error["code"] == -32022
        assert "2026-07-28" not in error["data"]["supported"]
        assert "2025-11-25" in error["data"]["supported"]
    async with mcp_client(server["gateway_endpoint"], org.key, mode="auto") as client:
        assert client.protocol_version == "2025-11-25"
        assert text(await client.call_tool("echo", {"message": "x"})) == "Echo: x"
    # ...and a client that adopts 2026-07-28 without probing is served over a held session.
    async with mcp_client(server["gateway_endpoint"], org.key, mode="2026-07-28") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "get-sum", "trigger-long-running-operation"} <= names
        assert "trigger-sampling-request" not in names  # a stateless client cannot be asked mid-call
        assert text(await client.call_tool("echo", {"message": "bridged"})) == "Echo: bridged"
        progress = Progress()
        done = await client.call_tool(
            "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=progress
        )
        assert not done.is_error
        assert [p for p, _, _ in progress.updates] == [1, 2, 3]
        resources = (await client.list_resources()).resources
        first = next(r for r in resources if str(r.uri).startswith("demo://resource/static/"))
        assert str((await client.read_resource(first.uri)).contents[0].uri) == str(first.uri)
        prompt = await client.get_prompt("args-prompt", {"city": "Lisbon"})
        assert "Lisbon" in str(prompt.messages[0].content)
    assert not live.app.state.gateway.sessions


async def test_a_stdio_servers_stderr_lands_in_its_runtime_log(
    live: Live, org: Org, everything_stdio: StdioCommand
) -> None:
    server = await org.register_stdio("everything", everything_stdio)
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        await client.list_tools()
        session_id = next(iter(live.app.state.gateway.sessions))
    await live.app.state.gateway.stderr.flush()
    path = f"{org.server_path(server['id'])}/deployment/logs"
    page = (await org.api.get(path, headers=org.headers)).json()
    lines = [entry["line"] for entry in page["logs"]]
    assert any("Starting default (STDIO) server" in line for line in lines), lines
    assert {entry["sessionId"] for entry in page["logs"]} == {session_id}
    assert all(entry["stream"] == "stderr" for entry in page["logs"])
    deleted = await org.api.delete(org.server_path(server["id"]), headers=org.headers)
    assert deleted.status_code == 204
    assert (await org.api.get(path, headers=org.headers)).status_code == 404


class HeaderCheckingUpstream:
    """A bare streamable-HTTP MCP server that answers only requests bearing its own credential,
    and remembers the headers it was sent."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append(headers)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if headers.get("authorization") != f"Bearer {self.token}":
            await self._send(send, 401, b'{"error": "unauthorized"}')
            return
        request = json.loads(body)
        if "id" not in request:
            await self._send(send, 202, b"")
            return
        results = {
            "initialize": {
                "protocolVersion": request.get("params", {}).get("protocolVersion"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "guarded", "version": "1"},
            },
            "tools/list": {"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]},
            "tools/call": {"content": [{"type": "text", "text": "you may pass"}]},
        }
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": results.get(request["method"], {})}
        await self._send(send, 200, json.dumps(reply).encode(), [(b"mcp-session-id", b"guarded-1")])

    @staticmethod
    async def _send(
        send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = [(b"content-type", b"application/json"), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def test_upstream_credentials_are_sent_sealed_and_never_shown(live: Live, org: Org) -> None:
    upstream = HeaderCheckingUpstream("s3cret-upstream-token")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(upstream, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        bad = await org.api.post(
            "/api/servers",
            json={"name": "bad", "upstream_url": url, "headers": {"Host": "x"}},
            headers=org.headers,
        )
        assert bad.status_code == 422
        registered = await org.register(
            "guarded", upstream_url=url, headers={"Authorization": "Bearer s3cret-upstream-token"}
        )
        assert "s3cret" not in json.dumps(registered)
        async with mcp_client(registered["gateway_endpoint"], org.key, mode="legacy") as client:
            assert text(await client.call_tool("whoami", {})) == "you may pass"
        assert upstream.seen
        assert all(seen["authorization"] == "Bearer s3cret-upstream-token" for seen in upstream.seen)
        assert not any(org.key in json.dumps(seen) for seen in upstream.seen)  # Conduit's key stays home
        config = await org.api.get(f"{org.server_path(registered['id'])}/config", headers=org.headers)
        assert config.json()["headers"] == {"Authorization": "********"}
        assert "s3cret" not in config.text
    finally:
        server.should_exit = True
        await serving


async def test_a_restarted_http_upstream_gets_a_new_session_without_the_client_noticing(
    live: Live, org: Org
) -> None:
    first = mcp_servers.start_fixture_http()
    try:
        server = await org.register("fixture", upstream_url=first.url)
        async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
            assert text(await client.call_tool("echo", {"message": "before"})) == "before"
            first.stop()
            second = mcp_servers.start_fixture_http(port=first.port)
            try:
                # The new process does not know the old upstream session (404): Conduit opens a
                # new one with the client's initialize and carries on.
                assert text(await client.call_tool("echo", {"message": "after"})) == "after"
            finally:
                second.stop()
    finally:
        first.stop()


@pytest.mark.parametrize("framing", ["sse", "json"])
async def test_replies_come_back_as_the_upstream_wrote_them_with_the_clients_id(
    live: Live, org: Org, request: pytest.FixtureRequest, framing: str
) -> None:
    # Replies are relayed as the upstream serialised them, with Conduit's request id swapped for
    # the client's; a reply quoting Conduit's id elsewhere (here, echoed text) is not touched there.
    fixture = "fixture_http" if framing == "sse" else "fixture_http_json"
    upstream: ServerProcess = request.getfixturevalue(fixture)
    server = await org.register(f"fixture-{framing}", upstream_url=upstream.url)
    async with mcp_client(server["gateway_endpoint"], org.key) as client:
        for number in range(1, 30):
            quoted = f"cnd-{2 * number}"  # meets the upstream id of one of these calls
            assert text(await client.call_tool("echo", {"message": quoted})) == quoted
    async with httpx.AsyncClient(timeout=10) as http:
        url, headers = server["gateway_endpoint"], {**ACCEPT, "X-API-Key": org.key}
        opened = await http.post(url, json=INIT, headers=headers)  # upstream id cnd-1
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        for number, request_id in enumerate(("cnd-1", 7, 'é " \\ id'), start=2):
            quoted = f"cnd-{number}"  # the upstream id of this very call
            call = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call"}
            call["params"] = {"name": "echo", "arguments": {"message": quoted}}
            answered = await http.post(url, json=call, headers=headers)
            body = answered.text
            reply = json.loads(body.split("data: ", 1)[1] if body.startswith("event:") else body)
            assert reply["id"] == request_id
            assert reply["result"]["content"][0]["text"] == quoted
