"""Route dependencies that turn the caller into an `OrgAccess` holding one permission.

`org_access("members:read")` reads `{orgId}` from the path; `current_org_access(...)` uses the
organization the caller's key (or session) is bound to, for endpoints above the org root.
Existence is checked before permission: another tenant's organization is a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends

from conduit.identity.auth import PrincipalDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import NotFound
from conduit.orgs.service import OrgAccess, resolve_access

EntityResolver = Callable[[Any, str, str], Awaitable[bool]]
# entityType -> "does this entity exist in this organization?"; domains register theirs.
ENTITY_TYPES: dict[str, EntityResolver] = {}


def org_access(permission: str) -> Any:
    async def dependency(orgId: str, principal: PrincipalDep, session: SessionDep) -> OrgAccess:
        return (await resolve_access(session, principal, orgId)).require(permission)

    return Depends(dependency)


def current_org_access(permission: str) -> Any:
    async def dependency(principal: PrincipalDep, session: SessionDep) -> OrgAccess:
        if principal.org_id is None:
            raise NotFound("The caller belongs to no organization", code="organization_not_found")
        return (await resolve_access(session, principal, principal.org_id)).require(permission)

    return Depends(dependency)


def entity_type(name: str) -> Callable[[EntityResolver], EntityResolver]:
    def register(fn: EntityResolver) -> EntityResolver:
        ENTITY_TYPES[name] = fn
        return fn

    return register
