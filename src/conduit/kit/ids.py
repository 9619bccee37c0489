"""Random, prefixed, URL-safe identifiers such as `usr_4kQ9...`."""

from __future__ import annotations

import secrets
import string

BASE62 = string.digits + string.ascii_letters
ID_LENGTH = 20  # 62**20 ≈ 2**119


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_id(prefix: str) -> str:
    return f"{prefix}_{random_base62(ID_LENGTH)}"
