"""UTC datetimes and the unit of work, on the real test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, StatementError

from conduit.kit import errors
from conduit.kit.db import SessionDep, UTCDateTime
from conduit.kit.errors import Conflict, TooManyRequests
from conduit.kit.jobs import Job
from conduit.kit.ratelimit import RateEvent
from conduit.kit.runtime import Runtime

INDIA = timezone(timedelta(hours=5, minutes=30))


async def buckets(runtime: Runtime) -> list[str]:
    async with runtime.db.session(write=False) as session:
        return sorted((await session.scalars(select(RateEvent.bucket))).all())


class KeepMe(Exception):
    keep_changes = True


async def test_aware_datetimes_round_trip_as_utc(runtime: Runtime) -> None:
    moment = datetime(2030, 3, 4, 10, 11, 12, 345678, tzinfo=INDIA)
    async with runtime.db.session() as session:
        session.add(RateEvent(bucket="tz", created_at=moment))

    async with runtime.db.session(write=False) as session:
        stored = await session.scalar(select(RateEvent.created_at).where(RateEvent.bucket == "tz"))

    assert stored == moment
    assert stored is not None
    assert stored.utcoffset() == timedelta(0)
    assert stored == datetime(2030, 3, 4, 4, 41, 12, 345678, tzinfo=UTC)


async def test_comparisons_use_the_instant_whatever_the_zone(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        session.add(RateEvent(bucket="tz", created_at=datetime(2030, 1, 1, 12, 0, tzinfo=UTC)))

    async with runtime.db.session(write=False) as session:
        # 17:29 in India is 11:59 UTC: before the event; 17:31 is after it.
        later = await session.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.created_at > datetime(2030, 1, 1, 17, 29, tzinfo=INDIA))
        )
        earlier = await session.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.created_at > datetime(2030, 1, 1, 17, 31, tzinfo=INDIA))
        )
    assert (later, earlier) == (1, 0)


async def test_naive_datetimes_are_refused(runtime: Runtime) -> None:
    async with runtime.db.session(write=False) as session:
        session.add(RateEvent(bucket="naive", created_at=datetime(2030, 1, 1, 12, 0)))
        with pytest.raises(StatementError, match="naive datetime"):
            await session.flush()
        await session.rollback()
    assert await buckets(runtime) == []


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_utc_datetime_type_on_each_dialect(dialect: Dialect) -> None:
    column = UTCDateTime()
    moment = datetime(2030, 1, 1, 17, 30, tzinfo=INDIA)

    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2030, 1, 1), dialect)
    bound = column.process_bind_param(moment, dialect)
    assert bound is not None
    assert bound.replace(tzinfo=bound.tzinfo or UTC) == moment
    assert column.process_result_value(datetime(2030, 1, 1, 12, 0), dialect) == datetime(
        2030, 1, 1, 12, 0, tzinfo=UTC
    )
    assert column.process_bind_param(None, dialect) is None


async def test_session_commits_when_the_block_succeeds(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        session.add(RateEvent(bucket="committed"))

    assert await buckets(runtime) == ["committed"]


async def test_session_rolls_back_when_the_block_raises(runtime: Runtime) -> None:
    async def failing() -> None:
        async with runtime.db.session() as session:
            session.add(RateEvent(bucket="rolled-back"))
            await session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing()
    assert await buckets(runtime) == []


@pytest.mark.parametrize(
    "error",
    [KeepMe("counted"), TooManyRequests("locked", retry_after=60, keep_changes=True)],
    ids=["any-exception", "conduit-error"],
)
async def test_session_commits_when_the_error_keeps_its_changes(runtime: Runtime, error: Exception) -> None:
    async def failing() -> None:
        async with runtime.db.session() as session:
            session.add(RateEvent(bucket="kept"))
            raise error

    with pytest.raises(type(error)):
        await failing()
    assert await buckets(runtime) == ["kept"]


async def test_conduit_errors_roll_back_by_default(runtime: Runtime) -> None:
    async def failing() -> None:
        async with runtime.db.session() as session:
            session.add(RateEvent(bucket="dropped"))
            raise Conflict("taken")

    with pytest.raises(Conflict):
        await failing()
    assert await buckets(runtime) == []


async def test_concurrent_read_then_write_units_of_work_all_succeed(runtime: Runtime) -> None:
    # On SQLite a deferred transaction that reads, waits, then writes fails with "database is
    # locked" once another writer committed in between; writers begin IMMEDIATE and queue instead.
    async def read_then_write(n: int) -> None:
        async with runtime.db.session() as session:
            await session.scalar(select(func.count()).select_from(RateEvent))
            await asyncio.sleep(0.01)
            session.add(RateEvent(bucket=f"writer-{n:02d}"))

    await asyncio.gather(*(read_then_write(n) for n in range(10)))

    assert await buckets(runtime) == [f"writer-{n:02d}" for n in range(10)]


async def test_database_errors_do_not_carry_bound_values(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        session.add(Job(kind="test.db", payload={}, idempotency_key="same"))

    async def duplicate() -> None:
        async with runtime.db.session() as session:
            session.add(Job(kind="test.db", payload={"token": "cnd_live_TOPSECRET"}, idempotency_key="same"))

    with pytest.raises(IntegrityError) as duplicated:
        await duplicate()
    assert "TOPSECRET" not in str(duplicated.value)


def build_app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.state.db = runtime.db
    errors.install(app)

    @app.post("/events/{bucket}", status_code=201)
    async def add(bucket: str, session: SessionDep) -> dict[str, str]:
        session.add(RateEvent(bucket=bucket))
        return {"bucket": bucket}

    @app.post("/events/{bucket}/conflict")
    async def add_then_conflict(bucket: str, session: SessionDep) -> None:
        session.add(RateEvent(bucket=bucket))
        await session.flush()
        raise Conflict("taken")

    @app.post("/events/{bucket}/locked")
    async def add_then_locked(bucket: str, session: SessionDep) -> None:
        session.add(RateEvent(bucket=bucket))
        raise TooManyRequests("Too many attempts", retry_after=30, keep_changes=True)

    @app.get("/events")
    async def count(session: SessionDep) -> dict[str, int]:
        return {"count": await session.scalar(select(func.count()).select_from(RateEvent)) or 0}

    return app


@pytest.fixture
async def app_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_request_is_committed_before_its_response(
    runtime: Runtime, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.post("/events/request-ok")

    assert response.status_code == 201
    assert await buckets(runtime) == ["request-ok"]
    assert (await app_client.get("/events")).json() == {"count": 1}


async def test_request_that_fails_is_rolled_back(runtime: Runtime, app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/events/request-failed/conflict")

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert await buckets(runtime) == []


async def test_request_error_that_keeps_changes_commits(
    runtime: Runtime, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.post("/events/request-locked/locked")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert await buckets(runtime) == ["request-locked"]
