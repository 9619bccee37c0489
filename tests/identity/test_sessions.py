"""Sign-in, lockout, access-token expiry, sign-out and refresh-token rotation (seed 002, Sessions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt

from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from tests.conftest import PASSWORD, User, client_for, sign_up
from tests.identity.conftest import API, assert_error, auth, sign_in


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(f"{API}/sessions/refresh", json={"refresh_token": refresh_token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get(f"{API}/accounts/me", headers=auth(access_token))


# --- sign-in -------------------------------------------------------------------------------


async def test_sign_in_returns_a_bearer_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await sign_up(client)
    response = await sign_in(client, user.email, PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == runtime.settings.access_token_ttl_seconds == 900
    assert body["refresh_token"].startswith("cnd_rt_")
    account = await me(client, body["access_token"])
    assert account.status_code == 200
    assert account.json()["id"] == user.id


async def test_sign_in_ignores_email_case_and_surrounding_spaces(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await sign_in(client, f"  {user.email.upper()} ", PASSWORD)
    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_email_are_indistinguishable(
    client: httpx.AsyncClient, user: User
) -> None:
    wrong_password = await sign_in(client, user.email, "not the password at all")
    unknown_email = await sign_in(client, "nobody-here@example.com", "not the password at all")
    assert_error(wrong_password, 401, "invalid_credentials")
    assert unknown_email.status_code == wrong_password.status_code
    assert unknown_email.json() == wrong_password.json()
    assert unknown_email.headers["www-authenticate"] == wrong_password.headers["www-authenticate"]


async def test_sign_in_with_missing_fields_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/sessions", json={"email": "someone@example.com"})
    body = assert_error(response, 422, "validation_error")
    assert any(problem["loc"][-1] == "password" for problem in body["detail"])


async def test_account_locks_after_max_failures_and_unlocks_after_window(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    clock.freeze()
    limit = runtime.settings.login_max_failures_per_account
    for _ in range(limit):
        assert_error(await sign_in(client, user.email, "wrong password!"), 401, "invalid_credentials")

    locked = await sign_in(client, user.email, PASSWORD)
    assert_error(locked, 429, "too_many_attempts")
    window = runtime.settings.login_failure_window_seconds
    # The clock stands still: the lock lasts the whole window from the first failure.
    assert locked.headers["retry-after"] == str(window)

    # The lock is per account: another address from the same IP still signs in.
    other = await sign_up(client)
    assert (await sign_in(client, other.email, PASSWORD)).status_code == 200

    clock.advance(timedelta(seconds=window - 60))
    still_locked = await sign_in(client, user.email, PASSWORD)
    assert_error(still_locked, 429, "too_many_attempts")
    assert still_locked.headers["retry-after"] == "60"
    clock.advance(timedelta(seconds=61))
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200


async def test_account_lockout_holds_from_every_ip(app: Any, user: User, runtime: Runtime) -> None:
    limit = runtime.settings.login_max_failures_per_account
    for n in range(limit):
        async with client_for(app, ip=f"10.9.0.{n + 1}") as attacker:
            assert (await sign_in(attacker, user.email, "wrong password!")).status_code == 401
    async with client_for(app, ip="10.9.1.1") as elsewhere:
        assert_error(await sign_in(elsewhere, user.email, PASSWORD), 429, "too_many_attempts")


async def test_successful_sign_in_resets_the_account_failure_count(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    limit = runtime.settings.login_max_failures_per_account
    for _ in range(limit - 1):
        assert (await sign_in(client, user.email, "wrong password!")).status_code == 401
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200
    for _ in range(limit - 1):
        assert (await sign_in(client, user.email, "wrong password!")).status_code == 401
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200


async def test_ip_locks_after_max_failures_across_many_emails(app: Any, runtime: Runtime) -> None:
    clock.freeze()
    async with client_for(app, ip="10.1.2.3") as attacker, client_for(app, ip="10.1.2.4") as neighbour:
        victim = await sign_up(neighbour)
        limit = runtime.settings.login_max_failures_per_ip
        for n in range(limit):
            response = await sign_in(attacker, f"guess-{n}@example.com", "wrong password!")
            assert response.status_code == 401, (n, response.text)

        # Locked for that IP, even with the right password of a real account...
        assert_error(await sign_in(attacker, victim.email, PASSWORD), 429, "too_many_attempts")
        # ...but not for the account itself from another address.
        assert (await sign_in(neighbour, victim.email, PASSWORD)).status_code == 200

        clock.advance(timedelta(seconds=runtime.settings.login_failure_window_seconds + 1))
        assert (await sign_in(attacker, victim.email, PASSWORD)).status_code == 200


# --- access tokens -------------------------------------------------------------------------


async def test_access_token_expires_after_15_minutes(client: httpx.AsyncClient, user: User) -> None:
    clock.advance(timedelta(minutes=14, seconds=50))
    assert (await me(client, user.access_token)).status_code == 200
    clock.advance(timedelta(seconds=20))
    assert_error(await me(client, user.access_token), 401, "invalid_token")


async def test_tokens_issued_after_the_clock_moved_forward_work(client: httpx.AsyncClient) -> None:
    clock.advance(timedelta(days=3))
    user = await sign_up(client)
    assert (await me(client, user.access_token)).status_code == 200
    refreshed = await refresh(client, user.refresh_token)
    assert refreshed.status_code == 200, refreshed.text


async def test_forged_and_garbage_access_tokens_are_rejected(client: httpx.AsyncClient, user: User) -> None:
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-server-key-but-long-enough-for-hs256", algorithm="HS256")
    assert_error(await me(client, forged), 401, "invalid_token")
    assert_error(await me(client, "garbage"), 401, "invalid_token")
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    assert_error(await me(client, unsigned), 401, "invalid_token")


# --- sign-out ------------------------------------------------------------------------------


async def test_sign_out_revokes_the_session_at_once(client: httpx.AsyncClient, user: User) -> None:
    response = await client.request("DELETE", f"{API}/sessions", headers=user.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await me(client, user.access_token), 401, "session_revoked")
    assert_error(await refresh(client, user.refresh_token), 401, "invalid_refresh_token")


async def test_sign_out_leaves_other_sessions_alive(client: httpx.AsyncClient, user: User) -> None:
    second = (await sign_in(client, user.email, PASSWORD)).json()
    assert (await client.request("DELETE", f"{API}/sessions", headers=user.headers)).status_code == 204
    assert (await me(client, second["access_token"])).status_code == 200


async def test_sign_out_with_a_refresh_token_also_ends_that_session(
    client: httpx.AsyncClient, user: User
) -> None:
    second = (await sign_in(client, user.email, PASSWORD)).json()
    response = await client.request(
        "DELETE", f"{API}/sessions", headers=user.headers, json={"refresh_token": second["refresh_token"]}
    )
    assert response.status_code == 204
    assert_error(await me(client, second["access_token"]), 401)
    assert_error(await refresh(client, second["refresh_token"]), 401)


async def test_sign_out_cannot_end_another_accounts_session(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    response = await client.request(
        "DELETE", f"{API}/sessions", headers=user.headers, json={"refresh_token": other.refresh_token}
    )
    assert response.status_code == 204
    assert (await me(client, other.access_token)).status_code == 200
    assert (await refresh(client, other.refresh_token)).status_code == 200


async def test_sign_out_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.request("DELETE", f"{API}/sessions"), 401, "unauthorized")


# --- refresh -------------------------------------------------------------------------------


async def test_refresh_rotates_and_spends_the_old_token(client: httpx.AsyncClient, user: User) -> None:
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] != user.refresh_token
    assert body["expires_in"] == 900
    assert (await me(client, body["access_token"])).status_code == 200
    # The older access token of the same session is still good until it expires.
    assert (await me(client, user.access_token)).status_code == 200

    clock.advance(timedelta(minutes=1))
    assert_error(await refresh(client, user.refresh_token), 401, "refresh_token_reused")


async def test_refresh_extends_a_session_past_the_access_token_lifetime(
    client: httpx.AsyncClient, user: User
) -> None:
    refresh_token = user.refresh_token
    for _ in range(3):
        clock.advance(timedelta(minutes=14))
        body = (await refresh(client, refresh_token)).json()
        refresh_token = body["refresh_token"]
        assert (await me(client, body["access_token"])).status_code == 200
    assert_error(await me(client, user.access_token), 401, "invalid_token")


async def test_refresh_token_reuse_after_grace_revokes_the_whole_family(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    clock.freeze()
    rotated = (await refresh(client, user.refresh_token)).json()
    clock.advance(timedelta(seconds=runtime.settings.refresh_reuse_grace_seconds + 1))

    assert_error(await refresh(client, user.refresh_token), 401, "refresh_token_reused")
    # Every token of the session is dead now, the legitimate successor included.
    assert_error(await refresh(client, rotated["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(await me(client, rotated["access_token"]), 401, "session_revoked")
    assert_error(await me(client, user.access_token), 401, "session_revoked")

    audit = (await client.get(f"{API}/accounts/me/audit-log", headers=(await _fresh(client, user)))).json()
    assert "session.refresh_reuse_detected" in [entry["action"] for entry in audit]


async def _fresh(client: httpx.AsyncClient, user: User) -> dict[str, str]:
    body = (await sign_in(client, user.email, PASSWORD)).json()
    return auth(body["access_token"])


async def test_refresh_token_reuse_within_grace_is_tolerated(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    clock.freeze()
    first = (await refresh(client, user.refresh_token)).json()
    clock.advance(timedelta(seconds=runtime.settings.refresh_reuse_grace_seconds - 1))
    replay = await refresh(client, user.refresh_token)
    assert replay.status_code == 200, replay.text
    second = replay.json()
    assert second["refresh_token"] != first["refresh_token"]
    # The session survives: both issued pairs work.
    assert (await me(client, first["access_token"])).status_code == 200
    assert (await me(client, second["access_token"])).status_code == 200
    assert (await refresh(client, second["refresh_token"])).status_code == 200


async def test_reuse_in_one_session_leaves_the_accounts_other_sessions_alone(
    client: httpx.AsyncClient, user: User
) -> None:
    other_session = (await sign_in(client, user.email, PASSWORD)).json()
    await refresh(client, user.refresh_token)
    clock.advance(timedelta(minutes=5))
    assert (await refresh(client, user.refresh_token)).status_code == 401
    assert (await me(client, other_session["access_token"])).status_code == 200


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await refresh(client, "cnd_rt_not-a-real-token"), 401, "invalid_refresh_token")


async def test_refresh_token_expires_with_its_session(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    clock.advance(timedelta(days=runtime.settings.refresh_token_ttl_days, seconds=1))
    assert_error(await refresh(client, user.refresh_token), 401, "invalid_refresh_token")


async def test_refresh_with_missing_body_is_422(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(f"{API}/sessions/refresh", json={}), 422, "validation_error")
