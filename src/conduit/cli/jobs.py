"""`conduit jobs`: see queued, running and dead jobs; retry dead ones."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy import func, select, update

from conduit.cli.common import console, load_settings, print_rows
from conduit.kit.clock import utcnow
from conduit.kit.jobs import DEAD, PENDING, STATUSES, Job
from conduit.kit.runtime import Runtime

app = typer.Typer(help="Inspect and retry background jobs.", no_args_is_help=True)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help=f"One of: {', '.join(STATUSES)}")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List jobs, newest first."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(STATUSES)}")

    async def fetch() -> list[dict[str, object]]:
        runtime = Runtime.create(load_settings())
        try:
            async with runtime.db.session(write=False) as session:
                query = select(Job).order_by(Job.created_at.desc()).limit(limit)
                if status:
                    query = query.where(Job.status == status)
                return [
                    {
                        "id": j.id,
                        "kind": j.kind,
                        "status": j.status,
                        "attempts": f"{j.attempts}/{j.max_attempts}",
                        "run_at": j.run_at.isoformat(),
                        "last_error": (j.last_error or "")[:120],
                    }
                    for j in (await session.scalars(query)).all()
                ]
        finally:
            await runtime.close()

    rows = asyncio.run(fetch())
    print_rows(rows, ["id", "kind", "status", "attempts", "run_at", "last_error"], as_json=as_json)


@app.command("stats")
def stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """How many jobs are in each status."""

    async def fetch() -> list[dict[str, object]]:
        runtime = Runtime.create(load_settings())
        try:
            async with runtime.db.session(write=False) as session:
                result = await session.execute(select(Job.status, func.count()).group_by(Job.status))
                counts = dict(result.all())
                return [{"status": s, "count": counts.get(s, 0)} for s in STATUSES]
        finally:
            await runtime.close()

    print_rows(asyncio.run(fetch()), ["status", "count"], as_json=as_json)


@app.command("retry")
def retry(job_id: Annotated[str, typer.Argument(help="Id of a dead job")]) -> None:
    """Give a dead job a fresh set of attempts."""

    async def run() -> int:
        runtime = Runtime.create(load_settings())
        try:
            async with runtime.db.session() as session:
                result = await session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == DEAD)
                    .values(status=PENDING, attempts=0, run_at=utcnow(), finished_at=None)
                )
                return int(getattr(result, "rowcount", 0) or 0)
        finally:
            await runtime.close()

    if asyncio.run(run()) != 1:
        console.print(f"No dead job with id {job_id}")
        raise typer.Exit(1)
    console.print(f"Job {job_id} queued again")
