"""TOTP (RFC 6238: 30-second steps, 6 digits, SHA-1) and one-time backup codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pyotp
import segno

PERIOD = 30
DIGITS = 6
ISSUER = "Conduit"
BACKUP_CODE_COUNT = 10
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def generate_secret() -> str:
    return pyotp.random_base32(32)


def step_at(moment: datetime) -> int:
    return int(moment.timestamp()) // PERIOD


def code_at(secret: str, step: int, *, digits: int = DIGITS, digest: Any = hashlib.sha1) -> str:
    return pyotp.TOTP(secret, digits=digits, digest=digest, interval=PERIOD).generate_otp(step)


def matching_step(secret: str, code: str, moment: datetime, *, after_step: int | None) -> int | None:
    """The step `code` belongs to (now, or one step either side), if not already used."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = step_at(moment)
    for step in (current - 1, current, current + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def otpauth_url(secret: str, account_name: str) -> str:
    return (
        f"otpauth://totp/{quote(ISSUER)}:{quote(account_name)}"
        f"?secret={secret}&issuer={quote(ISSUER)}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}"
    )


def qr_png_base64(url: str) -> str:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=6, border=2)
    return base64.b64encode(buffer.getvalue()).decode()


def generate_backup_codes() -> list[str]:
    def one() -> str:
        raw = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(10))
        return f"{raw[:5]}-{raw[5:]}"

    return [one() for _ in range(BACKUP_CODE_COUNT)]


def normalize_backup_code(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def looks_like_totp(code: str) -> bool:
    stripped = code.strip().replace(" ", "")
    return len(stripped) == DIGITS and stripped.isdigit()
