"""What the relay needs to know about a server, read from the database at most every few seconds.

A `Target` is a frozen snapshot: how to reach the upstream (with its environment unsealed), the
per-call timeout, whether it speaks the stateless 2026-07-28 revision, and the tool curation.
"""

from __future__ import annotations

import asyncio
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
    # The hash of each pinned tool's definition as this process last saw the upstream serve it
    # (in a tools/list), shared by the server's targets: a call by name is judged by it too.
    live_hashes: dict[str, str] = field(default_factory=dict)

    def tool_enabled(self, name: str) -> bool:
        tool = self.tools.get(name)
        if tool is None:
            return True
        return tool.is_enabled and not servers.tool_held(tool, self.live_hashes.get(name))

    def _held(self, tool: Tool, definition: dict[str, Any]) -> bool:
        """A pinned tool whose definition, as the upstream serves it now, is not the pinned one."""
        if tool.pinned_hash is None:
            return False
        live = self.live_hashes[tool.name] = servers.definition_hash(definition)
        return servers.tool_held(tool, live)

    def curate(self, definitions: Iterable[Any], allowed: frozenset[str] | None = None) -> list[Any]:
        """tools/list as the gateway shows it: disabled tools, pinned tools whose definition
        changed since it was scanned or approved (and, for a project key, tools its configuration
        does not allow) left out, overrides applied to the live definitions."""
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
            elif tool.is_enabled and not self._held(tool, definition):
                shown.append(servers.effective_definition(tool, definition=definition))
        return shown


class Targets:
    """Targets by `(org slug, server slug)` and by server id, each read at most once per `ttl`.

    An entry past its `ttl` (but younger than ten times it) is served while one background read
    refreshes it, so a busy server never makes its callers wait for the database; older entries
    are read before answering, by one caller while the others wait for the same read.
    """

    def __init__(self, runtime: Runtime, *, ttl: float) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self._entries: dict[tuple[str, ...], tuple[float, Target | None]] = {}
        self._loading: dict[tuple[str, ...], asyncio.Task[Target | None]] = {}
        self._live_hashes: dict[str, dict[str, str]] = {}

    async def by_slug(self, org_slug: str, server_slug: str) -> Target | None:
        return await self._get(("slug", org_slug, server_slug))

    async def by_id(self, server_id: str) -> Target | None:
        return await self._get(("id", server_id))

    async def _get(self, key: tuple[str, ...]) -> Target | None:
        entry = self._entries.get(key)
        if entry is not None:
            age = time.monotonic() - entry[0]
            if age < self.ttl:
                return entry[1]
            if age < self.ttl * 10:
                self._refresh(key)
                return entry[1]
        return await self._refresh(key)

    def _refresh(self, key: tuple[str, ...]) -> asyncio.Task[Target | None]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read(key))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        return task

    async def _read(self, key: tuple[str, ...]) -> Target | None:
        query = select(Server, Organization.slug).join(Organization, Organization.id == Server.org_id)
        if key[0] == "slug":
            query = query.where(Organization.slug == key[1], Server.slug == key[2])
        else:
            query = query.where(Server.id == key[1])
        async with self.runtime.db.session(write=False) as session:
            row = (await session.execute(query)).first()
            target = await self._load(session, row[0], row[1]) if row else None
        now = time.monotonic()
        self._entries[key] = (now, target)
        if target is not None:
            self._entries[("slug", target.org_slug, target.slug)] = (now, target)
            self._entries[("id", target.server_id)] = (now, target)
        return target

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
            spec=servers.upstream_spec(self.runtime.keyring, server),
            timeout=float(timeout)
            if isinstance(timeout, int | float) and timeout > 0
            else self.runtime.settings.gateway_timeout_seconds,
            modern=modern,
            active=server.status != "disabled",
            tools={tool.name: tool for tool in tools},
            live_hashes=self._live_hashes.setdefault(server.id, {}),
        )

    def invalidate(self) -> None:
        self._entries.clear()
