"""Database engine, portable column types and the unit of work.

One transaction per request: `SessionDep` opens it, commits it after the route returns and
before the response is sent, and rolls it back on any error. Services never commit. The same
code runs on SQLite (embedded default) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How long a SQLite writer waits for its turn, as the file lock's busy timeout does.
SQLITE_WRITE_WAIT_SECONDS = 15.0


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSON(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below) so writes can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY
        # when another writer got in between; writers therefore start IMMEDIATE and queue.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        # hide_parameters: a database error's text ends up in logs and in jobs.last_error; the
        # bound values (hashes, sealed secrets, emails) must not.
        if self.is_sqlite:
            # Pooled: each aiosqlite connection owns a thread, too costly to open per request.
            self.engine = create_async_engine(
                url, echo=echo, pool_size=5, max_overflow=10, hide_parameters=True
            )
            _configure_sqlite(self.engine)
            # SQLite has one writer at a time. Writers of this process queue for the one write
            # connection (an asyncio wait, served in order) instead of colliding on the file lock,
            # whose busy handler sleeps for up to 100 ms between tries: under load that sleeping,
            # not the writing, would bound throughput. A unit of work takes the connection, and
            # BEGIN IMMEDIATE, only at its first statement: a job handler talking to the network
            # before it uses the database holds nothing. Other processes still meet the file lock.
            self._write_engine = create_async_engine(
                url,
                echo=echo,
                pool_size=1,
                max_overflow=0,
                pool_timeout=SQLITE_WRITE_WAIT_SECONDS,
                hide_parameters=True,
                execution_options={"sqlite_immediate": True},
            )
            _configure_sqlite(self._write_engine)
        else:
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                hide_parameters=True,
            )
            self._write_engine = self.engine
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @asynccontextmanager
    async def session(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block succeeds, rolls back when it raises."""
        async with self.sessionmaker(bind=self._write_engine if write else self.engine) as session:
            try:
                yield session
            except BaseException as exc:
                if getattr(exc, "keep_changes", False):
                    await session.commit()
                else:
                    await session.rollback()
                raise
            await session.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._write_engine is not self.engine:
            await self._write_engine.dispose()


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).session(write=request.method not in SAFE_METHODS) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a failed commit is an
# error response, never a success the database does not hold.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
