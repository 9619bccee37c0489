"""Two-factor authentication: RFC 6238 codes, setup and enable, sign-in with a code or a backup
code, replay protection, disable and backup-code regeneration (seed 002, 2FA)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import pyotp
import pytest
from sqlalchemy import text

from conduit.identity import totp
from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from tests.conftest import PASSWORD, User
from tests.identity.conftest import (
    API,
    assert_error,
    auth,
    current_code,
    enable_2fa,
    freeze_at_step_start,
    next_step,
    request_reset_token,
    sign_in,
    totp_challenge,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# --- RFC 6238 -----------------------------------------------------------------------------

SEED_SHA1 = b"12345678901234567890"
SEED_SHA256 = b"12345678901234567890123456789012"
SEED_SHA512 = b"1234567890123456789012345678901234567890123456789012345678901234"

RFC6238_APPENDIX_B = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


def _b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode().rstrip("=")


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), RFC6238_APPENDIX_B)
def test_rfc6238_appendix_b_vectors(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    step = unix_time // 30
    assert totp.code_at(_b32(SEED_SHA1), step, digits=8, digest=hashlib.sha1) == sha1
    assert totp.code_at(_b32(SEED_SHA256), step, digits=8, digest=hashlib.sha256) == sha256
    assert totp.code_at(_b32(SEED_SHA512), step, digits=8, digest=hashlib.sha512) == sha512


def test_default_codes_are_the_last_six_digits_of_the_sha1_vectors() -> None:
    assert totp.code_at(_b32(SEED_SHA1), 59 // 30) == "287082"
    assert totp.code_at(_b32(SEED_SHA1), 1111111109 // 30) == "081804"


def test_codes_match_a_standard_authenticator() -> None:
    secret = totp.generate_secret()
    for moment in (clock.now(), clock.now() + timedelta(seconds=30), clock.now() - timedelta(days=400)):
        assert totp.code_at(secret, totp.step_at(moment)) == pyotp.TOTP(secret).at(moment)


# --- setup ---------------------------------------------------------------------------------


async def setup(client: httpx.AsyncClient, user: User) -> httpx.Response:
    return await client.post(f"{API}/accounts/me/2fa/setup", headers=user.headers)


async def test_setup_returns_secret_otpauth_url_and_qr_png(client: httpx.AsyncClient, user: User) -> None:
    response = await setup(client, user)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"secret", "otpauth_url", "qr_code_png"}

    secret = body["secret"]
    assert len(base64.b32decode(secret)) >= 20  # at least 160 bits, as RFC 4226 recommends

    url = urlparse(body["otpauth_url"])
    assert (url.scheme, url.netloc) == ("otpauth", "totp")
    assert unquote(url.path) == f"/Conduit:{user.email}"
    query = parse_qs(url.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Conduit"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
    assert pyotp.parse_uri(body["otpauth_url"]).secret == secret

    png = base64.b64decode(body["qr_code_png"], validate=True)
    assert png.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk follows the signature
    assert width == height
    assert width >= 100


async def test_setup_again_replaces_the_secret(client: httpx.AsyncClient, user: User) -> None:
    first = (await setup(client, user)).json()["secret"]
    second = (await setup(client, user)).json()["secret"]
    assert first != second
    stale = await client.post(
        f"{API}/accounts/me/2fa/enable", headers=user.headers, json={"code": current_code(first)}
    )
    assert_error(stale, 401, "invalid_totp_code")
    fresh = await client.post(
        f"{API}/accounts/me/2fa/enable", headers=user.headers, json={"code": current_code(second)}
    )
    assert fresh.status_code == 200


async def test_setup_does_not_enable_2fa_by_itself(client: httpx.AsyncClient, user: User) -> None:
    await setup(client, user)
    response = await sign_in(client, user.email, PASSWORD)
    assert "access_token" in response.json()
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).json()["totp_enabled"] is False


async def test_setup_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(f"{API}/accounts/me/2fa/setup"), 401)


async def test_setup_while_enabled_is_409(client: httpx.AsyncClient, user: User) -> None:
    await enable_2fa(client, user)
    assert_error(await setup(client, user), 409, "totp_already_enabled")


# --- enable --------------------------------------------------------------------------------


async def enable(client: httpx.AsyncClient, user: User, code: str) -> httpx.Response:
    return await client.post(f"{API}/accounts/me/2fa/enable", headers=user.headers, json={"code": code})


async def test_enable_with_a_valid_code_returns_ten_backup_codes(
    client: httpx.AsyncClient, user: User
) -> None:
    secret = (await setup(client, user)).json()["secret"]
    response = await enable(client, user, current_code(secret))
    assert response.status_code == 200
    codes = response.json()["backup_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).json()["totp_enabled"] is True


async def test_enable_accepts_a_code_from_the_previous_step(client: httpx.AsyncClient, user: User) -> None:
    freeze_at_step_start(offset_seconds=15)
    secret = (await setup(client, user)).json()["secret"]
    previous = totp.code_at(secret, totp.step_at(clock.now()) - 1)
    assert (await enable(client, user, previous)).status_code == 200


async def test_enable_refuses_codes_two_steps_away(client: httpx.AsyncClient, user: User) -> None:
    freeze_at_step_start(offset_seconds=15)
    secret = (await setup(client, user)).json()["secret"]
    step = totp.step_at(clock.now())
    for far in (step - 2, step + 2):
        assert_error(await enable(client, user, totp.code_at(secret, far)), 401, "invalid_totp_code")


async def test_enable_with_a_wrong_code_is_401_and_changes_nothing(
    client: httpx.AsyncClient, user: User
) -> None:
    secret = (await setup(client, user)).json()["secret"]
    wrong = f"{(int(current_code(secret)) + 1) % 1_000_000:06d}"
    assert_error(await enable(client, user, wrong), 401, "invalid_totp_code")
    assert_error(await enable(client, user, "abcdef"), 401, "invalid_totp_code")
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).json()["totp_enabled"] is False
    assert (await enable(client, user, current_code(secret))).status_code == 200


async def test_enable_before_setup_is_422(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await enable(client, user, "123456"), 422, "totp_not_set_up")


async def test_enable_twice_is_409(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    assert_error(await enable(client, user, current_code(factor.secret)), 409, "totp_already_enabled")


async def test_enable_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(f"{API}/accounts/me/2fa/enable", json={"code": "123456"}), 401)


async def test_enable_with_missing_code_is_422(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(f"{API}/accounts/me/2fa/enable", headers=user.headers, json={})
    assert_error(response, 422, "validation_error")


# --- storage -------------------------------------------------------------------------------


async def test_totp_secret_and_backup_codes_are_not_stored_in_clear(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    factor = await enable_2fa(client, user)
    async with runtime.db.session() as session:
        stored_secret = (
            await session.execute(text("SELECT totp_secret FROM accounts WHERE id = :id"), {"id": user.id})
        ).scalar_one()
        code_rows = (
            await session.execute(
                text("SELECT code_hash FROM backup_codes WHERE account_id = :id"), {"id": user.id}
            )
        ).all()
    assert stored_secret
    assert factor.secret not in stored_secret
    assert factor.secret.lower() not in stored_secret.lower()
    assert stored_secret.startswith("v1.")  # sealed with AES-GCM
    assert len(code_rows) == 10
    stored_codes = " ".join(row[0] for row in code_rows).lower()
    for code in factor.backup_codes:
        assert code.lower() not in stored_codes
        assert totp.normalize_backup_code(code) not in stored_codes


# --- sign-in with a second factor ---------------------------------------------------------


async def complete(client: httpx.AsyncClient, totp_token: str, code: str) -> httpx.Response:
    return await client.post(f"{API}/sessions/2fa", json={"totp_token": totp_token, "code": code})


async def test_sign_in_with_2fa_asks_for_a_code(client: httpx.AsyncClient, user: User) -> None:
    await enable_2fa(client, user)
    response = await sign_in(client, user.email, PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["totp_required"] is True
    assert body["expires_in"] == 300
    assert body["totp_token"]
    assert "access_token" not in body
    assert "refresh_token" not in body
    # The challenge is not a credential.
    assert_error(await client.get(f"{API}/accounts/me", headers=auth(body["totp_token"])), 401)


async def test_sign_in_with_2fa_and_a_valid_code_returns_a_session(
    client: httpx.AsyncClient, user: User
) -> None:
    factor = await enable_2fa(client, user)
    challenge = await totp_challenge(client, user)
    response = await complete(client, challenge, current_code(factor.secret))
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"].startswith("cnd_rt_")
    assert body["expires_in"] == 900
    me = await client.get(f"{API}/accounts/me", headers=auth(body["access_token"]))
    assert me.json()["id"] == user.id
    refreshed = await client.post(f"{API}/sessions/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200


async def test_wrong_password_with_2fa_is_still_a_plain_401(client: httpx.AsyncClient, user: User) -> None:
    await enable_2fa(client, user)
    assert_error(await sign_in(client, user.email, "not the password"), 401, "invalid_credentials")


async def test_a_totp_code_works_only_once(client: httpx.AsyncClient, user: User) -> None:
    freeze_at_step_start()
    factor = await enable_2fa(client, user)  # ends at the start of the next step
    code = current_code(factor.secret)
    assert (await complete(client, await totp_challenge(client, user), code)).status_code == 200

    clock.advance(timedelta(seconds=10))  # same 30-second step
    assert current_code(factor.secret) == code
    replay = await complete(client, await totp_challenge(client, user), code)
    assert_error(replay, 401, "invalid_totp_code")

    next_step()
    fresh = current_code(factor.secret)
    assert fresh != code
    assert (await complete(client, await totp_challenge(client, user), fresh)).status_code == 200


async def test_the_enabling_code_cannot_be_replayed_to_sign_in(client: httpx.AsyncClient, user: User) -> None:
    freeze_at_step_start()
    secret = (await setup(client, user)).json()["secret"]
    code = current_code(secret)
    assert (await enable(client, user, code)).status_code == 200
    clock.advance(timedelta(seconds=5))
    assert_error(await complete(client, await totp_challenge(client, user), code), 401, "invalid_totp_code")


async def test_an_older_code_is_refused_once_a_newer_one_was_used(
    client: httpx.AsyncClient, user: User
) -> None:
    freeze_at_step_start()
    factor = await enable_2fa(client, user)
    step = totp.step_at(clock.now())
    newer = totp.code_at(factor.secret, step + 1)  # the next step, inside the ±1 window
    assert (await complete(client, await totp_challenge(client, user), newer)).status_code == 200
    older = totp.code_at(factor.secret, step)
    assert_error(await complete(client, await totp_challenge(client, user), older), 401, "invalid_totp_code")


async def test_the_same_code_sent_twice_at_once_signs_in_once(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    challenges = [await totp_challenge(client, user) for _ in range(2)]
    code = current_code(factor.secret)
    responses = await asyncio.gather(*(complete(client, challenge, code) for challenge in challenges))
    assert sorted(r.status_code for r in responses) == [200, 401]


async def test_the_same_backup_code_sent_twice_at_once_signs_in_once(
    client: httpx.AsyncClient, user: User
) -> None:
    factor = await enable_2fa(client, user)
    challenges = [await totp_challenge(client, user) for _ in range(2)]
    code = factor.backup_codes[0]
    responses = await asyncio.gather(*(complete(client, challenge, code) for challenge in challenges))
    assert sorted(r.status_code for r in responses) == [200, 401]


async def test_a_password_change_ends_pending_2fa_sign_ins(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    pending = await totp_challenge(client, user)
    changed = await client.put(
        f"{API}/accounts/me/password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 204
    # The challenge proved the old password; it must not open a session any more.
    assert_error(await complete(client, pending, current_code(factor.secret)), 401, "invalid_totp_token")


async def test_a_password_reset_ends_pending_2fa_sign_ins(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    factor = await enable_2fa(client, user)
    pending = await totp_challenge(client, user)
    token = await request_reset_token(client, runtime, worker, user.email)
    reset = await client.put(
        f"{API}/accounts/me/password-reset", json={"token": token, "new_password": "a brand new passphrase"}
    )
    assert reset.status_code == 204
    assert_error(await complete(client, pending, current_code(factor.secret)), 401, "invalid_totp_token")
    # 2FA stays on after a reset: the new password leads to a new challenge.
    fresh = await client.post(
        f"{API}/sessions", json={"email": user.email, "password": "a brand new passphrase"}
    )
    assert fresh.json()["totp_required"] is True


async def test_codes_may_be_typed_with_a_space(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    code = current_code(factor.secret)
    response = await complete(client, await totp_challenge(client, user), f"{code[:3]} {code[3:]}")
    assert response.status_code == 200


async def test_each_backup_code_works_exactly_once(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    first, second = factor.backup_codes[:2]
    assert (await complete(client, await totp_challenge(client, user), first)).status_code == 200
    assert_error(await complete(client, await totp_challenge(client, user), first), 401, "invalid_totp_code")
    # Typed differently (upper case, without the dash) it is the same code.
    typed = second.upper().replace("-", "")
    assert (await complete(client, await totp_challenge(client, user), typed)).status_code == 200
    assert_error(await complete(client, await totp_challenge(client, user), second), 401, "invalid_totp_code")


async def test_backup_code_sign_in_is_audited(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    body = (await complete(client, await totp_challenge(client, user), factor.backup_codes[0])).json()
    log = (await client.get(f"{API}/accounts/me/audit-log", headers=auth(body["access_token"]))).json()
    actions = [entry["action"] for entry in log]
    assert "2fa.backup_code_used" in actions
    created = [e for e in log if e["action"] == "session.created" and e["metadata"].get("method")]
    assert created[0]["metadata"]["method"] == "backup_code"


async def test_invalid_code_is_401(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    challenge = await totp_challenge(client, user)
    wrong = f"{(int(current_code(factor.secret)) + 1) % 1_000_000:06d}"
    assert_error(await complete(client, challenge, wrong), 401, "invalid_totp_code")
    assert_error(await complete(client, challenge, "zzzzz-zzzzz"), 401, "invalid_totp_code")
    # The challenge survives a typo.
    assert (await complete(client, challenge, current_code(factor.secret))).status_code == 200


async def test_unknown_challenge_token_is_401(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    response = await complete(client, "cnd_2fa_made-up", current_code(factor.secret))
    assert_error(response, 401, "invalid_totp_token")


async def test_a_challenge_is_spent_by_a_successful_sign_in(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    challenge = await totp_challenge(client, user)
    assert (await complete(client, challenge, factor.backup_codes[0])).status_code == 200
    assert_error(await complete(client, challenge, factor.backup_codes[1]), 401, "invalid_totp_token")


async def test_a_challenge_expires_after_five_minutes(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    challenge = await totp_challenge(client, user)
    clock.advance(timedelta(minutes=5, seconds=1))
    response = await complete(client, challenge, current_code(factor.secret))
    assert_error(response, 401, "invalid_totp_token")


async def test_too_many_bad_codes_is_429(client: httpx.AsyncClient, user: User, runtime: Runtime) -> None:
    factor = await enable_2fa(client, user)
    clock.freeze()
    # Spread over several challenges: one challenge allows only a few guesses by itself.
    for failure in range(runtime.settings.login_max_failures_per_account):
        if failure % 3 == 0:
            challenge = await totp_challenge(client, user)
        assert_error(await complete(client, challenge, "000000"), 401, "invalid_totp_code")

    challenge = await totp_challenge(client, user)
    locked = await complete(client, challenge, current_code(factor.secret))
    assert_error(locked, 429, "too_many_attempts")
    # A backup code does not get around the lock either.
    assert_error(await complete(client, challenge, factor.backup_codes[0]), 429, "too_many_attempts")

    clock.advance(timedelta(seconds=runtime.settings.login_failure_window_seconds + 1))
    challenge = await totp_challenge(client, user)
    assert (await complete(client, challenge, current_code(factor.secret))).status_code == 200


async def test_a_valid_code_resets_the_count_of_bad_codes(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    factor = await enable_2fa(client, user)
    clock.freeze()
    for _ in range(2):
        for failure in range(runtime.settings.login_max_failures_per_account - 1):
            if failure % 3 == 0:
                challenge = await totp_challenge(client, user)
            assert_error(await complete(client, challenge, "000000"), 401, "invalid_totp_code")
        response = await complete(client, await totp_challenge(client, user), current_code(factor.secret))
        assert response.status_code == 200, response.text
        next_step()


async def test_one_challenge_allows_only_a_few_guesses(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    challenge = await totp_challenge(client, user)
    for _ in range(5):
        assert_error(await complete(client, challenge, "000000"), 401, "invalid_totp_code")
    assert_error(await complete(client, challenge, current_code(factor.secret)), 401, "invalid_totp_token")


# --- disable -------------------------------------------------------------------------------


async def disable(client: httpx.AsyncClient, user: User, code: str) -> httpx.Response:
    return await client.request("DELETE", f"{API}/accounts/me/2fa", headers=user.headers, json={"code": code})


async def test_disable_with_a_valid_code(client: httpx.AsyncClient, user: User, runtime: Runtime) -> None:
    factor = await enable_2fa(client, user)
    response = await disable(client, user, current_code(factor.secret))
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).json()["totp_enabled"] is False
    assert "access_token" in (await sign_in(client, user.email, PASSWORD)).json()
    async with runtime.db.session() as session:
        secret = (
            await session.execute(text("SELECT totp_secret FROM accounts WHERE id = :id"), {"id": user.id})
        ).scalar_one()
        codes = (
            await session.execute(
                text("SELECT count(*) FROM backup_codes WHERE account_id = :id"), {"id": user.id}
            )
        ).scalar_one()
    assert secret is None
    assert codes == 0


async def test_disable_with_a_backup_code(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    assert (await disable(client, user, factor.backup_codes[3])).status_code == 204


async def test_disable_with_a_wrong_code_is_401(client: httpx.AsyncClient, user: User) -> None:
    await enable_2fa(client, user)
    assert_error(await disable(client, user, "000000"), 401, "invalid_totp_code")
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).json()["totp_enabled"] is True


async def test_disable_when_not_enabled_is_422(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await disable(client, user, "123456"), 422, "totp_not_enabled")
    secret = (await setup(client, user)).json()["secret"]  # set up but not enabled: still 422
    assert_error(await disable(client, user, current_code(secret)), 422, "totp_not_enabled")


async def test_disable_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.request("DELETE", f"{API}/accounts/me/2fa", json={"code": "123456"}), 401)


async def test_repeated_wrong_codes_on_disable_are_429(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    factor = await enable_2fa(client, user)
    for _ in range(runtime.settings.login_max_failures_per_account):
        assert_error(await disable(client, user, "000000"), 401)
    assert_error(await disable(client, user, current_code(factor.secret)), 429, "too_many_attempts")


# --- backup codes --------------------------------------------------------------------------


async def regenerate(client: httpx.AsyncClient, user: User, code: str) -> httpx.Response:
    return await client.post(f"{API}/accounts/me/2fa/backup-codes", headers=user.headers, json={"code": code})


async def test_regenerate_replaces_every_backup_code(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    response = await regenerate(client, user, current_code(factor.secret))
    assert response.status_code == 200
    new_codes = response.json()["backup_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(factor.backup_codes)

    old = await complete(client, await totp_challenge(client, user), factor.backup_codes[0])
    assert_error(old, 401, "invalid_totp_code")
    assert (await complete(client, await totp_challenge(client, user), new_codes[0])).status_code == 200


async def test_regenerate_with_a_wrong_code_is_401(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    assert_error(await regenerate(client, user, "000000"), 401, "invalid_totp_code")
    # The old codes still work.
    assert (
        await complete(client, await totp_challenge(client, user), factor.backup_codes[0])
    ).status_code == 200


async def test_regenerate_when_not_enabled_is_422(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await regenerate(client, user, "123456"), 422, "totp_not_enabled")


async def test_regenerate_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(f"{API}/accounts/me/2fa/backup-codes", json={"code": "123456"}), 401)


async def test_2fa_changes_need_the_account_not_just_a_session(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    await client.request("DELETE", f"{API}/sessions", headers=user.headers)
    response: Any = await disable(client, user, current_code(factor.secret))
    assert_error(response, 401, "session_revoked")
