"""`conduit migrate` (idempotent) and `conduit jobs` (list, stats, retry of dead jobs)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from conduit.kit.clock import utcnow
from conduit.kit.jobs import DEAD, PENDING, Job
from conduit.migrations import head_revision, upgrade
from tests.cli.conftest import Cli
from tests.e2e.processes import conduit_env, free_port, run_cli

pytestmark = pytest.mark.e2e  # each test starts `conduit` processes


async def schema_of(cli: Cli) -> tuple[list[str], list[str]]:
    async with cli.runtime() as runtime, runtime.db.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: sorted(inspect(sync).get_table_names()))
        versions = list((await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    return tables, versions


async def test_migrate_is_idempotent(cli: Cli) -> None:
    first = cli("migrate")
    assert "Database is at the latest schema" in first.stdout
    tables, versions = await schema_of(cli)
    assert {"accounts", "api_keys", "audit_log", "jobs", "organizations"} <= set(tables)
    assert versions == [head_revision(cli.settings().resolved_database_url)]

    second = cli("migrate")
    assert second.stdout == first.stdout
    assert await schema_of(cli) == (tables, versions)


async def add_jobs(cli: Cli) -> tuple[str, str]:
    """A job that used up its attempts and one still waiting. Returns (dead id, pending id)."""
    now = utcnow()
    async with cli.runtime() as runtime, runtime.db.session() as session:
        dead = Job(
            kind="mail.send",
            payload={},
            status=DEAD,
            attempts=10,
            max_attempts=10,
            last_error="SMTPConnectError: relay refused",
            finished_at=now,
        )
        pending = Job(kind="mail.send", payload={}, run_at=now + timedelta(hours=1))
        session.add_all([dead, pending])
        await session.flush()
        return dead.id, pending.id


async def statuses(cli: Cli) -> dict[str, str]:
    async with cli.runtime() as runtime, runtime.db.session(write=False) as session:
        rows = (await session.execute(select(Job.id, Job.status))).all()
    return {job_id: status for job_id, status in rows}


async def test_jobs_list_shows_dead_jobs_and_retry_requeues_one(cli: Cli) -> None:
    settings = cli.settings()
    settings.ensure_data_dir()
    await asyncio.to_thread(upgrade, settings.resolved_database_url)
    dead_id, pending_id = await add_jobs(cli)

    listed = json.loads(cli("jobs", "list", "--status", "dead", "--json").stdout)
    assert [(j["id"], j["kind"], j["status"], j["attempts"]) for j in listed] == [
        (dead_id, "mail.send", "dead", "10/10")
    ]
    assert listed[0]["last_error"] == "SMTPConnectError: relay refused"
    stats = json.loads(cli("jobs", "stats", "--json").stdout)
    counts = {row["status"]: row["count"] for row in stats}
    assert counts == {"pending": 1, "running": 0, "done": 0, "dead": 1}
    table = cli("jobs", "list", "--status", "dead").stdout
    assert dead_id in table, "the id is printed whole, to be copied into `jobs retry`"

    retried = cli("jobs", "retry", dead_id)
    assert dead_id in retried.stdout
    assert await statuses(cli) == {dead_id: PENDING, pending_id: PENDING}
    not_dead = cli("jobs", "retry", pending_id, check=False)
    assert not_dead.returncode == 1
    assert await statuses(cli) == {dead_id: PENDING, pending_id: PENDING}


def test_a_database_that_is_not_one_is_one_error_line(tmp_path: Path) -> None:
    not_a_database = tmp_path / "conduit.db"
    not_a_database.write_bytes(b"this is not SQLite\n" * 256)
    env = conduit_env(tmp_path / "data", f"sqlite+aiosqlite:///{not_a_database}")
    failed = run_cli("jobs", "stats", env=env, cwd=tmp_path, check=False)
    assert failed.returncode == 1
    assert failed.stderr == "error: database: file is not a database\n"


def test_an_unreachable_database_server_is_one_error_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = conduit_env(tmp_path / "data", f"postgresql+asyncpg://conduit:pw@127.0.0.1:{port}/conduit")
    failed = run_cli("jobs", "stats", env=env, cwd=tmp_path, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: "), failed.stderr
    assert str(port) in failed.stderr
    assert len(failed.stderr.splitlines()) == 1
