"""Identity business rules: sign-up, sign-in with optional TOTP, sessions with rotating refresh
tokens, password reset and change, 2FA management, API tokens and account deletion.

Functions take the request's session and never commit; the caller's unit of work does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.billing import service as billing
from conduit.identity import audit, totp
from conduit.identity.auth import ClientInfo, Principal, issue_access_token
from conduit.identity.models import (
    Account,
    ApiKey,
    AuditEvent,
    AuthSession,
    BackupCode,
    LoginChallenge,
    PasswordResetToken,
    RefreshToken,
)
from conduit.identity.passwords import check_password
from conduit.kit import ratelimit
from conduit.kit.clock import utcnow
from conduit.kit.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unprocessable
from conduit.kit.jobs import JobContext, enqueue, registry
from conduit.kit.mailer import queue_email
from conduit.kit.runtime import Runtime
from conduit.kit.security import (
    generate_api_key,
    generate_token,
    hash_password,
    key_display_prefix,
    verify_password,
)
from conduit.orgs import service as orgs
from conduit.orgs.models import Organization

CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_MAX_ATTEMPTS = 5
RESET_REQUESTS_PER_HOUR = 5
REFRESH_TOKEN_PREFIX = "cnd_rt_"
TOTP_TOKEN_PREFIX = "cnd_2fa_"
RESET_TOKEN_PREFIX = "cnd_pr_"


@dataclass(frozen=True)
class SessionTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class TOTPChallenge:
    totp_token: str
    expires_in: int


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def _hash(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU; keep it off the event loop.
    return await asyncio.to_thread(hash_password, password)


async def _verify(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


async def account_by_email(session: AsyncSession, email: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.email == normalize_email(email)))


# --- sign-up ---------------------------------------------------------------------------------


async def sign_up(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    client: ClientInfo,
    instance_admin: bool = False,
    personal_org: bool = True,
    plan: str = "free",
) -> Account:
    email = normalize_email(email)
    check_password(password, email=email)
    # Hashed before the first statement: on SQLite that statement takes the write lock, which
    # must not be held through tens of milliseconds of argon2.
    password_hash = await _hash(password)
    if await account_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    account = Account(email=email, password_hash=password_hash, is_instance_admin=instance_admin)
    session.add(account)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same email won the race
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    org_id = None
    if personal_org:
        org_id = (await orgs.create_personal_org(session, account_id=account.id, email=email, plan=plan)).id
    audit.record(session, "account.created", account_id=account.id, org_id=org_id, ip=client.ip)
    return account


# --- sign-in, sessions ---------------------------------------------------------------------


def _lockout_buckets(email: str, ip: str | None) -> list[tuple[str, int]]:
    return [(f"signin:acct:{email}", 0), (f"signin:ip:{ip or 'unknown'}", 1)]


async def _check_lockout(session: AsyncSession, runtime: Runtime, email: str, ip: str | None) -> None:
    settings = runtime.settings
    window = timedelta(seconds=settings.login_failure_window_seconds)
    limits = (settings.login_max_failures_per_account, settings.login_max_failures_per_ip)
    for bucket, which in _lockout_buckets(email, ip):
        counted = await ratelimit.count_events(session, bucket, window)
        if counted.count >= limits[which]:
            raise TooManyRequests(
                "Too many failed sign-in attempts; try again later",
                code="too_many_attempts",
                retry_after=counted.retry_after(window),
            )


def _record_failure(session: AsyncSession, email: str, ip: str | None) -> None:
    for bucket, _ in _lockout_buckets(email, ip):
        ratelimit.record_event(session, bucket)


async def _start_session(
    session: AsyncSession, runtime: Runtime, account: Account, client: ClientInfo
) -> SessionTokens:
    settings = runtime.settings
    now = utcnow()
    auth_session = AuthSession(
        account_id=account.id,
        ip=client.ip,
        user_agent=client.user_agent,
        expires_at=now + timedelta(days=settings.refresh_token_ttl_days),
    )
    session.add(auth_session)
    await session.flush()
    return await _issue_tokens(session, runtime, account, auth_session)


async def _issue_tokens(
    session: AsyncSession, runtime: Runtime, account: Account, auth_session: AuthSession
) -> SessionTokens:
    settings = runtime.settings
    now = utcnow()
    raw_refresh = generate_token(REFRESH_TOKEN_PREFIX)
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=runtime.keyring.hash_token(raw_refresh),
            expires_at=min(auth_session.expires_at, now + timedelta(days=settings.refresh_token_ttl_days)),
        )
    )
    auth_session.last_used_at = now
    org_id = await orgs.personal_org_id(session, account.id)
    access = issue_access_token(
        runtime.keyring,
        account_id=account.id,
        session_id=auth_session.id,
        org_id=org_id,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return SessionTokens(access, raw_refresh, settings.access_token_ttl_seconds)


async def sign_in(
    session: AsyncSession, runtime: Runtime, *, email: str, password: str, client: ClientInfo
) -> SessionTokens | TOTPChallenge:
    email = normalize_email(email)
    # Read and verify before the request's own (writing) transaction starts: on SQLite its first
    # statement takes the write lock, which must not be held through argon2.
    async with runtime.db.session(write=False) as reader:
        await _check_lockout(reader, runtime, email, client.ip)
        found = await account_by_email(reader, email)
        password_hash = found.password_hash if found else None
    # Verified even when the account does not exist (against a dummy hash): same cost either way.
    verified = await _verify(password_hash, password)
    account = await session.get(Account, found.id) if found else None
    if not verified or account is None:
        _record_failure(session, email, client.ip)
        if account is not None:
            audit.record(
                session, "session.sign_in_failed", account_id=account.id, ip=client.ip, reason="password"
            )
        raise Unauthorized("Invalid email or password", code="invalid_credentials", keep_changes=True)
    await ratelimit.clear_events(session, f"signin:acct:{email}")
    if account.totp_enabled:
        raw = generate_token(TOTP_TOKEN_PREFIX)
        session.add(
            LoginChallenge(
                account_id=account.id,
                token_hash=runtime.keyring.hash_token(raw),
                expires_at=utcnow() + CHALLENGE_TTL,
            )
        )
        audit.record(session, "session.totp_challenge", account_id=account.id, ip=client.ip)
        return TOTPChallenge(raw, int(CHALLENGE_TTL.total_seconds()))
    tokens = await _start_session(session, runtime, account, client)
    audit.record(session, "session.created", account_id=account.id, ip=client.ip, method="password")
    return tokens


async def _totp_lockout(session: AsyncSession, runtime: Runtime, account_id: str) -> None:
    window = timedelta(seconds=runtime.settings.login_failure_window_seconds)
    counted = await ratelimit.count_events(session, f"totp:{account_id}", window)
    if counted.count >= runtime.settings.login_max_failures_per_account:
        raise TooManyRequests(
            "Too many invalid codes; try again later",
            code="too_many_attempts",
            retry_after=counted.retry_after(window),
        )


async def consume_second_factor(
    session: AsyncSession, runtime: Runtime, account: Account, code: str
) -> str | None:
    """Accept a TOTP code or an unused backup code, once. Returns which, or None."""
    if account.totp_secret is None:
        return None
    if totp.looks_like_totp(code):
        secret = runtime.keyring.unseal(account.totp_secret, context=f"totp:{account.id}")
        step = totp.matching_step(secret, code, utcnow(), after_step=account.totp_last_step)
        if step is None:
            return None
        # Conditional update: two requests racing with the same code cannot both win.
        result = await session.execute(
            update(Account)
            .where(Account.id == account.id)
            .where((Account.totp_last_step.is_(None)) | (Account.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        account.totp_last_step = step
        return "totp"
    code_hash = runtime.keyring.hash_token(totp.normalize_backup_code(code))
    result = await session.execute(
        update(BackupCode)
        .where(
            BackupCode.account_id == account.id,
            BackupCode.code_hash == code_hash,
            BackupCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return "backup_code" if result.rowcount == 1 else None  # type: ignore[attr-defined]


async def _require_second_factor(
    session: AsyncSession, runtime: Runtime, account: Account, code: str, client: ClientInfo, purpose: str
) -> str:
    await _totp_lockout(session, runtime, account.id)
    method = await consume_second_factor(session, runtime, account, code)
    if method is None:
        ratelimit.record_event(session, f"totp:{account.id}")
        audit.record(session, "2fa.code_rejected", account_id=account.id, ip=client.ip, purpose=purpose)
        raise Unauthorized("Invalid code", code="invalid_totp_code", keep_changes=True)
    # As with passwords: a valid code clears earlier typos, so they do not add up to a lockout.
    await ratelimit.clear_events(session, f"totp:{account.id}")
    return method


async def complete_totp_sign_in(
    session: AsyncSession, runtime: Runtime, *, totp_token: str, code: str, client: ClientInfo
) -> SessionTokens:
    challenge = await session.scalar(
        select(LoginChallenge).where(LoginChallenge.token_hash == runtime.keyring.hash_token(totp_token))
    )
    now = utcnow()
    if (
        challenge is None
        or challenge.used_at is not None
        or challenge.expires_at <= now
        or challenge.attempts >= CHALLENGE_MAX_ATTEMPTS
    ):
        raise Unauthorized("Invalid or expired challenge; sign in again", code="invalid_totp_token")
    account = await session.get(Account, challenge.account_id)
    if account is None or not account.totp_enabled:
        raise Unauthorized("Invalid or expired challenge; sign in again", code="invalid_totp_token")
    challenge.attempts += 1
    method = await _require_second_factor(session, runtime, account, code, client, "sign_in")
    challenge.used_at = now
    tokens = await _start_session(session, runtime, account, client)
    audit.record(session, "session.created", account_id=account.id, ip=client.ip, method=method)
    if method == "backup_code":
        audit.record(session, "2fa.backup_code_used", account_id=account.id, ip=client.ip)
    return tokens


async def refresh_session(
    session: AsyncSession, runtime: Runtime, *, refresh_token: str, client: ClientInfo
) -> SessionTokens:
    invalid = Unauthorized("Invalid or expired refresh token", code="invalid_refresh_token")
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == runtime.keyring.hash_token(refresh_token))
    )
    now = utcnow()
    if token is None or token.expires_at <= now:
        raise invalid
    auth_session = await session.get(AuthSession, token.session_id)
    if auth_session is None or auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise invalid
    account = await session.get(Account, auth_session.account_id)
    if account is None:
        raise invalid
    spent = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        used_at = await session.scalar(select(RefreshToken.used_at).where(RefreshToken.id == token.id))
        grace = timedelta(seconds=runtime.settings.refresh_reuse_grace_seconds)
        if used_at is None or now - used_at > grace:
            auth_session.revoked_at = now
            auth_session.revoked_reason = "refresh_token_reuse"
            audit.record(
                session,
                "session.refresh_reuse_detected",
                account_id=account.id,
                ip=client.ip,
                session_id=auth_session.id,
            )
            raise Unauthorized(
                "Refresh token was already used; the session has been revoked",
                code="refresh_token_reused",
                keep_changes=True,
            )
    return await _issue_tokens(session, runtime, account, auth_session)


async def revoke_sessions(
    session: AsyncSession, account_id: str, *, reason: str, except_session_id: str | None = None
) -> None:
    statement = (
        update(AuthSession)
        .where(AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    if except_session_id is not None:
        statement = statement.where(AuthSession.id != except_session_id)
    await session.execute(statement)


async def sign_out(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    refresh_token: str | None,
    client: ClientInfo,
) -> None:
    now = utcnow()
    session_ids = {principal.session_id} if principal.session_id else set()
    if refresh_token:
        token = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == runtime.keyring.hash_token(refresh_token))
        )
        if token is not None:
            owner = await session.scalar(
                select(AuthSession.account_id).where(AuthSession.id == token.session_id)
            )
            if owner == principal.account_id:
                session_ids.add(token.session_id)
    if session_ids:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id.in_(session_ids), AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="sign_out")
        )
    audit.record(
        session,
        "session.signed_out",
        account_id=principal.account_id,
        ip=client.ip,
        key_id=principal.api_key.id if principal.api_key else None,
    )


# --- passwords -----------------------------------------------------------------------------


async def request_password_reset(
    session: AsyncSession, runtime: Runtime, *, email: str, client: ClientInfo
) -> None:
    """Queue the reset; the caller answers 202. Known and unknown addresses cost the request the
    same (one job row), so neither the answer nor its timing tells whether an account exists."""
    enqueue(session, "identity.password_reset", {"email": normalize_email(email), "ip": client.ip})


@registry.handler("identity.password_reset", max_attempts=5)
async def _send_password_reset(ctx: JobContext) -> None:
    session, runtime = ctx.session, ctx.runtime
    # Locked: reset jobs for one account run one at a time, so the hourly count holds (PostgreSQL).
    account = await session.scalar(
        select(Account).where(Account.email == normalize_email(ctx.payload["email"])).with_for_update()
    )
    if account is None:
        return
    recent = await ratelimit.count_events(session, f"reset:{account.id}", timedelta(hours=1))
    if recent.count >= RESET_REQUESTS_PER_HOUR:
        return
    ratelimit.record_event(session, f"reset:{account.id}")
    raw = generate_token(RESET_TOKEN_PREFIX)
    ttl = timedelta(minutes=runtime.settings.password_reset_ttl_minutes)
    session.add(
        PasswordResetToken(
            account_id=account.id, token_hash=runtime.keyring.hash_token(raw), expires_at=utcnow() + ttl
        )
    )
    base = runtime.settings.resolved_public_url
    minutes = int(ttl.total_seconds() // 60)
    queue_email(
        session,
        runtime.keyring,
        to=account.email,
        subject="Reset your Conduit password",
        text=(
            "Someone asked to reset the password of your Conduit account.\n\n"
            f"Reset token: {raw}\n\n"
            "Set a new password with:\n\n"
            f"  curl -X PUT {base}/api/v1/accounts/me/password-reset \\\n"
            "    -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"token": "{raw}", "new_password": "<your new password>"}}\'\n\n'
            f"The token works once and expires in {minutes} minutes. "
            "If you did not ask for this, ignore this message.\n"
        ),
    )
    audit.record(session, "password.reset_requested", account_id=account.id, ip=ctx.payload.get("ip"))


async def _spend_password_proofs(session: AsyncSession, account_id: str) -> None:
    """Once the password is set, what proved the old one is spent: a reset email still sitting in
    an inbox, and a 2FA sign-in that got past the old password and waits for its code."""
    now = utcnow()
    await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.account_id == account_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.account_id == account_id, LoginChallenge.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


async def revoke_account_keys(session: AsyncSession, account_id: str) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def confirm_password_reset(
    session: AsyncSession, runtime: Runtime, *, token: str, new_password: str, client: ClientInfo
) -> None:
    reset = await session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == runtime.keyring.hash_token(token))
    )
    now = utcnow()
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        raise Unauthorized("Reset token is invalid or has expired", code="invalid_reset_token")
    account = await session.get(Account, reset.account_id)
    if account is None:
        raise Unauthorized("Reset token is invalid or has expired", code="invalid_reset_token")
    check_password(new_password, email=account.email)
    claimed = await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == reset.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("Reset token is invalid or has expired", code="invalid_reset_token")
    account.password_hash = await _hash(new_password)
    account.password_changed_at = now
    await _spend_password_proofs(session, account.id)
    await revoke_sessions(session, account.id, reason="password_reset")
    await revoke_account_keys(session, account.id)
    await ratelimit.clear_events(session, f"signin:acct:{account.email}")
    audit.record(session, "password.reset", account_id=account.id, ip=client.ip)


async def change_password(
    session: AsyncSession,
    principal: Principal,
    *,
    current_password: str,
    new_password: str,
    revoke_api_tokens: bool,
    client: ClientInfo,
) -> None:
    account = principal.account
    assert account is not None
    if not await _verify(account.password_hash, current_password):
        audit.record(session, "password.change_failed", account_id=account.id, ip=client.ip)
        raise Unauthorized("Current password is wrong", code="invalid_password", keep_changes=True)
    check_password(new_password, email=account.email)
    account.password_hash = await _hash(new_password)
    account.password_changed_at = utcnow()
    await _spend_password_proofs(session, account.id)
    await revoke_sessions(
        session, account.id, reason="password_changed", except_session_id=principal.session_id
    )
    if revoke_api_tokens:
        await revoke_account_keys(session, account.id)
    audit.record(
        session, "password.changed", account_id=account.id, ip=client.ip, api_tokens_revoked=revoke_api_tokens
    )


# --- account -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


async def update_timezone(
    session: AsyncSession, principal: Principal, timezone: str, client: ClientInfo
) -> None:
    account = principal.account
    assert account is not None
    if timezone not in _timezones():
        raise Unprocessable(
            "Unknown timezone: use an IANA name such as Europe/Paris", code="invalid_timezone"
        )
    account.timezone = timezone
    account.updated_at = utcnow()
    audit.record(session, "account.timezone_changed", account_id=account.id, ip=client.ip, timezone=timezone)


async def delete_account(
    session: AsyncSession, principal: Principal, *, confirm: bool, password: str, client: ClientInfo
) -> None:
    account = principal.account
    assert account is not None
    if confirm is not True:
        raise Unprocessable("Set confirm to true to delete the account", code="confirmation_required")
    if not await _verify(account.password_hash, password):
        audit.record(session, "account.delete_failed", account_id=account.id, ip=client.ip)
        raise Unauthorized("Password is wrong", code="invalid_password", keep_changes=True)
    account_id = account.id
    await orgs.delete_orphaned_orgs(session, account_id)
    await session.execute(delete(AuditEvent).where(AuditEvent.account_id == account_id))
    await session.delete(account)
    await session.flush()
    # Kept without the account's identity: the fact that a deletion happened, and when.
    audit.record(session, "account.deleted", ip=None, deleted_account_id=account_id)


# --- two-factor authentication -------------------------------------------------------------


async def setup_totp(
    session: AsyncSession, runtime: Runtime, principal: Principal, client: ClientInfo
) -> tuple[str, str, str]:
    account = principal.account
    assert account is not None
    if account.totp_enabled:
        raise Conflict("Two-factor authentication is already enabled", code="totp_already_enabled")
    secret = totp.generate_secret()
    account.totp_secret = runtime.keyring.seal(secret, context=f"totp:{account.id}")
    account.totp_last_step = None
    url = totp.otpauth_url(secret, account.email)
    audit.record(session, "2fa.setup_started", account_id=account.id, ip=client.ip)
    return secret, url, totp.qr_png_base64(url)


async def _replace_backup_codes(session: AsyncSession, runtime: Runtime, account_id: str) -> list[str]:
    await session.execute(delete(BackupCode).where(BackupCode.account_id == account_id))
    codes = totp.generate_backup_codes()
    for code in codes:
        session.add(
            BackupCode(
                account_id=account_id, code_hash=runtime.keyring.hash_token(totp.normalize_backup_code(code))
            )
        )
    return codes


async def enable_totp(
    session: AsyncSession, runtime: Runtime, principal: Principal, code: str, client: ClientInfo
) -> list[str]:
    account = principal.account
    assert account is not None
    if account.totp_enabled:
        raise Conflict("Two-factor authentication is already enabled", code="totp_already_enabled")
    if account.totp_secret is None:
        raise Unprocessable("Set up two-factor authentication first", code="totp_not_set_up")
    await _totp_lockout(session, runtime, account.id)
    if (
        not totp.looks_like_totp(code)
        or await consume_second_factor(session, runtime, account, code) != "totp"
    ):
        ratelimit.record_event(session, f"totp:{account.id}")
        raise Unauthorized("Invalid code", code="invalid_totp_code", keep_changes=True)
    account.totp_enabled = True
    codes = await _replace_backup_codes(session, runtime, account.id)
    audit.record(session, "2fa.enabled", account_id=account.id, ip=client.ip)
    return codes


def _require_enabled(account: Account) -> None:
    if not account.totp_enabled:
        raise Unprocessable("Two-factor authentication is not enabled", code="totp_not_enabled")


async def disable_totp(
    session: AsyncSession, runtime: Runtime, principal: Principal, code: str, client: ClientInfo
) -> None:
    account = principal.account
    assert account is not None
    _require_enabled(account)
    await _require_second_factor(session, runtime, account, code, client, "disable")
    account.totp_enabled = False
    account.totp_secret = None
    account.totp_last_step = None
    await session.execute(delete(BackupCode).where(BackupCode.account_id == account.id))
    audit.record(session, "2fa.disabled", account_id=account.id, ip=client.ip)


async def regenerate_backup_codes(
    session: AsyncSession, runtime: Runtime, principal: Principal, code: str, client: ClientInfo
) -> list[str]:
    account = principal.account
    assert account is not None
    _require_enabled(account)
    await _require_second_factor(session, runtime, account, code, client, "regenerate_backup_codes")
    codes = await _replace_backup_codes(session, runtime, account.id)
    audit.record(session, "2fa.backup_codes_regenerated", account_id=account.id, ip=client.ip)
    return codes


# --- API keys ------------------------------------------------------------------------------


def normalize_allowed_ips(entries: list[str] | None) -> list[str]:
    normalized, invalid = [], []
    for entry in entries or []:
        try:
            normalized.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            invalid.append(entry)
    if invalid:
        raise Unprocessable(
            "allowed_ips must be IP addresses or CIDR ranges", code="invalid_allowed_ips", detail=invalid
        )
    return list(dict.fromkeys(normalized))


async def create_api_key(
    session: AsyncSession,
    runtime: Runtime,
    *,
    org_id: str,
    kind: str,
    name: str,
    account_id: str | None = None,
    role: str | None = None,
    project_id: str | None = None,
    allowed_ips: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create any kind of key within the plan's key limit. Returns the row and the full key,
    which is never shown again."""
    await _ensure_key_capacity(session, runtime, org_id)
    raw = generate_api_key()
    key = ApiKey(
        org_id=org_id,
        account_id=account_id,
        kind=kind,
        role=role,
        project_id=project_id,
        name=name,
        prefix=key_display_prefix(raw),
        key_hash=runtime.keyring.hash_token(raw),
        allowed_ips=allowed_ips or None,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, raw


async def _ensure_key_capacity(session: AsyncSession, runtime: Runtime, org_id: str) -> None:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found", code="organization_not_found")
    # Count under the organization's lock: concurrent creations cannot both take the last slot.
    await orgs.lock_org(session, org_id)
    active = await session.scalar(
        select(func.count()).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
    )
    billing.ensure_capacity(
        org.plan, "keys", int(active or 0), upgrade_url=f"{runtime.settings.resolved_public_url}/api/v1/plans"
    )


def ensure_can_mint_keys(principal: Principal) -> None:
    """A key limited by IP or expiry must not be able to create a key without those limits."""
    key = principal.api_key
    if key is not None and (key.allowed_ips or key.expires_at is not None):
        raise Forbidden(
            "A key limited by IP address or expiry cannot create keys; sign in or use an unrestricted key",
            code="restricted_key",
        )


async def create_account_token(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    name: str,
    allowed_ips: list[str] | None,
    expires_in: int | None,
    client: ClientInfo,
) -> tuple[ApiKey, str]:
    account = principal.account
    assert account is not None
    if not name.strip():
        raise Unprocessable("The token name must not be blank", code="invalid_name")
    ensure_can_mint_keys(principal)
    org_id = principal.org_id or await orgs.personal_org_id(session, account.id)
    if org_id is None:
        raise Unprocessable("The account belongs to no organization", code="no_organization")
    key, raw = await create_api_key(
        session,
        runtime,
        org_id=org_id,
        kind="account",
        name=name.strip(),
        account_id=account.id,
        allowed_ips=normalize_allowed_ips(allowed_ips),
        expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
    )
    audit.record(
        session,
        "api_token.created",
        account_id=account.id,
        org_id=org_id,
        ip=client.ip,
        token_id=key.id,
        name=key.name,
    )
    return key, raw


async def list_account_tokens(session: AsyncSession, account_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.account_id == account_id, ApiKey.kind == "account", ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc())
    )
    return list(rows.all())


async def revoke_account_token(
    session: AsyncSession, principal: Principal, token_id: str, client: ClientInfo
) -> None:
    key = await session.get(ApiKey, token_id)
    if (
        key is None
        or key.account_id != principal.account_id
        or key.kind != "account"
        or key.revoked_at is not None
    ):
        raise NotFound("API token not found", code="api_token_not_found")
    key.revoked_at = utcnow()
    audit.record(
        session,
        "api_token.revoked",
        account_id=principal.account_id,
        org_id=key.org_id,
        ip=client.ip,
        token_id=key.id,
        name=key.name,
    )
