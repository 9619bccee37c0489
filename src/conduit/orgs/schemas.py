"""Bodies of seed 003's organization endpoints (camelCase, as documented), seed 000's keys and CLI login."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, EmailStr, Field, StringConstraints

# Surrounding blanks are dropped before the length check, so "   " is not a name.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

# --- seed 003: organizations ----------------------------------------------------------------


class CreateOrganization(BaseModel):
    name: Name
    slug: str | None = Field(None, min_length=1, max_length=48)


class UpdateOrganization(BaseModel):
    name: Name | None = None
    slug: str | None = Field(None, min_length=1, max_length=48)
    publicMcpGuidesEnabled: bool | None = None


class OrganizationOut(BaseModel):
    id: str
    slug: str
    name: str
    planTier: str
    mcpServerCount: int
    memberCount: int
    createdOn: datetime
    publicMcpGuidesEnabled: bool
    role: str = Field(description="The caller's role in this organization")


class MemberOut(BaseModel):
    principalId: str
    email: str
    role: str
    joinedAt: datetime


class ChangeRole(BaseModel):
    role: str


class CreateInvitation(BaseModel):
    email: EmailStr = Field(max_length=320)
    role: str = "developer"


class RevokeInvitation(BaseModel):
    reason: str | None = Field(None, max_length=500)


class InvitationOut(BaseModel):
    id: str
    organizationId: str
    organizationName: str
    email: str
    role: str
    status: str
    inviteUrl: str | None
    createdAt: datetime
    expiresAt: datetime
    lastSentAt: datetime | None
    acceptedAt: datetime | None
    acceptedByUserId: str | None
    revokedAt: datetime | None
    revokedReason: str | None
    lastSendError: str | None


class AcceptInvitation(BaseModel):
    token: str = Field(min_length=1, max_length=512)


class CreateServiceKey(BaseModel):
    name: Name
    roleKey: str = "viewer"
    expiresIn: int | None = Field(None, ge=60, le=10 * 365 * 86400, description="Seconds until expiry")


class ServiceKeyOut(BaseModel):
    id: str
    name: str
    clientId: str = Field(description="The key's display prefix")
    fullKey: str | None = Field(None, description="The whole key: returned once, at creation")
    createdAt: datetime
    expiresAt: datetime | None
    lastUsedAt: datetime | None
    roleKey: str
    roleName: str


class RoleOut(BaseModel):
    roleKey: str
    roleName: str
    description: str
    permissions: list[str]


class PermissionCheck(BaseModel):
    permissions: list[str] = Field(min_length=1, max_length=100)


class PermissionResult(BaseModel):
    permission: str
    allowed: bool


class PermissionCheckOut(BaseModel):
    role: str
    results: list[PermissionResult]


class EntityCheck(BaseModel):
    entityType: str = Field(min_length=1, max_length=64)
    entityId: str = Field(min_length=1, max_length=64)
    permission: str = Field(min_length=1, max_length=64)


class EntityChecks(BaseModel):
    checks: list[EntityCheck] = Field(min_length=1, max_length=100)


class EntityResult(EntityCheck):
    allowed: bool


class EntityCheckOut(BaseModel):
    role: str
    results: list[EntityResult]


# --- above the org root ----------------------------------------------------------------------


class MembershipOut(BaseModel):
    id: str
    name: str
    slug: str
    role: str
    planTier: str


class MeOut(BaseModel):
    id: str | None
    email: str | None
    timezone: str | None
    type: str = Field(description="user or service_account")
    organizationId: str | None
    role: str | None
    organizations: list[MembershipOut]


class CliConfigOut(BaseModel):
    apiUrl: str
    gatewayUrl: str
    loginUrl: str
    docsUrl: str
    version: str
    keyPrefix: str


class WhoAmIOut(BaseModel):
    type: str
    email: str | None
    userId: str | None
    organizationId: str | None
    organizationName: str | None
    role: str | None
    keyId: str | None
    authMethod: str


class DashboardStats(BaseModel):
    organizationId: str
    planTier: str
    members: int
    pendingInvitations: int
    apiKeys: int
    servers: int
    configs: int
    projects: int
    gatewayCallsToday: int
    gatewayCallsLimit: int | None
    auditEventsLast24h: int


class SeriesPoint(BaseModel):
    date: str
    value: int


class DashboardAnalytics(BaseModel):
    organizationId: str
    days: int
    series: dict[str, list[SeriesPoint]]


# --- seed 000: keys and CLI login -----------------------------------------------------------


class CreateKey(BaseModel):
    name: Name


class KeyCreated(BaseModel):
    id: str
    name: str
    key: str
    prefix: str
    created_at: datetime


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    last_used_at: datetime | None
    created_at: datetime


class Success(BaseModel):
    success: bool = True


class CliTokenOut(BaseModel):
    token: str
    expires_in: int


class CliVerify(BaseModel):
    token: str = Field(min_length=1, max_length=512)


class CliVerified(BaseModel):
    api_key: str
    email: str
    org_name: str


class CliWhoAmI(BaseModel):
    email: str | None
    org_name: str | None


class CliStatus(BaseModel):
    email: str | None
    org_name: str | None
    plan: str
    server_count: int
    usage_today: int
    usage_limit: int | None


class PlanOut(BaseModel):
    key: str
    name: str
    limits: dict[str, Any]
