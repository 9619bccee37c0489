"""HTTP endpoints of seed 002's Sessions, Account, 2FA and API Tokens groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from conduit.identity import audit, service
from conduit.identity.auth import AccountPrincipalDep, ClientDep, PrincipalDep, RuntimeDep
from conduit.identity.models import ApiKey
from conduit.identity.schemas import (
    AccountResponse,
    APITokenResponse,
    AuditLogEntry,
    BackupCodesResponse,
    ChangePasswordRequest,
    CodeRequest,
    CreateAPITokenRequest,
    DeleteAccountRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    SessionResponse,
    SetupTOTPResponse,
    SignInRequest,
    SignOutRequest,
    SignUpRequest,
    TimezoneRequest,
    TOTPChallengeResponse,
    TOTPSessionRequest,
)
from conduit.kit.db import SessionDep
from conduit.kit.errors import responses

router = APIRouter(prefix="/api/v1")
NO_CONTENT = status.HTTP_204_NO_CONTENT


def _session_response(tokens: service.SessionTokens) -> SessionResponse:
    return SessionResponse(
        access_token=tokens.access_token, refresh_token=tokens.refresh_token, expires_in=tokens.expires_in
    )


def _token_response(key: ApiKey, raw: str | None = None) -> APITokenResponse:
    return APITokenResponse(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        token=raw,
        allowed_ips=key.allowed_ips or [],
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        created_at=key.created_at,
    )


# --- Sessions ------------------------------------------------------------------------------


@router.post(
    "/sessions",
    tags=["Sessions"],
    operation_id="createSession",
    summary="Sign in",
    response_model=SessionResponse | TOTPChallengeResponse,
    responses=responses(401, 422, 429),
)
async def create_session(
    body: SignInRequest, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> SessionResponse | TOTPChallengeResponse:
    """Either a full session (access_token + refresh_token) or, when the account has 2FA
    enabled, a TOTP challenge to complete at `POST /api/v1/sessions/2fa`."""
    result = await service.sign_in(session, runtime, email=body.email, password=body.password, client=client)
    if isinstance(result, service.TOTPChallenge):
        return TOTPChallengeResponse(totp_token=result.totp_token, expires_in=result.expires_in)
    return _session_response(result)


@router.delete(
    "/sessions",
    tags=["Sessions"],
    operation_id="deleteSession",
    summary="Sign out",
    status_code=NO_CONTENT,
    responses=responses(401),
)
async def delete_session(
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    body: Annotated[SignOutRequest | None, Body()] = None,
) -> Response:
    await service.sign_out(
        session, runtime, principal, refresh_token=body.refresh_token if body else None, client=client
    )
    return Response(status_code=NO_CONTENT)


@router.post(
    "/sessions/2fa",
    tags=["Sessions"],
    operation_id="completeTOTPSession",
    summary="Complete sign-in with TOTP code",
    response_model=SessionResponse,
    responses=responses(401, 422, 429),
)
async def complete_totp_session(
    body: TOTPSessionRequest, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> SessionResponse:
    """Accepts a current TOTP code or one of the account's unused backup codes."""
    tokens = await service.complete_totp_sign_in(
        session, runtime, totp_token=body.totp_token, code=body.code, client=client
    )
    return _session_response(tokens)


@router.post(
    "/sessions/refresh",
    tags=["Sessions"],
    operation_id="refreshSession",
    summary="Refresh access token",
    response_model=SessionResponse,
    responses=responses(401, 422),
)
async def refresh_session(
    body: RefreshRequest, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> SessionResponse:
    """Rotates the refresh token: the one sent is spent and a new one is returned. Presenting a
    spent refresh token again revokes the whole session."""
    tokens = await service.refresh_session(session, runtime, refresh_token=body.refresh_token, client=client)
    return _session_response(tokens)


# --- Account -------------------------------------------------------------------------------


@router.post(
    "/accounts",
    tags=["Account"],
    operation_id="createAccount",
    summary="Sign up",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountResponse,
    responses=responses(409, 422),
)
async def create_account(
    body: SignUpRequest, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> AccountResponse:
    """Creates the account and its personal organization (on the default plan)."""
    account = await service.sign_up(
        session,
        email=body.email,
        password=body.password,
        client=client,
        plan=runtime.settings.default_plan,
    )
    return AccountResponse.model_validate(account)


@router.get(
    "/accounts/me",
    tags=["Account"],
    operation_id="getAccount",
    summary="Get current account",
    response_model=AccountResponse,
    responses=responses(401, 403),
)
async def get_account(principal: AccountPrincipalDep) -> AccountResponse:
    return AccountResponse.model_validate(principal.account)


@router.delete(
    "/accounts/me",
    tags=["Account"],
    operation_id="deleteAccount",
    summary="Delete account",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 422),
)
async def delete_account(
    body: DeleteAccountRequest, principal: AccountPrincipalDep, session: SessionDep, client: ClientDep
) -> Response:
    """Needs `confirm: true` and the password. Deletes the account, its sessions, tokens, 2FA
    and the organizations it alone belongs to."""
    await service.delete_account(
        session, principal, confirm=body.confirm, password=body.password, client=client
    )
    return Response(status_code=NO_CONTENT)


@router.get(
    "/accounts/me/audit-log",
    tags=["Account"],
    operation_id="listAuditLog",
    summary="List audit log entries",
    response_model=list[AuditLogEntry],
    responses=responses(401, 403, 422),
)
async def list_audit_log(
    principal: AccountPrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Maximum number of entries (1 to 200)")] = 50,
) -> list[AuditLogEntry]:
    """The most recent entries first. Entries are retained for 180 days."""
    assert principal.account_id is not None
    events = await audit.list_for_account(session, principal.account_id, limit)
    return [
        AuditLogEntry(id=e.id, action=e.action, ip=e.ip, metadata=e.meta or {}, created_at=e.created_at)
        for e in events
    ]


@router.put(
    "/accounts/me/timezone",
    tags=["Account"],
    operation_id="updateTimezone",
    summary="Update timezone",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 422),
)
async def update_timezone(
    body: TimezoneRequest, principal: AccountPrincipalDep, session: SessionDep, client: ClientDep
) -> Response:
    await service.update_timezone(session, principal, body.timezone, client)
    return Response(status_code=NO_CONTENT)


@router.post(
    "/accounts/me/password-reset",
    tags=["Account"],
    operation_id="requestPasswordReset",
    summary="Request password reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={
        202: {"description": "Accepted; an email is sent if the address has an account"},
        **responses(422),
    },
)
async def request_password_reset(
    body: PasswordResetRequest, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    """Always 202: the answer never reveals whether the address has an account."""
    await service.request_password_reset(session, runtime, email=body.email, client=client)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.put(
    "/accounts/me/password",
    tags=["Account"],
    operation_id="changePassword",
    summary="Change password",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 422),
)
async def change_password(
    body: ChangePasswordRequest, principal: AccountPrincipalDep, session: SessionDep, client: ClientDep
) -> Response:
    """Signs out every other session; with `revoke_api_tokens: true` also revokes the account's
    API tokens."""
    await service.change_password(
        session,
        principal,
        current_password=body.current_password,
        new_password=body.new_password,
        revoke_api_tokens=body.revoke_api_tokens,
        client=client,
    )
    return Response(status_code=NO_CONTENT)


@router.put(
    "/accounts/me/password-reset",
    tags=["Account"],
    operation_id="confirmPasswordReset",
    summary="Confirm password reset",
    status_code=NO_CONTENT,
    responses=responses(401, 422),
)
async def confirm_password_reset(
    body: PasswordResetConfirm, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    """The token works once. Every session and API token of the account is revoked."""
    await service.confirm_password_reset(
        session, runtime, token=body.token, new_password=body.new_password, client=client
    )
    return Response(status_code=NO_CONTENT)


# --- 2FA -----------------------------------------------------------------------------------


@router.delete(
    "/accounts/me/2fa",
    tags=["2FA"],
    operation_id="disableTOTP",
    summary="Disable TOTP two-factor authentication",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 422, 429),
)
async def disable_totp(
    body: CodeRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> Response:
    await service.disable_totp(session, runtime, principal, body.code, client)
    return Response(status_code=NO_CONTENT)


@router.post(
    "/accounts/me/2fa/backup-codes",
    tags=["2FA"],
    operation_id="regenerateBackupCodes",
    summary="Regenerate TOTP backup codes",
    response_model=BackupCodesResponse,
    responses=responses(401, 403, 422, 429),
)
async def regenerate_backup_codes(
    body: CodeRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> BackupCodesResponse:
    codes = await service.regenerate_backup_codes(session, runtime, principal, body.code, client)
    return BackupCodesResponse(backup_codes=codes)


@router.post(
    "/accounts/me/2fa/enable",
    tags=["2FA"],
    operation_id="enableTOTP",
    summary="Enable TOTP two-factor authentication",
    response_model=BackupCodesResponse,
    responses=responses(401, 403, 409, 422, 429),
)
async def enable_totp(
    body: CodeRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> BackupCodesResponse:
    """Needs a current code from the authenticator. Returns the backup codes, once."""
    codes = await service.enable_totp(session, runtime, principal, body.code, client)
    return BackupCodesResponse(backup_codes=codes)


@router.post(
    "/accounts/me/2fa/setup",
    tags=["2FA"],
    operation_id="setupTOTP",
    summary="Set up TOTP two-factor authentication",
    response_model=SetupTOTPResponse,
    responses=responses(401, 403, 409),
)
async def setup_totp(
    principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> SetupTOTPResponse:
    secret, url, png = await service.setup_totp(session, runtime, principal, client)
    return SetupTOTPResponse(secret=secret, otpauth_url=url, qr_code_png=png)


# --- API tokens ----------------------------------------------------------------------------


@router.get(
    "/accounts/me/api-tokens",
    tags=["API Tokens"],
    operation_id="listAPITokens",
    summary="List API tokens",
    response_model=list[APITokenResponse],
    responses=responses(401, 403),
)
async def list_api_tokens(principal: AccountPrincipalDep, session: SessionDep) -> list[APITokenResponse]:
    assert principal.account_id is not None
    return [_token_response(key) for key in await service.list_account_tokens(session, principal.account_id)]


@router.post(
    "/accounts/me/api-tokens",
    tags=["API Tokens"],
    operation_id="createAPIToken",
    summary="Create an API token",
    status_code=status.HTTP_201_CREATED,
    response_model=APITokenResponse,
    responses=responses(401, 403, 422),
)
async def create_api_token(
    body: CreateAPITokenRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> APITokenResponse:
    """The full `token` is in this response only. `allowed_ips` takes IPs and CIDRs (v4, v6);
    `expires_in` is in seconds."""
    key, raw = await service.create_account_token(
        session,
        runtime,
        principal,
        name=body.name,
        allowed_ips=body.allowed_ips,
        expires_in=body.expires_in,
        client=client,
    )
    return _token_response(key, raw)


@router.delete(
    "/accounts/me/api-tokens/{id}",
    tags=["API Tokens"],
    operation_id="deleteAPIToken",
    summary="Revoke an API token",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404),
)
async def delete_api_token(
    id: str,
    principal: AccountPrincipalDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    await service.revoke_account_token(session, principal, id, client)
    return Response(status_code=NO_CONTENT)
