"""Standard Webhooks signatures: `whsec_` secrets and the `webhook-*` headers that prove a message.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,<base64 HMAC-SHA256>` under the base64-decoded part of the secret after `whsec_`. While a
secret is being rotated, both the new and the previous secret sign, space-separated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

from conduit.kit.errors import Unprocessable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; `Unprocessable` when it is not one."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True) if secret.startswith(SECRET_PREFIX) else b""
    except (binascii.Error, ValueError):
        key = b""
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise Unprocessable(
            f"A webhook secret is {SECRET_PREFIX} followed by the base64 of "
            f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes",
            code="invalid_webhook_secret",
        )
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    signing_secrets: Sequence[str], message_id: str, sent_at: datetime, body: bytes
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature`, one signature per secret."""
    timestamp = int(sent_at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in signing_secrets),
    }
