"""`conduit serve`, `conduit worker`, `conduit migrate`."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn

from conduit.cli.common import console, display_url, load_settings
from conduit.settings import Settings

if TYPE_CHECKING:
    pass


def apply_migrations(settings: Settings) -> None:
    from conduit.migrations import upgrade

    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)


def migrate(
    database_url: Annotated[
        str | None, typer.Option(help="Database URL (default: CONDUIT_DATABASE_URL)")
    ] = None,
) -> None:
    """Apply database migrations up to the latest schema."""
    settings = load_settings(database_url=database_url)
    apply_migrations(settings)
    console.print(f"Database is at the latest schema: {display_url(settings.resolved_database_url)}")


def create_configured_app() -> Any:
    """The app factory uvicorn calls in every HTTP worker process.

    With `--workers` above 1 each worker is a fresh interpreter: it must configure logging
    (JSON, level, secret redaction) itself, or it logs unredacted text to stdout.
    """
    from conduit.app import create_app
    from conduit.gateway.relay import front

    return front(create_app(load_settings()))


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (CONDUIT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (CONDUIT_PORT)")] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (CONDUIT_DATABASE_URL)")] = None,
    workers: Annotated[int | None, typer.Option(help="HTTP worker processes (CONDUIT_WORKERS)")] = None,
) -> None:
    """Run the Conduit server: API, job workers, and everything else, in one command."""
    settings = load_settings(host=host, port=port, database_url=database_url, workers=workers)
    if settings.auto_migrate:
        apply_migrations(settings)
    settings.master_key  # noqa: B018 - create the key file once, before workers race for it
    # Workers re-read settings from the environment: hand them what the options changed.
    import os

    for name, value in (("HOST", host), ("PORT", port), ("DATABASE_URL", database_url), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"CONDUIT_{name}"] = str(value)
    url = settings.resolved_public_url
    console.print(f"[bold]Conduit[/bold] listening on {url}")
    console.print(f"  API docs:   {url}/docs")
    console.print(f"  Health:     {url}/health")
    if settings.smtp_enabled:
        console.print(f"  SMTP:       {settings.smtp_host}:{settings.smtp_port} (email ingress, STARTTLS)")
    console.print(f"  Database:   {display_url(settings.resolved_database_url)}")
    console.print("  First run?  In another terminal: .venv/bin/conduit init --email you@example.com")
    uvicorn.run(
        "conduit.cli.server:create_configured_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )


def worker(
    database_url: Annotated[str | None, typer.Option(help="Database URL (CONDUIT_DATABASE_URL)")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
) -> None:
    """Run job workers only (for deployments that scale API and workers separately)."""
    settings = load_settings(database_url=database_url, job_concurrency=concurrency)

    async def main() -> None:
        from conduit.app import create_app
        from conduit.kit.jobs import JobWorker

        app = create_app(settings)  # imports every job handler
        runtime = app.state.runtime
        job_worker = JobWorker(
            runtime, concurrency=settings.job_concurrency, poll_seconds=settings.job_poll_seconds
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, job_worker.stop)
        try:
            await job_worker.run()
        finally:
            await runtime.close()

    console.print("Conduit worker running; Ctrl-C to stop")
    asyncio.run(main())
