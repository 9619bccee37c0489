"""The request log of relayed MCP messages (and the stderr lines of stdio servers), written off
the hot path.

`record()` appends to an in-memory buffer; a background task writes the buffer in batches, one
INSERT executed for all rows of a batch (executemany) and one transaction per batch. A batch
that fails is retried at the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy import String, insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from conduit.kit.db import Base, Database
from conduit.servers.models import RequestLog

log = structlog.get_logger("conduit.gateway.requestlog")

ENTRIES = Counter(
    "conduit_gateway_request_log_entries_total",
    "Request-log entries by what became of them: written, dropped (buffer full), rejected (bad data)",
    ["outcome"],
)
_WRITTEN, _DROPPED, _REJECTED = (ENTRIES.labels(outcome) for outcome in ("written", "dropped", "rejected"))


@dataclass(slots=True)
class LogEntry:
    """One relayed JSON-RPC message; mirrors `servers.models.RequestLog`."""

    org_id: str
    server_id: str | None
    key_id: str | None
    session_id: str | None
    method: str
    tool: str | None
    status: str  # "ok" | "error"
    error_code: int | None
    duration_ms: float
    request_bytes: int
    response_bytes: int
    created_at: datetime


@dataclass(slots=True)
class StderrLine:
    """One line a stdio server wrote to stderr; mirrors `servers.models.ServerLog`."""

    server_id: str
    session_id: str | None
    line: str
    created_at: datetime
    stream: str = "stderr"


def _text(value: str | None, limit: int | None) -> str | None:
    # Method and tool names come from clients: PostgreSQL text cannot hold NUL, and a value
    # longer than its column would fail the whole batch.
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit] if limit else value


class _Rows:
    """Turns entries of one dataclass into rows of `table`; the field and column lists are
    read once, not per entry (this runs for every relayed message)."""

    def __init__(self, table: Any) -> None:
        self._limits = {c.name: c.type.length for c in table.columns if isinstance(c.type, String)}
        self._kind: type | None = None
        self._names: tuple[str, ...] = ()
        self._texts: tuple[tuple[str, int | None], ...] = ()

    def __call__(self, entry: Any) -> dict[str, Any]:
        if type(entry) is not self._kind:
            self._kind = type(entry)
            self._names = tuple(field.name for field in fields(entry))
            self._texts = tuple((n, self._limits[n]) for n in self._names if n in self._limits)
        row = {name: getattr(entry, name) for name in self._names}
        for name, limit in self._texts:
            row[name] = _text(row[name], limit)
        if entry.created_at.tzinfo is None:
            row["created_at"] = entry.created_at.replace(tzinfo=UTC)
        return row


def _describe(exc: BaseException) -> str:
    # The driver's message: SQLAlchemy's would add the statement and a sample of the rows.
    return str(getattr(exc, "orig", None) or exc)[:500]


def _bad_data(exc: BaseException) -> bool:
    """True when retrying cannot help: the batch itself is what the database refused."""
    if isinstance(exc, DataError | IntegrityError | TypeError | ValueError | AttributeError):
        return True  # the last three: an entry `_Rows` could not turn into a row
    # Raised while binding parameters, before anything reached the database.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


class RequestLogWriter:
    """Buffers log entries (`LogEntry` for `RequestLog`, or rows of another `model`, such as
    `StderrLine` for `ServerLog`) and writes them in batches.

    The buffer holds at most `max_buffer` entries (including a batch being written); beyond
    that new entries are dropped and counted in `dropped`, with a warning at the next flush.
    A batch the database refuses as invalid is counted in `rejected` and not retried.
    """

    def __init__(
        self,
        db: Database,
        *,
        model: type[Base] = RequestLog,
        flush_seconds: float = 1.0,
        max_batch: int = 500,
        max_buffer: int = 100_000,
    ) -> None:
        if max_batch < 1 or max_buffer < 1:
            raise ValueError("max_batch and max_buffer must be at least 1")
        self._db = db
        table: Any = model.__table__
        self._rows = _Rows(table)
        # executemany rather than one INSERT … VALUES (…), (…): compiling a 500-row VALUES clause
        # costs SQLAlchemy ~130 ms a batch, against ~15 ms for the whole executemany. A Core
        # insert, not the ORM's bulk path: 16 µs a row against 28 (bench/gateway.py's load).
        self._insert = insert(table)
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._max_buffer = max_buffer
        self._buffer: deque[Any] = deque()
        self._in_flight = 0
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unreported_drops = 0
        self.dropped = 0
        self.rejected = 0
        self.written = 0

    def record(self, entry: Any) -> None:
        """Queue one entry; never waits, never raises."""
        pending = len(self._buffer)
        if pending + self._in_flight >= self._max_buffer:
            self.dropped += 1
            self._unreported_drops += 1
            _DROPPED.inc()
            return
        self._buffer.append(entry)
        if pending + 1 == self._max_batch:
            self._wake.set()  # a full batch is waiting: write it now rather than at the next tick

    @property
    def pending(self) -> int:
        """Entries recorded and not yet written."""
        return len(self._buffer) + self._in_flight

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="request-log-writer")

    async def flush(self) -> None:
        """Write what is buffered now."""
        await self._flush()

    async def aclose(self) -> None:
        """Stop the background task and write everything still buffered."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        while self._buffer and await self._flush():
            pass
        if self._buffer:
            log.error("request_log_lost", entries=len(self._buffer))

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await _wait(self._wake, self._flush_seconds)
            self._wake.clear()
            if not await self._flush():
                # The database is failing: wait a full period even if batches keep filling up.
                await _wait(self._stopping, self._flush_seconds)

    async def _flush(self) -> bool:
        """Write the entries buffered when called, batch by batch. False if a batch failed."""
        async with self._flush_lock:
            if self._unreported_drops:
                log.warning("request_log_dropped", dropped=self._unreported_drops, total=self.dropped)
                self._unreported_drops = 0
            due = len(self._buffer)
            while due > 0:
                batch = [self._buffer.popleft() for _ in range(min(due, self._max_batch))]
                due -= len(batch)
                if not await self._write(batch):
                    return False
            return True

    async def _write(self, batch: list[Any]) -> bool:
        self._in_flight = len(batch)
        try:
            async with self._db.session() as session:
                rows = [self._rows(entry) for entry in batch]
                await (await session.connection()).execute(self._insert, rows)
        except asyncio.CancelledError:
            self._buffer.extendleft(reversed(batch))
            raise
        except Exception as exc:
            if _bad_data(exc):
                log.error("request_log_batch_rejected", entries=len(batch), error=_describe(exc))
                self.rejected += len(batch)
                _REJECTED.inc(len(batch))
                return True
            log.warning("request_log_flush_failed", entries=len(batch), error=_describe(exc))
            self._buffer.extendleft(reversed(batch))
            return False
        finally:
            self._in_flight = 0
        self.written += len(batch)
        _WRITTEN.inc(len(batch))
        return True


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
