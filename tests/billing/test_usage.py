"""Metered usage: `consume()` counts exactly under concurrency, and over the limit answers seed 004's
429 with `Retry-After` until the period resets."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conduit.billing import service as billing
from conduit.billing.models import UsageCounter
from conduit.identity.auth import RuntimeDep
from conduit.kit.clock import clock
from conduit.kit.db import SessionDep
from conduit.kit.errors import TooManyRequests
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization

UPGRADE = "https://conduit.example/pricing"


async def new_org(runtime: Runtime, plan: str) -> str:
    async with runtime.db.session() as session:
        org = Organization(name="Metered", slug=f"metered-{uuid.uuid4().hex[:8]}", plan=plan)
        session.add(org)
        await session.flush()
        return org.id


async def stored_count(runtime: Runtime, org_id: str, metric: str) -> int:
    async with runtime.db.session(write=False) as session:
        counts = (
            await session.scalars(
                select(UsageCounter.count).where(UsageCounter.org_id == org_id, UsageCounter.metric == metric)
            )
        ).all()
    return sum(counts)


async def consume_alone(runtime: Runtime, org_id: str, plan: str, metric: str, amount: int = 1) -> bool:
    """One call in its own transaction, as each request would make it. True if it was counted."""
    try:
        async with runtime.db.session() as session:
            await billing.consume(session, org_id, plan, metric, upgrade_url=UPGRADE, amount=amount)
    except TooManyRequests:
        return False
    return True


@pytest.mark.parametrize(
    ("plan", "metric", "amount", "calls"),
    [("pro", "scans", 1, 200), ("free", "gateway_calls", 7, 200)],
)
async def test_concurrent_consumption_never_passes_the_limit_or_loses_a_unit(
    runtime: Runtime, plan: str, metric: str, amount: int, calls: int
) -> None:
    org_id = await new_org(runtime, plan)
    limit = getattr(billing.PLANS[plan], billing.METERED[metric][0])
    results = await asyncio.gather(
        *(consume_alone(runtime, org_id, plan, metric, amount) for _ in range(calls))
    )
    expected = limit // amount
    assert results.count(True) == expected
    assert results.count(False) == calls - expected
    assert await stored_count(runtime, org_id, metric) == expected * amount


async def test_concurrent_consumption_below_the_limit_counts_every_call(runtime: Runtime) -> None:
    org_id = await new_org(runtime, "enterprise")
    results = await asyncio.gather(
        *(consume_alone(runtime, org_id, "enterprise", "gateway_calls") for _ in range(150))
    )
    assert all(results)
    assert await stored_count(runtime, org_id, "gateway_calls") == 150


async def test_counters_are_per_organization_and_metric(runtime: Runtime) -> None:
    first, second = await new_org(runtime, "free"), await new_org(runtime, "free")
    for _ in range(3):
        assert await consume_alone(runtime, first, "free", "scans")
    assert not await consume_alone(runtime, first, "free", "scans")
    assert await consume_alone(runtime, second, "free", "scans")
    assert await consume_alone(runtime, first, "free", "gateway_calls")
    async with runtime.db.session(write=False) as session:
        used = await billing.usage(session, first, "free", "scans")
    assert (used.used, used.limit) == (3, 3)


async def test_a_new_period_starts_from_zero(runtime: Runtime) -> None:
    clock.freeze(datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    org_id = await new_org(runtime, "free")
    for _ in range(3):
        assert await consume_alone(runtime, org_id, "free", "scans")
    assert not await consume_alone(runtime, org_id, "free", "scans")
    clock.advance(timedelta(hours=1))
    assert await consume_alone(runtime, org_id, "free", "scans")
    async with runtime.db.session(write=False) as session:
        assert (await billing.usage(session, org_id, "free", "scans")).used == 1


@pytest.fixture
def metered_client(app: Any) -> httpx.AsyncClient:
    """The real application with one route that meters a scan, as a scan endpoint will."""

    async def scan(org_id: str, session: SessionDep, runtime: RuntimeDep, amount: int = 1) -> dict[str, int]:
        org = await session.get(Organization, org_id)
        assert org is not None
        used = await billing.consume(session, org.id, org.plan, "scans", upgrade_url=UPGRADE, amount=amount)
        return {"used": used.used}

    app.add_api_route("/test/orgs/{org_id}/scan", scan, methods=["POST"])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_over_the_limit_is_a_429_with_seed_004s_body(
    metered_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock.freeze(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))
    org_id = await new_org(runtime, "pro")
    async with metered_client as client:
        for used in range(1, 51):
            response = await client.post(f"/test/orgs/{org_id}/scan")
            assert response.json() == {"used": used}, response.text
        refused = await client.post(f"/test/orgs/{org_id}/scan")
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == str(
            int((datetime(2026, 4, 1, tzinfo=UTC) - clock.now()).total_seconds())
        )
        assert refused.json() == {
            "code": "quota_exceeded",
            "error": "Monthly scan limit reached",
            "limit": 50,
            "used": 50,
            "resets_at": "2026-04-01T00:00:00Z",
            "upgrade_url": UPGRADE,
        }
        too_big = await client.post(f"/test/orgs/{org_id}/scan", params={"amount": 51})
        assert too_big.status_code == 429
        assert too_big.json()["used"] == 50

        clock.freeze(datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC))
        assert (await client.post(f"/test/orgs/{org_id}/scan")).json() == {"used": 1}
    assert await stored_count(runtime, org_id, "scans") == 51


async def test_a_refused_call_is_not_counted(runtime: Runtime) -> None:
    org_id = await new_org(runtime, "free")
    assert await consume_alone(runtime, org_id, "free", "gateway_calls", amount=999)
    assert not await consume_alone(runtime, org_id, "free", "gateway_calls", amount=2)
    assert await consume_alone(runtime, org_id, "free", "gateway_calls", amount=1)
    assert not await consume_alone(runtime, org_id, "free", "gateway_calls", amount=1)
    assert await stored_count(runtime, org_id, "gateway_calls") == 1000


async def test_the_daily_limit_resets_at_midnight_utc(runtime: Runtime) -> None:
    clock.freeze(datetime(2026, 3, 15, 18, 0, tzinfo=UTC))
    org_id = await new_org(runtime, "free")
    assert await consume_alone(runtime, org_id, "free", "gateway_calls", amount=1000)
    with pytest.raises(TooManyRequests) as refused:
        async with runtime.db.session() as session:
            await billing.consume(session, org_id, "free", "gateway_calls", upgrade_url=UPGRADE)
    assert refused.value.headers["Retry-After"] == str(6 * 3600)
    assert refused.value.extra["resets_at"] == "2026-03-16T00:00:00Z"
    assert refused.value.message == "Daily gateway call limit reached"
