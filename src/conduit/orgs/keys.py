"""Keys made through the organization APIs: service-account keys (seed 003), member keys
(seed 000 `/api/keys`), and the CLI login exchange (seed 000 `/api/auth/cli-*`).

All are rows of the one `ApiKey` table (identity.models); this module decides who may make,
see and revoke which.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.identity import audit
from conduit.identity import service as identity
from conduit.identity.auth import Principal
from conduit.identity.models import Account, ApiKey
from conduit.kit.clock import utcnow
from conduit.kit.errors import Forbidden, NotFound, Unauthorized
from conduit.kit.runtime import Runtime
from conduit.kit.security import generate_token
from conduit.orgs import service
from conduit.orgs.models import CliToken, Organization

CLI_TOKEN_TTL = timedelta(minutes=5)
CLI_TOKEN_PREFIX = "cnd_cli_"


def upgrade_url(runtime: Runtime) -> str:
    return f"{runtime.settings.resolved_public_url}/api/v1/plans"


async def active_key_count(session: AsyncSession, org_id: str) -> int:
    return int(
        await session.scalar(select(func.count()).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None)))
        or 0
    )


async def create_service_key(
    session: AsyncSession,
    runtime: Runtime,
    access: service.OrgAccess,
    *,
    name: str,
    role: str,
    expires_in: int | None,
    ip: str | None,
) -> tuple[ApiKey, str]:
    service.validate_role(role)
    identity.ensure_can_mint_keys(access.principal)
    key, raw = await identity.create_api_key(
        session,
        runtime,
        org_id=access.org.id,
        kind="service",
        name=name.strip(),
        role=role,
        expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
    )
    access.audit(
        session,
        "api_key.created",
        ip,
        api_key_id=key.id,
        name=key.name,
        kind="service",
        role=role,
    )
    return key, raw


def owns(principal: Principal, key: ApiKey) -> bool:
    """A member owns the keys made for their account; a service key owns only itself."""
    if principal.account_id is not None:
        return key.account_id == principal.account_id
    return principal.api_key is not None and principal.api_key.id == key.id


async def list_keys(session: AsyncSession, org_id: str, kinds: tuple[str, ...] | None = None) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
    if kinds:
        query = query.where(ApiKey.kind.in_(kinds))
    return list((await session.scalars(query.order_by(ApiKey.created_at.desc()))).all())


async def revoke_key(
    session: AsyncSession,
    access: service.OrgAccess,
    key_id: str,
    ip: str | None,
    *,
    kinds: tuple[str, ...] | None = None,
) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if (
        key is None
        or key.org_id != access.org.id
        or key.revoked_at is not None
        or (kinds and key.kind not in kinds)
    ):
        raise NotFound("API key not found", code="api_key_not_found")
    if not owns(access.principal, key):
        access.require("api_keys:manage")
    key.revoked_at = utcnow()
    access.audit(
        session,
        "api_key.revoked",
        ip,
        api_key_id=key.id,
        name=key.name,
        kind=key.kind,
    )
    return key


async def create_member_key(
    session: AsyncSession,
    runtime: Runtime,
    access: service.OrgAccess,
    *,
    name: str,
    kind: str,
    ip: str | None,
) -> tuple[ApiKey, str]:
    """A key owned by the calling member; it never outranks the member (role follows membership)."""
    account_id = access.principal.account_id
    if account_id is None:
        raise Forbidden(
            "Service keys cannot create keys here; use the organization API", code="account_required"
        )
    identity.ensure_can_mint_keys(access.principal)
    key, raw = await identity.create_api_key(
        session, runtime, org_id=access.org.id, kind=kind, name=name.strip(), account_id=account_id
    )
    access.audit(session, "api_key.created", ip, api_key_id=key.id, name=key.name, kind=kind)
    return key, raw


async def issue_cli_token(session: AsyncSession, runtime: Runtime, principal: Principal) -> tuple[str, int]:
    if principal.account_id is None or principal.org_id is None:
        raise Unauthorized("Sign in as a user to log the CLI in", code="account_required")
    if principal.session_id is None:
        # Otherwise a key limited by IP or expiry could mint an unlimited one through the CLI flow.
        raise Forbidden(
            "CLI login tokens are issued to a signed-in session, not to an API key", code="session_required"
        )
    raw = generate_token(CLI_TOKEN_PREFIX)
    session.add(
        CliToken(
            account_id=principal.account_id,
            org_id=principal.org_id,
            token_hash=runtime.keyring.hash_token(raw),
            expires_at=utcnow() + CLI_TOKEN_TTL,
        )
    )
    return raw, int(CLI_TOKEN_TTL.total_seconds())


async def exchange_cli_token(
    session: AsyncSession, runtime: Runtime, raw: str, *, ip: str | None, label: str | None = None
) -> tuple[ApiKey, str, Account, Organization]:
    invalid = Unauthorized("CLI token is invalid, used or expired", code="invalid_cli_token")
    token = await session.scalar(
        select(CliToken).where(CliToken.token_hash == runtime.keyring.hash_token(raw))
    )
    now = utcnow()
    if token is None or token.used_at is not None or token.expires_at <= now:
        raise invalid
    claimed = await session.execute(
        update(CliToken)
        .where(CliToken.id == token.id, CliToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise invalid
    account = await session.get(Account, token.account_id)
    org = await session.get(Organization, token.org_id)
    if account is None or org is None or await service.role_in(session, org.id, account.id) is None:
        raise invalid
    key, key_raw = await identity.create_api_key(
        session, runtime, org_id=org.id, kind="cli", name=label or "CLI login", account_id=account.id
    )
    audit.record(
        session,
        "api_key.created",
        account_id=account.id,
        org_id=org.id,
        ip=ip,
        api_key_id=key.id,
        name=key.name,
        kind="cli",
    )
    return key, key_raw, account, org
