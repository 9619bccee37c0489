"""Password policy: length limits and the most common passwords, no composition rules (NIST 800-63B)."""

from __future__ import annotations

from functools import lru_cache

from conduit.kit.errors import Unprocessable

MIN_LENGTH = 8
MAX_LENGTH = 128


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, *, email: str | None = None) -> None:
    """Raise a 422 that says what is wrong with `password`, or return."""
    if len(password) < MIN_LENGTH:
        raise Unprocessable(f"Password must be at least {MIN_LENGTH} characters", code="password_too_short")
    if len(password) > MAX_LENGTH:
        raise Unprocessable(f"Password must be at most {MAX_LENGTH} characters", code="password_too_long")
    lowered = password.lower()
    if lowered in _common_passwords():
        raise Unprocessable("This password is too common; choose another", code="password_too_common")
    if email and lowered in (email.lower(), email.lower().split("@", 1)[0]):
        raise Unprocessable("Password must not be your email address", code="password_is_email")
