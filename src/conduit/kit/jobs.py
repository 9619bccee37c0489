"""The jobs table (transactional outbox) and the workers that run it.

Work that must happen after a request is a `Job` row added in the request's own transaction:
if the request rolls back, the job never existed; once it commits, the job is never lost.
Workers claim due jobs atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a single
`UPDATE … RETURNING` under SQLite's write lock), run them, retry failures with backoff and
jitter, and mark a job dead after its last attempt, where `conduit jobs` shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Index, String, Text, or_, select, update
from sqlalchemy import event as orm_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base
from conduit.kit.ids import new_id
from conduit.kit.runtime import Runtime

log = structlog.get_logger("conduit.jobs")

PENDING, RUNNING, DONE, DEAD = "pending", "running", "done", "dead"
STATUSES = (PENDING, RUNNING, DONE, DEAD)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_at", "status", "run_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("job"))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class RetryLater(Exception):
    """Raised by a handler to be retried after `delay` seconds (e.g. a `Retry-After`)."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


class _LeaseLost(Exception):
    """The job was taken over by another worker while this one was running it."""


@dataclass
class JobContext:
    """What a handler gets. `session` commits together with marking the job done.

    On SQLite the session's first statement takes the database write lock until the job ends:
    do network I/O before touching it, not in between.
    """

    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    session: AsyncSession
    runtime: Runtime


Handler = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int
    schedule: Sequence[float]  # delay before retry N (seconds); the last repeats
    timeout_seconds: float


@dataclass(frozen=True)
class Periodic:
    kind: str
    every: timedelta


DEFAULT_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200)
# A claimed job belongs to its worker until this long after the worker's last heartbeat.
LEASE = timedelta(seconds=30)
# Jobs started here (`enqueue(here=True)`) may run beside the claimed ones up to this many times
# the worker's concurrency: one per SMTP session, say, not a queue's worth.
ADOPT_FACTOR = 4


@dataclass
class JobRegistry:
    kinds: dict[str, JobKind] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)

    def handler(
        self,
        name: str,
        *,
        max_attempts: int = 8,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        timeout_seconds: float = 300,
        every: timedelta | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.kinds[name] = JobKind(name, fn, max_attempts, tuple(schedule), timeout_seconds)
            if every is not None:
                self.periodic.append(Periodic(name, every))
            return fn

        return register


registry = JobRegistry()


def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    delay: timedelta | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    jobs: JobRegistry = registry,
    here: bool = False,
) -> Job:
    """Add a job to the caller's transaction; it runs only if that transaction commits.

    `here`: a job due now is started by a worker of this process as soon as the transaction
    commits, with no poll and no claim. It is written already claimed by that worker, so if
    the process dies first, another worker takes it over when the lease runs out. Without a
    worker here that has room, it is queued like any other.
    """
    spec = jobs.kinds.get(kind)
    if spec is None:
        raise KeyError(f"no job handler registered for {kind!r}")
    now = utcnow()
    when = run_at or now
    if delay is not None:
        when += delay
    job = Job(
        id=new_id("job"),
        kind=kind,
        payload=payload or {},
        run_at=when,
        max_attempts=max_attempts or spec.max_attempts,
        idempotency_key=idempotency_key,
    )
    worker = _worker_with_room(jobs) if here and when <= now else None
    if worker is not None:
        job.status, job.attempts = RUNNING, 1
        job.locked_by, job.locked_until = worker.name, now + LEASE
        session.info.setdefault("jobs_adopted", []).append((worker, job))
    else:
        session.info["jobs_enqueued"] = True
    session.add(job)
    return job


def retry_delay(schedule: Sequence[float], attempt: int) -> float:
    """Delay before the retry that follows `attempt` (1-based), with ±20% jitter."""
    base = schedule[min(attempt - 1, len(schedule) - 1)] if schedule else 0
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


_workers: set[JobWorker] = set()
"""The running workers of this process."""


def _worker_with_room(jobs: JobRegistry) -> JobWorker | None:
    for worker in _workers:
        if worker.jobs is jobs and worker.has_room():
            return worker
    return None


@orm_event.listens_for(Session, "after_commit")
def _wake_workers(session: Session) -> None:
    if session.info.pop("jobs_enqueued", False):
        for worker in _workers:
            worker.wake()
    for worker, job in session.info.pop("jobs_adopted", ()):
        worker.adopt(job)


@orm_event.listens_for(Session, "after_rollback")
def _forget_enqueued(session: Session) -> None:
    session.info.pop("jobs_enqueued", None)
    session.info.pop("jobs_adopted", None)


class JobWorker:
    """Claims due jobs and runs up to `concurrency` of them at once."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        jobs: JobRegistry = registry,
        name: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.jobs = jobs
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{new_id('wrk')[-6:]}"
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._last_scheduled: dict[str, int] = {}
        self._last_heartbeat = utcnow()

    async def run(self) -> None:
        _workers.add(self)
        log.info("worker_started", worker=self.name, concurrency=self.concurrency)
        try:
            while not self._stopping.is_set():
                # Cleared before looking, so a job committed while we look still wakes us.
                self._wakeup.clear()
                await self._schedule_periodic()
                await self._heartbeat()
                free = self.concurrency - len(self._running)
                claimed = await self._claim_safely(free) if free > 0 else []
                for job in claimed:
                    task = asyncio.create_task(self._run_one(job))
                    self._running.add(task)
                    task.add_done_callback(self._done)
                if len(claimed) < free or free <= 0:  # below 0 with jobs started here
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), min(self.poll_seconds, LEASE.seconds / 3))
        finally:
            _workers.discard(self)
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            log.info("worker_stopped", worker=self.name)

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    def has_room(self) -> bool:
        """Room for a job started here (`enqueue(here=True)`): running, and not far past its
        concurrency, so a burst queues in the table instead of piling up in memory."""
        return not self._stopping.is_set() and len(self._running) < self.concurrency * ADOPT_FACTOR

    def adopt(self, job: Job) -> None:
        """Run `job`, committed as claimed by this worker, now."""
        task = asyncio.create_task(self._run_one(job))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wakeup.set()

    async def run_until_idle(self, max_rounds: int = 100) -> int:
        """Run due jobs until none is left (tests and `conduit jobs run`). Returns how many ran."""
        ran = 0
        for _ in range(max_rounds):
            claimed = await self.claim(self.concurrency)
            if not claimed:
                break
            await asyncio.gather(*(self._run_one(job) for job in claimed))
            ran += len(claimed)
        return ran

    async def _claim_safely(self, limit: int) -> list[Job]:
        try:
            return await self.claim(limit)
        except Exception as exc:
            log.warning("claim_failed", worker=self.name, error=str(exc))
            return []

    async def claim(self, limit: int) -> list[Job]:
        now = utcnow()
        due = (
            select(Job.id)
            .where(
                Job.run_at <= now,
                or_(Job.status == PENDING, (Job.status == RUNNING) & (Job.locked_until < now)),
            )
            .order_by(Job.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.runtime.db.session() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id.in_(due.scalar_subquery()))
                .values(
                    status=RUNNING,
                    locked_by=self.name,
                    locked_until=now + LEASE,
                    attempts=Job.attempts + 1,
                    updated_at=now,
                )
                .returning(Job)
                .execution_options(synchronize_session=False)
            )
            return list(result.scalars().all())

    async def _heartbeat(self) -> None:
        """Extend the lease of running jobs, so a crashed worker's jobs are taken over quickly."""
        now = utcnow()
        if not self._running or now - self._last_heartbeat < LEASE / 3:
            return
        self._last_heartbeat = now
        try:
            async with self.runtime.db.session() as session:
                await session.execute(
                    update(Job)
                    .where(Job.locked_by == self.name, Job.status == RUNNING)
                    .values(locked_until=now + LEASE)
                )
        except Exception as exc:
            log.warning("heartbeat_failed", worker=self.name, error=str(exc))

    async def _run_one(self, job: Job) -> None:
        spec = self.jobs.kinds.get(job.kind)
        if spec is None:
            await self._fail(job, None, f"no handler for job kind {job.kind!r}", final=True)
            return
        if job.attempts > job.max_attempts:
            # Taken over after its last attempt died with its worker: a job that crashes every
            # worker running it would otherwise be retried forever.
            reason = "the worker running its last attempt stopped before finishing"
            await self._fail(job, spec, reason, final=True)
            return
        bound = log.bind(job_id=job.id, kind=job.kind, attempt=job.attempts)
        try:
            async with self.runtime.db.session() as session:
                ctx = JobContext(job.id, job.kind, dict(job.payload), job.attempts, session, self.runtime)
                async with asyncio.timeout(spec.timeout_seconds):
                    await spec.handler(ctx)
                marked = await session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.locked_by == self.name, Job.status == RUNNING)
                    .values(
                        status=DONE, finished_at=utcnow(), locked_by=None, locked_until=None, last_error=None
                    )
                )
                if not getattr(marked, "rowcount", 0):
                    # Our lease ran out and another worker took the job over: it runs the job
                    # again, so this run's writes are rolled back rather than applied twice.
                    raise _LeaseLost
            bound.debug("job_done")
        except _LeaseLost:
            bound.warning("job_lease_lost", worker=self.name)
        except RetryLater as exc:
            await self._fail(job, spec, str(exc), delay=exc.delay)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            bound.warning("job_failed", error=reason)
            await self._fail(job, spec, reason)

    async def _fail(
        self, job: Job, spec: JobKind | None, reason: str, *, delay: float | None = None, final: bool = False
    ) -> None:
        now = utcnow()
        dead = final or job.attempts >= job.max_attempts
        if dead:
            values: dict[str, Any] = {"status": DEAD, "finished_at": now}
            log.error("job_dead", job_id=job.id, kind=job.kind, attempts=job.attempts, error=reason)
        else:
            wait = delay if delay is not None else retry_delay(spec.schedule if spec else (), job.attempts)
            values = {"status": PENDING, "run_at": now + timedelta(seconds=wait)}
        async with self.runtime.db.session() as session:
            # Guarded like the success path: a job whose lease ran out may be another worker's now.
            await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.name)
                .values(last_error=reason, locked_by=None, locked_until=None, updated_at=now, **values)
            )

    async def _schedule_periodic(self) -> None:
        now = utcnow()
        for periodic in self.jobs.periodic:
            slot = int(now.timestamp() // periodic.every.total_seconds())
            if self._last_scheduled.get(periodic.kind) == slot:
                continue
            try:
                async with self.runtime.db.session() as session:
                    key = f"{periodic.kind}@{slot}"
                    exists = await session.scalar(select(Job.id).where(Job.idempotency_key == key))
                    if exists is None:
                        enqueue(session, periodic.kind, {}, idempotency_key=key, jobs=self.jobs)
            except IntegrityError:
                pass  # another worker scheduled this slot first
            except Exception as exc:
                log.warning("schedule_failed", kind=periodic.kind, error=str(exc))
                continue
            self._last_scheduled[periodic.kind] = slot


async def purge_finished(session: AsyncSession, older_than: timedelta) -> int:
    """Delete done jobs older than `older_than`; dead jobs stay until someone looks."""
    from sqlalchemy import delete

    result = await session.execute(
        delete(Job).where(Job.status == DONE, Job.finished_at < utcnow() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@registry.handler("jobs.purge", every=timedelta(hours=6), max_attempts=3)
async def _purge_done_jobs(ctx: JobContext) -> None:
    await purge_finished(ctx.session, timedelta(days=7))
