"""Password reset by email and password change (seed 002, Account)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conduit.identity.models import PasswordResetToken
from conduit.identity.passwords import check_password
from conduit.identity.service import RESET_REQUESTS_PER_HOUR
from conduit.kit.clock import clock
from conduit.kit.errors import Unprocessable
from conduit.kit.jobs import Job, JobWorker
from conduit.kit.runtime import Runtime
from tests.conftest import PASSWORD, User, client_for, sign_up
from tests.identity.conftest import (
    API,
    assert_error,
    auth,
    create_api_token,
    outbox_messages,
    request_reset_token,
    sign_in,
)

NEW_PASSWORD = "a completely new passphrase"


async def confirm_reset(client: httpx.AsyncClient, token: str, new_password: str) -> httpx.Response:
    return await client.put(
        f"{API}/accounts/me/password-reset", json={"token": token, "new_password": new_password}
    )


async def change_password(client: httpx.AsyncClient, user: User, **body: Any) -> httpx.Response:
    return await client.put(f"{API}/accounts/me/password", headers=user.headers, json=body)


# --- policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["password", "password123", "qwerty123", "Password1", "123456789", "abc12345"]
)
def test_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        check_password(password)
    assert raised.value.code == "password_too_common"


@pytest.mark.parametrize("password", ["zebra-quartz-lantern", "correct horse battery staple", "x" * 128])
def test_uncommon_passwords_are_accepted(password: str) -> None:
    check_password(password, email="someone@example.com")


# --- reset request -------------------------------------------------------------------------


async def test_reset_request_answers_202_alike_for_known_and_unknown_emails(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    known = await client.post(f"{API}/accounts/me/password-reset", json={"email": user.email})
    unknown = await client.post(f"{API}/accounts/me/password-reset", json={"email": "ghost@example.com"})
    garbage = await client.post(f"{API}/accounts/me/password-reset", json={"email": "not an email"})
    for response in (known, unknown, garbage):
        assert response.status_code == 202
        assert response.content == known.content
        assert response.headers.get("content-type") == known.headers.get("content-type")

    await worker.run_until_idle()
    assert len(outbox_messages(runtime, user.email)) == 1
    assert outbox_messages(runtime, "ghost@example.com") == []


async def test_reset_email_is_sent_by_a_job_after_the_request(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    await client.post(f"{API}/accounts/me/password-reset", json={"email": user.email.upper()})
    await client.post(f"{API}/accounts/me/password-reset", json={"email": "ghost@example.com"})
    assert outbox_messages(runtime, user.email) == []  # nothing is sent inside the request
    async with runtime.db.session() as session:
        queued = (await session.scalars(select(Job.kind).order_by(Job.created_at))).all()
    # Known and unknown addresses leave the same trace in the request: one reset job each.
    assert queued == ["identity.password_reset", "identity.password_reset"]

    worker_ran = await worker.run_until_idle()
    assert worker_ran == 3  # two reset jobs, one mail for the account that exists
    async with runtime.db.session() as session:
        mails = (await session.scalars(select(Job).where(Job.kind == "mail.send"))).all()
    assert len(mails) == 1
    assert "cnd_pr_" not in str(mails[0].payload)  # the queued body is sealed
    [message] = outbox_messages(runtime, user.email)
    assert message["Subject"] == "Reset your Conduit password"


async def test_reset_token_is_stored_hashed(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    token = await request_reset_token(client, runtime, worker, user.email)
    async with runtime.db.session() as session:
        stored = (await session.scalars(select(PasswordResetToken.token_hash))).all()
    assert stored == [runtime.keyring.hash_token(token)]


# --- reset confirm -------------------------------------------------------------------------


async def test_reset_sets_the_new_password_once(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    token = await request_reset_token(client, runtime, worker, user.email)
    response = await confirm_reset(client, token, NEW_PASSWORD)
    assert response.status_code == 204
    assert response.content == b""

    assert_error(await sign_in(client, user.email, PASSWORD), 401, "invalid_credentials")
    assert (await sign_in(client, user.email, NEW_PASSWORD)).status_code == 200
    assert_error(await confirm_reset(client, token, "yet another passphrase"), 401, "invalid_reset_token")
    assert (await sign_in(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_reset_token_expires_after_60_minutes(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    clock.freeze()
    token = await request_reset_token(client, runtime, worker, user.email)
    clock.advance(timedelta(minutes=runtime.settings.password_reset_ttl_minutes, seconds=1))
    assert_error(await confirm_reset(client, token, NEW_PASSWORD), 401, "invalid_reset_token")
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200


async def test_reset_token_works_until_just_before_expiry(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    clock.freeze()
    token = await request_reset_token(client, runtime, worker, user.email)
    clock.advance(timedelta(minutes=runtime.settings.password_reset_ttl_minutes, seconds=-5))
    assert (await confirm_reset(client, token, NEW_PASSWORD)).status_code == 204


async def test_weak_new_password_is_422_and_leaves_the_token_usable(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    token = await request_reset_token(client, runtime, worker, user.email)
    assert_error(await confirm_reset(client, token, "qwerty123"), 422, "password_too_common")
    assert_error(await confirm_reset(client, token, "short"), 422, "password_too_short")
    assert_error(await confirm_reset(client, token, "y" * 129), 422, "password_too_long")
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200
    assert (await confirm_reset(client, token, NEW_PASSWORD)).status_code == 204


async def test_unknown_reset_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await confirm_reset(client, "cnd_pr_made-up", NEW_PASSWORD), 401, "invalid_reset_token")


async def test_reset_with_missing_fields_is_422(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}/accounts/me/password-reset", json={"token": "cnd_pr_x"})
    assert_error(response, 422, "validation_error")


async def test_reset_revokes_every_session_and_api_token(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    second = (await sign_in(client, user.email, PASSWORD)).json()
    api_token = (await create_api_token(client, user))["token"]
    token = await request_reset_token(client, runtime, worker, user.email)

    assert (await confirm_reset(client, token, NEW_PASSWORD)).status_code == 204

    for access in (user.access_token, second["access_token"], api_token):
        assert_error(await client.get(f"{API}/accounts/me", headers=auth(access)), 401)
    for refresh in (user.refresh_token, second["refresh_token"]):
        response = await client.post(f"{API}/sessions/refresh", json={"refresh_token": refresh})
        assert_error(response, 401)


async def test_reset_emails_are_throttled_per_account_but_the_answer_does_not_change(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    clock.freeze()
    responses = [
        await client.post(f"{API}/accounts/me/password-reset", json={"email": user.email}) for _ in range(7)
    ]
    assert {r.status_code for r in responses} == {202}
    await worker.run_until_idle()
    assert len(outbox_messages(runtime, user.email)) == RESET_REQUESTS_PER_HOUR
    clock.advance(timedelta(hours=1, seconds=1))
    await request_reset_token(client, runtime, worker, user.email)


async def test_a_reset_spends_every_other_outstanding_reset_token(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    older = await request_reset_token(client, runtime, worker, user.email)
    newer = await request_reset_token(client, runtime, worker, user.email)
    assert (await confirm_reset(client, newer, NEW_PASSWORD)).status_code == 204
    # An older email left in an inbox must not reset the password a second time.
    assert_error(await confirm_reset(client, older, "a third passphrase"), 401, "invalid_reset_token")
    assert (await sign_in(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_changing_the_password_spends_outstanding_reset_tokens(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    token = await request_reset_token(client, runtime, worker, user.email)
    response = await change_password(client, user, current_password=PASSWORD, new_password=NEW_PASSWORD)
    assert response.status_code == 204
    assert_error(await confirm_reset(client, token, "a third passphrase"), 401, "invalid_reset_token")
    assert (await sign_in(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_token_sent_twice_at_once_works_once(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    token = await request_reset_token(client, runtime, worker, user.email)
    responses = await asyncio.gather(
        confirm_reset(client, token, NEW_PASSWORD), confirm_reset(client, token, "a third passphrase")
    )
    assert sorted(r.status_code for r in responses) == [204, 401]
    winner = NEW_PASSWORD if responses[0].status_code == 204 else "a third passphrase"
    assert (await sign_in(client, user.email, winner)).status_code == 200


async def test_reset_clears_an_account_lockout(
    app: Any, client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    for n in range(runtime.settings.login_max_failures_per_account):
        async with client_for(app, ip=f"10.7.0.{n + 1}") as attacker:
            await sign_in(attacker, user.email, "wrong password!")
    assert_error(await sign_in(client, user.email, PASSWORD), 429)
    token = await request_reset_token(client, runtime, worker, user.email)
    assert (await confirm_reset(client, token, NEW_PASSWORD)).status_code == 204
    assert (await sign_in(client, user.email, NEW_PASSWORD)).status_code == 200


# --- change --------------------------------------------------------------------------------


async def test_change_password_with_a_wrong_current_password_is_401(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await change_password(
        client, user, current_password="not it at all", new_password=NEW_PASSWORD
    )
    assert_error(response, 401, "invalid_password")
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200
    # A wrong current password does not end the caller's session.
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).status_code == 200


@pytest.mark.parametrize(
    ("new_password", "code"),
    [
        ("short", "password_too_short"),
        ("password123", "password_too_common"),
        ("z" * 129, "password_too_long"),
    ],
)
async def test_change_password_to_a_weak_one_is_422(
    client: httpx.AsyncClient, user: User, new_password: str, code: str
) -> None:
    response = await change_password(client, user, current_password=PASSWORD, new_password=new_password)
    assert_error(response, 422, code)
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200


async def test_change_password_with_missing_fields_is_422(client: httpx.AsyncClient, user: User) -> None:
    assert_error(await change_password(client, user, new_password=NEW_PASSWORD), 422, "validation_error")


async def test_change_password_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{API}/accounts/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert_error(response, 401)


async def test_change_password_ends_other_sessions_but_keeps_this_one(
    client: httpx.AsyncClient, user: User
) -> None:
    other = (await sign_in(client, user.email, PASSWORD)).json()
    api_token = (await create_api_token(client, user))["token"]

    response = await change_password(client, user, current_password=PASSWORD, new_password=NEW_PASSWORD)
    assert response.status_code == 204

    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).status_code == 200
    refreshed = await client.post(f"{API}/sessions/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    assert_error(await client.get(f"{API}/accounts/me", headers=auth(other["access_token"])), 401)
    other_refresh = await client.post(
        f"{API}/sessions/refresh", json={"refresh_token": other["refresh_token"]}
    )
    assert_error(other_refresh, 401)
    # API tokens survive unless asked otherwise.
    assert (await client.get(f"{API}/accounts/me", headers={"X-API-Key": api_token})).status_code == 200

    assert_error(await sign_in(client, user.email, PASSWORD), 401)
    assert (await sign_in(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_change_password_can_revoke_api_tokens(client: httpx.AsyncClient, user: User) -> None:
    api_token = (await create_api_token(client, user))["token"]
    response = await change_password(
        client, user, current_password=PASSWORD, new_password=NEW_PASSWORD, revoke_api_tokens=True
    )
    assert response.status_code == 204
    assert_error(await client.get(f"{API}/accounts/me", headers={"X-API-Key": api_token}), 401)
    listed = (await client.get(f"{API}/accounts/me/api-tokens", headers=user.headers)).json()
    assert listed == []
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).status_code == 200


async def test_change_password_does_not_touch_other_accounts(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    other_token = (await create_api_token(client, other))["token"]
    await change_password(
        client, user, current_password=PASSWORD, new_password=NEW_PASSWORD, revoke_api_tokens=True
    )
    assert (await client.get(f"{API}/accounts/me", headers=other.headers)).status_code == 200
    assert (await client.get(f"{API}/accounts/me", headers={"X-API-Key": other_token})).status_code == 200
