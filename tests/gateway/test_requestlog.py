"""The request log: entries are buffered without waiting, written in multi-row batches, kept for
the next flush when the database fails, and dropped (and counted) only when the buffer is full."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from structlog.testing import capture_logs

from conduit.gateway.requestlog import LogEntry, RequestLogWriter
from conduit.kit.runtime import Runtime
from conduit.servers.models import RequestLog

WHEN = datetime(2031, 5, 6, 12, 0, tzinfo=UTC)


def entry(number: int = 0, **changes: Any) -> LogEntry:
    values: dict[str, Any] = {
        "org_id": "org_logs",
        "server_id": "srv_time",
        "key_id": "key_agent",
        "session_id": "session-1",
        "method": "tools/call",
        "tool": f"tool_{number}",
        "status": "ok",
        "error_code": None,
        "duration_ms": 1.5,
        "request_bytes": 100 + number,
        "response_bytes": 200 + number,
        "created_at": WHEN + timedelta(milliseconds=number),
    }
    values.update(changes)
    return LogEntry(**values)


async def stored(runtime: Runtime) -> list[RequestLog]:
    async with runtime.db.session(write=False) as session:
        return list((await session.scalars(select(RequestLog).order_by(RequestLog.id))).all())


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextmanager
def inserts(runtime: Runtime) -> Iterator[list[int]]:
    """The number of rows of each INSERT INTO request_logs sent inside the block."""
    rows: list[int] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO request_logs"):
            rows.append(len(parameters) if many else 1)

    # Every engine: the database may read and write through different ones (SQLite).
    event.listen(Engine, "before_cursor_execute", on_execute)
    try:
        yield rows
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)


@pytest.fixture
async def writers(runtime: Runtime) -> AsyncIterator[Callable[..., RequestLogWriter]]:
    made: list[RequestLogWriter] = []

    def make(**options: Any) -> RequestLogWriter:
        writer = RequestLogWriter(runtime.db, **options)
        made.append(writer)
        return writer

    yield make
    for writer in made:
        await writer.aclose()


async def test_entries_are_written_in_batches(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers(max_batch=3)
    for number in range(7):
        writer.record(entry(number))
    assert await stored(runtime) == []
    assert writer.pending == 7
    with inserts(runtime) as batches:
        await writer.flush()
    assert batches == [3, 3, 1]
    rows = await stored(runtime)
    assert [row.tool for row in rows] == [f"tool_{n}" for n in range(7)]
    first = rows[0]
    assert (first.org_id, first.server_id, first.key_id, first.session_id) == (
        "org_logs",
        "srv_time",
        "key_agent",
        "session-1",
    )
    assert (first.method, first.status, first.error_code, first.duration_ms) == (
        "tools/call",
        "ok",
        None,
        1.5,
    )
    assert (first.request_bytes, first.response_bytes, first.created_at) == (100, 200, WHEN)
    assert (writer.pending, writer.written) == (0, 7)


async def test_the_background_task_flushes_and_close_writes_the_rest(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    ticking = writers(flush_seconds=0.05)
    await ticking.start()
    ticking.record(entry(1))
    ticking.record(entry(2, status="error", error_code=-32601, method="nope/unknown", tool=None))
    await eventually(lambda: rows_written(runtime, 2))

    idle = writers(flush_seconds=3600)
    await idle.start()
    for number in range(3, 6):
        idle.record(entry(number))
    await asyncio.sleep(0.1)
    assert len(await stored(runtime)) == 2
    await idle.aclose()
    rows = await stored(runtime)
    assert len(rows) == 5
    assert [(r.status, r.error_code, r.tool) for r in rows if r.status == "error"] == [
        ("error", -32601, None)
    ]


async def rows_written(runtime: Runtime, count: int) -> bool:
    return len(await stored(runtime)) == count


async def test_a_full_batch_is_written_without_waiting_for_the_tick(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers(flush_seconds=3600, max_batch=5)
    await writer.start()
    for number in range(4):
        writer.record(entry(number))
    await asyncio.sleep(0.1)
    assert await stored(runtime) == []
    writer.record(entry(4))
    await eventually(lambda: rows_written(runtime, 5))


async def test_a_full_buffer_drops_new_entries_and_counts_them(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers(max_buffer=5)
    for number in range(8):
        writer.record(entry(number))
    assert writer.dropped == 3
    with capture_logs() as logs:
        await writer.flush()
        await writer.flush()
    assert [(e["event"], e["dropped"], e["total"]) for e in logs if e["log_level"] == "warning"] == [
        ("request_log_dropped", 3, 3)
    ]
    assert [row.tool for row in await stored(runtime)] == [f"tool_{n}" for n in range(5)]
    writer.record(entry(9))  # room again
    assert writer.dropped == 3


@asynccontextmanager
async def table_missing(runtime: Runtime) -> AsyncIterator[None]:
    """The request_logs table is away: every write to it fails, as when the database is down."""
    away = f"request_logs_away_{uuid.uuid4().hex[:8]}"
    async with runtime.db.session() as session:
        await session.execute(text(f"ALTER TABLE request_logs RENAME TO {away}"))
    try:
        yield
    finally:
        async with runtime.db.session() as session:
            await session.execute(text(f"ALTER TABLE {away} RENAME TO request_logs"))


async def test_a_failed_flush_keeps_the_batch_for_the_next_one(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers(max_batch=2, max_buffer=4)
    for number in range(3):
        writer.record(entry(number))
    async with table_missing(runtime):
        with capture_logs() as logs:
            await writer.flush()
        assert [e["event"] for e in logs] == ["request_log_flush_failed"]
        assert "INSERT" not in logs[0]["error"]  # the driver's message, not the whole statement
        assert writer.pending == 3
        writer.record(entry(3))
        writer.record(entry(4))  # the retried entries still count against the buffer
        assert (writer.pending, writer.dropped) == (4, 1)
    await writer.flush()
    assert [row.tool for row in await stored(runtime)] == [f"tool_{n}" for n in range(4)]
    assert (writer.pending, writer.written) == (0, 4)


async def test_a_background_writer_survives_a_database_outage(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers(flush_seconds=0.02, max_batch=2)
    await writer.start()
    async with table_missing(runtime):
        for number in range(5):
            writer.record(entry(number))
        await asyncio.sleep(0.2)
        assert writer.pending == 5
    await eventually(lambda: rows_written(runtime, 5))
    assert [row.tool for row in await stored(runtime)] == [f"tool_{n}" for n in range(5)]


async def test_client_supplied_text_is_made_storable(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers()
    naive = datetime(2031, 5, 6, 12, 0)  # a caller's mistake: stored as UTC
    writer.record(entry(method="tools/\x00call" + "m" * 300, tool="t\x00" + "x" * 400, created_at=naive))
    await writer.flush()
    [row] = await stored(runtime)
    assert row.method == ("tools/call" + "m" * 300)[:128]
    assert row.tool == "t" + "x" * 255
    assert row.created_at == WHEN


async def test_a_batch_the_database_refuses_is_counted_and_the_rest_written(
    runtime: Runtime, writers: Callable[..., RequestLogWriter]
) -> None:
    writer = writers(max_batch=2)
    writer.record(entry(0))
    writer.record(entry(1))
    writer.record(entry(2, status=None))  # NOT NULL: no retry can make this batch valid
    writer.record(entry(3))
    writer.record(entry(4))
    with capture_logs() as logs:
        await writer.flush()
    assert [e["event"] for e in logs] == ["request_log_batch_rejected"]
    assert [row.tool for row in await stored(runtime)] == ["tool_0", "tool_1", "tool_4"]
    assert (writer.written, writer.rejected, writer.pending) == (3, 2, 0)


async def test_batches_and_buffer_hold_at_least_one_entry(runtime: Runtime) -> None:
    for options in ({"max_batch": 0}, {"max_buffer": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            RequestLogWriter(runtime.db, **options)
