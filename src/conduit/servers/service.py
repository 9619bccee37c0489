"""Registering upstream MCP servers: names and slugs, transports, sealed environments, plan limits."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing import service as billing
from conduit.kit.errors import Conflict, NotFound, Unprocessable
from conduit.kit.ids import random_base62
from conduit.kit.security import Keyring
from conduit.orgs.models import Organization
from conduit.orgs.service import lock_org
from conduit.servers.models import TRANSPORTS, Server

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_context(org_id: str) -> str:
    return f"server-env:{org_id}"


def seal_env(keyring: Keyring, org_id: str, env: dict[str, str] | None) -> str | None:
    if not env:
        return None
    bad = [name for name in env if not ENV_NAME.match(name)]
    if bad:
        raise Unprocessable(
            "Environment variable names must be letters, digits and _", code="invalid_env", detail=bad
        )
    return keyring.seal(json.dumps(env, sort_keys=True), context=_env_context(org_id))


def unseal_env(keyring: Keyring, server: Server) -> dict[str, str]:
    if not server.env_sealed:
        return {}
    env: dict[str, str] = json.loads(keyring.unseal(server.env_sealed, context=_env_context(server.org_id)))
    return env


def masked_env(keyring: Keyring, server: Server) -> dict[str, str]:
    return {name: "********" for name in unseal_env(keyring, server)}


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:56].strip("-") or "server"


async def _unique_slug(session: AsyncSession, org_id: str, name: str) -> str:
    base = slugify(name)
    candidate = base
    while await session.scalar(select(Server.id).where(Server.org_id == org_id, Server.slug == candidate)):
        candidate = f"{base[:49]}-{random_base62(6).lower()}"
    return candidate


def infer_transport(*, upstream_url: str | None, command: str | None, transport: str | None) -> str:
    if bool(upstream_url) == bool(command):
        raise Unprocessable(
            "Give either an upstream URL or a command, not both", code="invalid_server_target"
        )
    if transport is not None:
        if transport not in TRANSPORTS:
            raise Unprocessable(
                f"transport must be one of: {', '.join(TRANSPORTS)}", code="invalid_transport"
            )
        if (transport == "stdio") != bool(command):
            raise Unprocessable("stdio needs a command; http and sse need a URL", code="invalid_transport")
        return transport
    if command:
        return "stdio"
    assert upstream_url is not None
    return "sse" if upstream_url.rstrip("/").endswith("/sse") else "streamable_http"


def validate_url(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url):
        raise Unprocessable("upstream_url must be an http:// or https:// URL", code="invalid_url")
    return url


async def server_count(session: AsyncSession, org_id: str) -> int:
    return int(await session.scalar(select(func.count()).where(Server.org_id == org_id)) or 0)


async def by_name(session: AsyncSession, org_id: str, name: str) -> Server | None:
    return await session.scalar(select(Server).where(Server.org_id == org_id, Server.name == name))


async def get(session: AsyncSession, org_id: str, server_id: str) -> Server:
    server = await session.get(Server, server_id)
    if server is None or server.org_id != org_id:
        raise NotFound("Server not found", code="server_not_found")
    return server


async def create(
    session: AsyncSession,
    keyring: Keyring,
    org: Organization,
    *,
    name: str,
    upstream_url: str | None = None,
    command: str | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    description: str | None = None,
    transport: str | None = None,
    upgrade_url: str,
    settings: dict[str, Any] | None = None,
) -> Server:
    name = name.strip()
    if not name:
        raise Unprocessable("name must not be empty", code="invalid_name")
    if upstream_url:
        validate_url(upstream_url)
    resolved = infer_transport(upstream_url=upstream_url, command=command, transport=transport)
    if await by_name(session, org.id, name) is not None:
        raise Conflict("A server with this name already exists", code="server_exists")
    await lock_org(session, org.id)
    billing.ensure_capacity(org.plan, "servers", await server_count(session, org.id), upgrade_url=upgrade_url)
    server = Server(
        org_id=org.id,
        name=name,
        slug=await _unique_slug(session, org.id, name),
        description=description,
        transport=resolved,
        upstream_url=upstream_url,
        command=command,
        args=list(args or []) if command else None,
        env_sealed=seal_env(keyring, org.id, env),
        settings=dict(settings or {}),
    )
    session.add(server)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("A server with this name already exists", code="server_exists") from exc
    return server


def update_definition(
    keyring: Keyring,
    server: Server,
    *,
    upstream_url: str | None,
    command: str | None,
    args: list[str] | None,
    env: dict[str, str] | None,
    description: str | None,
) -> None:
    """Replace what is given; keep what is not (env is replaced only when given)."""
    new_url = upstream_url if upstream_url is not None else (None if command else server.upstream_url)
    new_command = command if command is not None else (None if upstream_url else server.command)
    if new_url:
        validate_url(new_url)
    unchanged_target = upstream_url is None and command is None
    server.transport = infer_transport(
        upstream_url=new_url, command=new_command, transport=server.transport if unchanged_target else None
    )
    server.upstream_url, server.command = new_url, new_command
    if new_command is None:
        server.args = None
    elif args is not None:
        server.args = list(args)
    if env is not None:
        server.env_sealed = seal_env(keyring, server.org_id, env)
    if description is not None:
        server.description = description
