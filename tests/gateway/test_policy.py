"""The gateway's policy: API keys become cached grants, keys are rate-limited per minute, and
calls are counted against the organization's daily quota exactly, in leased blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, event, select, update
from sqlalchemy.engine import Engine

from conduit.billing import service as billing
from conduit.billing.models import UsageCounter
from conduit.gateway.policy import AUTH_ERROR, RATE_LIMITED, Gatekeeper, GatewayRefusal, Grant
from conduit.identity.models import ApiKey
from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from conduit.kit.security import generate_api_key
from conduit.orgs.models import Membership, Organization
from tests.admin.conftest import add_server, assert_envelope, make_org
from tests.conftest import User, sign_up
from tests.orgs.conftest import join, member_key, new_team, service_key

NOON = datetime(2031, 5, 6, 12, 0, tzinfo=UTC)
FREE_CALLS = billing.PLANS["free"].gateway_calls_per_day
assert FREE_CALLS == 1_000


@dataclass
class Key:
    raw: str
    id: str
    org_id: str


MakeGatekeeper = Callable[..., Gatekeeper]


@pytest.fixture
async def gatekeepers(runtime: Runtime) -> AsyncIterator[MakeGatekeeper]:
    made: list[Gatekeeper] = []

    def make(**options: Any) -> Gatekeeper:
        gatekeeper = Gatekeeper(runtime, **options)
        made.append(gatekeeper)
        return gatekeeper

    yield make
    for gatekeeper in made:
        await gatekeeper.aclose()


@pytest.fixture
def frozen() -> datetime:
    clock.freeze(NOON)
    return NOON


async def personal_org(client: httpx.AsyncClient, user: User) -> str:
    org_id: str = (await client.get("/api/v1/cli/whoami", headers=user.headers)).json()["organizationId"]
    return org_id


async def org_key(client: httpx.AsyncClient, user: User) -> Key:
    """A member key of the user's personal organization (free plan, the user is its admin)."""
    created = await client.post("/api/keys", json={"name": "agent"}, headers=user.headers)
    assert created.status_code == 201, created.text
    return Key(created.json()["key"], created.json()["id"], await personal_org(client, user))


async def account_token(client: httpx.AsyncClient, user: User, **body: Any) -> Key:
    created = await client.post(
        "/api/v1/accounts/me/api-tokens", json={"name": "ci", **body}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    return Key(created.json()["token"], created.json()["id"], await personal_org(client, user))


async def set_plan(runtime: Runtime, org_id: str, plan: str) -> None:
    async with runtime.db.session() as session:
        await session.execute(update(Organization).where(Organization.id == org_id).values(plan=plan))


async def refusal(call: Awaitable[Any]) -> GatewayRefusal:
    with pytest.raises(GatewayRefusal) as raised:
        await call
    return raised.value


def refused_now(call: Callable[[], Any]) -> GatewayRefusal:
    with pytest.raises(GatewayRefusal) as raised:
        call()
    return raised.value


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's explicit transaction start
            seen.append(statement)

    # Every engine: the database may read and write through different ones (SQLite).
    event.listen(Engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- authentication -------------------------------------------------------------------------


async def test_a_member_key_is_granted_its_org_role_and_plan(
    client: httpx.AsyncClient, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    grant = await gatekeepers().authenticate(key.raw, "127.0.0.1")
    assert isinstance(grant, Grant)
    assert (grant.key_id, grant.org_id, grant.account_id) == (key.id, key.org_id, user.id)
    assert (grant.kind, grant.role, grant.plan) == ("org", "admin", "free")
    assert grant.org_slug == user.email.split("@")[0]
    assert grant.project_id is None
    assert grant.server_ids is None
    assert grant.reaches("srv_anything")
    assert grant.allows_tool("srv_anything", "any_tool")
    assert grant.rate_limit_per_minute == 120


async def test_a_service_key_has_its_own_role_and_no_account(
    client: httpx.AsyncClient, runtime: Runtime, gatekeepers: MakeGatekeeper
) -> None:
    team = await new_team(client, runtime, plan="team")
    created = await service_key(client, team.owner.headers, team.id, role="developer")
    grant = await gatekeepers().authenticate(created["fullKey"], None)
    assert (grant.kind, grant.role, grant.account_id, grant.org_id) == ("service", "developer", None, team.id)
    assert (grant.plan, grant.rate_limit_per_minute) == ("team", 6_000)


async def test_missing_and_foreign_credentials_are_refused_with_401(
    client: httpx.AsyncClient, user: User, gatekeepers: MakeGatekeeper
) -> None:
    gatekeeper = gatekeepers()
    for missing in (None, ""):
        refused = await refusal(gatekeeper.authenticate(missing, None))
        assert (refused.status, refused.code, refused.reason) == (401, AUTH_ERROR, "missing_credentials")
        assert refused.headers == {"WWW-Authenticate": 'Bearer realm="conduit"'}

    # A user's access token works on the REST API, never on the gateway; nor does a key never issued.
    for credential in (user.access_token, generate_api_key(), "cnd_live_short", "Bearer x"):
        refused = await refusal(gatekeeper.authenticate(credential, None))
        assert (refused.status, refused.code, refused.reason) == (401, AUTH_ERROR, "invalid_api_key")
        challenge = refused.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="conduit", error="invalid_token", error_description="')
        assert refused.error_object() == {"code": AUTH_ERROR, "message": "Invalid API key"}


async def test_a_revoked_key_stops_at_invalidate_or_after_the_ttl(
    frozen: datetime, client: httpx.AsyncClient, user: User, gatekeepers: MakeGatekeeper
) -> None:
    first, second = await org_key(client, user), await org_key(client, user)
    gatekeeper = gatekeepers(ttl=5.0)
    for key in (first, second):
        await gatekeeper.authenticate(key.raw, None)
        revoked = await client.delete(f"/api/keys/{key.id}", headers=user.headers)
        assert revoked.status_code == 200, revoked.text
        # Cached: the revocation is not seen yet, within the documented ttl.
        assert (await gatekeeper.authenticate(key.raw, None)).key_id == key.id

    gatekeeper.invalidate(first.id)
    assert (await refusal(gatekeeper.authenticate(first.raw, None))).reason == "invalid_api_key"
    assert (await gatekeeper.authenticate(second.raw, None)).key_id == second.id

    clock.advance(timedelta(seconds=5))
    refused = await refusal(gatekeeper.authenticate(second.raw, None))
    assert (refused.status, refused.reason) == (401, "invalid_api_key")


async def test_an_expired_key_is_refused_even_while_cached(
    frozen: datetime, client: httpx.AsyncClient, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await account_token(client, user, expires_in=60)
    gatekeeper = gatekeepers(ttl=3600.0)
    assert (await gatekeeper.authenticate(key.raw, None)).kind == "account"
    clock.advance(timedelta(seconds=60))
    refused = await refusal(gatekeeper.authenticate(key.raw, None))
    assert (refused.status, refused.reason) == (401, "api_key_expired")
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # And when first seen already expired.
    assert (await refusal(gatekeepers().authenticate(key.raw, None))).reason == "api_key_expired"


async def test_a_disabled_key_is_refused_until_enabled(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, gatekeepers: MakeGatekeeper
) -> None:
    project = await project_with_config(client, runtime)
    gatekeeper = gatekeepers()
    await gatekeeper.authenticate(project.key.raw, None)
    keys = f"/api/v1/users/{project.email}/api-keys/{project.key.id}"
    assert_envelope(await client.post(f"{keys}/disable", headers=project.org.headers))
    gatekeeper.invalidate(project.key.id)
    assert (await refusal(gatekeeper.authenticate(project.key.raw, None))).reason == "invalid_api_key"

    assert_envelope(await client.post(f"{keys}/enable", headers=project.org.headers))
    # The refusal is remembered for at most a second, then the key is looked up again.
    clock.advance(timedelta(seconds=1))
    assert (await gatekeeper.authenticate(project.key.raw, None)).key_id == project.key.id


async def test_the_ip_allowlist_is_enforced_with_403(
    client: httpx.AsyncClient, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await account_token(client, user, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    gatekeeper = gatekeepers()
    for allowed in ("10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1", "10.1.2.3"):
        assert (await gatekeeper.authenticate(key.raw, allowed)).key_id == key.id
    for refused_ip in ("192.168.1.1", "2001:db9::1", None, "not-an-ip"):
        refused = await refusal(gatekeeper.authenticate(key.raw, refused_ip))
        assert (refused.status, refused.code, refused.reason) == (403, AUTH_ERROR, "ip_not_allowed")


async def test_a_key_whose_owner_left_the_org_is_refused_with_401(
    client: httpx.AsyncClient, runtime: Runtime, gatekeepers: MakeGatekeeper
) -> None:
    team = await new_team(client, runtime)
    member = await join(client, team.owner, team.id, "developer")
    raw = await member_key(runtime, team.id, member.id)
    gatekeeper = gatekeepers()
    grant = await gatekeeper.authenticate(raw, None)
    assert (grant.role, grant.account_id) == ("developer", member.id)

    # The membership alone goes (the API would also revoke the key): the key must still stop.
    async with runtime.db.session() as session:
        await session.execute(
            delete(Membership).where(Membership.org_id == team.id, Membership.account_id == member.id)
        )
    gatekeeper.invalidate()
    refused = await refusal(gatekeeper.authenticate(raw, None))
    assert (refused.status, refused.reason) == (401, "membership_ended")


@dataclass
class ProjectSetup:
    org: Any
    email: str
    key: Key
    servers: dict[str, str]  # name -> server id


async def project_with_config(client: httpx.AsyncClient, runtime: Runtime) -> ProjectSetup:
    """An admin-API org: project `web` uses config `prod` (time: one tool; fetch: all tools);
    config `other` has a server the project must not reach."""
    org = await make_org(client, runtime)
    headers = org.headers
    for config in ("prod", "other"):
        assert_envelope(
            await client.post("/api/v1/configs", json={"config_name": config}, headers=headers), 201
        )
    time_server = await add_server(
        client, org, "prod", "time", server_command="uvx", tools=["get_current_time"]
    )
    fetch_server = await add_server(client, org, "prod", "fetch", server_command="uvx", args=["fetch"])
    git_server = await add_server(client, org, "other", "git", server_command="uvx", args=["git"])
    email = "dev@example.com"
    assert_envelope(await client.post("/api/v1/users", json={"email": email}, headers=headers), 201)
    assert_envelope(await client.post("/api/v1/projects", json={"project_name": "web"}, headers=headers), 201)
    assert_envelope(
        await client.post("/api/v1/projects/web/assign-config", json={"config_name": "prod"}, headers=headers)
    )
    assert_envelope(
        await client.post("/api/v1/projects/web/users", json={"email": email}, headers=headers), 201
    )
    created = assert_envelope(
        await client.post(f"/api/v1/users/{email}/api-keys", json={"project_name": "web"}, headers=headers),
        201,
    )
    servers = {
        "time": time_server["server_id"],
        "fetch": fetch_server["server_id"],
        "git": git_server["server_id"],
    }
    return ProjectSetup(org, email, Key(created["api_key"], created["key_id"], org.id), servers)


async def test_a_project_key_reaches_its_config_servers_and_tools(
    client: httpx.AsyncClient, runtime: Runtime, gatekeepers: MakeGatekeeper
) -> None:
    project = await project_with_config(client, runtime)
    grant = await gatekeepers().authenticate(project.key.raw, None)
    time_id, fetch_id, git_id = (project.servers[name] for name in ("time", "fetch", "git"))
    assert (grant.kind, grant.role, grant.org_id) == ("project", "viewer", project.org.id)
    assert grant.project_id is not None
    assert grant.server_ids == frozenset({time_id, fetch_id})
    assert dict(grant.tool_allowlists) == {time_id: frozenset({"get_current_time"}), fetch_id: None}
    assert grant.allows_tool(time_id, "get_current_time")
    assert not grant.allows_tool(time_id, "convert_time")
    assert grant.allows_tool(fetch_id, "anything")
    assert not grant.reaches(git_id)
    assert not grant.allows_tool(git_id, "anything")
    assert grant.rate_limit_per_minute is None


async def test_a_project_without_config_reaches_no_server(
    client: httpx.AsyncClient, runtime: Runtime, gatekeepers: MakeGatekeeper
) -> None:
    project = await project_with_config(client, runtime)
    assert_envelope(await client.post("/api/v1/projects/web/unassign-config", headers=project.org.headers))
    grant = await gatekeepers().authenticate(project.key.raw, None)
    assert grant.server_ids == frozenset()
    assert not grant.reaches(project.servers["time"])


async def test_cached_grants_and_refusals_spare_the_database(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    gatekeeper = gatekeepers()
    await gatekeeper.authenticate(key.raw, None)
    await eventually(lambda: last_used(runtime, key.id, NOON))
    with statements(runtime) as seen:
        for _ in range(500):
            await gatekeeper.authenticate(key.raw, "127.0.0.1")
        unknown = generate_api_key()
        for _ in range(100):
            await refusal(gatekeeper.authenticate(unknown, None))
            await refusal(gatekeeper.authenticate("cnd_live_malformed", None))
    assert len(seen) == 1, seen  # the unknown key's one lookup
    clock.advance(timedelta(seconds=1))
    with statements(runtime) as seen:
        await refusal(gatekeeper.authenticate(unknown, None))
    assert len(seen) == 1


async def test_concurrent_messages_share_one_lookup(
    client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    gatekeeper = gatekeepers()
    with statements(runtime) as seen:
        grants = await asyncio.gather(*(gatekeeper.authenticate(key.raw, None) for _ in range(50)))
    assert {grant.key_id for grant in grants} == {key.id}
    assert len([s for s in seen if "FROM api_keys" in s]) == 1


async def last_used(runtime: Runtime, key_id: str, expected: datetime | None) -> bool:
    async with runtime.db.session(write=False) as session:
        value = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))
    return value == expected


async def test_last_used_is_recorded_at_most_once_a_minute(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    gatekeeper = gatekeepers(ttl=3600.0)
    assert await last_used(runtime, key.id, None)
    await gatekeeper.authenticate(key.raw, None)
    await eventually(lambda: last_used(runtime, key.id, NOON))

    clock.advance(timedelta(seconds=59))
    with statements(runtime) as seen:
        await gatekeeper.authenticate(key.raw, None)
        await asyncio.sleep(0.05)
    assert seen == []
    assert await last_used(runtime, key.id, NOON)

    clock.advance(timedelta(seconds=1))
    await gatekeeper.authenticate(key.raw, None)
    await eventually(lambda: last_used(runtime, key.id, NOON + timedelta(seconds=60)))


# --- rate limit -----------------------------------------------------------------------------


async def test_the_rate_limit_refuses_call_n_plus_one_with_retry_after(
    frozen: datetime, client: httpx.AsyncClient, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key, other = await org_key(client, user), await org_key(client, user)
    gatekeeper = gatekeepers()
    grant = await gatekeeper.authenticate(key.raw, None)
    for _ in range(120):
        gatekeeper.check_rate(grant)
    refused = refused_now(lambda: gatekeeper.check_rate(grant))
    assert (refused.status, refused.code, refused.reason) == (429, RATE_LIMITED, "rate_limited")
    assert refused.headers == {"Retry-After": "1"}
    assert refused.data == {"limit": 120, "retryAfter": 1}
    assert refused.error_object()["data"] == {"limit": 120, "retryAfter": 1}

    # Another key of the same organization has its own bucket.
    gatekeeper.check_rate(await gatekeeper.authenticate(other.raw, None))

    # The bucket refills at 120 a minute: one call every half second.
    clock.advance(timedelta(seconds=1))
    gatekeeper.check_rate(grant)
    gatekeeper.check_rate(grant)
    refused_now(lambda: gatekeeper.check_rate(grant))
    clock.advance(timedelta(minutes=1))
    for _ in range(120):
        gatekeeper.check_rate(grant)
    refused_now(lambda: gatekeeper.check_rate(grant))


@pytest.mark.parametrize(("plan", "limit"), [("pro", 1_200), ("scale", 30_000)])
async def test_the_rate_limit_is_exact_for_every_plan(
    frozen: datetime,
    client: httpx.AsyncClient,
    runtime: Runtime,
    user: User,
    gatekeepers: MakeGatekeeper,
    plan: str,
    limit: int,
) -> None:
    key = await org_key(client, user)
    await set_plan(runtime, key.org_id, plan)
    gatekeeper = gatekeepers()
    grant = await gatekeeper.authenticate(key.raw, None)
    assert grant.rate_limit_per_minute == limit
    for _ in range(limit):
        gatekeeper.check_rate(grant)
    refused = refused_now(lambda: gatekeeper.check_rate(grant))
    assert refused.headers["Retry-After"] == "1"
    clock.advance(timedelta(seconds=60 / limit))
    gatekeeper.check_rate(grant)
    refused_now(lambda: gatekeeper.check_rate(grant))


async def test_a_plan_without_rate_limit_is_never_refused(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    await set_plan(runtime, key.org_id, "enterprise")
    gatekeeper = gatekeepers()
    grant = await gatekeeper.authenticate(key.raw, None)
    assert grant.rate_limit_per_minute is None
    for _ in range(50_000):
        gatekeeper.check_rate(grant)


# --- quota ----------------------------------------------------------------------------------


async def prefill(runtime: Runtime, org_id: str, used: int, at: datetime = NOON) -> None:
    period, _ = billing.period_bounds("day", at)
    async with runtime.db.session() as session:
        session.add(UsageCounter(org_id=org_id, metric="gateway_calls", period=period, count=used))


async def counted(runtime: Runtime, org_id: str, at: datetime = NOON) -> int:
    period, _ = billing.period_bounds("day", at)
    async with runtime.db.session(write=False) as session:
        count = await session.scalar(
            select(UsageCounter.count).where(
                UsageCounter.org_id == org_id,
                UsageCounter.metric == "gateway_calls",
                UsageCounter.period == period,
            )
        )
    return int(count or 0)


async def calls_allowed(gatekeeper: Gatekeeper, grant: Grant, calls: int) -> list[bool]:
    """Whether each of `calls` concurrent calls was let through; every refusal is the quota's."""

    async def one() -> GatewayRefusal | None:
        try:
            await gatekeeper.consume_call(grant)
        except GatewayRefusal as refused:
            return refused
        return None

    outcomes = await asyncio.gather(*(one() for _ in range(calls)))
    refusals = {(r.status, r.reason) for r in outcomes if r is not None}
    assert refusals <= {(429, "quota_exceeded")}
    return [outcome is None for outcome in outcomes]


async def test_exactly_the_daily_limit_is_allowed_then_429(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    await prefill(runtime, key.org_id, 950)
    gatekeeper = gatekeepers(quota_batch=20)
    grant = await gatekeeper.authenticate(key.raw, None)
    for _ in range(50):
        await gatekeeper.consume_call(grant)
    refused = await refusal(gatekeeper.consume_call(grant))
    assert (refused.status, refused.code, refused.reason) == (429, RATE_LIMITED, "quota_exceeded")
    assert refused.headers == {"Retry-After": str(12 * 3600)}
    assert refused.data == {
        "limit": 1_000,
        "used": 1_000,
        "resets_at": "2031-05-07T00:00:00Z",
        "upgrade_url": f"{runtime.settings.resolved_public_url}/api/v1/plans",
    }
    assert await counted(runtime, key.org_id) == 1_000

    # Tomorrow the quota is whole again.
    clock.advance(timedelta(hours=12))
    await gatekeeper.consume_call(grant)
    assert await counted(runtime, key.org_id, NOON + timedelta(hours=12)) == 20


async def test_concurrent_calls_use_the_whole_quota_and_never_more(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    gatekeeper = gatekeepers(quota_batch=37)  # 1000 is no multiple of 37: the last lease is smaller
    grant = await gatekeeper.authenticate(key.raw, None)
    allowed = await calls_allowed(gatekeeper, grant, 1_050)
    assert allowed.count(True) == FREE_CALLS
    assert await counted(runtime, key.org_id) == FREE_CALLS


async def test_two_gateway_processes_share_the_quota_exactly(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    await prefill(runtime, key.org_id, 950)
    first, second = gatekeepers(quota_batch=20), gatekeepers(quota_batch=20)
    grant = await first.authenticate(key.raw, None)
    results = await asyncio.gather(calls_allowed(first, grant, 60), calls_allowed(second, grant, 60))
    assert sum(result.count(True) for result in results) == 50
    assert await counted(runtime, key.org_id) == 1_000
    await first.aclose()
    await second.aclose()
    assert await counted(runtime, key.org_id) == 1_000


async def test_an_org_over_quota_is_refused_from_memory_for_a_second(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    await prefill(runtime, key.org_id, FREE_CALLS)
    gatekeeper = gatekeepers()
    grant = await gatekeeper.authenticate(key.raw, None)
    await refusal(gatekeeper.consume_call(grant))
    with statements(runtime) as seen:
        for _ in range(100):
            await refusal(gatekeeper.consume_call(grant))
    assert seen == []

    # Units given back elsewhere become usable once the refusal is a second old.
    async with runtime.db.session() as session:
        await session.execute(update(UsageCounter).where(UsageCounter.org_id == key.org_id).values(count=998))
    await refusal(gatekeeper.consume_call(grant))
    clock.advance(timedelta(seconds=1))
    assert await calls_allowed(gatekeeper, grant, 3) == [True, True, False]


async def test_calls_are_leased_in_blocks_without_a_query_per_call(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    gatekeeper = gatekeepers(quota_batch=100)
    grant = await gatekeeper.authenticate(key.raw, None)
    with statements(runtime) as seen:
        for _ in range(300):
            await gatekeeper.consume_call(grant)
    assert len([s for s in seen if "usage_counters" in s]) == 3
    assert await counted(runtime, key.org_id) == 300


async def test_a_plan_without_quota_never_touches_the_database(
    client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    await set_plan(runtime, key.org_id, "enterprise")
    gatekeeper = gatekeepers()
    grant = await gatekeeper.authenticate(key.raw, None)
    with statements(runtime) as seen:
        for _ in range(2_000):
            await gatekeeper.consume_call(grant)
    assert seen == []
    assert await counted(runtime, key.org_id) == 0


async def test_close_gives_unused_units_back(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User
) -> None:
    key = await org_key(client, user)
    gatekeeper = Gatekeeper(runtime, quota_batch=20)
    grant = await gatekeeper.authenticate(key.raw, None)
    for _ in range(3):
        await gatekeeper.consume_call(grant)
    assert await counted(runtime, key.org_id) == 20
    await gatekeeper.aclose()
    assert await counted(runtime, key.org_id) == 3

    # Never below zero, even if the counter was lowered meanwhile.
    gatekeeper = Gatekeeper(runtime, quota_batch=20)
    await gatekeeper.consume_call(grant)
    async with runtime.db.session() as session:
        await session.execute(update(UsageCounter).where(UsageCounter.org_id == key.org_id).values(count=5))
    await gatekeeper.aclose()
    assert await counted(runtime, key.org_id) == 0


async def test_a_lease_from_yesterday_is_not_used_today(
    client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    yesterday = datetime(2031, 5, 6, 23, 59, 50, tzinfo=UTC)
    today = yesterday + timedelta(seconds=20)
    key = await org_key(client, user)
    clock.freeze(yesterday)
    gatekeeper = gatekeepers(quota_batch=20)
    grant = await gatekeeper.authenticate(key.raw, None)
    await gatekeeper.consume_call(grant)
    assert await counted(runtime, key.org_id, yesterday) == 20

    clock.advance(timedelta(seconds=20))
    await gatekeeper.consume_call(grant)
    assert await counted(runtime, key.org_id, yesterday) == 1  # the 19 unused went back
    assert await counted(runtime, key.org_id, today) == 20
    await gatekeeper.aclose()
    assert await counted(runtime, key.org_id, today) == 1


async def test_a_full_quota_yesterday_does_not_block_today(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, user: User, gatekeepers: MakeGatekeeper
) -> None:
    key = await org_key(client, user)
    await prefill(runtime, key.org_id, FREE_CALLS - 1)
    gatekeeper = gatekeepers(quota_batch=20)
    grant = await gatekeeper.authenticate(key.raw, None)
    await gatekeeper.consume_call(grant)
    await refusal(gatekeeper.consume_call(grant))
    clock.advance(timedelta(days=1))
    await gatekeeper.consume_call(grant)
    assert await counted(runtime, key.org_id, NOON + timedelta(days=1)) == 20
    assert await counted(runtime, key.org_id) == FREE_CALLS


async def test_another_users_org_has_its_own_quota(
    frozen: datetime, client: httpx.AsyncClient, runtime: Runtime, gatekeepers: MakeGatekeeper
) -> None:
    full, fresh = await sign_up(client), await sign_up(client)
    full_key, fresh_key = await org_key(client, full), await org_key(client, fresh)
    await prefill(runtime, full_key.org_id, FREE_CALLS)
    gatekeeper = gatekeepers()
    await refusal(gatekeeper.consume_call(await gatekeeper.authenticate(full_key.raw, None)))
    await gatekeeper.consume_call(await gatekeeper.authenticate(fresh_key.raw, None))
