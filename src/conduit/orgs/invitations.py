"""Invitations: an emailed, single-use link that makes its recipient a member, valid for 7 days."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing import service as billing
from conduit.identity import audit
from conduit.identity.models import Account
from conduit.kit.clock import utcnow
from conduit.kit.errors import ConduitError, Conflict, Forbidden, NotFound
from conduit.kit.jobs import JobContext, enqueue, registry
from conduit.kit.mailer import build_message, deliver
from conduit.kit.runtime import Runtime
from conduit.kit.security import generate_token
from conduit.orgs import service
from conduit.orgs.models import Invitation, Membership, Organization

TTL = timedelta(days=7)
TOKEN_PREFIX = "cnd_inv_"
SEAL_CONTEXT = "invitation-link"


class Gone(ConduitError):
    status, code, message = 410, "invitation_not_pending", "This invitation is no longer valid"


def status_of(invitation: Invitation) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= utcnow():
        return "expired"
    return "pending"


def invite_url(runtime: Runtime, invitation_id: str, token: str) -> str:
    return f"{runtime.settings.resolved_public_url}/invitations/{invitation_id}?token={token}"


def _issue_link(
    session: AsyncSession, runtime: Runtime, invitation: Invitation, org: Organization, now: datetime
) -> str:
    """A fresh token (earlier links stop working), the expiry reset from `now`, and the email queued."""
    token = generate_token(TOKEN_PREFIX)
    invitation.token_hash = runtime.keyring.hash_token(token)
    invitation.expires_at = now + TTL
    invitation.last_sent_at = now
    invitation.last_send_error = None
    url = invite_url(runtime, invitation.id, token)
    enqueue(
        session,
        "orgs.send_invitation",
        {"invitation_id": invitation.id, "link": runtime.keyring.seal(url, context=SEAL_CONTEXT)},
    )
    return url


async def create(
    session: AsyncSession,
    runtime: Runtime,
    access: service.OrgAccess,
    *,
    email: str,
    role: str,
    ip: str | None,
) -> tuple[Invitation, str]:
    email = email.strip().lower()
    service.validate_role(role)
    org = access.org
    await service.lock_org(session, org.id)  # one pending invitation per email, even when sent twice at once
    member = await session.scalar(
        select(Membership.id)
        .join(Account, Account.id == Membership.account_id)
        .where(Membership.org_id == org.id, Account.email == email)
    )
    if member is not None:
        raise Conflict("This person is already a member", code="already_member")
    for existing in (
        await session.scalars(
            select(Invitation).where(Invitation.org_id == org.id, Invitation.email == email)
        )
    ).all():
        if status_of(existing) == "pending":
            raise Conflict(
                "A pending invitation for this email exists; resend it instead", code="already_invited"
            )
    now = utcnow()
    invitation = Invitation(
        org_id=org.id,
        email=email,
        role=role,
        invited_by=access.principal.account_id,
        token_hash="",
        created_at=now,
        expires_at=now + TTL,
    )
    session.add(invitation)
    await session.flush()
    url = _issue_link(session, runtime, invitation, org, now)
    access.audit(
        session,
        "invitation.created",
        ip,
        invitation_id=invitation.id,
        email=email,
        role=role,
    )
    return invitation, url


async def get(session: AsyncSession, org_id: str, invitation_id: str) -> Invitation:
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.org_id != org_id:
        raise NotFound("Invitation not found", code="invitation_not_found")
    return invitation


async def list_pending(session: AsyncSession, org_id: str) -> list[Invitation]:
    rows = await session.scalars(
        select(Invitation)
        .where(
            Invitation.org_id == org_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.created_at.desc())
    )
    return list(rows.all())


async def resend(
    session: AsyncSession, runtime: Runtime, access: service.OrgAccess, invitation_id: str, ip: str | None
) -> tuple[Invitation, str]:
    invitation = await get(session, access.org.id, invitation_id)
    if status_of(invitation) in ("accepted", "revoked"):
        raise Gone(f"The invitation was {status_of(invitation)}", code=f"invitation_{status_of(invitation)}")
    url = _issue_link(session, runtime, invitation, access.org, utcnow())
    access.audit(
        session,
        "invitation.resent",
        ip,
        invitation_id=invitation.id,
    )
    return invitation, url


async def revoke(
    session: AsyncSession, access: service.OrgAccess, invitation_id: str, reason: str | None, ip: str | None
) -> Invitation:
    invitation = await get(session, access.org.id, invitation_id)
    if status_of(invitation) != "pending":
        raise Gone(f"The invitation is {status_of(invitation)}", code=f"invitation_{status_of(invitation)}")
    invitation.revoked_at = utcnow()
    invitation.revoked_reason = reason
    access.audit(
        session,
        "invitation.revoked",
        ip,
        invitation_id=invitation.id,
        reason=reason,
    )
    return invitation


async def by_token(session: AsyncSession, runtime: Runtime, invitation_id: str, token: str) -> Invitation:
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.token_hash != runtime.keyring.hash_token(token):
        raise NotFound("Invitation not found", code="invitation_not_found")
    return invitation


async def accept(
    session: AsyncSession,
    runtime: Runtime,
    *,
    invitation_id: str,
    token: str,
    account: Account,
    ip: str | None,
) -> tuple[Invitation, Membership]:
    invitation = await by_token(session, runtime, invitation_id, token)
    state = status_of(invitation)
    if state != "pending":
        raise Gone(f"The invitation is {state}", code=f"invitation_{state}")
    if account.email != invitation.email:
        raise Forbidden(
            "This invitation was sent to another email address; sign in as that account",
            code="invitation_email_mismatch",
        )
    org = await session.get(Organization, invitation.org_id)
    assert org is not None
    await service.lock_org(session, org.id)
    billing.ensure_capacity(
        org.plan,
        "members",
        await service.member_count(session, org.id),
        upgrade_url=f"{runtime.settings.resolved_public_url}/api/v1/plans",
    )
    member = await service.add_member(session, org.id, account.id, invitation.role)
    invitation.accepted_at = utcnow()
    invitation.accepted_by = account.id
    audit.record(
        session,
        "invitation.accepted",
        account_id=account.id,
        org_id=org.id,
        ip=ip,
        invitation_id=invitation.id,
        role=invitation.role,
    )
    return invitation, member


def _is_current_link(runtime: Runtime, invitation: Invitation, url: str) -> bool:
    token = parse_qs(urlsplit(url).query).get("token", [""])[0]
    return runtime.keyring.hash_token(token) == invitation.token_hash


@registry.handler("orgs.send_invitation", max_attempts=6)
async def _send_invitation(ctx: JobContext) -> None:
    invitation = await ctx.session.get(Invitation, ctx.payload["invitation_id"])
    if invitation is None or status_of(invitation) != "pending":
        return
    url = ctx.runtime.keyring.unseal(ctx.payload["link"], context=SEAL_CONTEXT)
    if not _is_current_link(ctx.runtime, invitation, url):
        return  # resent before this job ran: the newer job mails the link that works
    org = await ctx.session.get(Organization, invitation.org_id)
    text = (
        f"You have been invited to join {org.name if org else 'an organization'} on Conduit "
        f"as {invitation.role}.\n\n"
        f"Accept the invitation (sign in or sign up with {invitation.email} first):\n\n"
        f"  {url}\n\nThe link works once and expires in 7 days.\n"
    )
    message = build_message(ctx.runtime.settings, invitation.email, "You're invited to Conduit", text)
    try:
        await deliver(ctx.runtime.settings, message, ctx.id)
    except Exception as exc:
        # Recorded for the inviter to see, even though this attempt fails and will be retried.
        invitation.last_send_error = f"{type(exc).__name__}: {exc}"[:500]
        await ctx.session.commit()
        raise
