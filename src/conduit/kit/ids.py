"""Random, prefixed, URL-safe identifiers such as `usr_4kQ9...`."""

from __future__ import annotations

import secrets
import string

BASE62 = string.digits + string.ascii_letters
ID_LENGTH = 20  # 62**20 ≈ 2**119


def random_base62(length: int) -> str:
    """Uniform over BASE62: random bytes below 248 (= 4 x 62) taken modulo 62, the rest skipped.
    One read of the OS random source per call, not one per character."""
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(BASE62[byte % 62] for byte in secrets.token_bytes(length + 8) if byte < 248)
    return "".join(chars[:length])


def new_id(prefix: str) -> str:
    return f"{prefix}_{random_base62(ID_LENGTH)}"
