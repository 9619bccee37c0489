"""Seed 003's Organization group and the endpoints above the org root; seed 000's keys and CLI login."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from sqlalchemy import func, select

import conduit
from conduit.admin.models import Config, Project
from conduit.billing import service as billing
from conduit.identity import audit
from conduit.identity.auth import AccountPrincipalDep, ClientDep, Principal, PrincipalDep, RuntimeDep
from conduit.identity.models import Account, ApiKey, AuditEvent
from conduit.kit.clock import utcnow
from conduit.kit.db import SessionDep
from conduit.kit.errors import Conflict, NotFound, Unprocessable, responses
from conduit.kit.security import KEY_PREFIX
from conduit.orgs import invitations, keys, service
from conduit.orgs.access import ENTITY_TYPES, current_org_access, entity_type, org_access
from conduit.orgs.models import Invitation, Membership, Organization
from conduit.orgs.permissions import MATRIX, ROLES, unknown
from conduit.orgs.schemas import (
    AcceptInvitation,
    ChangeRole,
    CliConfigOut,
    CliStatus,
    CliTokenOut,
    CliVerified,
    CliVerify,
    CliWhoAmI,
    CreateInvitation,
    CreateKey,
    CreateOrganization,
    CreateServiceKey,
    DashboardAnalytics,
    DashboardStats,
    EntityCheckOut,
    EntityChecks,
    EntityResult,
    InvitationOut,
    KeyCreated,
    KeyOut,
    MemberOut,
    MembershipOut,
    MeOut,
    OrganizationOut,
    PermissionCheck,
    PermissionCheckOut,
    PermissionResult,
    PlanOut,
    RevokeInvitation,
    RoleOut,
    ServiceKeyOut,
    Success,
    UpdateOrganization,
    WhoAmIOut,
)
from conduit.orgs.service import OrgAccess
from conduit.servers.models import Server

router = APIRouter()
ORG = "/api/v1/organizations/{orgId}"
TAG = "Organization"
NO_CONTENT = status.HTTP_204_NO_CONTENT
ROLE_NAMES = {role.key: role.name for role in ROLES}


async def _server_count(session: SessionDep, org_id: str) -> int:
    return int(await session.scalar(select(func.count()).where(Server.org_id == org_id)) or 0)


async def _org_out(session: SessionDep, org: Organization, role: str) -> OrganizationOut:
    return OrganizationOut(
        id=org.id,
        slug=org.slug,
        name=org.name,
        planTier=org.plan,
        mcpServerCount=await _server_count(session, org.id),
        memberCount=await service.member_count(session, org.id),
        createdOn=org.created_at,
        publicMcpGuidesEnabled=org.public_guides_enabled,
        role=role,
    )


def _invitation_out(org: Organization, invitation: Invitation, url: str | None = None) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        organizationId=org.id,
        organizationName=org.name,
        email=invitation.email,
        role=invitation.role,
        status=invitations.status_of(invitation),
        inviteUrl=url,
        createdAt=invitation.created_at,
        expiresAt=invitation.expires_at,
        lastSentAt=invitation.last_sent_at,
        acceptedAt=invitation.accepted_at,
        acceptedByUserId=invitation.accepted_by,
        revokedAt=invitation.revoked_at,
        revokedReason=invitation.revoked_reason,
        lastSendError=invitation.last_send_error,
    )


def _service_key_out(key: ApiKey, raw: str | None = None) -> ServiceKeyOut:
    role = key.role or "viewer"
    return ServiceKeyOut(
        id=key.id,
        name=key.name,
        clientId=key.prefix,
        fullKey=raw,
        createdAt=key.created_at,
        expiresAt=key.expires_at,
        lastUsedAt=key.last_used_at,
        roleKey=role,
        roleName=ROLE_NAMES.get(role, role),
    )


def _audit(
    session: SessionDep, access: OrgAccess, action: str, client: ClientDep, **metadata: object
) -> None:
    access.audit(session, action, client.ip, **metadata)


# --- organizations --------------------------------------------------------------------------


@router.get(
    "/api/v1/organizations",
    tags=[TAG],
    summary="List organizations the token can access",
    response_model=list[OrganizationOut],
    responses=responses(401),
)
async def list_organizations(principal: PrincipalDep, session: SessionDep) -> list[OrganizationOut]:
    return [await _org_out(session, org, role) for org, role in await service.orgs_for(session, principal)]


@router.post(
    "/api/v1/organizations",
    tags=[TAG],
    summary="Create an organization",
    status_code=201,
    response_model=OrganizationOut,
    responses=responses(401, 403, 409, 422),
)
async def create_organization(
    body: CreateOrganization,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> OrganizationOut:
    """Body `{name, slug}`; the caller becomes its admin. Slugs are unique (409)."""
    assert principal.account_id is not None
    org = await service.create_org(
        session,
        name=body.name.strip(),
        slug=body.slug,
        owner_id=principal.account_id,
        plan=runtime.settings.default_plan,
    )
    audit.record(
        session,
        "organization.created",
        account_id=principal.account_id,
        org_id=org.id,
        ip=client.ip,
        name=org.name,
        slug=org.slug,
    )
    return await _org_out(session, org, "admin")


@router.get(
    ORG,
    tags=[TAG],
    summary="Get the organization",
    response_model=OrganizationOut,
    responses=responses(401, 404),
)
async def get_organization(
    session: SessionDep, access: Annotated[OrgAccess, org_access("org:read")]
) -> OrganizationOut:
    return await _org_out(session, access.org, access.role)


@router.patch(
    ORG,
    tags=[TAG],
    summary="Update organization details",
    response_model=OrganizationOut,
    responses=responses(401, 403, 404, 409, 422),
)
async def update_organization(
    body: UpdateOrganization,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("org:update")],
) -> OrganizationOut:
    org = await service.update_org(
        session,
        access.org,
        name=body.name,
        slug=body.slug,
        public_guides_enabled=body.publicMcpGuidesEnabled,
    )
    _audit(session, access, "organization.updated", client, changes=body.model_dump(exclude_none=True))
    return await _org_out(session, org, access.role)


@router.delete(
    ORG,
    tags=[TAG],
    summary="Delete the organization (admins only)",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404, 409),
)
async def delete_organization(
    session: SessionDep, client: ClientDep, access: Annotated[OrgAccess, org_access("org:delete")]
) -> Response:
    """Deletes the organization with its servers, keys, invitations and configuration. A
    personal organization goes only with its account."""
    if access.org.personal:
        raise Conflict("A personal organization is deleted with its account", code="personal_organization")
    _audit(session, access, "organization.deleted", client, name=access.org.name, slug=access.org.slug)
    await session.delete(access.org)
    return Response(status_code=NO_CONTENT)


# --- members --------------------------------------------------------------------------------


@router.get(
    f"{ORG}/members",
    tags=[TAG],
    summary="List active members",
    response_model=list[MemberOut],
    responses=responses(401, 403, 404),
)
async def list_members(
    session: SessionDep, access: Annotated[OrgAccess, org_access("members:read")]
) -> list[MemberOut]:
    rows = await session.execute(
        select(Membership, Account.email)
        .join(Account, Account.id == Membership.account_id)
        .where(Membership.org_id == access.org.id)
        .order_by(Membership.created_at)
    )
    return [
        MemberOut(principalId=m.account_id, email=email, role=m.role, joinedAt=m.created_at)
        for m, email in rows.all()
    ]


async def _member_out(session: SessionDep, member: Membership) -> MemberOut:
    email = await session.scalar(select(Account.email).where(Account.id == member.account_id))
    return MemberOut(
        principalId=member.account_id, email=email or "", role=member.role, joinedAt=member.created_at
    )


@router.patch(
    f"{ORG}/members/{{principalId}}",
    tags=[TAG],
    summary="Change a member's role",
    response_model=MemberOut,
    responses=responses(401, 403, 404, 409, 422),
)
async def change_member_role(
    principalId: str,
    body: ChangeRole,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("members:manage")],
) -> MemberOut:
    """Body `{role}`. The last admin cannot be demoted (409)."""
    member = await service.change_role(session, access.org.id, principalId, body.role)
    _audit(session, access, "member.role_changed", client, member_id=principalId, role=body.role)
    return await _member_out(session, member)


@router.delete(
    f"{ORG}/members/{{principalId}}",
    tags=[TAG],
    summary="Remove a member",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404, 409),
)
async def remove_member(
    principalId: str,
    principal: PrincipalDep,
    session: SessionDep,
    client: ClientDep,
    orgId: str,
) -> Response:
    """Admins remove anyone; every member may remove themself. The last admin cannot leave (409)."""
    access = await service.resolve_access(session, principal, orgId)
    if principalId != principal.account_id:
        access.require("members:manage")
    await service.remove_member(session, access.org.id, principalId)
    _audit(session, access, "member.removed", client, member_id=principalId)
    return Response(status_code=NO_CONTENT)


# --- invitations ----------------------------------------------------------------------------


@router.get(
    f"{ORG}/invitations",
    tags=[TAG],
    summary="List pending invitations",
    response_model=list[InvitationOut],
    responses=responses(401, 403, 404),
)
async def list_invitations(
    session: SessionDep, access: Annotated[OrgAccess, org_access("invitations:read")]
) -> list[InvitationOut]:
    return [_invitation_out(access.org, i) for i in await invitations.list_pending(session, access.org.id)]


@router.post(
    f"{ORG}/invitations",
    tags=[TAG],
    summary="Invite a teammate",
    status_code=201,
    response_model=InvitationOut,
    responses=responses(401, 403, 404, 409, 422),
)
async def create_invitation(
    body: CreateInvitation,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("invitations:manage")],
) -> InvitationOut:
    """Body `{email, role}`; role is one of admin, developer, viewer. The invitation is emailed
    and expires after 7 days; `inviteUrl` is returned here and on resend only."""
    billing.ensure_capacity(
        access.org.plan,
        "members",
        await service.member_count(session, access.org.id),
        upgrade_url=keys.upgrade_url(runtime),
    )
    invitation, url = await invitations.create(
        session, runtime, access, email=body.email, role=body.role, ip=client.ip
    )
    return _invitation_out(access.org, invitation, url)


@router.post(
    f"{ORG}/invitations/{{invitationId}}/resend",
    tags=[TAG],
    summary="Resend an invitation email",
    response_model=InvitationOut,
    responses=responses(401, 403, 404, 410),
)
async def resend_invitation(
    invitationId: str,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("invitations:manage")],
) -> InvitationOut:
    """Sends a new link (the previous one stops working) and restarts the 7-day expiry."""
    invitation, url = await invitations.resend(session, runtime, access, invitationId, client.ip)
    return _invitation_out(access.org, invitation, url)


@router.post(
    f"{ORG}/invitations/{{invitationId}}/revoke",
    tags=[TAG],
    summary="Revoke an invitation",
    response_model=InvitationOut,
    responses=responses(401, 403, 404, 410),
)
async def revoke_invitation(
    invitationId: str,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("invitations:manage")],
    body: Annotated[RevokeInvitation | None, Body()] = None,
) -> InvitationOut:
    """Body `{reason?}`."""
    invitation = await invitations.revoke(
        session, access, invitationId, body.reason if body else None, client.ip
    )
    return _invitation_out(access.org, invitation)


@router.get(
    "/api/v1/invitations/{invitationId}",
    tags=[TAG],
    summary="Look at an invitation by its link",
    response_model=InvitationOut,
    responses=responses(404),
)
async def preview_invitation(
    invitationId: str,
    token: Annotated[str, Query(min_length=1, max_length=512)],
    session: SessionDep,
    runtime: RuntimeDep,
) -> InvitationOut:
    """No authentication: the token from the invite link is the proof."""
    invitation = await invitations.by_token(session, runtime, invitationId, token)
    org = await session.get(Organization, invitation.org_id)
    assert org is not None
    return _invitation_out(org, invitation)


@router.post(
    "/api/v1/invitations/{invitationId}/accept",
    tags=[TAG],
    summary="Accept an invitation",
    response_model=MemberOut,
    responses=responses(401, 403, 404, 410),
)
async def accept_invitation(
    invitationId: str,
    body: AcceptInvitation,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> MemberOut:
    """Signed in as the invited email, with the token from the link: adds the membership."""
    assert principal.account is not None
    _, member = await invitations.accept(
        session,
        runtime,
        invitation_id=invitationId,
        token=body.token,
        account=principal.account,
        ip=client.ip,
    )
    return await _member_out(session, member)


# --- service-account keys -------------------------------------------------------------------


@router.get(
    f"{ORG}/api-keys",
    tags=[TAG],
    summary="List service-account keys",
    response_model=list[ServiceKeyOut],
    responses=responses(401, 403, 404),
)
async def list_service_keys(
    session: SessionDep, access: Annotated[OrgAccess, org_access("api_keys:read")]
) -> list[ServiceKeyOut]:
    return [_service_key_out(k) for k in await keys.list_keys(session, access.org.id, ("service",))]


@router.get(
    f"{ORG}/api-keys/roles",
    tags=[TAG],
    summary="List roles assignable to keys",
    response_model=list[RoleOut],
    responses=responses(401, 404),
)
async def list_roles(access: Annotated[OrgAccess, org_access("org:read")]) -> list[RoleOut]:
    """Each role with the permissions it grants: the written matrix."""
    return [
        RoleOut(roleKey=r.key, roleName=r.name, description=r.description, permissions=sorted(MATRIX[r.key]))
        for r in ROLES
    ]


@router.post(
    f"{ORG}/api-keys",
    tags=[TAG],
    summary="Create a service-account key",
    status_code=201,
    response_model=ServiceKeyOut,
    responses=responses(401, 403, 404, 422),
)
async def create_service_key(
    body: CreateServiceKey,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("api_keys:manage")],
) -> ServiceKeyOut:
    """`roleKey` defaults to viewer. `fullKey` is returned here once and never again."""
    key, raw = await keys.create_service_key(
        session, runtime, access, name=body.name, role=body.roleKey, expires_in=body.expiresIn, ip=client.ip
    )
    return _service_key_out(key, raw)


@router.delete(
    f"{ORG}/api-keys/{{keyId}}",
    tags=[TAG],
    summary="Revoke a service-account key",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404),
)
async def revoke_service_key(
    keyId: str,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, org_access("api_keys:manage")],
) -> Response:
    await keys.revoke_key(session, access, keyId, client.ip, kinds=("service",))
    return Response(status_code=NO_CONTENT)


# --- authorization checks -------------------------------------------------------------------


@router.post(
    f"{ORG}/authorization/check",
    tags=[TAG],
    summary="Check organization-level permissions",
    response_model=PermissionCheckOut,
    responses=responses(401, 404, 422),
)
async def check_permissions(
    body: PermissionCheck, access: Annotated[OrgAccess, org_access("org:read")]
) -> PermissionCheckOut:
    """Body `{"permissions": [...]}` with names from the roles endpoint; each is answered with
    `allowed` for the caller."""
    if bad := unknown(body.permissions):
        raise Unprocessable("Unknown permissions", code="unknown_permission", detail=bad)
    return PermissionCheckOut(
        role=access.role,
        results=[PermissionResult(permission=p, allowed=access.can(p)) for p in body.permissions],
    )


@router.post(
    f"{ORG}/authorization/check-entities",
    tags=[TAG],
    summary="Check permissions on specific resources",
    response_model=EntityCheckOut,
    responses=responses(401, 404, 422),
)
async def check_entity_permissions(
    body: EntityChecks, session: SessionDep, access: Annotated[OrgAccess, org_access("org:read")]
) -> EntityCheckOut:
    """Body `{"checks": [{"entityType", "entityId", "permission"}]}`. An entity that does not
    exist in this organization is never allowed."""
    if bad := unknown([c.permission for c in body.checks]):
        raise Unprocessable("Unknown permissions", code="unknown_permission", detail=bad)
    if bad_types := sorted({c.entityType for c in body.checks} - set(ENTITY_TYPES)):
        raise Unprocessable(
            f"Unknown entity types; known: {', '.join(sorted(ENTITY_TYPES))}",
            code="unknown_entity_type",
            detail=bad_types,
        )
    results = []
    for check in body.checks:
        exists = await ENTITY_TYPES[check.entityType](session, access.org.id, check.entityId)
        results.append(EntityResult(**check.model_dump(), allowed=exists and access.can(check.permission)))
    return EntityCheckOut(role=access.role, results=results)


@entity_type("organization")
async def _organization_exists(session: SessionDep, org_id: str, entity_id: str) -> bool:
    return entity_id == org_id


@entity_type("member")
async def _member_exists(session: SessionDep, org_id: str, entity_id: str) -> bool:
    return await service.role_in(session, org_id, entity_id) is not None


@entity_type("invitation")
async def _invitation_exists(session: SessionDep, org_id: str, entity_id: str) -> bool:
    invitation = await session.get(Invitation, entity_id)
    return invitation is not None and invitation.org_id == org_id


@entity_type("api_key")
async def _key_exists(session: SessionDep, org_id: str, entity_id: str) -> bool:
    key = await session.get(ApiKey, entity_id)
    return key is not None and key.org_id == org_id and key.revoked_at is None


@entity_type("server")
async def _server_exists(session: SessionDep, org_id: str, entity_id: str) -> bool:
    server = await session.get(Server, entity_id)
    return server is not None and server.org_id == org_id


# --- above the org root ---------------------------------------------------------------------


def _principal_type(principal: Principal) -> str:
    return "service_account" if principal.account is None else "user"


@router.get(
    "/api/v1/auth/me",
    tags=[TAG],
    summary="Get the current user",
    response_model=MeOut,
    responses=responses(401),
)
async def auth_me(principal: PrincipalDep, session: SessionDep) -> MeOut:
    memberships = await service.orgs_for(session, principal)
    role = next((r for o, r in memberships if o.id == principal.org_id), None)
    account = principal.account
    return MeOut(
        id=account.id if account else None,
        email=account.email if account else None,
        timezone=account.timezone if account else None,
        type=_principal_type(principal),
        organizationId=principal.org_id,
        role=role,
        organizations=[
            MembershipOut(id=o.id, name=o.name, slug=o.slug, role=r, planTier=o.plan) for o, r in memberships
        ],
    )


@router.get(
    "/api/v1/cli/config",
    tags=[TAG],
    summary="Get CLI bootstrap config (no auth)",
    response_model=CliConfigOut,
)
async def cli_config(runtime: RuntimeDep) -> CliConfigOut:
    base = runtime.settings.resolved_public_url
    return CliConfigOut(
        apiUrl=base,
        gatewayUrl=f"{base}/s",
        loginUrl=f"{base}/cli/login",
        docsUrl=f"{base}/docs",
        version=conduit.__version__,
        keyPrefix=KEY_PREFIX,
    )


@router.get(
    "/api/v1/cli/whoami",
    tags=[TAG],
    summary="Identify the caller behind a token or key",
    response_model=WhoAmIOut,
    responses=responses(401),
)
async def cli_whoami(principal: PrincipalDep, session: SessionDep) -> WhoAmIOut:
    org = await session.get(Organization, principal.org_id) if principal.org_id else None
    role = await service.effective_role(session, principal, org.id) if org else None
    return WhoAmIOut(
        type=_principal_type(principal),
        email=principal.account.email if principal.account else None,
        userId=principal.account_id,
        organizationId=org.id if org else None,
        organizationName=org.name if org else None,
        role=role,
        keyId=principal.api_key.id if principal.api_key else None,
        authMethod="api_key" if principal.api_key else "session",
    )


async def _dashboard_access(
    session: SessionDep, principal: Principal, organization_id: str | None
) -> OrgAccess:
    org_id = organization_id or principal.org_id
    if org_id is None:
        raise NotFound("The caller belongs to no organization", code="organization_not_found")
    return (await service.resolve_access(session, principal, org_id)).require("org:read")


@router.get(
    "/api/v1/dashboard/stats",
    tags=[TAG],
    summary="Get dashboard summary stats",
    response_model=DashboardStats,
    responses=responses(401, 404),
)
async def dashboard_stats(
    principal: PrincipalDep,
    session: SessionDep,
    organizationId: Annotated[str | None, Query()] = None,
) -> DashboardStats:
    """Counts for the caller's organization (or `organizationId`), from live data."""
    access = await _dashboard_access(session, principal, organizationId)
    org_id = access.org.id

    async def count(query: object) -> int:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]

    calls = await billing.usage(session, org_id, access.org.plan, "gateway_calls")
    return DashboardStats(
        organizationId=org_id,
        planTier=access.org.plan,
        members=await service.member_count(session, org_id),
        pendingInvitations=len(await invitations.list_pending(session, org_id)),
        apiKeys=await keys.active_key_count(session, org_id),
        servers=await _server_count(session, org_id),
        configs=await count(select(func.count()).where(Config.org_id == org_id)),
        projects=await count(select(func.count()).where(Project.org_id == org_id)),
        gatewayCallsToday=calls.used,
        gatewayCallsLimit=calls.limit,
        auditEventsLast24h=await count(
            select(func.count()).where(
                AuditEvent.org_id == org_id, AuditEvent.created_at > utcnow() - timedelta(days=1)
            )
        ),
    )


@router.get(
    "/api/v1/dashboard/analytics",
    tags=[TAG],
    summary="Get aggregated analytics",
    response_model=DashboardAnalytics,
    responses=responses(401, 404, 422),
)
async def dashboard_analytics(
    principal: PrincipalDep,
    session: SessionDep,
    organizationId: Annotated[str | None, Query()] = None,
    days: Annotated[int, Query(ge=1, le=90)] = 30,
) -> DashboardAnalytics:
    """Daily series over the last `days` days: gateway calls, sign-ins, and audit events."""
    access = await _dashboard_access(session, principal, organizationId)
    org_id = access.org.id
    dates = [(utcnow() - timedelta(days=offset)).strftime("%Y-%m-%d") for offset in range(days - 1, -1, -1)]
    calls = await billing.daily_series(session, org_id, "gateway_calls", days)
    since = utcnow() - timedelta(days=days)
    events = (
        await session.execute(
            select(AuditEvent.created_at, AuditEvent.action).where(
                AuditEvent.org_id == org_id, AuditEvent.created_at >= since
            )
        )
    ).all()
    audit_by_day: dict[str, int] = {}
    keys_by_day: dict[str, int] = {}
    for created, action in events:
        day = created.strftime("%Y-%m-%d")
        audit_by_day[day] = audit_by_day.get(day, 0) + 1
        if action == "api_key.created":
            keys_by_day[day] = keys_by_day.get(day, 0) + 1

    def series(values: dict[str, int]) -> list[dict[str, object]]:
        return [{"date": d, "value": values.get(d, 0)} for d in dates]

    return DashboardAnalytics.model_validate(
        {
            "organizationId": org_id,
            "days": days,
            "series": {
                "gatewayCalls": series(calls),
                "auditEvents": series(audit_by_day),
                "apiKeysCreated": series(keys_by_day),
            },
        }
    )


@router.get(
    "/api/v1/plans", tags=[TAG], summary="Plans and their limits (no auth)", response_model=list[PlanOut]
)
async def list_plans() -> list[PlanOut]:
    """`null` means unlimited."""
    return [
        PlanOut(
            key=p.key,
            name=p.name,
            limits={
                "servers": p.servers,
                "keys": p.keys,
                "members": p.members,
                "scans_per_month": p.scans_per_month,
                "gateway_calls_per_day": p.gateway_calls_per_day,
                "gateway_requests_per_minute_per_key": p.gateway_requests_per_minute,
            },
        )
        for p in billing.PLANS.values()
    ]


# --- seed 000: /api/keys and the CLI login flow ---------------------------------------------


@router.post(
    "/api/keys",
    tags=["API Keys"],
    summary="Create a new API key",
    status_code=201,
    response_model=KeyCreated,
    responses=responses(401, 403, 422),
)
async def create_key(
    body: CreateKey,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Annotated[OrgAccess, current_org_access("api_keys:create")],
) -> KeyCreated:
    """The `key` field is returned only once. The key acts with its creator's role."""
    key, raw = await keys.create_member_key(
        session, runtime, access, name=body.name, kind="org", ip=client.ip
    )
    return KeyCreated(id=key.id, name=key.name, key=raw, prefix=key.prefix, created_at=key.created_at)


@router.get(
    "/api/keys",
    tags=["API Keys"],
    summary="List all API keys for your organization",
    response_model=list[KeyOut],
    responses=responses(401, 403),
)
async def list_org_keys(
    session: SessionDep, access: Annotated[OrgAccess, current_org_access("org:read")]
) -> list[KeyOut]:
    """Admins and developers see every key of the organization; viewers their own. Only the
    prefix is shown."""
    listed = await keys.list_keys(session, access.org.id)
    if not access.can("api_keys:read"):
        listed = [k for k in listed if keys.owns(access.principal, k)]
    return [
        KeyOut(id=k.id, name=k.name, prefix=k.prefix, last_used_at=k.last_used_at, created_at=k.created_at)
        for k in listed
    ]


@router.delete(
    "/api/keys/{id}",
    tags=["API Keys"],
    summary="Revoke an API key",
    response_model=Success,
    responses=responses(401, 403, 404),
)
async def revoke_org_key(
    id: str,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, current_org_access("org:read")],
) -> Success:
    """Takes effect immediately. Your own keys, or any key with the api_keys:manage permission."""
    await keys.revoke_key(session, access, id, client.ip)
    return Success()


@router.post(
    "/api/auth/cli-token",
    tags=["CLI Authentication"],
    summary="Generate a short-lived CLI login token",
    response_model=CliTokenOut,
    responses=responses(401, 403),
)
async def cli_token(principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep) -> CliTokenOut:
    """Issued to a signed-in session (not an API key: 403); single-use; expires in 5 minutes."""
    raw, ttl = await keys.issue_cli_token(session, runtime, principal)
    return CliTokenOut(token=raw, expires_in=ttl)


@router.post(
    "/api/auth/cli-verify",
    tags=["CLI Authentication"],
    summary="Exchange a CLI token for an API key",
    response_model=CliVerified,
    responses=responses(401, 403, 422),
)
async def cli_verify(
    body: CliVerify, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> CliVerified:
    _, raw, account, org = await keys.exchange_cli_token(
        session,
        runtime,
        body.token,
        ip=client.ip,
        label=f"CLI login ({client.user_agent or 'unknown'})"[:200],
    )
    return CliVerified(api_key=raw, email=account.email, org_name=org.name)


@router.get(
    "/api/auth/cli-whoami",
    tags=["CLI Authentication"],
    summary="Identity of the current API key holder",
    response_model=CliWhoAmI,
    responses=responses(401),
)
async def cli_auth_whoami(principal: PrincipalDep, session: SessionDep) -> CliWhoAmI:
    org = await session.get(Organization, principal.org_id) if principal.org_id else None
    return CliWhoAmI(
        email=principal.account.email if principal.account else None, org_name=org.name if org else None
    )


@router.get(
    "/api/auth/cli-status",
    tags=["CLI Authentication"],
    summary="Account status and usage for the CLI",
    response_model=CliStatus,
    responses=responses(401, 404),
)
async def cli_status(
    session: SessionDep, access: Annotated[OrgAccess, current_org_access("org:read")]
) -> CliStatus:
    calls = await billing.usage(session, access.org.id, access.org.plan, "gateway_calls")
    account = access.principal.account
    return CliStatus(
        email=account.email if account else None,
        org_name=access.org.name,
        plan=access.org.plan,
        server_count=await _server_count(session, access.org.id),
        usage_today=calls.used,
        usage_limit=calls.limit,
    )
