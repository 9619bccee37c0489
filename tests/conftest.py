"""Fixtures shared by the whole suite.

The database is real: SQLite by default, PostgreSQL when `CONDUIT_TEST_DATABASE_URL` is set
(`make test` runs the suite once on each). The schema is built by the real migrations once per
run; every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from conduit.app import create_app
from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from conduit.migrations import upgrade
from conduit.migrations.all_models import metadata
from conduit.settings import Settings

pytest_plugins = ["tests.conftest_mcp"]
PASSWORD = "correct horse battery staple"
TEST_SECRET = "test-secret-key-not-for-production-0123456789"


def _run_in_thread(fn: Any, *args: Any) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("CONDUIT_TEST_DATABASE_URL")
    if url:
        _run_in_thread(asyncio.run, _reset_postgres(url))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'conduit-test.db'}"
    _run_in_thread(upgrade, url)
    return url


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "run_jobs": False,
        "smtp_enabled": False,
        "log_json": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir)


@pytest.fixture(scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.create(settings)
    yield rt
    await rt.close()


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    clock.reset()
    yield
    clock.reset()
    if "runtime" not in request.fixturenames:
        return
    rt: Runtime = request.getfixturevalue("runtime")
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    async with rt.db.session() as session:
        if rt.db.is_sqlite:
            for table in tables:
                await session.execute(text(f'DELETE FROM "{table}"'))
        else:
            await session.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return create_app(runtime=runtime)


def client_for(app: Any, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def worker(runtime: Runtime) -> JobWorker:
    return JobWorker(runtime, concurrency=4, poll_seconds=0.05)


@dataclass
class User:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def sign_up(client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD) -> User:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    created = await client.post("/api/v1/accounts", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    signed_in = await client.post("/api/v1/sessions", json={"email": email, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    body = signed_in.json()
    return User(created.json()["id"], email, password, body["access_token"], body["refresh_token"])


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)
