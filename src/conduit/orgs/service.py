"""Organizations, memberships, invitations, service-account keys, and who may act in which org.

`resolve_access` is where a caller becomes an `OrgAccess` (organization + effective role);
anything outside the caller's organizations is a 404, never a 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.identity import audit
from conduit.identity.models import ApiKey
from conduit.kit.clock import utcnow
from conduit.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from conduit.kit.ids import random_base62
from conduit.orgs.models import Membership, Organization
from conduit.orgs.permissions import ROLE_KEYS, can, weaker_of

if TYPE_CHECKING:
    from conduit.identity.auth import Principal

SLUG_MAX = 48
SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "org"


async def unique_slug(session: AsyncSession, base: str) -> str:
    slug = slugify(base)
    candidate = slug
    while await session.scalar(select(Organization.id).where(Organization.slug == candidate)):
        candidate = f"{slug[: SLUG_MAX - 7]}-{random_base62(6).lower()}"
    return candidate


def validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise Unprocessable(
            "slug must be 1-48 lowercase letters, digits or dashes, not starting or ending with a dash",
            code="invalid_slug",
        )
    return slug


def validate_role(role: str) -> str:
    if role not in ROLE_KEYS:
        raise Unprocessable(f"role must be one of: {', '.join(ROLE_KEYS)}", code="invalid_role")
    return role


async def _claim_slug(session: AsyncSession, org: Organization, slug: str) -> None:
    """Give `org` a slug no other organization has; the unique index settles a race (409)."""
    validate_slug(slug)
    taken = select(Organization.id).where(Organization.slug == slug, Organization.id != org.id)
    if await session.scalar(taken):
        raise Conflict("An organization with this slug already exists", code="slug_taken")
    org.slug = slug
    try:
        await session.flush()
    except IntegrityError as exc:  # the request's transaction is rolled back with the 409
        raise Conflict("An organization with this slug already exists", code="slug_taken") from exc


async def update_org(
    session: AsyncSession,
    org: Organization,
    *,
    name: str | None,
    slug: str | None,
    public_guides_enabled: bool | None,
) -> Organization:
    if slug is not None and slug != org.slug:
        await _claim_slug(session, org, slug)
    if name is not None:
        org.name = name
    if public_guides_enabled is not None:
        org.public_guides_enabled = public_guides_enabled
    org.updated_at = utcnow()
    return org


async def create_org(
    session: AsyncSession,
    *,
    name: str,
    owner_id: str,
    slug: str | None = None,
    plan: str,
    personal: bool = False,
) -> Organization:
    if slug is not None:
        validate_slug(slug)
        if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
            raise Conflict("An organization with this slug already exists", code="slug_taken")
    org = Organization(name=name, slug=slug or await unique_slug(session, name), plan=plan, personal=personal)
    session.add(org)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("An organization with this slug already exists", code="slug_taken") from exc
    session.add(Membership(org_id=org.id, account_id=owner_id, role="admin"))
    await session.flush()
    return org


async def create_personal_org(
    session: AsyncSession, *, account_id: str, email: str, plan: str
) -> Organization:
    local_part = email.split("@", 1)[0]
    return await create_org(session, name=local_part, owner_id=account_id, plan=plan, personal=True)


async def personal_org_id(session: AsyncSession, account_id: str) -> str | None:
    """The account's personal organization, or else the first it belongs to."""
    row = (
        await session.execute(
            select(Organization.id)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.account_id == account_id)
            .order_by(Organization.personal.desc(), Membership.created_at)
            .limit(1)
        )
    ).first()
    return row[0] if row else None


async def role_in(session: AsyncSession, org_id: str, account_id: str) -> str | None:
    return await session.scalar(
        select(Membership.role).where(Membership.org_id == org_id, Membership.account_id == account_id)
    )


async def delete_orphaned_orgs(session: AsyncSession, account_id: str) -> None:
    """Delete the organizations in which `account_id` is the only member."""
    org_ids = (
        await session.scalars(select(Membership.org_id).where(Membership.account_id == account_id))
    ).all()
    for org_id in org_ids:
        members = (
            await session.scalars(select(Membership.account_id).where(Membership.org_id == org_id))
        ).all()
        if set(members) == {account_id}:
            org = await session.get(Organization, org_id)
            if org is not None:
                await session.delete(org)


# --- access ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgAccess:
    org: Organization
    role: str
    principal: Principal

    def can(self, permission: str) -> bool:
        return can(self.role, permission)

    def audit(self, session: AsyncSession, action: str, ip: str | None, **metadata: object) -> None:
        """Record an action taken in this organization, with who took it and with which key."""
        key = self.principal.api_key
        audit.record(
            session,
            action,
            account_id=self.principal.account_id,
            org_id=self.org.id,
            ip=ip,
            key_id=key.id if key else None,
            **metadata,
        )

    def require(self, permission: str) -> OrgAccess:
        if not self.can(permission):
            raise Forbidden(f"Your role ({self.role}) does not allow {permission}", code="permission_denied")
        return self


async def effective_role(session: AsyncSession, principal: Principal, org_id: str) -> str | None:
    """The caller's role in `org_id`, or None when the caller has no access there."""
    key = principal.api_key
    if key is not None:
        if key.org_id != org_id:
            return None
        if key.account_id is None:
            return key.role
        member_role = await role_in(session, org_id, key.account_id)
        if member_role is None:
            return None
        if key.kind == "project":
            # A project key exists to reach its project's servers through the gateway; it reads
            # at most what a viewer reads, whatever its owner may do.
            return weaker_of("viewer", member_role)
        return weaker_of(key.role, member_role) if key.role else member_role
    if principal.account_id is None:
        return None
    return await role_in(session, org_id, principal.account_id)


async def resolve_access(session: AsyncSession, principal: Principal, org_id: str) -> OrgAccess:
    org = await session.get(Organization, org_id)
    role = await effective_role(session, principal, org_id) if org is not None else None
    if org is None or role is None:
        raise NotFound("Organization not found", code="organization_not_found")
    return OrgAccess(org, role, principal)


async def orgs_for(session: AsyncSession, principal: Principal) -> list[tuple[Organization, str]]:
    if principal.api_key is not None:
        if principal.org_id is None:
            return []
        access = await resolve_access(session, principal, principal.org_id)
        return [(access.org, access.role)]
    rows = await session.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.account_id == principal.account_id)
        .order_by(Organization.created_at)
    )
    return [(org, role) for org, role in rows.all()]


# --- members --------------------------------------------------------------------------------


async def member_count(session: AsyncSession, org_id: str) -> int:
    return int(await session.scalar(select(func.count()).where(Membership.org_id == org_id)) or 0)


async def lock_org(session: AsyncSession, org_id: str) -> None:
    """Serialize changes that check a count first (admins, members, keys) per organization.

    On PostgreSQL this row lock makes "count, then change" atomic: without it, admins demoting
    themselves at once each see another admin left and none remains. SQLite writers are
    serialized already (BEGIN IMMEDIATE) and the dialect leaves out FOR UPDATE.
    """
    await session.execute(select(Organization.id).where(Organization.id == org_id).with_for_update())


async def _admin_count(session: AsyncSession, org_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(Membership.org_id == org_id, Membership.role == "admin")
        )
        or 0
    )


async def membership(session: AsyncSession, org_id: str, account_id: str) -> Membership:
    member = await session.scalar(
        select(Membership).where(Membership.org_id == org_id, Membership.account_id == account_id)
    )
    if member is None:
        raise NotFound("Member not found", code="member_not_found")
    return member


async def change_role(session: AsyncSession, org_id: str, account_id: str, role: str) -> Membership:
    validate_role(role)
    await lock_org(session, org_id)
    member = await membership(session, org_id, account_id)
    if member.role == "admin" and role != "admin" and await _admin_count(session, org_id) <= 1:
        raise Conflict("The last admin cannot be demoted; promote another member first", code="last_admin")
    member.role = role
    return member


async def remove_member(session: AsyncSession, org_id: str, account_id: str) -> None:
    """End a membership; the member's keys for this organization stop working with it."""
    await lock_org(session, org_id)
    member = await membership(session, org_id, account_id)
    if member.role == "admin" and await _admin_count(session, org_id) <= 1:
        raise Conflict("The last admin cannot be removed; promote another member first", code="last_admin")
    await session.delete(member)
    await session.execute(
        update(ApiKey)
        .where(ApiKey.org_id == org_id, ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def add_member(session: AsyncSession, org_id: str, account_id: str, role: str) -> Membership:
    existing = await session.scalar(
        select(Membership).where(Membership.org_id == org_id, Membership.account_id == account_id)
    )
    if existing is not None:
        return existing
    member = Membership(org_id=org_id, account_id=account_id, role=validate_role(role))
    session.add(member)
    await session.flush()
    return member


def invitation_expiry(created: datetime) -> datetime:
    return created + timedelta(days=7)
