"""Counting events in a sliding window, shared by every process through the database.

Used where exactness across replicas matters more than speed (failed sign-ins). Each event is a
row; counting is one indexed query; a periodic job deletes rows older than a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Index, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base
from conduit.kit.jobs import JobContext, registry

RETENTION = timedelta(days=1)


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
