"""Plans, their limits, and usage metering that stays exact under concurrency.

Limits live in one table (`PLANS`). Counters are incremented with a single
`INSERT … ON CONFLICT DO UPDATE … WHERE count + n <= limit RETURNING count`, so two requests can
never both take the last unit, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing.models import UsageCounter
from conduit.kit.clock import utcnow
from conduit.kit.errors import Forbidden, TooManyRequests, Unprocessable

Period = Literal["day", "month"]


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    servers: int | None
    keys: int | None
    members: int | None
    scans_per_month: int | None
    gateway_calls_per_day: int | None
    # Per API key, enforced in memory by each gateway process (gateway.policy).
    gateway_requests_per_minute: int | None


PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan(
            "free",
            "Free",
            servers=3,
            keys=5,
            members=3,
            scans_per_month=3,
            gateway_calls_per_day=1_000,
            gateway_requests_per_minute=120,
        ),
        Plan(
            "pro",
            "Pro",
            servers=25,
            keys=50,
            members=10,
            scans_per_month=50,
            gateway_calls_per_day=50_000,
            gateway_requests_per_minute=1_200,
        ),
        Plan(
            "team",
            "Team",
            servers=100,
            keys=200,
            members=50,
            scans_per_month=200,
            gateway_calls_per_day=500_000,
            gateway_requests_per_minute=6_000,
        ),
        Plan(
            "scale",
            "Scale",
            servers=500,
            keys=1_000,
            members=250,
            scans_per_month=500,
            gateway_calls_per_day=5_000_000,
            gateway_requests_per_minute=30_000,
        ),
        # Self-hosted default: the operator owns the machine, so nothing is capped.
        Plan(
            "enterprise",
            "Enterprise",
            servers=None,
            keys=None,
            members=None,
            scans_per_month=None,
            gateway_calls_per_day=None,
            gateway_requests_per_minute=None,
        ),
    )
}

# metric -> (plan attribute holding its limit, period, what the 429 says)
METERED: dict[str, tuple[str, Period, str]] = {
    "gateway_calls": ("gateway_calls_per_day", "day", "Daily gateway call limit reached"),
    "scans": ("scans_per_month", "month", "Monthly scan limit reached"),
}
COUNTED = {"servers": "servers", "keys": "keys", "members": "members"}


def plan_for(key: str) -> Plan:
    try:
        return PLANS[key]
    except KeyError:
        raise Unprocessable(
            f"Unknown plan {key!r}; one of: {', '.join(PLANS)}", code="invalid_plan"
        ) from None


def period_bounds(period: Period, at: datetime | None = None) -> tuple[str, datetime]:
    """The counter key for the period containing `at`, and when that period ends."""
    now = (at or utcnow()).astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), next_month


@dataclass(frozen=True)
class Usage:
    metric: str
    used: int
    limit: int | None
    resets_at: datetime


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def usage(session: AsyncSession, org_id: str, plan_key: str, metric: str) -> Usage:
    attribute, period, _ = METERED[metric]
    key, resets_at = period_bounds(period)
    used = await session.scalar(
        select(UsageCounter.count).where(
            UsageCounter.org_id == org_id, UsageCounter.metric == metric, UsageCounter.period == key
        )
    )
    return Usage(metric, int(used or 0), getattr(plan_for(plan_key), attribute), resets_at)


def over_limit(
    message: str, *, used: int, limit: int, resets_at: datetime, upgrade_url: str
) -> TooManyRequests:
    return TooManyRequests(
        message,
        code="quota_exceeded",
        retry_after=(resets_at - utcnow()).total_seconds(),
        limit=limit,
        used=used,
        resets_at=resets_at.isoformat().replace("+00:00", "Z"),
        upgrade_url=upgrade_url,
    )


async def consume(
    session: AsyncSession, org_id: str, plan_key: str, metric: str, *, upgrade_url: str, amount: int = 1
) -> Usage:
    """Count `amount` units of `metric`, or raise 429 if that would pass the plan's limit."""
    attribute, period, message = METERED[metric]
    limit: int | None = getattr(plan_for(plan_key), attribute)
    key, resets_at = period_bounds(period)
    if limit is not None and amount > limit:
        current = await usage(session, org_id, plan_key, metric)
        raise over_limit(
            message, used=current.used, limit=limit, resets_at=resets_at, upgrade_url=upgrade_url
        )
    table = UsageCounter.__table__
    insert = _insert_for(session)
    statement = insert(table).values(org_id=org_id, metric=metric, period=key, count=amount)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.org_id, table.c.metric, table.c.period],
        set_={"count": table.c.count + amount},
        where=(table.c.count + amount <= limit) if limit is not None else None,
    ).returning(table.c.count)
    row = (await session.execute(statement)).first()
    if row is None:
        used = await usage(session, org_id, plan_key, metric)
        raise over_limit(
            message, used=used.used, limit=limit or 0, resets_at=resets_at, upgrade_url=upgrade_url
        )
    return Usage(metric, int(row[0]), limit, resets_at)


def ensure_capacity(plan_key: str, resource: str, current: int, *, upgrade_url: str, adding: int = 1) -> None:
    """403 when creating `adding` more of `resource` would pass the plan's count limit."""
    limit: int | None = getattr(plan_for(plan_key), COUNTED[resource])
    if limit is not None and current + adding > limit:
        raise Forbidden(
            f"Your plan allows {limit} {resource}; remove some or upgrade",
            code="plan_limit_reached",
            limit=limit,
            used=current,
            upgrade_url=upgrade_url,
        )


async def daily_series(session: AsyncSession, org_id: str, metric: str, days: int) -> dict[str, int]:
    start, _ = period_bounds("day", utcnow() - timedelta(days=days - 1))
    rows = await session.execute(
        select(UsageCounter.period, func.sum(UsageCounter.count))
        .where(UsageCounter.org_id == org_id, UsageCounter.metric == metric, UsageCounter.period >= start)
        .group_by(UsageCounter.period)
    )
    return {period: int(total) for period, total in rows.all()}
