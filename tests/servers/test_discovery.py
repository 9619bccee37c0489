"""Discovery, health checks and live smoke tests of registered servers, against real upstreams
and a real database, through the API and the job worker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conduit.kit.jobs import Job, JobWorker, enqueue
from conduit.kit.runtime import Runtime
from conduit.servers import discovery
from conduit.servers.models import Server, Tool
from tests.conftest import User
from tests.mcp_servers import ServerProcess, StdioCommand, free_port
from tests.servers.test_registry import org_of

PAGING_SERVER = str(Path(__file__).resolve().parent.parent / "kit" / "paging_server.py")
SECRET = "s3cret-token-7f0e2c9a"
CLOSED_URL = "http://127.0.0.1:9/mcp"  # the discard port: nothing listens on loopback


class Api:
    """The seed 003 server endpoints of one user's organization."""

    def __init__(self, client: httpx.AsyncClient, user: User, org_id: str) -> None:
        self.client, self.user = client, user
        self.base = f"/api/v1/organizations/{org_id}/mcp-servers"

    async def create(self, name: str, **body: Any) -> dict[str, Any]:
        created = await self.client.post(self.base, json={"name": name, **body}, headers=self.user.headers)
        assert created.status_code == 201, created.text
        result: dict[str, Any] = created.json()
        return result

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", self.user.headers)
        return await self.client.request(method, f"{self.base}/{path}", headers=headers, **kwargs)

    async def detail(self, server_id: str) -> dict[str, Any]:
        response = await self.request("GET", server_id)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
async def api(client: httpx.AsyncClient, user: User) -> Api:
    return Api(client, user, (await org_of(client, user))["id"])


def paging(*args: str) -> dict[str, Any]:
    return {"kind": "stdio", "command": sys.executable, "args": [PAGING_SERVER, *args]}


def stdio(command: StdioCommand) -> dict[str, Any]:
    return {"kind": "stdio", "command": command.command, "args": command.args}


async def stored_tools(runtime: Runtime, server_id: str) -> dict[str, Tool]:
    async with runtime.db.session() as session:
        rows = await session.scalars(select(Tool).where(Tool.server_id == server_id))
        return {tool.name: tool for tool in rows.all()}


async def set_columns(runtime: Runtime, server_id: str, **values: Any) -> None:
    async with runtime.db.session() as session:
        server = await session.get(Server, server_id)
        assert server is not None
        for name, value in values.items():
            setattr(server, name, value)


async def pending_discoveries(runtime: Runtime) -> list[str]:
    async with runtime.db.session() as session:
        jobs = await session.scalars(
            select(Job).where(Job.kind == discovery.DISCOVER_JOB, Job.status == "pending")
        )
        return [job.payload["serverId"] for job in jobs.all()]


# --- discovery on registration ----------------------------------------------------------------


async def test_a_new_server_is_discovered_by_the_worker(
    api: Api, runtime: Runtime, worker: JobWorker, fixture_http: ServerProcess
) -> None:
    server = await api.create("Fixture", upstreamUrl=fixture_http.url)
    assert (server["catalogStatus"], server["tools"]) == ("unknown", [])
    assert await pending_discoveries(runtime) == [server["id"]]

    assert await worker.run_until_idle() == 1
    detail = await api.detail(server["id"])
    assert (detail["catalogStatus"], detail["catalogError"]) == ("ok", None)
    assert (detail["healthStatus"], detail["lastError"]) == ("healthy", None)
    tools = {tool["toolKey"]: tool for tool in detail["tools"]}
    assert {"echo", "slow", "fail", "die", "never", "image", "ask"} <= set(tools)
    assert detail["toolCount"] == len(tools)
    stored = await stored_tools(runtime, server["id"])
    echo = stored["echo"]
    assert tools["echo"]["definitionHash"] == echo.definition_hash
    canonical = json.dumps(echo.definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert echo.definition_hash == expected
    assert echo.definition["inputSchema"]["properties"]["message"]["type"] == "string"

    catalog = (await api.request("GET", f"{server['id']}/config")).json()["catalog"]
    assert catalog["serverInfo"] == {"name": "conduit-fixture", "version": "1.0.0"}
    assert catalog["instructions"] == "Conduit's test upstream."
    assert catalog["protocolVersion"] == "2025-11-25"
    assert catalog["modernVersions"] == ["2026-07-28"]
    assert "fixture://hello" in [r["uri"] for r in catalog["resources"]]
    assert [t["uriTemplate"] for t in catalog["resourceTemplates"]] == ["test://template/{id}/data"]
    assert "greeting" in [p["name"] for p in catalog["prompts"]]
    assert "tools" in catalog["capabilities"]


async def test_seed_000_registration_discovers_a_stdio_server(
    client: httpx.AsyncClient, user: User, api: Api, worker: JobWorker, time_stdio: StdioCommand
) -> None:
    created = await client.post(
        "/api/servers",
        json={"name": "Time", "command": time_stdio.command, "args": time_stdio.args},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    await worker.run_until_idle()
    detail = await api.detail(created.json()["id"])
    assert [t["toolKey"] for t in detail["tools"]] == ["get_current_time", "convert_time"]
    listed = (await client.get("/api/servers", headers=user.headers)).json()
    assert [s["health_status"] for s in listed] == ["healthy"]
    catalog = (await api.request("GET", f"{detail['id']}/config")).json()["catalog"]
    assert catalog["serverInfo"]["name"] == "mcp-time"
    assert catalog["modernVersions"] == ["2026-07-28"]
    assert (catalog["resources"], catalog["prompts"]) == ([], [])


async def test_an_unreachable_upstream_does_not_fail_registration(
    api: Api, runtime: Runtime, worker: JobWorker
) -> None:
    server = await api.create("Gone", upstreamUrl=CLOSED_URL)
    await worker.run_until_idle()
    detail = await api.detail(server["id"])
    assert (detail["catalogStatus"], detail["healthStatus"]) == ("error", "unreachable")
    assert "unreachable" in detail["catalogError"]
    assert detail["lastError"] == detail["catalogError"]
    async with runtime.db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == discovery.DISCOVER_JOB))
    assert job is not None
    assert job.status == "done"  # an unreachable upstream is an outcome, not a failed job


async def test_all_pages_are_imported(api: Api, worker: JobWorker) -> None:
    server = await api.create("Paged", **paging("--tools", "25", "--page-size", "7"))
    await worker.run_until_idle()
    detail = await api.detail(server["id"])
    assert [t["toolKey"] for t in detail["tools"]] == [f"tool-{n:03d}" for n in range(25)]


async def test_a_cursor_loop_is_a_catalog_error(api: Api, worker: JobWorker) -> None:
    server = await api.create("Loop", **paging("--loop"))
    await worker.run_until_idle()
    detail = await api.detail(server["id"])
    assert (detail["catalogStatus"], detail["healthStatus"]) == ("error", "degraded")
    assert "loop" in detail["catalogError"]
    assert detail["tools"] == []


# --- re-targeting and the discover-tools endpoint ---------------------------------------------


async def test_changing_the_target_discovers_again_and_marks_removed_tools(
    api: Api, runtime: Runtime, worker: JobWorker
) -> None:
    server = await api.create("Paged", **paging("--tools", "5"))
    await worker.run_until_idle()
    assert len((await api.detail(server["id"]))["tools"]) == 5
    tool_1 = next(t for t in (await api.detail(server["id"]))["tools"] if t["toolKey"] == "tool-001")
    assert (
        await api.request("PATCH", f"{server['id']}/tools/{tool_1['id']}", json={"isEnabled": False})
    ).status_code == 200

    renamed = await api.request("PATCH", server["id"], json={"name": "Paged again", "description": "x"})
    assert renamed.status_code == 200
    assert await pending_discoveries(runtime) == []  # not a new target

    retargeted = await api.request("PATCH", server["id"], json={"args": [PAGING_SERVER, "--tools", "2"]})
    assert retargeted.status_code == 200, retargeted.text
    assert await pending_discoveries(runtime) == [server["id"]]
    await worker.run_until_idle()
    detail = await api.detail(server["id"])
    assert [(t["toolKey"], t["isEnabled"]) for t in detail["tools"]] == [
        ("tool-000", True),
        ("tool-001", False),
    ]
    stored = await stored_tools(runtime, server["id"])
    assert sorted(name for name, tool in stored.items() if tool.removed_at is not None) == [
        "tool-002",
        "tool-003",
        "tool-004",
    ]

    # Back to five: the removed tools return, the curation of the kept one stays.
    back = await api.request("PATCH", server["id"], json={"args": [PAGING_SERVER, "--tools", "5"]})
    assert back.status_code == 200
    rediscovered = await api.request("POST", f"{server['id']}/discover-tools")
    assert rediscovered.status_code == 200, rediscovered.text
    assert rediscovered.json()["summary"] == {"added": 0, "changed": 3, "removed": 0, "unchanged": 2}


async def test_discover_tools_reimports_now(
    api: Api, runtime: Runtime, everything_http: ServerProcess, fixture_http: ServerProcess
) -> None:
    server = await api.create("Everything", upstreamUrl=everything_http.url)
    first = await api.request("POST", f"{server['id']}/discover-tools")
    assert first.status_code == 200, first.text
    body = first.json()
    count = len(body["tools"])
    assert count > 5
    assert body["summary"] == {"added": count, "changed": 0, "removed": 0, "unchanged": 0}
    assert (body["catalogStatus"], body["healthStatus"], body["toolCount"]) == ("ok", "healthy", count)
    assert body["catalog"]["serverInfo"]["name"] == "mcp-servers/everything"
    assert body["catalog"]["modernVersions"] == []
    assert body["discoveredAt"] is not None
    assert all(len(t["definitionHash"]) == 64 for t in body["tools"])

    again = (await api.request("POST", f"{server['id']}/discover-tools")).json()
    assert again["summary"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": count}

    # Pointed at another server: everything's tools are removed, the fixture's added.
    await api.request("PATCH", server["id"], json={"upstreamUrl": fixture_http.url})
    switched = (await api.request("POST", f"{server['id']}/discover-tools")).json()
    assert switched["summary"]["removed"] == count - 1  # both serve an `echo`
    assert switched["summary"]["changed"] == 1
    assert "get-sum" not in [t["toolKey"] for t in switched["tools"]]
    stored = await stored_tools(runtime, server["id"])
    assert stored["get-sum"].removed_at is not None
    assert stored["echo"].removed_at is None


async def test_discover_tools_answers_502_and_keeps_the_last_good_tools(api: Api, runtime: Runtime) -> None:
    server = await api.create("Paged", **paging("--tools", "3"))
    assert (await api.request("POST", f"{server['id']}/discover-tools")).status_code == 200
    await api.request("PATCH", server["id"], json={"command": "/nonexistent/conduit-upstream"})
    failed = await api.request("POST", f"{server['id']}/discover-tools")
    assert failed.status_code == 502
    assert failed.json()["code"] == "upstream_unreachable"
    assert "/nonexistent/conduit-upstream" in failed.json()["error"]
    detail = await api.detail(server["id"])
    assert (detail["catalogStatus"], detail["healthStatus"]) == ("error", "unreachable")
    assert detail["catalogError"] == failed.json()["error"]
    assert len(detail["tools"]) == 3


async def test_discover_tools_needs_the_write_permission(api: Api, client: httpx.AsyncClient) -> None:
    server = await api.create("Gone", upstreamUrl=CLOSED_URL)
    viewer = await _key(api, "viewer")
    refused = await api.request("POST", f"{server['id']}/discover-tools", headers=viewer)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    missing = await api.request("POST", "srv_doesnotexist/discover-tools")
    assert missing.status_code == 404


async def _key(api: Api, role: str) -> dict[str, str]:
    org_path = api.base.removesuffix("/mcp-servers")
    created = await api.client.post(
        f"{org_path}/api-keys", json={"name": f"{role}-bot", "roleKey": role}, headers=api.user.headers
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['fullKey']}"}


# --- health -----------------------------------------------------------------------------------


async def run_health_job(runtime: Runtime, worker: JobWorker) -> None:
    async with runtime.db.session() as session:
        enqueue(session, discovery.HEALTH_JOB)
    await worker.run_until_idle()


async def test_the_health_job_marks_healthy_and_unreachable(
    api: Api, runtime: Runtime, worker: JobWorker, fixture_http: ServerProcess
) -> None:
    up = await api.create("Up", upstreamUrl=fixture_http.url)
    down = await api.create("Down", upstreamUrl=CLOSED_URL)
    await worker.run_until_idle()
    # As if the last checks said the opposite, long ago.
    await set_columns(runtime, up["id"], health_status="unreachable", last_error="old", last_health_at=None)
    await set_columns(runtime, down["id"], health_status="healthy", last_error=None, last_health_at=None)

    await run_health_job(runtime, worker)
    up_now, down_now = await api.detail(up["id"]), await api.detail(down["id"])
    assert (up_now["healthStatus"], up_now["lastError"]) == ("healthy", None)
    assert down_now["healthStatus"] == "unreachable"
    assert "unreachable" in down_now["lastError"]
    async with runtime.db.session() as session:
        checked = {s.id: s.last_health_at for s in (await session.scalars(select(Server))).all()}
    assert all(at is not None for at in checked.values())

    # Checked a moment ago: not due, nothing changes.
    await set_columns(runtime, up["id"], health_status="degraded")
    await run_health_job(runtime, worker)
    assert (await api.detail(up["id"]))["healthStatus"] == "degraded"


async def test_a_server_that_comes_back_is_discovered_again(
    api: Api, runtime: Runtime, worker: JobWorker, fixture_http: ServerProcess
) -> None:
    server = await api.create("Flaky", upstreamUrl=CLOSED_URL)
    await worker.run_until_idle()
    assert (await api.detail(server["id"]))["catalogStatus"] == "error"
    # The upstream moved without the server being edited (e.g. DNS), then answers again.
    await set_columns(runtime, server["id"], upstream_url=fixture_http.url, last_health_at=None)
    await run_health_job(runtime, worker)
    detail = await api.detail(server["id"])
    assert (detail["healthStatus"], detail["catalogStatus"]) == ("healthy", "ok")
    assert "echo" in [t["toolKey"] for t in detail["tools"]]


async def test_disabled_servers_are_not_checked(api: Api, runtime: Runtime, worker: JobWorker) -> None:
    server = await api.create("Off", upstreamUrl=CLOSED_URL)
    await api.request("PATCH", server["id"], json={"status": "disabled"})
    async with runtime.db.session() as session:
        for job in (await session.scalars(select(Job))).all():
            await session.delete(job)
    await run_health_job(runtime, worker)
    assert (await api.detail(server["id"]))["healthStatus"] == "unknown"


async def test_check_health_degraded_when_slow(api: Api, runtime: Runtime) -> None:
    server = await api.create("Slow", **paging("--slow-ping", "2.5"))
    async with runtime.db.session() as session:
        row = await session.get(Server, server["id"])
        assert row is not None
        await session.commit()  # callers talk to upstreams with no transaction open
        health = await discovery.check_health(session, runtime, row)
    assert (health.status, health.seconds > discovery.HEALTH_SLOW_SECONDS) == ("degraded", True)
    assert health.error is not None
    assert health.error.startswith("Slow: answered in 2.")
    detail = await api.detail(server["id"])
    assert (detail["healthStatus"], detail["lastError"]) == ("degraded", health.error)


# --- smoke tests ----------------------------------------------------------------------------


async def test_smoke_tools_list_is_live_and_stores_nothing(
    api: Api, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    server = await api.create("Fixture", upstreamUrl=fixture_http.url)
    viewer = await _key(api, "viewer")
    for method in ("GET", "POST"):
        listed = await api.request(method, f"{server['id']}/mcp-smoke/tools-list", headers=viewer)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert "echo" in [t["name"] for t in body["tools"]]
        assert body["tools"][0]["inputSchema"]["type"] == "object"
        assert body["durationMs"] >= 0
    assert await stored_tools(runtime, server["id"]) == {}
    assert (await api.detail(server["id"]))["catalogStatus"] == "unknown"


async def test_smoke_tools_list_of_an_unreachable_server_is_502(api: Api) -> None:
    server = await api.create("Gone", upstreamUrl=f"http://127.0.0.1:{free_port()}/mcp")
    listed = await api.request("GET", f"{server['id']}/mcp-smoke/tools-list")
    assert (listed.status_code, listed.json()["code"]) == (502, "upstream_unreachable")


async def test_smoke_tool_calls(api: Api, fixture_http: ServerProcess, time_stdio: StdioCommand) -> None:
    fixture = await api.create("Fixture", upstreamUrl=fixture_http.url)
    call = f"{fixture['id']}/mcp-smoke/tools"

    echoed = await api.request("POST", f"{call}/echo/call", json={"arguments": {"message": "hi"}})
    assert echoed.status_code == 200, echoed.text
    body = echoed.json()
    assert (body["isError"], body["result"]["content"]) == (False, [{"type": "text", "text": "hi"}])
    assert body["result"]["structuredContent"] == {"result": "hi"}
    assert body["durationMs"] >= 0

    failed = (await api.request("POST", f"{call}/fail/call", json={"arguments": {"message": "boom"}})).json()
    assert failed["isError"] is True
    assert "boom" in failed["result"]["content"][0]["text"]

    no_body = await api.request("POST", f"{call}/test_simple_text/call")
    assert no_body.json()["isError"] is False

    time_server = await api.create("Time", **stdio(time_stdio))
    unknown = await api.request(
        "POST", f"{time_server['id']}/mcp-smoke/tools/nope/call", json={"arguments": {}}
    )
    assert unknown.status_code == 502
    assert unknown.json()["code"] == "upstream_error"
    assert unknown.json()["detail"] == {"code": -32602, "message": "Unknown tool: nope"}


async def test_smoke_tool_call_times_out_with_504(
    api: Api, runtime: Runtime, fixture_http: ServerProcess
) -> None:
    server = await api.create("Fixture", upstreamUrl=fixture_http.url)
    await set_columns(runtime, server["id"], settings={"timeoutSeconds": 1})
    never = await api.request("POST", f"{server['id']}/mcp-smoke/tools/never/call", json={"arguments": {}})
    assert (never.status_code, never.json()["code"]) == (504, "upstream_timeout")


async def test_smoke_tool_call_needs_the_write_permission(api: Api, fixture_http: ServerProcess) -> None:
    server = await api.create("Fixture", upstreamUrl=fixture_http.url)
    viewer = await _key(api, "viewer")
    refused = await api.request(
        "POST",
        f"{server['id']}/mcp-smoke/tools/echo/call",
        json={"arguments": {"message": "x"}},
        headers=viewer,
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")


# --- secrets ----------------------------------------------------------------------------------


async def test_the_environment_reaches_the_process_and_no_response(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, worker: JobWorker
) -> None:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    target = paging("--tools", "3", "--secret-sha256", digest)
    responses: list[httpx.Response] = []
    created = await api.client.post(
        api.base,
        json={"name": "Secret", **target, "env": {"PAGING_SECRET": SECRET}},
        headers=api.user.headers,
    )
    responses.append(created)
    server_id = created.json()["id"]
    await worker.run_until_idle()

    # The process saw the secret: it lists its tools only when the secret's hash matches.
    detail = await api.request("GET", server_id)
    responses.append(detail)
    assert [t["toolKey"] for t in detail.json()["tools"]] == ["tool-000", "tool-001", "tool-002"]
    responses.append(await api.request("POST", f"{server_id}/discover-tools"))
    responses.append(await api.request("GET", f"{server_id}/mcp-smoke/tools-list"))
    # A tool that echoes what it is given: the secret is blanked out of the answer.
    echoed = await api.request(
        "POST", f"{server_id}/mcp-smoke/tools/tool-000/call", json={"arguments": {"token": SECRET}}
    )
    responses.append(echoed)
    assert "********" in echoed.json()["result"]["content"][0]["text"]
    responses.append(await api.request("GET", f"{server_id}/config"))
    responses.append(await api.request("GET", ""))
    responses.append(await client.get("/api/servers", headers=api.user.headers))

    # A wrong secret: the upstream refuses, and the error shown still holds no secret.
    wrong = await api.request("PATCH", server_id, json={"env": {"PAGING_SECRET": SECRET + "-wrong"}})
    responses.append(wrong)
    await worker.run_until_idle()
    failed = await api.request("GET", server_id)
    responses.append(failed)
    assert failed.json()["catalogStatus"] == "error"
    assert "PAGING_SECRET is missing or wrong" in failed.json()["catalogError"]
    responses.append(await api.request("POST", f"{server_id}/discover-tools"))
    responses.append(await api.request("GET", f"{server_id}/mcp-smoke/tools-list"))
    assert responses[-1].status_code == 502

    assert all(r.status_code < 500 or r.status_code in (502, 504) for r in responses)
    for response in responses:
        assert SECRET not in response.text, response.request.url
    async with runtime.db.session() as session:
        jobs = (await session.scalars(select(Job))).all()
        server = await session.get(Server, server_id)
    assert server is not None
    stored = " ".join(
        str(value) for value in (server.catalog, server.catalog_error, server.last_error, server.env_sealed)
    )
    assert SECRET not in stored
    assert all(SECRET not in f"{job.payload} {job.last_error}" for job in jobs)


async def test_two_discoveries_storing_at_once_do_not_collide(api: Api, runtime: Runtime) -> None:
    """A discovery job and a discover-tools request may store the same new tools at once: the
    second waits for the first and finds its tools, instead of failing on a duplicate."""
    server = await api.create("Twice", upstreamUrl=CLOSED_URL)
    tools = [{"name": f"tool-{n}", "inputSchema": {"type": "object"}} for n in range(3)]

    async def store() -> dict[str, int]:
        async with runtime.db.session() as session:
            row = await session.get(Server, server["id"])
            assert row is not None
            return await discovery.store_catalog(session, row, discovery.Catalog(list(tools), {}))

    async with runtime.db.session() as first:
        row = await first.get(Server, server["id"])
        assert row is not None
        assert (await discovery.store_catalog(first, row, discovery.Catalog(list(tools), {})))["added"] == 3
        second = asyncio.create_task(store())
        await asyncio.sleep(0.5)
        assert not second.done()  # waiting for the first to commit
    assert await second == {"added": 0, "changed": 0, "removed": 0, "unchanged": 3}
    assert len(await stored_tools(runtime, server["id"])) == 3
