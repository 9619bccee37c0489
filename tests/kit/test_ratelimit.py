"""The database-backed sliding window, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker, enqueue
from conduit.kit.ratelimit import RateEvent, WindowCount, clear_events, count_events, record_event
from conduit.kit.runtime import Runtime

WINDOW = timedelta(seconds=60)
T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


async def record(runtime: Runtime, bucket: str, times: int = 1) -> None:
    async with runtime.db.session() as session:
        for _ in range(times):
            record_event(session, bucket)


async def count(runtime: Runtime, bucket: str, window: timedelta = WINDOW) -> WindowCount:
    async with runtime.db.session(write=False) as session:
        return await count_events(session, bucket, window)


async def test_counts_events_within_the_window(runtime: Runtime) -> None:
    clock.freeze(T0)
    await record(runtime, "login:ada")
    clock.advance(timedelta(seconds=10))
    await record(runtime, "login:ada", times=2)
    clock.advance(timedelta(seconds=10))

    counted = await count(runtime, "login:ada")

    assert counted.count == 3
    assert counted.oldest == T0
    assert counted.oldest.tzinfo is not None


async def test_empty_bucket_counts_zero_and_needs_no_wait(runtime: Runtime) -> None:
    counted = await count(runtime, "login:nobody")

    assert counted == WindowCount(0, None)
    assert counted.retry_after(WINDOW) == 0.0


async def test_retry_after_shrinks_as_time_passes(runtime: Runtime) -> None:
    clock.freeze(T0)
    await record(runtime, "login:ada")
    clock.advance(timedelta(seconds=20))
    await record(runtime, "login:ada")

    assert (await count(runtime, "login:ada")).retry_after(WINDOW) == 40.0
    clock.advance(timedelta(seconds=15))
    assert (await count(runtime, "login:ada")).retry_after(WINDOW) == 25.0


async def test_old_events_fall_out_of_the_window(runtime: Runtime) -> None:
    clock.freeze(T0)
    await record(runtime, "login:ada")
    clock.advance(timedelta(seconds=30))
    await record(runtime, "login:ada")

    clock.advance(timedelta(seconds=29))  # T0 + 59 s: both inside
    assert (await count(runtime, "login:ada")).count == 2
    clock.advance(timedelta(seconds=1))  # T0 + 60 s: the first is exactly a window old
    after = await count(runtime, "login:ada")
    assert after.count == 1
    assert after.oldest == T0 + timedelta(seconds=30)
    assert after.retry_after(WINDOW) == 30.0
    clock.advance(timedelta(seconds=30))
    assert await count(runtime, "login:ada") == WindowCount(0, None)


async def test_buckets_are_counted_apart_and_cleared_apart(runtime: Runtime) -> None:
    await record(runtime, "login:ada", times=3)
    await record(runtime, "login:bob")

    async with runtime.db.session() as session:
        await clear_events(session, "login:ada")

    assert (await count(runtime, "login:ada")).count == 0
    assert (await count(runtime, "login:bob")).count == 1


async def test_purge_job_deletes_only_events_older_than_a_day(runtime: Runtime, worker: JobWorker) -> None:
    clock.freeze(T0)
    await record(runtime, "login:old")
    clock.advance(timedelta(days=1, seconds=1))
    await record(runtime, "login:recent")
    async with runtime.db.session() as session:
        enqueue(session, "ratelimit.purge")

    assert await worker.run_until_idle() == 1

    async with runtime.db.session(write=False) as session:
        buckets = (await session.scalars(select(RateEvent.bucket))).all()
    assert buckets == ["login:recent"]
