"""Rate limits two ways.

- Events in a sliding window, shared by every process through the database: where exactness
  across replicas matters more than speed (failed sign-ins). Each event is a row; counting is
  one indexed query; a periodic job deletes rows older than a day.
- `TokenBuckets`, in this process's memory: where a check must cost nothing (every gateway call,
  every public registry request). With N processes a key may reach N times its limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Index, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base
from conduit.kit.jobs import JobContext, registry

RETENTION = timedelta(days=1)
MINUTE_US = 60_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


class TokenBuckets:
    """Per-key GCRA token buckets of `limit` events per minute: `limit` may come at once, then
    one every `60 / limit` seconds. One number per key, the time its bucket is full again,
    counted in units of 1/limit µs (on the movable clock), so an event costs exactly one minute's
    µs and no rounding lets event `limit + 1` through."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[int, int]] = {}  # key -> (limit, full again at)
        self._sweep_at = 1024

    def take(self, key: str, limit: int) -> float | None:
        """Count one event of `key`: None when it may happen now, else the seconds until it may
        (and nothing is counted)."""
        now = _micros() * limit
        last = self._buckets.get(key)
        full_at = (last[1] if last is not None and last[0] == limit and last[1] > now else now) + MINUTE_US
        excess = full_at - now - MINUTE_US * limit
        if excess > 0:
            return excess / limit / 1e6
        self._buckets[key] = (limit, full_at)
        if len(self._buckets) > self._sweep_at:
            self._sweep()
        return None

    def _sweep(self) -> None:
        now = _micros()
        # A bucket already full again is the same as no entry.
        for key in [k for k, (limit, full_at) in self._buckets.items() if full_at <= now * limit]:
            del self._buckets[key]
        self._sweep_at = max(1024, 2 * len(self._buckets))


def _micros() -> int:
    return (utcnow() - EPOCH) // ONE_MICROSECOND


class RateEvent(Base):
    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_bucket_created_at", "bucket", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class WindowCount:
    count: int
    oldest: datetime | None

    def retry_after(self, window: timedelta) -> float:
        """Seconds until the oldest counted event leaves the window."""
        if self.oldest is None:
            return 0.0
        return max(0.0, (self.oldest + window - utcnow()).total_seconds())


async def count_events(session: AsyncSession, bucket: str, window: timedelta) -> WindowCount:
    since = utcnow() - window
    row = (
        await session.execute(
            select(func.count(), func.min(RateEvent.created_at)).where(
                RateEvent.bucket == bucket, RateEvent.created_at > since
            )
        )
    ).one()
    return WindowCount(int(row[0]), row[1])


def record_event(session: AsyncSession, bucket: str) -> None:
    session.add(RateEvent(bucket=bucket))


async def clear_events(session: AsyncSession, bucket: str) -> None:
    await session.execute(delete(RateEvent).where(RateEvent.bucket == bucket))


@registry.handler("ratelimit.purge", every=timedelta(hours=1), max_attempts=3)
async def _purge(ctx: JobContext) -> None:
    await ctx.session.execute(delete(RateEvent).where(RateEvent.created_at < utcnow() - RETENTION))
