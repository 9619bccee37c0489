"""Who is calling: access tokens (JWT) and API keys, resolved into one `Principal`.

Both `Authorization: Bearer <token>` and `X-API-Key: <key>` are accepted. An access token is
honoured only while its session is live, so sign-out and revocation take effect at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from conduit.identity.models import Account, ApiKey, AuthSession
from conduit.kit.clock import utcnow
from conduit.kit.db import SAFE_METHODS, SessionDep, get_database
from conduit.kit.errors import Forbidden, NotFound, Unauthorized
from conduit.kit.runtime import Runtime
from conduit.kit.security import KEY_PREFIX, Keyring, looks_like_api_key
from conduit.orgs.service import personal_org_id, role_in

ACCESS_TOKEN_TYPE = "access"
ISSUER = "conduit"
ORG_HEADER = "x-organization-id"
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    account: Account | None
    org_id: str | None
    api_key: ApiKey | None = None
    session_id: str | None = None

    @property
    def account_id(self) -> str | None:
        return self.account.id if self.account else None


@dataclass(frozen=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None


def client_info(request: Request) -> ClientInfo:
    ip = request.client.host if request.client else None
    return ClientInfo(ip=ip, user_agent=(request.headers.get("user-agent") or "")[:512] or None)


ClientDep = Annotated[ClientInfo, Depends(client_info)]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def issue_access_token(
    keyring: Keyring, *, account_id: str, session_id: str, org_id: str | None, ttl_seconds: int
) -> str:
    now = utcnow()
    claims = {
        "iss": ISSUER,
        "sub": account_id,
        "sid": session_id,
        "org": org_id,
        "typ": ACCESS_TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, keyring.derive("jwt-access"), algorithm="HS256")


def decode_access_token(keyring: Keyring, token: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            keyring.derive("jwt-access"),
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "sid", "typ"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    # Time is checked against our clock, not PyJWT's wall clock, so tests can move time: with
    # PyJWT's `iat` check, a token issued after the clock moved forward was "not yet valid".
    if claims.get("typ") != ACCESS_TOKEN_TYPE or claims["exp"] <= utcnow().timestamp():
        return None
    return claims


def presented_credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


def ip_allowed(allowed: list[str] | None, ip: str | None) -> bool:
    if not allowed:
        return True
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in allowed)


async def _touch_key(session: AsyncSession, runtime: Runtime, key: ApiKey, *, in_request_tx: bool) -> None:
    """Record use at most once a minute.

    A writing request records it in its own transaction. A reading request uses a short
    transaction of its own: on SQLite its read snapshot cannot be upgraded to a write safely.
    """
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    statement = update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
    if in_request_tx:
        await session.execute(statement)
    else:
        async with runtime.db.session() as own:
            await own.execute(statement)
    # Not a plain assignment: that would mark the row dirty, and the reading request would flush a
    # second UPDATE from its stale snapshot at commit (on SQLite: "database is locked", a 500).
    set_committed_value(key, "last_used_at", now)


async def authenticate_api_key(
    session: AsyncSession, runtime: Runtime, raw_key: str, ip: str | None, *, writing: bool
) -> Principal:
    if not looks_like_api_key(raw_key):
        raise Unauthorized("Invalid API key", code="invalid_api_key")
    key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == runtime.keyring.hash_token(raw_key)))
    now = utcnow()
    if key is None or key.revoked_at is not None or key.disabled_at is not None:
        raise Unauthorized("Invalid API key", code="invalid_api_key")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("API key has expired", code="api_key_expired")
    if not ip_allowed(key.allowed_ips, ip):
        raise Forbidden("This API key may not be used from this address", code="ip_not_allowed")
    account = await session.get(Account, key.account_id) if key.account_id else None
    await _touch_key(session, runtime, key, in_request_tx=writing)
    return Principal(account=account, org_id=key.org_id, api_key=key)


async def authenticate_access_token(session: AsyncSession, runtime: Runtime, token: str) -> Principal:
    claims = decode_access_token(runtime.keyring, token)
    if claims is None:
        raise Unauthorized("Invalid or expired access token", code="invalid_token")
    auth_session = await session.get(AuthSession, claims["sid"])
    if (
        auth_session is None
        or auth_session.revoked_at is not None
        or auth_session.account_id != claims["sub"]
    ):
        raise Unauthorized("Session has ended; sign in again", code="session_revoked")
    account = await session.get(Account, claims["sub"])
    if account is None:
        raise Unauthorized("Invalid or expired access token", code="invalid_token")
    org_id = claims.get("org") or await personal_org_id(session, account.id)
    return Principal(account=account, org_id=org_id, session_id=auth_session.id)


async def authenticate(request: Request, session: AsyncSession) -> Principal | None:
    credential = presented_credential(request)
    if credential is None:
        return None
    runtime = runtime_of(request)
    if credential.startswith(KEY_PREFIX):
        writing = request.method not in SAFE_METHODS
        principal = await authenticate_api_key(
            session, runtime, credential, client_info(request).ip, writing=writing
        )
    else:
        principal = await authenticate_access_token(session, runtime, credential)
    return await _select_organization(session, principal, request.headers.get(ORG_HEADER))


async def _select_organization(
    session: AsyncSession, principal: Principal, requested: str | None
) -> Principal:
    """`X-Organization-Id` picks which of a signed-in user's organizations the endpoints without
    an `{orgId}` in their path (seeds 000 and 001, dashboards, CLI login) act on. A key is bound to
    its organization: naming another one is a 404."""
    if not requested or requested == principal.org_id:
        return principal
    is_session = principal.api_key is None and principal.account_id is not None
    if is_session and await role_in(session, requested, principal.account_id or "") is not None:
        return replace(principal, org_id=requested)
    raise NotFound("Organization not found", code="organization_not_found")


async def require_principal(request: Request, session: SessionDep) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = await authenticate(request, session)
    if principal is None:
        raise Unauthorized("Authentication required: send a Bearer token or an X-API-Key header")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


async def require_account(principal: PrincipalDep) -> Principal:
    if principal.account is None:
        raise Forbidden("This endpoint needs a user account, not a service key", code="account_required")
    return principal


AccountPrincipalDep = Annotated[Principal, Depends(require_account)]

__all__ = [
    "AccountPrincipalDep",
    "ClientDep",
    "Principal",
    "PrincipalDep",
    "RuntimeDep",
    "get_database",
]
