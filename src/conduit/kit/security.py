"""Hashing, key generation and encryption of secrets at rest.

Passwords use argon2id. Keys and tokens are high-entropy, so an HMAC-SHA256 under a server-side
key is enough to store them and lets us look them up by hash. Secrets that must be read back
(TOTP seeds, webhook secrets, upstream credentials) are sealed with AES-256-GCM. Every key is
derived from the one master key with HKDF, each for one purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import zlib
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conduit.kit.ids import BASE62, random_base62

KEY_PREFIX = "cnd_live_"
KEY_RANDOM_LENGTH = 32
KEY_CHECKSUM_LENGTH = 6
KEY_DISPLAY_LENGTH = len(KEY_PREFIX) + 4

_password_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when an account does not exist, so both paths cost the same.
_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-cost check: with no hash, a dummy hash is verified so timing does not tell."""
    try:
        return _password_hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _password_hasher.check_needs_rehash(password_hash)


class Keyring:
    """Purpose-bound keys derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key

    @lru_cache(maxsize=32)  # noqa: B019 - one Keyring per process, a handful of purposes
    def derive(self, purpose: str, length: int = 32) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"conduit:{purpose}".encode())
        return hkdf.derive(self._master)

    def hash_token(self, token: str) -> str:
        """HMAC-SHA256 of a high-entropy token, hex: what we store and look keys up by."""
        return hmac.new(self.derive("token-hash"), token.encode(), hashlib.sha256).hexdigest()

    def seal(self, plaintext: str, *, context: str = "") -> str:
        """Encrypt a secret for storage: `v1.<base64(nonce || ciphertext)>`."""
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self.derive("seal-v1")).encrypt(nonce, plaintext.encode(), context.encode())
        return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, token: str, *, context: str = "") -> str:
        version, _, payload = token.partition(".")
        if version != "v1":
            raise ValueError("unknown sealed secret version")
        try:
            raw = base64.urlsafe_b64decode(payload)
            return AESGCM(self.derive("seal-v1")).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise ValueError("sealed secret cannot be opened with this key") from exc


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), KEY_CHECKSUM_LENGTH)


def generate_api_key(prefix: str = KEY_PREFIX) -> str:
    """`cnd_live_` + 32 base62 characters + a 6-character CRC32 checksum."""
    body = prefix + random_base62(KEY_RANDOM_LENGTH)
    return body + _checksum(body)


def looks_like_api_key(candidate: str, prefix: str = KEY_PREFIX) -> bool:
    """Cheap offline check (prefix, length, checksum) before any database lookup."""
    if not candidate.startswith(prefix) or len(candidate) != len(prefix) + KEY_RANDOM_LENGTH + 6:
        return False
    body, checksum = candidate[:-KEY_CHECKSUM_LENGTH], candidate[-KEY_CHECKSUM_LENGTH:]
    # As bytes: compare_digest raises TypeError on non-ASCII str, and the candidate is anyone's input.
    return hmac.compare_digest(_checksum(body).encode(), checksum.encode())


def key_display_prefix(key: str) -> str:
    return key[:KEY_DISPLAY_LENGTH]


def generate_token(prefix: str = "", nbytes: int = 32) -> str:
    """An opaque random token (refresh tokens, reset tokens, challenges)."""
    return prefix + secrets.token_urlsafe(nbytes)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
