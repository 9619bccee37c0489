"""What a registered upstream serves and whether it answers: discovery (tools, resources,
templates, prompts, identity) and health checks, kept on the `Server` row, plus their jobs.

Talking to an upstream can take seconds, so it never happens inside an open transaction:
callers read the server, end the transaction, talk (`fetch_catalog`, `probe_health`), then
write the outcome in a short one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.kit import jobs
from conduit.kit.clock import utcnow
from conduit.kit.errors import ConduitError
from conduit.kit.jobs import JobContext, registry
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.client import McpCallError, McpClient, probe_modern, upstream_http
from conduit.kit.mcp.upstream import UpstreamError, UpstreamSpec, UpstreamTimeout
from conduit.kit.runtime import Runtime
from conduit.servers import service
from conduit.servers.models import Server

log = structlog.get_logger("conduit.servers.discovery")
T = TypeVar("T")

DISCOVER_JOB = "servers.discover"
HEALTH_JOB = "servers.health_check"
HEALTHY, DEGRADED, UNREACHABLE = "healthy", "degraded", "unreachable"

DEFAULT_TIMEOUT = 30.0  # per request; a server's settings.timeoutSeconds overrides it
MAX_TIMEOUT = 300.0
DISCOVERY_DEADLINE = 120.0  # the whole discovery, however many pages
HEALTH_EVERY = timedelta(minutes=1)
HEALTH_TIMEOUT = 10.0
HEALTH_SLOW_SECONDS = 2.0
HEALTH_BATCH = 100  # servers per run; the least recently checked first
HEALTH_CONCURRENCY = 8
HEALTH_JOB_SECONDS = 240.0
ERROR_CHARS = 500


class UpstreamUnavailable(ConduitError):
    status, code, message = 502, "upstream_unreachable", "The upstream MCP server could not be reached"


class UpstreamAnsweredError(ConduitError):
    status, code, message = 502, "upstream_error", "The upstream MCP server answered with an error"


class UpstreamTimedOut(ConduitError):
    status, code, message = 504, "upstream_timeout", "The upstream MCP server did not answer in time"


# --- reaching a server -----------------------------------------------------------------------


def timeout_for(server: Server) -> float:
    """Seconds to wait for one upstream answer: `settings.timeoutSeconds`, else 30."""
    value = (server.settings or {}).get("timeoutSeconds")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return min(float(value), MAX_TIMEOUT)
    return DEFAULT_TIMEOUT


def target_of(server: Server) -> tuple[Any, ...]:
    """What decides which upstream a server reaches and what it serves."""
    return (
        server.transport,
        server.upstream_url,
        server.command,
        tuple(server.args or ()),
        server.env_sealed,
        server.headers_sealed,
    )


def scrub(value: Any, spec: UpstreamSpec) -> Any:
    """`value` with every environment and header value of the server blanked out of its strings:
    what an upstream echoes back must not reveal what was sealed."""
    secrets = [v for v in (*spec.env.values(), *spec.headers.values()) if len(v) >= 4]
    if not secrets:
        return value

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            for secret in secrets:
                item = item.replace(secret, "********")
            return item
        if isinstance(item, list):
            return [clean(i) for i in item]
        if isinstance(item, dict):
            return {clean(k): clean(v) for k, v in item.items()}
        return item

    return clean(value)


def safe_message(text: str, spec: UpstreamSpec) -> str:
    """An upstream's error text, short, with the environment blanked out."""
    return str(scrub(text, spec))[:ERROR_CHARS]


def describe(exc: Exception, spec: UpstreamSpec) -> str:
    if isinstance(exc, McpCallError):
        return safe_message(f"The upstream answered error {exc.code}: {exc.message}", spec)
    return safe_message(str(exc) or type(exc).__name__, spec)


# --- discovery -------------------------------------------------------------------------------


@dataclass
class Catalog:
    tools: list[dict[str, Any]]
    details: dict[str, Any]


class DiscoveryFailed(Exception):
    def __init__(self, message: str, *, reachable: bool, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.reachable = reachable  # a session was open: the server is up but misbehaves
        self.timed_out = timed_out


async def _list_catalog(spec: UpstreamSpec, runtime: Runtime, timeout: float) -> Catalog:
    client = McpClient(spec, upstream_http(runtime), timeout=timeout)
    connected = False
    try:
        # The deadline bounds the talking, not the closing: a stdio process is always stopped.
        async with asyncio.timeout(DISCOVERY_DEADLINE):
            await client.connect()
            connected = True
            tools = await client.list_tools()
            details = {
                "serverInfo": client.server_info,
                "instructions": client.instructions,
                "capabilities": client.capabilities,
                "protocolVersion": client.protocol_version,
                "resources": await client.list_resources(),
                "resourceTemplates": await client.list_resource_templates(),
                "prompts": await client.list_prompts(),
            }
    except TimeoutError:
        message = f"Discovery did not finish within {DISCOVERY_DEADLINE:g} s"
        raise DiscoveryFailed(message, reachable=connected, timed_out=True) from None
    except (UpstreamError, McpCallError) as exc:
        raise DiscoveryFailed(
            describe(exc, spec), reachable=connected, timed_out=isinstance(exc, UpstreamTimeout)
        ) from None
    finally:
        await client.aclose()
    return Catalog([tool for tool in tools if isinstance(tool, dict)], details)


async def fetch_catalog(runtime: Runtime, server: Server) -> Catalog:
    """List everything the upstream serves (all pages) and probe for 2026-07-28 alongside.
    Raises DiscoveryFailed. Touches no database."""
    spec = service.upstream_spec(runtime.keyring, server)
    probe = asyncio.create_task(probe_modern(spec, upstream_http(runtime)))
    try:
        catalog = await _list_catalog(spec, runtime, timeout_for(server))
    except BaseException:
        probe.cancel()
        await asyncio.wait([probe])
        raise
    catalog.details["modernVersions"] = await probe
    return catalog


def _set_health(server: Server, status: str, error: str | None, at: datetime) -> None:
    server.health_status, server.last_error, server.last_health_at = status, error, at


async def store_catalog(session: AsyncSession, server: Server, catalog: Catalog) -> dict[str, int]:
    """Keep what discovery found; the tool counts {added, changed, removed, unchanged}."""
    # A discovery job and a discover-tools request may store at once: the second waits for
    # the first and then sees its tools, instead of inserting the same ones (PostgreSQL; a
    # SQLite writer holds the database lock anyway).
    await session.execute(select(Server.id).where(Server.id == server.id).with_for_update())
    counts = await service.upsert_tools(session, server, catalog.tools)
    now = utcnow()
    server.catalog = catalog.details
    server.catalog_status, server.catalog_error, server.discovered_at = "ok", None, now
    _set_health(server, HEALTHY, None, now)
    return counts


def record_failure(server: Server, failure: DiscoveryFailed) -> None:
    """The last good catalog and tools stay; the error is shown next to them."""
    server.catalog_status, server.catalog_error = "error", failure.message
    _set_health(server, DEGRADED if failure.reachable else UNREACHABLE, failure.message, utcnow())


async def discover(session: AsyncSession, runtime: Runtime, server: Server) -> dict[str, int]:
    """Re-import what `server` serves now; the tool counts. The caller holds no transaction
    open: the upstream is asked first, `session` written after. On failure the failure is
    recorded and UpstreamUnavailable / UpstreamAnsweredError (502) raised, keeping that record."""
    try:
        catalog = await fetch_catalog(runtime, server)
    except DiscoveryFailed as failure:
        record_failure(server, failure)
        error = UpstreamAnsweredError if failure.reachable and not failure.timed_out else UpstreamUnavailable
        raise error(failure.message, keep_changes=True) from None
    return await store_catalog(session, server, catalog)


def enqueue_discovery(session: AsyncSession, server: Server) -> None:
    """Discover the server once the caller's transaction commits (creation, a new target)."""
    jobs.enqueue(session, DISCOVER_JOB, {"serverId": server.id})


async def _load(runtime: Runtime, server_id: str) -> Server | None:
    async with runtime.db.session(write=False) as session:
        return await session.get(Server, server_id)


@registry.handler(DISCOVER_JOB, max_attempts=3, timeout_seconds=DISCOVERY_DEADLINE + 60)
async def _discover_job(ctx: JobContext) -> None:
    """A failing upstream is an outcome, recorded on the server, not a failed job: the health
    check discovers again once the server answers."""
    server_id = str(ctx.payload.get("serverId"))
    server = await _load(ctx.runtime, server_id)
    if server is None:
        return
    outcome: Catalog | DiscoveryFailed
    try:
        outcome = await fetch_catalog(ctx.runtime, server)
    except DiscoveryFailed as failure:
        outcome = failure
    current = await ctx.session.get(Server, server_id)
    if current is None or target_of(current) != target_of(server):
        return  # deleted, or re-targeted meanwhile (which enqueued its own discovery)
    if isinstance(outcome, DiscoveryFailed):
        record_failure(current, outcome)
        log.info("discovery_failed", server_id=server_id, error=outcome.message)
        return
    counts = await store_catalog(ctx.session, current, outcome)
    log.info("discovered", server_id=server_id, **counts)


# --- smoke tests: live calls, nothing stored ------------------------------------------------


async def smoke(
    runtime: Runtime, server: Server, action: Callable[[McpClient], Awaitable[T]]
) -> tuple[T, float]:
    """Open a session, run `action` on it, close: its outcome (scrubbed) and how long `action`
    took in ms. Upstream failures become 502 (unreachable, or the JSON-RPC error in `detail`)
    and 504 (timeout). The caller holds no transaction open."""
    spec, timeout = service.upstream_spec(runtime.keyring, server), timeout_for(server)
    client = McpClient(spec, upstream_http(runtime), timeout=timeout)
    try:
        async with asyncio.timeout(max(DISCOVERY_DEADLINE, 2 * timeout)):
            await client.connect()
            started = time.monotonic()
            outcome = await action(client)
            elapsed = round((time.monotonic() - started) * 1000, 1)
    except McpCallError as exc:
        rpc_error = scrub(exc.as_dict(), spec)
        raise UpstreamAnsweredError(describe(exc, spec), detail=rpc_error) from None
    except (TimeoutError, UpstreamTimeout):
        raise UpstreamTimedOut(f"The upstream did not answer within {timeout:g} s") from None
    except UpstreamError as exc:
        raise UpstreamUnavailable(describe(exc, spec)) from None
    finally:
        await client.aclose()
    return scrub(outcome, spec), elapsed


# --- health ----------------------------------------------------------------------------------


@dataclass
class Health:
    status: str
    error: str | None = None
    seconds: float = 0.0
    checked_at: datetime = field(default_factory=utcnow)


async def probe_health(spec: UpstreamSpec, runtime: Runtime, *, timeout: float = HEALTH_TIMEOUT) -> Health:
    """Open a session, ping (tools/list when ping is not served), close. Healthy if that is
    quick; degraded if slow or answered with an error; unreachable if no session opens.

    Latency is timed from the start for a remote server; for a stdio one from its first
    answer, since the gateway keeps that process running and its callers never wait for it
    to start."""
    client = McpClient(spec, upstream_http(runtime), timeout=timeout)
    started = time.monotonic()
    connected = False
    try:
        async with asyncio.timeout(timeout):
            await client.connect()
            connected = True
            if spec.transport == "stdio":
                started = time.monotonic()
            try:
                await client.ping()
            except McpCallError as exc:
                if exc.code != jsonrpc.METHOD_NOT_FOUND:
                    raise
                await client.request("tools/list")
            seconds = time.monotonic() - started
    except McpCallError as exc:
        return Health(DEGRADED if connected else UNREACHABLE, describe(exc, spec))
    except TimeoutError:
        return Health(UNREACHABLE, f"No answer within {timeout:g} s")
    except UpstreamError as exc:
        return Health(UNREACHABLE, describe(exc, spec))
    finally:
        await client.aclose()
    if seconds > HEALTH_SLOW_SECONDS:
        return Health(DEGRADED, f"Slow: answered in {seconds:.1f} s", seconds)
    return Health(HEALTHY, None, seconds)


def apply_health(session: AsyncSession, server: Server, health: Health) -> None:
    """Record a check. A server that answers again after being unreachable (or never checked)
    while its catalog is missing or failed is discovered again."""
    recovered = server.health_status in ("unknown", UNREACHABLE) and health.status != UNREACHABLE
    _set_health(server, health.status, health.error, health.checked_at)
    if recovered and server.catalog_status != "ok":
        enqueue_discovery(session, server)


async def check_health(session: AsyncSession, runtime: Runtime, server: Server) -> Health:
    """Check one server now; the caller holds no transaction open (see `discover`)."""
    health = await probe_health(service.upstream_spec(runtime.keyring, server), runtime)
    apply_health(session, server, health)
    return health


async def _due_for_health(runtime: Runtime) -> list[Server]:
    due_before = utcnow() - HEALTH_EVERY / 2
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(
            select(Server)
            .where(
                Server.status == "active",
                Server.last_health_at.is_(None) | (Server.last_health_at < due_before),
            )
            .order_by(Server.last_health_at.is_not(None), Server.last_health_at, Server.id)
            .limit(HEALTH_BATCH)
        )
        return list(rows.all())


@registry.handler(HEALTH_JOB, every=HEALTH_EVERY, max_attempts=2, timeout_seconds=HEALTH_JOB_SECONDS)
async def _health_job(ctx: JobContext) -> None:
    servers = await _due_for_health(ctx.runtime)
    if not servers:
        return
    gate = asyncio.Semaphore(HEALTH_CONCURRENCY)

    async def check(server: Server) -> Health:
        async with gate:
            return await probe_health(service.upstream_spec(ctx.runtime.keyring, server), ctx.runtime)

    results = await asyncio.gather(*(check(server) for server in servers))
    checked = {
        server.id: (target_of(server), health) for server, health in zip(servers, results, strict=True)
    }
    current_rows = await ctx.session.scalars(select(Server).where(Server.id.in_(list(checked))))
    for current in current_rows.all():
        target, health = checked[current.id]
        if target_of(current) == target:  # else re-targeted meanwhile: this check was of the old one
            apply_health(ctx.session, current, health)
    log.info("health_checked", servers=len(servers), healthy=sum(h.status == HEALTHY for h in results))
