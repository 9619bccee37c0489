"""The `conduit` command run as a real subprocess, on a data directory and database of its own.

`Cli.settings()` is the same configuration in-process, for checking what a command did through
the API or the database.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conduit.app import create_app
from conduit.kit.runtime import Runtime
from conduit.settings import Settings
from tests.e2e.processes import conduit_env, fresh_database, run_cli


@dataclass
class Cli:
    workdir: Path
    data_dir: Path
    database_url: str | None
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, cwd=self.workdir, check=check)

    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            database_url=self.database_url,
            secret_key=None,  # the key file the commands generated in the data directory
            run_jobs=False,
            _env_file=None,  # type: ignore[call-arg]
        )

    @asynccontextmanager
    async def runtime(self) -> AsyncIterator[Runtime]:
        runtime = Runtime.create(self.settings())
        try:
            yield runtime
        finally:
            await runtime.close()

    @asynccontextmanager
    async def api(self) -> AsyncIterator[httpx.AsyncClient]:
        """The API in-process, over the same database and keys the commands used."""
        async with self.runtime() as runtime:
            transport = httpx.ASGITransport(app=create_app(runtime=runtime), client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A fresh data directory and an empty database (SQLite in it, or PostgreSQL `<test db>_cli`)."""
    data_dir = tmp_path / "data"
    database_url = fresh_database("cli")
    return Cli(tmp_path, data_dir, database_url, conduit_env(data_dir, database_url))
