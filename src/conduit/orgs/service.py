"""Organizations and memberships: creating them, finding a caller's organization."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.kit.ids import random_base62
from conduit.orgs.models import Membership, Organization

SLUG_MAX = 48


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "org"


async def unique_slug(session: AsyncSession, base: str) -> str:
    slug = slugify(base)
    candidate = slug
    while await session.scalar(select(Organization.id).where(Organization.slug == candidate)):
        candidate = f"{slug[: SLUG_MAX - 7]}-{random_base62(6).lower()}"
    return candidate


async def create_org(
    session: AsyncSession,
    *,
    name: str,
    owner_id: str,
    slug: str | None = None,
    plan: str = "free",
    personal: bool = False,
) -> Organization:
    org = Organization(name=name, slug=slug or await unique_slug(session, name), plan=plan, personal=personal)
    session.add(org)
    await session.flush()
    session.add(Membership(org_id=org.id, account_id=owner_id, role="admin"))
    await session.flush()
    return org


async def create_personal_org(session: AsyncSession, *, account_id: str, email: str) -> Organization:
    local_part = email.split("@", 1)[0]
    return await create_org(session, name=local_part, owner_id=account_id, personal=True)


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
