"""The one written permission matrix: which role may do what in an organization.

Every route states the permission it needs; `can(role, permission)` is the only place the
answer is computed. The roles endpoint and the authorization-check endpoints read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

PERMISSIONS: dict[str, str] = {
    "org:read": "See the organization and its settings",
    "org:update": "Rename the organization, change its settings",
    "org:delete": "Delete the organization",
    "members:read": "List members",
    "members:manage": "Change members' roles, remove members",
    "invitations:read": "List pending invitations",
    "invitations:manage": "Invite, resend and revoke invitations",
    "api_keys:read": "List the organization's API keys",
    "api_keys:create": "Create API keys for oneself",
    "api_keys:manage": "Create service-account keys, revoke anyone's key",
    "servers:read": "List MCP servers, their tools, logs and analytics",
    "servers:write": "Register, change and delete MCP servers and their tools",
    "servers:invoke": "Call MCP servers through the gateway",
    "webhooks:read": "See webhook deliveries and their delivery logs",
    "webhooks:manage": "Redeliver webhooks and change webhook endpoints",
    "scans:read": "See scans and findings",
    "scans:run": "Start scans",
    "configs:read": "See gateway configurations and projects",
    "configs:write": "Change configurations, projects and their users",
    "users:manage": "Create users and their project keys (admin API)",
    "billing:read": "See the plan and usage",
    "billing:manage": "Change the plan",
    "audit:read": "Read the organization's audit log",
    "system:manage": "Backup and restore the organization",
}

_VIEWER = {
    "org:read",
    "members:read",
    "api_keys:create",
    "servers:read",
    "servers:invoke",
    "webhooks:read",
    "scans:read",
    "configs:read",
    "billing:read",
}
_DEVELOPER = _VIEWER | {
    "invitations:read",
    "api_keys:read",
    "servers:write",
    "webhooks:manage",
    "scans:run",
    "configs:write",
}
_ADMIN = set(PERMISSIONS)

MATRIX: dict[str, frozenset[str]] = {
    "admin": frozenset(_ADMIN),
    "developer": frozenset(_DEVELOPER),
    "viewer": frozenset(_VIEWER),
}


@dataclass(frozen=True)
class Role:
    key: str
    name: str
    description: str


ROLES: tuple[Role, ...] = (
    Role("admin", "Admin", "Everything, including members, keys, billing, backup and deletion"),
    Role("developer", "Developer", "Register and change servers, configurations and scans; read the rest"),
    Role("viewer", "Viewer", "Read everything and call servers through the gateway"),
)
ROLE_KEYS = tuple(role.key for role in ROLES)
ROLE_RANK = {"viewer": 0, "developer": 1, "admin": 2}


def can(role: str | None, permission: str) -> bool:
    return role is not None and permission in MATRIX.get(role, frozenset())


def unknown(permissions: list[str]) -> list[str]:
    return [p for p in permissions if p not in PERMISSIONS]


def weaker_of(a: str, b: str) -> str:
    """The less powerful of two roles: a key never outranks the account that owns it."""
    return a if ROLE_RANK[a] <= ROLE_RANK[b] else b
