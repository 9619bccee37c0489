"""`create_app(settings)`: mounts every domain's routers; the lifespan owns the runtime and workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import conduit
from conduit.admin.routes import ERROR_STYLES as ADMIN_ERROR_STYLES
from conduit.admin.routes import router as admin_router
from conduit.email.ingress import start_ingress
from conduit.email.routes import router as email_router
from conduit.email.smtp import SmtpServer
from conduit.gateway.relay import Gateway, GatewayMiddleware
from conduit.identity import audit as _audit  # noqa: F401 - registers its periodic job
from conduit.identity.routes import router as identity_router
from conduit.kit import errors
from conduit.kit import logging as kit_logging
from conduit.kit import mailer as _mailer  # noqa: F401 - registers the mail job
from conduit.kit import ratelimit as _ratelimit  # noqa: F401 - registers its periodic job
from conduit.kit.jobs import JobWorker
from conduit.kit.logging import RequestLogMiddleware
from conduit.kit.metrics import metrics_endpoint
from conduit.kit.runtime import Runtime
from conduit.orgs import invitations as _invitations  # noqa: F401 - registers the invitation mail job
from conduit.orgs.routes import router as orgs_router
from conduit.registry.routes import router as registry_router
from conduit.scanning.routes import router as scanning_router
from conduit.servers import discovery as _discovery  # noqa: F401 - registers the discovery and health jobs
from conduit.servers.routes import router as servers_router
from conduit.settings import Settings
from conduit.system.routes import router as system_router
from conduit.web.routes import router as web_router
from conduit.webhooks.routes import router as webhooks_router

DESCRIPTION = """Conduit is a self-hosted trust gateway for AI-agent integrations.

Authenticate with `Authorization: Bearer <token>` (an access token from `POST /api/v1/sessions`
or an API key) or `X-API-Key: <key>`. Every error is JSON: `{"code", "error", "detail"?}`.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    worker_task: asyncio.Task[None] | None = None
    worker: JobWorker | None = None
    smtp: SmtpServer | None = None
    if runtime.settings.smtp_enabled:
        smtp = await start_ingress(runtime)
        app.state.smtp = smtp
    if runtime.settings.run_jobs:
        worker = JobWorker(
            runtime,
            concurrency=runtime.settings.job_concurrency,
            poll_seconds=runtime.settings.job_poll_seconds,
        )
        worker_task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        if smtp is not None:
            # No new connections; a message being stored finishes and gets its reply first.
            smtp.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(smtp.wait_closed(), timeout=10)
        await app.state.gateway.aclose()
        if worker is not None and worker_task is not None:
            worker.stop()
            # Running jobs get 10 s to finish; an unfinished one is taken over after its lease.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(worker_task, timeout=10)
        await runtime.close()


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime.create(settings or Settings())
    # Whoever embeds the app gets JSON lines with secrets redacted, not structlog's defaults.
    kit_logging.configure(runtime.settings.log_level, runtime.settings.log_json)
    app = FastAPI(
        title="Conduit",
        version=conduit.__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.runtime = runtime
    app.state.db = runtime.db
    app.state.error_styles = [*ADMIN_ERROR_STYLES]
    errors.install(app)
    app.state.gateway = Gateway(runtime)
    app.add_middleware(GatewayMiddleware, gateway=app.state.gateway)
    app.add_middleware(errors.RejectNulMiddleware)
    app.add_middleware(RequestLogMiddleware)
    app.include_router(system_router)
    app.include_router(identity_router)
    # Before the email routes: `/api/v1/webhooks/deliveries` is not an email webhook's `{id}`.
    app.include_router(webhooks_router)
    app.include_router(email_router)
    app.include_router(orgs_router)
    app.include_router(admin_router)
    app.include_router(servers_router)
    app.include_router(scanning_router)
    app.include_router(registry_router)
    app.include_router(web_router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return app
