"""The audit log: every security-relevant event, who did it, from where, and when."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.identity.models import AuditEvent
from conduit.kit.clock import utcnow
from conduit.kit.jobs import JobContext, registry


def record(
    session: AsyncSession,
    action: str,
    *,
    account_id: str | None = None,
    org_id: str | None = None,
    ip: str | None = None,
    key_id: str | None = None,
    **metadata: Any,
) -> AuditEvent:
    event = AuditEvent(
        action=action, account_id=account_id, org_id=org_id, ip=ip, actor_key_id=key_id, meta=metadata
    )
    session.add(event)
    return event


async def list_for_account(session: AsyncSession, account_id: str, limit: int) -> list[AuditEvent]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.account_id == account_id)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.seq.desc())
        .limit(limit)
    )
    return list(rows.all())


async def purge_older_than(session: AsyncSession, age: timedelta) -> int:
    result = await session.execute(delete(AuditEvent).where(AuditEvent.created_at < utcnow() - age))
    return int(getattr(result, "rowcount", 0) or 0)


@registry.handler("audit.purge", every=timedelta(hours=6), max_attempts=3)
async def _purge(ctx: JobContext) -> None:
    await purge_older_than(ctx.session, timedelta(days=ctx.runtime.settings.audit_retention_days))
