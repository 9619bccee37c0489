"""Sign-up, the current account, timezone and account deletion (seed 002, Account)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from conduit.identity.models import Account, ApiKey, AuditEvent, AuthSession
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Membership, Organization
from tests.conftest import PASSWORD, User, sign_up
from tests.identity.conftest import API, assert_error, create_api_token, enable_2fa, sign_in


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- sign-up -------------------------------------------------------------------------------


async def test_sign_up_returns_the_account(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/accounts", json={"email": "New.Person@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert {"id", "email", "timezone", "created_at", "updated_at"} <= set(body)
    assert "password" not in response.text
    assert "password_hash" not in body
    assert body["id"].startswith("usr_")
    assert body["email"] == "new.person@example.com"
    assert body["timezone"] == "UTC"
    assert parse_time(body["created_at"]).tzinfo == UTC
    parse_time(body["updated_at"])


async def test_sign_up_creates_a_personal_organization(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await sign_up(client)
    async with runtime.db.session() as session:
        org = await session.scalar(
            select(Organization)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.account_id == user.id)
        )
        assert org is not None
        assert org.personal is True


@pytest.mark.parametrize("variant", ["same@example.com", "SAME@EXAMPLE.COM", "Same@Example.Com"])
async def test_sign_up_with_a_taken_email_is_409(client: httpx.AsyncClient, variant: str) -> None:
    await sign_up(client, email="same@example.com")
    response = await client.post(f"{API}/accounts", json={"email": variant, "password": "another passphrase"})
    assert_error(response, 409, "email_taken")


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "password_too_short"),
        ("seven77", "password_too_short"),
        ("x" * 129, "password_too_long"),
        ("password", "password_too_common"),
        ("password123", "password_too_common"),
        ("qwerty123", "password_too_common"),
        ("PassWord123", "password_too_common"),
        ("iloveyou", "password_too_common"),
    ],
)
async def test_sign_up_refuses_weak_passwords(client: httpx.AsyncClient, password: str, code: str) -> None:
    response = await client.post(f"{API}/accounts", json={"email": "weak@example.com", "password": password})
    assert_error(response, 422, code)
    # Nothing was created: the address is still free.
    retry = await client.post(f"{API}/accounts", json={"email": "weak@example.com", "password": PASSWORD})
    assert retry.status_code == 201


async def test_sign_up_refuses_the_email_as_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/accounts", json={"email": "longname.here@example.com", "password": "longname.here"}
    )
    assert_error(response, 422, "password_is_email")


@pytest.mark.parametrize("length", [8, 64, 128])
async def test_sign_up_accepts_passwords_from_8_to_128_characters(
    client: httpx.AsyncClient, length: int
) -> None:
    password = ("Zq7#mVw2pL" * 13)[:length]
    user = await sign_up(client, password=password)
    assert (await sign_in(client, user.email, password)).status_code == 200


async def test_unicode_passwords_are_accepted_and_count_characters(client: httpx.AsyncClient) -> None:
    password = "ключ-" + "🔑" * 4  # 9 characters, many more bytes
    user = await sign_up(client, password=password)
    assert (await sign_in(client, user.email, password)).status_code == 200


@pytest.mark.parametrize("email", ["not-an-email", "two@@example.com", "@example.com", "me@", ""])
async def test_sign_up_with_an_invalid_email_is_422(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(f"{API}/accounts", json={"email": email, "password": PASSWORD})
    body = assert_error(response, 422, "validation_error")
    assert any(problem["loc"][-1] == "email" for problem in body["detail"])


async def test_validation_errors_do_not_echo_the_password(client: httpx.AsyncClient) -> None:
    secret = "my-very-secret-passphrase-1"
    response = await client.post(f"{API}/accounts", json={"email": "nope", "password": secret})
    assert response.status_code == 422
    assert secret not in response.text


async def test_sign_up_stores_an_argon2id_hash_not_the_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await sign_up(client)
    async with runtime.db.session() as session:
        stored = await session.scalar(select(Account.password_hash).where(Account.id == user.id))
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


# --- current account -----------------------------------------------------------------------


async def test_get_me_returns_the_signed_in_account(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get(f"{API}/accounts/me", headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["timezone"] == "UTC"
    assert body["totp_enabled"] is False


async def test_get_me_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"{API}/accounts/me"), 401, "unauthorized")


# --- timezone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timezone", ["Europe/Paris", "America/Argentina/Buenos_Aires", "UTC", "Asia/Kolkata"]
)
async def test_timezone_accepts_iana_names(client: httpx.AsyncClient, user: User, timezone: str) -> None:
    response = await client.put(
        f"{API}/accounts/me/timezone", headers=user.headers, json={"timezone": timezone}
    )
    assert response.status_code == 204
    assert response.content == b""
    me = (await client.get(f"{API}/accounts/me", headers=user.headers)).json()
    assert me["timezone"] == timezone


@pytest.mark.parametrize(
    "timezone", ["Mars/Olympus", "EST5EDT ", "europe/paris", "Europe/Paris/", "../etc/passwd", "+02:00", ""]
)
async def test_timezone_refuses_anything_else(client: httpx.AsyncClient, user: User, timezone: str) -> None:
    response = await client.put(
        f"{API}/accounts/me/timezone", headers=user.headers, json={"timezone": timezone}
    )
    assert_error(response, 422)
    me = (await client.get(f"{API}/accounts/me", headers=user.headers)).json()
    assert me["timezone"] == "UTC"


async def test_timezone_change_moves_updated_at(client: httpx.AsyncClient, user: User) -> None:
    before = (await client.get(f"{API}/accounts/me", headers=user.headers)).json()
    await client.put(f"{API}/accounts/me/timezone", headers=user.headers, json={"timezone": "Europe/Paris"})
    after = (await client.get(f"{API}/accounts/me", headers=user.headers)).json()
    assert parse_time(after["updated_at"]) > parse_time(before["updated_at"])
    assert after["created_at"] == before["created_at"]


async def test_timezone_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}/accounts/me/timezone", json={"timezone": "Europe/Paris"})
    assert_error(response, 401)


# --- deletion ------------------------------------------------------------------------------


async def delete_me(client: httpx.AsyncClient, user: User, **body: object) -> httpx.Response:
    return await client.request("DELETE", f"{API}/accounts/me", headers=user.headers, json=body)


async def test_deletion_needs_confirm_true(client: httpx.AsyncClient, user: User) -> None:
    assert_error(
        await delete_me(client, user, confirm=False, password=PASSWORD), 422, "confirmation_required"
    )
    assert_error(await delete_me(client, user, password=PASSWORD), 422, "validation_error")
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).status_code == 200


async def test_deletion_with_a_wrong_password_is_401(client: httpx.AsyncClient, user: User) -> None:
    assert_error(
        await delete_me(client, user, confirm=True, password="wrong password"), 401, "invalid_password"
    )
    assert (await client.get(f"{API}/accounts/me", headers=user.headers)).status_code == 200


async def test_deletion_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.request(
        "DELETE", f"{API}/accounts/me", json={"confirm": True, "password": PASSWORD}
    )
    assert_error(response, 401)


async def test_deletion_removes_the_account_and_everything_it_owns(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    await enable_2fa(client, user)
    api_token = (await create_api_token(client, user))["token"]
    other_session = await sign_in(client, user.email, PASSWORD)
    assert other_session.json()["totp_required"] is True

    response = await delete_me(client, user, confirm=True, password=PASSWORD)
    assert response.status_code == 204
    assert response.content == b""

    assert_error(await client.get(f"{API}/accounts/me", headers=user.headers), 401)
    assert_error(
        await client.post(f"{API}/sessions/refresh", json={"refresh_token": user.refresh_token}), 401
    )
    assert_error(await client.get(f"{API}/accounts/me", headers={"X-API-Key": api_token}), 401)
    assert_error(await sign_in(client, user.email, PASSWORD), 401, "invalid_credentials")

    async with runtime.db.session() as session:
        for model, column in (
            (Account, Account.id),
            (AuthSession, AuthSession.account_id),
            (ApiKey, ApiKey.account_id),
            (Membership, Membership.account_id),
            (AuditEvent, AuditEvent.account_id),
        ):
            left = await session.scalar(select(func.count()).select_from(model).where(column == user.id))
            assert left == 0, model.__name__
        anonymous = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "account.deleted"))
        ).all()
    assert len(anonymous) == 1
    assert anonymous[0].account_id is None
    assert anonymous[0].ip is None


async def test_deleted_email_can_sign_up_again(client: httpx.AsyncClient, user: User) -> None:
    assert (await delete_me(client, user, confirm=True, password=PASSWORD)).status_code == 204
    again = await sign_up(client, email=user.email, password="a brand new passphrase")
    assert again.id != user.id
    me = (await client.get(f"{API}/accounts/me", headers=again.headers)).json()
    assert me["totp_enabled"] is False


async def test_deletion_keeps_other_accounts(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    other_token = (await create_api_token(client, other))["token"]
    assert (await delete_me(client, user, confirm=True, password=PASSWORD)).status_code == 204
    assert (await client.get(f"{API}/accounts/me", headers=other.headers)).status_code == 200
    assert (await client.get(f"{API}/accounts/me", headers={"X-API-Key": other_token})).status_code == 200
