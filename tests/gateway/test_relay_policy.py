"""Policy on the relay as a client meets it: Origin checks, per-key rate limits, the plan's
gateway-call quota, and the request log that /logs and /analytics read."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import update

from conduit.billing.models import UsageCounter
from conduit.billing.service import period_bounds
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization
from tests.gateway.support import ACCEPT, INIT, Live, Org, mcp_client, new_org
from tests.mcp_servers import ServerProcess
from tests.test_mcp_servers import text

pytestmark = pytest.mark.e2e
CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"message": "x"}},
}


async def set_plan(runtime: Runtime, org_id: str, plan: str) -> None:
    async with runtime.db.session() as session:
        await session.execute(update(Organization).where(Organization.id == org_id).values(plan=plan))


async def open_session(http: httpx.AsyncClient, url: str, key: str) -> dict[str, str]:
    opened = await http.post(url, json=INIT, headers={**ACCEPT, "X-API-Key": key})
    assert opened.status_code == 200, opened.text
    return {**ACCEPT, "X-API-Key": key, "mcp-session-id": opened.headers["mcp-session-id"]}


async def test_foreign_origins_are_refused(live: Live, org: Org, fixture_http: ServerProcess) -> None:
    server = await org.register("fixture", upstream_url=fixture_http.url)
    url = server["gateway_endpoint"]
    async with httpx.AsyncClient(timeout=10) as http:
        for origin in ("http://evil.example.com", "https://attacker.test:8443", "null"):
            refused = await http.post(
                url, json=INIT, headers={**ACCEPT, "X-API-Key": org.key, "Origin": origin}
            )
            assert refused.status_code == 403, origin
            assert refused.json()["error"]["message"] == "Forbidden: Origin not allowed"
        for origin in (live.base_url, "http://localhost:3000", "http://127.0.0.1:6274"):
            allowed = await http.post(
                url, json=INIT, headers={**ACCEPT, "X-API-Key": org.key, "Origin": origin}
            )
            assert allowed.status_code == 200, origin


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    live: Live, org: Org, runtime: Runtime, fixture_http_json: ServerProcess
) -> None:
    await set_plan(runtime, org.org_id, "free")  # 120 requests a minute per key
    server = await org.register("fixture", upstream_url=fixture_http_json.url)
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await open_session(http, server["gateway_endpoint"], org.key)
        answered = 0
        started = time.monotonic()
        while (
            response := await http.post(server["gateway_endpoint"], json=CALL, headers=headers)
        ).status_code == 200:
            answered += 1
            assert answered < 400, "never limited"
        # 120 at once (the initialize was one of them), then one more every half second.
        refill = int((time.monotonic() - started) * 2) + 1
        assert 119 <= answered <= 119 + refill
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == -32029
        other = await new_org(org.api)
        await set_plan(runtime, other.org_id, "free")
        theirs = await other.register("fixture", upstream_url=fixture_http_json.url)
        fresh = await http.post(
            theirs["gateway_endpoint"], json=INIT, headers={**ACCEPT, "X-API-Key": other.key}
        )
        assert fresh.status_code == 200  # limits are per key


async def test_the_plans_daily_call_quota_is_enforced(
    live: Live, org: Org, runtime: Runtime, fixture_http_json: ServerProcess
) -> None:
    await set_plan(runtime, org.org_id, "free")  # 1,000 gateway calls a day
    server = await org.register("fixture", upstream_url=fixture_http_json.url)
    day, _ = period_bounds("day")
    async with runtime.db.session() as session:
        session.add(UsageCounter(org_id=org.org_id, metric="gateway_calls", period=day, count=998))
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await open_session(http, server["gateway_endpoint"], org.key)
        listed = await http.post(
            server["gateway_endpoint"],
            json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
            headers=headers,
        )
        assert listed.status_code == 200  # listing is not a call
        for _ in range(2):
            assert (
                await http.post(server["gateway_endpoint"], json=CALL, headers=headers)
            ).status_code == 200
        over = await http.post(server["gateway_endpoint"], json=CALL, headers=headers)
        assert over.status_code == 429
        error = over.json()["error"]
        assert error["code"] == -32029
        assert error["data"]["limit"] == 1000
        assert int(over.headers["retry-after"]) > 0
    usage = await org.api.get(f"/api/v1/organizations/{org.org_id}/usage", headers=org.headers)
    if usage.status_code == 200:
        assert "1000" in usage.text or "1,000" in usage.text


async def test_every_message_is_logged_and_read_back_by_logs_and_analytics(
    live: Live, org: Org, fixture_http: ServerProcess
) -> None:
    server = await org.register("fixture", upstream_url=fixture_http.url)
    async with mcp_client(server["gateway_endpoint"], org.key, mode="legacy") as client:
        assert text(await client.call_tool("echo", {"message": "logged"})) == "logged"
        assert (await client.call_tool("fail", {})).is_error
        await client.list_tools()
    await live.app.state.gateway.requestlog.flush()
    path = org.server_path(server["id"])
    logs = (await org.api.get(f"{path}/logs", headers=org.headers)).json()["logs"]
    by_method: dict[str, list[dict[str, object]]] = {}
    for entry in logs:
        by_method.setdefault(str(entry["method"]), []).append(entry)
    assert {"initialize", "notifications/initialized", "tools/call", "tools/list"} <= set(by_method)
    calls = {entry["tool"]: entry for entry in by_method["tools/call"]}
    assert calls["echo"]["status"] == "ok"
    assert calls["fail"]["status"] == "error"
    assert all(entry["keyId"] and entry["sessionId"] for entry in logs)
    assert calls["echo"]["requestBytes"] > 0
    assert calls["echo"]["responseBytes"] > 0
    analytics = (await org.api.get(f"{path}/analytics", headers=org.headers)).json()
    assert analytics["totalRequests"] == len(logs)
    assert {t["tool"]: t["calls"] for t in analytics["byTool"]} == {"echo": 1, "fail": 1}
    detail = (await org.api.get(path, headers=org.headers)).json()
    assert detail["totalInvocations"] == 2
