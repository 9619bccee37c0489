"""Passwords, API keys, token hashes and sealed secrets."""

from __future__ import annotations

import base64
import re

import pytest
from argon2 import PasswordHasher

from conduit.kit.ids import BASE62
from conduit.kit.security import (
    Keyring,
    generate_api_key,
    hash_password,
    key_display_prefix,
    looks_like_api_key,
    password_needs_rehash,
    verify_password,
)

MASTER = b"master-key-for-tests-0123456789abcdef"
API_KEY_SHAPE = re.compile(r"cnd_live_[0-9A-Za-z]{32}[0-9A-Za-z]{6}")


def test_api_key_has_the_documented_shape() -> None:
    keys = {generate_api_key() for _ in range(200)}

    assert len(keys) == 200
    for key in keys:
        assert API_KEY_SHAPE.fullmatch(key), key
        assert looks_like_api_key(key)
    assert key_display_prefix(next(iter(keys))) == next(iter(keys))[: len("cnd_live_") + 4]


def test_checksum_detects_any_single_changed_character() -> None:
    key = generate_api_key()
    prefix_length = len("cnd_live_")

    for position in range(prefix_length, len(key)):
        for replacement in "0aZ9":
            if key[position] == replacement:
                continue
            changed = key[:position] + replacement + key[position + 1 :]
            assert not looks_like_api_key(changed), (position, replacement)


def test_checksum_detects_swapped_neighbours() -> None:
    key = generate_api_key()
    body = key[len("cnd_live_") : -6]
    swaps = [i for i in range(len(body) - 1) if body[i] != body[i + 1]]

    for i in swaps:
        swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
        assert not looks_like_api_key("cnd_live_" + swapped + key[-6:])


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "cnd_live_",
        "cnd_test_" + "a" * 38,
        "Bearer cnd_live_" + "a" * 38,
        "cnd_live_" + "a" * 32 + "éééééé",  # header values arrive as latin-1
        "cnd_live_" + "é" * 32 + "aaaaaa",
    ],
)
def test_malformed_keys_are_refused_offline(candidate: str) -> None:
    assert not looks_like_api_key(candidate)


def test_wrong_length_is_refused() -> None:
    key = generate_api_key()

    assert not looks_like_api_key(key[:-1])
    assert not looks_like_api_key(key + "0")
    assert not looks_like_api_key(key[:20] + key[21:])


def test_other_prefix_keeps_its_own_checksum() -> None:
    key = generate_api_key(prefix="cnd_svc_")

    assert key.startswith("cnd_svc_")
    assert looks_like_api_key(key, prefix="cnd_svc_")
    assert not looks_like_api_key(key)
    assert all(c in BASE62 for c in key[len("cnd_svc_") :])


def test_seal_and_unseal_round_trip() -> None:
    keyring = Keyring(MASTER)
    secret = "JBSWY3DPEHPK3PXP and ünïcödé"

    sealed = keyring.seal(secret)

    assert sealed.startswith("v1.")
    assert secret not in sealed
    assert keyring.unseal(sealed) == secret
    assert Keyring(MASTER).unseal(sealed) == secret, "a restarted process must read its secrets"


def test_seal_uses_a_fresh_nonce_every_time() -> None:
    keyring = Keyring(MASTER)

    assert keyring.seal("same") != keyring.seal("same")


def test_unseal_with_another_master_key_fails() -> None:
    sealed = Keyring(MASTER).seal("totp seed")

    with pytest.raises(ValueError, match="cannot be opened"):
        Keyring(b"another-master-key").unseal(sealed)


def test_unseal_in_another_context_fails() -> None:
    keyring = Keyring(MASTER)
    sealed = keyring.seal("webhook secret", context="whk_1")

    assert keyring.unseal(sealed, context="whk_1") == "webhook secret"
    with pytest.raises(ValueError):
        keyring.unseal(sealed, context="whk_2")


def test_tampered_ciphertext_fails() -> None:
    keyring = Keyring(MASTER)
    sealed = keyring.seal("upstream credential")
    raw = bytearray(base64.urlsafe_b64decode(sealed.removeprefix("v1.")))

    for index in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        with pytest.raises(ValueError):
            keyring.unseal("v1." + base64.urlsafe_b64encode(bytes(tampered)).decode())


@pytest.mark.parametrize("token", ["v1.", "v1.AAAA", "v1.not base64!", "v2.AAAA", "plaintext", ""])
def test_garbage_is_refused_with_value_error(token: str) -> None:
    with pytest.raises(ValueError):
        Keyring(MASTER).unseal(token)


def test_hash_token_is_stable_per_key_and_differs_across_keys() -> None:
    token = generate_api_key()
    first = Keyring(MASTER)

    assert first.hash_token(token) == first.hash_token(token)
    assert first.hash_token(token) == Keyring(MASTER).hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", first.hash_token(token))
    assert first.hash_token(token) != Keyring(b"another-master-key").hash_token(token)
    assert first.hash_token(token) != first.hash_token(generate_api_key())


def test_derived_keys_are_bound_to_their_purpose() -> None:
    keyring = Keyring(MASTER)

    assert keyring.derive("seal-v1") == keyring.derive("seal-v1")
    assert keyring.derive("seal-v1") != keyring.derive("token-hash")
    assert keyring.derive("seal-v1") != Keyring(b"another-master-key").derive("seal-v1")
    assert len(keyring.derive("jwt", 64)) == 64


def test_password_hash_verifies_only_the_right_password() -> None:
    hashed = hash_password("correct horse battery staple")

    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse battery staple")
    assert not verify_password(hashed, "correct horse battery stapler")
    assert not verify_password(hashed, "")
    assert hash_password("same") != hash_password("same")


def test_verify_without_a_hash_is_false() -> None:
    assert verify_password(None, "anything") is False
    assert verify_password(None, "") is False


def test_verify_against_a_malformed_hash_is_false() -> None:
    assert verify_password("not-an-argon2-hash", "password") is False
    assert verify_password("", "password") is False


def test_weaker_hashes_need_a_rehash() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("password")

    assert password_needs_rehash(weaker)
    assert verify_password(weaker, "password")
    assert not password_needs_rehash(hash_password("password"))
