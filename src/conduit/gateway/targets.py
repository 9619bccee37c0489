"""What the relay needs to know about a server, read from the database at most every few seconds.

A `Target` is a frozen snapshot: how to reach the upstream (with its environment unsealed), the
per-call timeout, whether it speaks the stateless 2026-07-28 revision, and the tool curation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from conduit.kit.mcp.jsonrpc import MODERN_VERSIONS
from conduit.kit.mcp.upstream import UpstreamSpec
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization
from conduit.servers import service as servers
from conduit.servers.models import Server, Tool


@dataclass(frozen=True)
class Target:
    server_id: str
    org_id: str
    org_slug: str
    slug: str
    name: str
    spec: UpstreamSpec
    timeout: float
    modern: bool
    active: bool
    tools: dict[str, Tool] = field(default_factory=dict)

    def tool_enabled(self, name: str) -> bool:
        tool = self.tools.get(name)
        return tool is None or tool.is_enabled

    def curate(self, definitions: Iterable[Any], allowed: frozenset[str] | None = None) -> list[Any]:
        """tools/list as the gateway shows it: disabled tools (and, for a project key, tools its
        configuration does not allow) left out, overrides applied to the live definitions."""
        shown = []
        for definition in definitions:
            if not isinstance(definition, dict):
                shown.append(definition)
                continue
            name = str(definition.get("name"))
            if allowed is not None and name not in allowed:
                continue
            tool = self.tools.get(name)
            if tool is None:
                shown.append(definition)
            elif tool.is_enabled:
                shown.append(servers.effective_definition(tool, definition=definition))
        return shown


def spec_for(runtime: Runtime, server: Server) -> UpstreamSpec:
    return UpstreamSpec(
        server_id=server.id,
        name=server.slug,
        transport=server.transport,
        url=server.upstream_url,
        command=server.command,
        args=tuple(server.args or ()),
        env=servers.unseal_env(runtime.keyring, server),
    )


class Targets:
    def __init__(self, runtime: Runtime, *, ttl: float) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self._by_slug: dict[tuple[str, str], tuple[float, Target | None]] = {}
        self._by_id: dict[str, tuple[float, Target | None]] = {}

    async def by_slug(self, org_slug: str, server_slug: str) -> Target | None:
        cached = self._by_slug.get((org_slug, server_slug))
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        async with self.runtime.db.session(write=False) as session:
            row = (
                await session.execute(
                    select(Server, Organization.slug)
                    .join(Organization, Organization.id == Server.org_id)
                    .where(Organization.slug == org_slug, Server.slug == server_slug)
                )
            ).first()
            target = await self._load(session, row[0], row[1]) if row else None
        self._remember(target, key=(org_slug, server_slug))
        return target

    async def by_id(self, server_id: str) -> Target | None:
        cached = self._by_id.get(server_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        async with self.runtime.db.session(write=False) as session:
            row = (
                await session.execute(
                    select(Server, Organization.slug)
                    .join(Organization, Organization.id == Server.org_id)
                    .where(Server.id == server_id)
                )
            ).first()
            target = await self._load(session, row[0], row[1]) if row else None
        self._remember(target, server_id=server_id)
        return target

    def _remember(
        self, target: Target | None, *, key: tuple[str, str] | None = None, server_id: str | None = None
    ) -> None:
        now = time.monotonic()
        if target is not None:
            self._by_slug[(target.org_slug, target.slug)] = (now, target)
            self._by_id[target.server_id] = (now, target)
        if key is not None:
            self._by_slug[key] = (now, target)
        if server_id is not None:
            self._by_id[server_id] = (now, target)

    async def _load(self, session: Any, server: Server, org_slug: str) -> Target:
        tools = await servers.tools_of(session, server.id)
        modern = any(v in MODERN_VERSIONS for v in (server.catalog or {}).get("modernVersions") or ())
        timeout = server.settings.get("timeoutSeconds") if isinstance(server.settings, dict) else None
        return Target(
            server_id=server.id,
            org_id=server.org_id,
            org_slug=org_slug,
            slug=server.slug,
            name=server.name,
            spec=spec_for(self.runtime, server),
            timeout=float(timeout)
            if isinstance(timeout, int | float) and timeout > 0
            else self.runtime.settings.gateway_timeout_seconds,
            modern=modern,
            active=server.status != "disabled",
            tools={tool.name: tool for tool in tools},
        )

    def invalidate(self) -> None:
        self._by_slug.clear()
        self._by_id.clear()
