"""Request and response bodies of the identity endpoints (seed 002), field for field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

# Generous upper bounds keep hostile bodies cheap to reject; the policy itself is in passwords.py.
Password = Field(min_length=1, max_length=1024)
Code = Field(min_length=1, max_length=64)


class PingResponse(BaseModel):
    status: str


class SignUpRequest(BaseModel):
    email: EmailStr = Field(max_length=320)
    password: str = Password


class SignInRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Password


class SessionResponse(BaseModel):
    access_token: str
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"


class TOTPChallengeResponse(BaseModel):
    """Returned by sign-in instead of a session when the account has 2FA enabled."""

    totp_required: Literal[True] = True
    totp_token: str = Field(description="Send with a TOTP or backup code to POST /api/v1/sessions/2fa")
    expires_in: int


class TOTPSessionRequest(BaseModel):
    code: str = Code
    totp_token: str = Field(min_length=1, max_length=512)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class SignOutRequest(BaseModel):
    refresh_token: str | None = Field(None, max_length=512)


class AccountResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    timezone: str
    totp_enabled: bool
    created_at: datetime
    updated_at: datetime


class DeleteAccountRequest(BaseModel):
    confirm: bool
    password: str = Password


class TimezoneRequest(BaseModel):
    timezone: str = Field(min_length=1, max_length=64)


class PasswordResetRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)


class PasswordResetConfirm(BaseModel):
    token: str = Field(min_length=1, max_length=512)
    new_password: str = Password


class ChangePasswordRequest(BaseModel):
    current_password: str = Password
    new_password: str = Password
    revoke_api_tokens: bool = False


class AuditLogEntry(BaseModel):
    id: str
    action: str
    ip: str | None
    metadata: dict[str, Any]
    created_at: datetime


class CodeRequest(BaseModel):
    code: str = Code


class SetupTOTPResponse(BaseModel):
    secret: str
    otpauth_url: str
    qr_code_png: str = Field(description="PNG image of the otpauth URL, base64-encoded")


class BackupCodesResponse(BaseModel):
    backup_codes: list[str]


class CreateAPITokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    allowed_ips: list[str] | None = Field(None, max_length=100, description="IPs or CIDRs, v4 or v6")
    expires_in: int | None = Field(
        None, ge=0, le=10 * 365 * 86400, description="Seconds until expiry; null or 0: never expires"
    )


class APITokenResponse(BaseModel):
    id: str
    name: str
    prefix: str
    token: str | None = Field(None, description="The full token: returned once, at creation")
    allowed_ips: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
