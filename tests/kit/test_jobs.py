"""The jobs table as a transactional outbox, and the workers that run it, on a real database."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from conduit.kit.clock import clock
from conduit.kit.jobs import (
    DEAD,
    DONE,
    LEASE,
    PENDING,
    RUNNING,
    Job,
    JobContext,
    JobRegistry,
    JobWorker,
    RetryLater,
    enqueue,
    registry,
)
from conduit.kit.ratelimit import RateEvent
from conduit.kit.runtime import Runtime

RECORD = "test.kit.jobs.record"
FAIL = "test.kit.jobs.fail"
RETRY_LATER = "test.kit.jobs.retry_later"
SLOW = "test.kit.jobs.slow"
BLOCK = "test.kit.jobs.block"
WRITE_THEN_FAIL = "test.kit.jobs.write_then_fail"
PERIODIC = "test.kit.jobs.periodic"
LOSE_LEASE = "test.kit.jobs.lose_lease"

FAIL_SCHEDULE = (10, 100, 1000)

executions: list[tuple[str, JobContext]] = []
release = asyncio.Event()


@registry.handler(RECORD)
async def _record(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))


@registry.handler(FAIL, max_attempts=4, schedule=FAIL_SCHEDULE)
async def _fail(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))
    raise RuntimeError(f"upstream refused attempt {ctx.attempt}")


@registry.handler(RETRY_LATER)
async def _retry_later(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))
    if ctx.attempt == 1:
        raise RetryLater("upstream asked us to wait", 42)


@registry.handler(SLOW, timeout_seconds=0.05)
async def _slow(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))
    await asyncio.sleep(5)


@registry.handler(BLOCK)
async def _block(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))
    await release.wait()


@registry.handler(WRITE_THEN_FAIL)
async def _write_then_fail(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))
    ctx.session.add(RateEvent(bucket="test.kit.jobs.side-effect"))
    await ctx.session.flush()
    raise RuntimeError("failed after writing")


@registry.handler(LOSE_LEASE)
async def _lose_lease(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))
    if ctx.attempt == 1:
        # This run stalls past its lease, and another worker takes the job over meanwhile.
        clock.advance(LEASE + timedelta(seconds=1))
        [taken] = await JobWorker(ctx.runtime, name="usurper").claim(1)
        assert taken.id == ctx.id
    ctx.session.add(RateEvent(bucket=f"written-by-attempt-{ctx.attempt}"))


# Periodic kinds live in a registry of their own: the global one is shared by every worker of the
# test session, and a test-only periodic job there would show up in other tests.
periodic_jobs = JobRegistry()


@periodic_jobs.handler(PERIODIC, every=timedelta(minutes=10))
async def _tick(ctx: JobContext) -> None:
    executions.append((ctx.kind, ctx))


@pytest.fixture(autouse=True)
def _reset_handlers() -> None:
    executions.clear()
    release.clear()


def ran(kind: str) -> list[JobContext]:
    return [ctx for k, ctx in executions if k == kind]


async def add_job(
    runtime: Runtime, kind: str, payload: dict[str, object] | None = None, **kwargs: object
) -> str:
    async with runtime.db.session() as session:
        job = enqueue(session, kind, payload, **kwargs)  # type: ignore[arg-type]
    return job.id


async def load(runtime: Runtime, job_id: str) -> Job:
    async with runtime.db.session(write=False) as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def running_workers(runtime: Runtime) -> AsyncIterator[list[tuple[JobWorker, asyncio.Task[None]]]]:
    """Workers started with `run()`; stopped (and checked to stop) at the end of the test."""
    started: list[tuple[JobWorker, asyncio.Task[None]]] = []
    yield started
    release.set()
    for worker, _ in started:
        worker.stop()
    await asyncio.wait_for(asyncio.gather(*(task for _, task in started)), timeout=10)


def start(started: list[tuple[JobWorker, asyncio.Task[None]]], worker: JobWorker) -> JobWorker:
    started.append((worker, asyncio.create_task(worker.run())))
    return worker


async def test_job_enqueued_in_a_rolled_back_transaction_never_runs(
    runtime: Runtime, worker: JobWorker
) -> None:
    async def failing_request() -> None:
        async with runtime.db.session() as session:
            enqueue(session, RECORD, {"n": 1})
            await session.flush()
            raise RuntimeError("request failed")

    with pytest.raises(RuntimeError, match="request failed"):
        await failing_request()

    assert await worker.run_until_idle() == 0
    assert executions == []
    async with runtime.db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_committed_job_runs_exactly_once(runtime: Runtime, worker: JobWorker) -> None:
    job_id = await add_job(runtime, RECORD, {"to": "someone"})

    assert await worker.run_until_idle() == 1
    assert await worker.run_until_idle() == 0

    [ctx] = ran(RECORD)
    assert (ctx.id, ctx.payload, ctx.attempt) == (job_id, {"to": "someone"}, 1)
    job = await load(runtime, job_id)
    assert job.status == DONE
    assert job.attempts == 1
    assert job.finished_at is not None
    assert (job.locked_by, job.locked_until, job.last_error) == (None, None, None)


async def test_enqueue_refuses_a_kind_without_handler(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        with pytest.raises(KeyError, match=re.escape("test.kit.jobs.nobody")):
            enqueue(session, "test.kit.jobs.nobody")


async def test_job_scheduled_later_waits_for_its_time(runtime: Runtime, worker: JobWorker) -> None:
    clock.freeze()
    await add_job(runtime, RECORD, delay=timedelta(minutes=5))

    clock.advance(timedelta(minutes=4, seconds=59))
    assert await worker.run_until_idle() == 0
    clock.advance(timedelta(seconds=1))
    assert await worker.run_until_idle() == 1


async def test_failing_job_is_retried_with_growing_delays_then_dead(
    runtime: Runtime, worker: JobWorker
) -> None:
    clock.freeze(datetime(2030, 1, 1, tzinfo=UTC))
    job_id = await add_job(runtime, FAIL)

    delays = []
    for attempt in (1, 2, 3):
        assert await worker.run_until_idle() == 1
        job = await load(runtime, job_id)
        assert (job.status, job.attempts) == (PENDING, attempt)
        assert job.last_error == f"RuntimeError: upstream refused attempt {attempt}"
        assert (job.locked_by, job.locked_until) == (None, None)
        delay = (job.run_at - clock.now()).total_seconds()
        # ±20% jitter around the schedule
        assert FAIL_SCHEDULE[attempt - 1] * 0.8 <= delay <= FAIL_SCHEDULE[attempt - 1] * 1.2
        delays.append(delay)

        clock.advance(timedelta(seconds=delay - 1))
        assert await worker.run_until_idle() == 0, "retried before its delay"
        clock.advance(timedelta(seconds=1))

    assert delays == sorted(delays)
    assert await worker.run_until_idle() == 1
    job = await load(runtime, job_id)
    assert (job.status, job.attempts) == (DEAD, 4)
    assert job.last_error == "RuntimeError: upstream refused attempt 4"
    assert job.finished_at == clock.now()

    clock.advance(timedelta(days=30))
    assert await worker.run_until_idle() == 0
    assert [ctx.attempt for ctx in ran(FAIL)] == [1, 2, 3, 4]


async def test_max_attempts_given_at_enqueue_wins(runtime: Runtime, worker: JobWorker) -> None:
    job_id = await add_job(runtime, FAIL, max_attempts=1)

    assert await worker.run_until_idle() == 1
    job = await load(runtime, job_id)
    assert (job.status, job.attempts) == (DEAD, 1)


async def test_retry_later_reschedules_with_the_given_delay(runtime: Runtime, worker: JobWorker) -> None:
    clock.freeze()
    job_id = await add_job(runtime, RETRY_LATER)

    assert await worker.run_until_idle() == 1
    job = await load(runtime, job_id)
    assert job.status == PENDING
    assert job.run_at == clock.now() + timedelta(seconds=42)
    assert job.last_error == "upstream asked us to wait"

    clock.advance(timedelta(seconds=41))
    assert await worker.run_until_idle() == 0
    clock.advance(timedelta(seconds=1))
    assert await worker.run_until_idle() == 1
    job = await load(runtime, job_id)
    assert (job.status, job.attempts, job.last_error) == (DONE, 2, None)


async def test_handler_past_its_timeout_is_a_failure(runtime: Runtime, worker: JobWorker) -> None:
    job_id = await add_job(runtime, SLOW)

    assert await asyncio.wait_for(worker.run_until_idle(), timeout=2) == 1
    job = await load(runtime, job_id)
    assert job.status == PENDING
    assert job.last_error is not None
    assert job.last_error.startswith("TimeoutError")


async def test_failed_handler_writes_are_rolled_back(runtime: Runtime, worker: JobWorker) -> None:
    job_id = await add_job(runtime, WRITE_THEN_FAIL)

    assert await worker.run_until_idle() == 1
    assert len(ran(WRITE_THEN_FAIL)) == 1
    async with runtime.db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(RateEvent)) == 0
    assert (await load(runtime, job_id)).status == PENDING


async def test_job_of_a_kind_the_worker_does_not_know_is_dead(runtime: Runtime) -> None:
    job_id = await add_job(runtime, RECORD)
    stranger = JobWorker(runtime, jobs=JobRegistry())

    assert await stranger.run_until_idle() == 1
    job = await load(runtime, job_id)
    assert job.status == DEAD
    assert job.last_error == f"no handler for job kind {RECORD!r}"
    assert executions == []


async def test_two_workers_never_run_the_same_job_twice(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        jobs = [enqueue(session, RECORD, {"n": n}) for n in range(50)]
    first = JobWorker(runtime, concurrency=4, name="worker-a")
    second = JobWorker(runtime, concurrency=4, name="worker-b")

    counts = await asyncio.gather(first.run_until_idle(), second.run_until_idle())

    assert sum(counts) == 50
    assert all(count > 0 for count in counts), f"one worker did all the work: {counts}"
    runs = Counter(ctx.id for ctx in ran(RECORD))
    assert set(runs) == {job.id for job in jobs}
    assert set(runs.values()) == {1}
    async with runtime.db.session(write=False) as session:
        statuses = (await session.scalars(select(Job.status))).all()
    assert Counter(statuses) == {DONE: 50}


async def test_concurrent_claims_never_hand_out_a_job_twice(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        for n in range(50):
            enqueue(session, RECORD, {"n": n})
    workers = [JobWorker(runtime, name=f"claimer-{n}") for n in range(10)]

    claims = await asyncio.gather(*(worker.claim(5) for worker in workers))

    claimed = Counter(job.id for jobs in claims for job in jobs)
    assert len(claimed) == 50
    assert set(claimed.values()) == {1}
    async with runtime.db.session(write=False) as session:
        owners = Counter((await session.scalars(select(Job.locked_by))).all())
    assert owners == {worker.name: len(jobs) for worker, jobs in zip(workers, claims, strict=True) if jobs}


async def test_job_of_a_dead_worker_is_taken_over_after_its_lease(runtime: Runtime) -> None:
    clock.freeze()
    job_id = await add_job(runtime, RECORD)
    crashed = JobWorker(runtime, name="crashed")
    survivor = JobWorker(runtime, name="survivor")
    [claimed] = await crashed.claim(1)  # ...and never runs it
    assert claimed.id == job_id
    job = await load(runtime, job_id)
    assert (job.status, job.locked_by) == (RUNNING, "crashed")

    assert await survivor.run_until_idle() == 0, "taken over while its lease was live"
    clock.advance(LEASE + timedelta(seconds=1))
    assert await survivor.run_until_idle() == 1

    [ctx] = ran(RECORD)
    assert ctx.attempt == 2
    job = await load(runtime, job_id)
    assert (job.status, job.locked_by) == (DONE, None)


async def test_job_whose_last_attempt_died_with_its_worker_is_dead(runtime: Runtime) -> None:
    clock.freeze()
    job_id = await add_job(runtime, RECORD, max_attempts=2)
    for name in ("crashed-1", "crashed-2"):
        assert len(await JobWorker(runtime, name=name).claim(1)) == 1
        clock.advance(LEASE + timedelta(seconds=1))

    assert await JobWorker(runtime, name="survivor").run_until_idle() == 1

    assert executions == []
    job = await load(runtime, job_id)
    assert (job.status, job.attempts) == (DEAD, 3)
    assert job.last_error == "the worker running its last attempt stopped before finishing"
    assert await JobWorker(runtime).run_until_idle() == 0


async def test_run_that_lost_its_lease_drops_its_writes(runtime: Runtime) -> None:
    clock.freeze()
    job_id = await add_job(runtime, LOSE_LEASE)

    assert await JobWorker(runtime, name="stalled").run_until_idle() == 1

    job = await load(runtime, job_id)
    assert (job.status, job.locked_by, job.attempts) == (RUNNING, "usurper", 2)
    async with runtime.db.session(write=False) as session:
        assert (await session.scalars(select(RateEvent.bucket))).all() == []

    clock.advance(LEASE + timedelta(seconds=1))  # the usurper died too
    assert await JobWorker(runtime, name="last").run_until_idle() == 1
    job = await load(runtime, job_id)
    assert (job.status, job.attempts) == (DONE, 3)
    async with runtime.db.session(write=False) as session:
        assert (await session.scalars(select(RateEvent.bucket))).all() == ["written-by-attempt-3"]


async def test_live_worker_extends_its_lease_so_nobody_takes_over(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    clock.freeze()
    job_id = await add_job(runtime, BLOCK)
    start(running_workers, JobWorker(runtime, poll_seconds=0.02, name="owner"))
    await eventually(lambda: len(ran(BLOCK)) == 1)
    first_lease = (await load(runtime, job_id)).locked_until
    assert first_lease == clock.now() + LEASE

    clock.advance(LEASE * 2 / 3)

    async def lease_extended() -> bool:
        return (await load(runtime, job_id)).locked_until == clock.now() + LEASE

    await eventually(lease_extended)
    clock.advance(LEASE * 2 / 3)  # past the first lease, within the extended one
    # The thief may run periodic jobs that came due as the clock moved; not this one.
    await JobWorker(runtime, name="thief").run_until_idle()
    assert (await load(runtime, job_id)).locked_by == "owner"

    release.set()

    async def done() -> bool:
        return (await load(runtime, job_id)).status == DONE

    await eventually(done)
    assert len(ran(BLOCK)) == 1


async def test_periodic_job_is_scheduled_once_per_slot_with_two_workers(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    clock.freeze(datetime(2030, 1, 1, 12, 1, tzinfo=UTC))
    for name in ("periodic-a", "periodic-b"):
        start(running_workers, JobWorker(runtime, poll_seconds=0.02, jobs=periodic_jobs, name=name))

    async def periodic_rows() -> list[Job]:
        async with runtime.db.session(write=False) as session:
            return list((await session.scalars(select(Job).where(Job.kind == PERIODIC))).all())

    await eventually(lambda: len(ran(PERIODIC)) >= 1)
    await asyncio.sleep(0.2)  # many more polling rounds of both workers in the same slot
    [row] = await periodic_rows()
    slot = int(clock.now().timestamp() // 600)
    assert row.idempotency_key == f"{PERIODIC}@{slot}"
    assert row.status == DONE

    clock.advance(timedelta(minutes=10))
    await eventually(lambda: len(ran(PERIODIC)) >= 2)
    await asyncio.sleep(0.2)
    assert sorted(row.idempotency_key or "" for row in await periodic_rows()) == [
        f"{PERIODIC}@{slot}",
        f"{PERIODIC}@{slot + 1}",
    ]
    assert len(ran(PERIODIC)) == 2


async def test_running_worker_picks_up_a_committed_job_promptly(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    # Polling alone would take 30 seconds; the commit wakes the worker.
    start(running_workers, JobWorker(runtime, poll_seconds=30))
    await asyncio.sleep(0.2)  # let it find nothing to do and go to sleep
    started = time.monotonic()

    await add_job(runtime, RECORD)

    await eventually(lambda: len(ran(RECORD)) == 1, timeout=3)
    assert time.monotonic() - started < 3


async def test_stop_ends_an_idle_worker_at_once(runtime: Runtime) -> None:
    worker = JobWorker(runtime, poll_seconds=30)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)

    worker.stop()

    await asyncio.wait_for(task, timeout=2)


async def test_stop_lets_running_jobs_finish(runtime: Runtime) -> None:
    job_id = await add_job(runtime, BLOCK)
    worker = JobWorker(runtime, poll_seconds=0.02)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: len(ran(BLOCK)) == 1)

    worker.stop()
    await asyncio.sleep(0.1)
    assert not task.done(), "stopped before its running job finished"
    release.set()

    await asyncio.wait_for(task, timeout=5)
    assert (await load(runtime, job_id)).status == DONE


# --- jobs started where they are enqueued (`enqueue(here=True)`) ---------------------------------


async def test_job_enqueued_here_starts_at_commit_without_a_poll_or_a_claim(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    worker = start(running_workers, JobWorker(runtime, poll_seconds=30))
    await asyncio.sleep(0.2)  # idle, asleep until a commit wakes it or 30 s pass
    claims = 0
    claim = worker.claim

    async def counted(limit: int) -> list[Job]:
        nonlocal claims
        claims += 1
        return await claim(limit)

    worker.claim = counted  # type: ignore[method-assign]

    job_id = await add_job(runtime, BLOCK, here=True)

    await eventually(lambda: len(ran(BLOCK)) == 1, timeout=3)
    assert claims == 0, "the job was claimed instead of started where it was enqueued"
    job = await load(runtime, job_id)
    assert (job.status, job.locked_by, job.attempts) == (RUNNING, worker.name, 1)
    release.set()
    await eventually(lambda: _status_is(runtime, job_id, DONE))
    assert ran(BLOCK)[0].attempt == 1


async def _status_is(runtime: Runtime, job_id: str, status: str) -> bool:
    return (await load(runtime, job_id)).status == status


async def test_job_enqueued_here_in_a_rolled_back_transaction_never_runs(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    start(running_workers, JobWorker(runtime, poll_seconds=30))
    await asyncio.sleep(0.1)

    async def failing_request() -> None:
        async with runtime.db.session() as session:
            enqueue(session, RECORD, {"n": 1}, here=True)
            await session.flush()
            raise RuntimeError("request failed")

    with pytest.raises(RuntimeError, match="request failed"):
        await failing_request()

    await asyncio.sleep(0.2)
    assert executions == []
    async with runtime.db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == RECORD)) == 0


async def test_job_enqueued_here_is_taken_over_after_its_lease_when_its_process_died(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    clock.freeze()
    dying = start(running_workers, JobWorker(runtime, poll_seconds=30, name="dying"))
    await asyncio.sleep(0.1)
    dying.adopt = lambda job: None  # type: ignore[method-assign]  # committed, then the process died

    job_id = await add_job(runtime, RECORD, here=True)
    job = await load(runtime, job_id)
    assert (job.status, job.locked_by) == (RUNNING, "dying")

    # (The running worker's periodic jobs may be due too: only this job is looked at.)
    survivor = JobWorker(runtime, name="survivor")
    await survivor.run_until_idle()
    assert ran(RECORD) == [], "taken over while its lease was live"
    clock.advance(LEASE + timedelta(seconds=1))
    await survivor.run_until_idle()
    [ctx] = ran(RECORD)
    assert ctx.attempt == 2
    assert (await load(runtime, job_id)).status == DONE


async def test_job_enqueued_here_without_a_worker_with_room_is_queued(
    runtime: Runtime, worker: JobWorker, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    # No worker runs in this process: queued like any other, for whichever worker claims it.
    job_id = await add_job(runtime, RECORD, here=True)
    assert (await load(runtime, job_id)).status == PENDING
    assert await worker.run_until_idle() == 1

    # A worker that is full leaves it to the table too.
    busy = start(running_workers, JobWorker(runtime, concurrency=1, poll_seconds=30))
    await asyncio.sleep(0.1)
    for _ in range(4):
        await add_job(runtime, BLOCK, here=True)
    await eventually(lambda: len(ran(BLOCK)) == 4)
    overflow = await add_job(runtime, RECORD, here=True)
    job = await load(runtime, overflow)
    assert (job.status, job.locked_by) == (PENDING, None)
    assert busy.name != worker.name


async def test_worker_past_its_concurrency_with_jobs_started_here_waits_instead_of_spinning(
    runtime: Runtime, running_workers: list[tuple[JobWorker, asyncio.Task[None]]]
) -> None:
    worker = start(running_workers, JobWorker(runtime, concurrency=1, poll_seconds=30))
    await asyncio.sleep(0.1)
    await add_job(runtime, BLOCK, here=True)
    await add_job(runtime, BLOCK, here=True)
    await eventually(lambda: len(ran(BLOCK)) == 2)

    worker.wake()  # a loop that never awaited here would starve everything else
    started = time.monotonic()
    await asyncio.sleep(0.05)
    assert time.monotonic() - started < 1
    job_id = await add_job(runtime, RECORD, here=True)  # and jobs started here still run
    await eventually(lambda: _status_is(runtime, job_id, DONE))
