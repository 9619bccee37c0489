"""The account audit log: what is recorded, order, limits, and the 180-day purge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conduit.identity import audit
from conduit.identity.models import AuditEvent
from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker, enqueue
from conduit.kit.runtime import Runtime
from tests.conftest import PASSWORD, User, client_for, sign_up
from tests.identity.conftest import (
    API,
    assert_error,
    create_api_token,
    current_code,
    enable_2fa,
    sign_in,
)

AUDIT = f"{API}/accounts/me/audit-log"


async def audit_log(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, headers=headers, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_entries_have_the_documented_fields(client: httpx.AsyncClient, user: User) -> None:
    [entry, *_] = await audit_log(client, user.headers)
    assert set(entry) == {"id", "action", "created_at", "ip", "metadata"}
    assert entry["id"].startswith("aud_")
    assert entry["created_at"].endswith("Z")
    assert isinstance(entry["metadata"], dict)


async def test_newest_first(client: httpx.AsyncClient, user: User) -> None:
    for timezone in ("Europe/Paris", "Asia/Tokyo", "America/New_York"):
        clock.advance(timedelta(seconds=1))
        await client.put(f"{API}/accounts/me/timezone", headers=user.headers, json={"timezone": timezone})
    entries = await audit_log(client, user.headers)
    changes = [e["metadata"]["timezone"] for e in entries if e["action"] == "account.timezone_changed"]
    assert changes == ["America/New_York", "Asia/Tokyo", "Europe/Paris"]
    times = [e["created_at"] for e in entries]
    assert times == sorted(times, reverse=True)
    assert entries[-1]["action"] == "account.created"


async def test_limit_defaults_to_50_and_caps_the_count(client: httpx.AsyncClient, user: User) -> None:
    clock.freeze()
    # 30 failures stay under the per-IP lockout; each success resets the per-account count.
    for _ in range(30):
        clock.advance(timedelta(seconds=1))
        await sign_in(client, user.email, "wrong password!")
        await sign_in(client, user.email, PASSWORD)
    assert len(await audit_log(client, user.headers)) == 50
    assert len(await audit_log(client, user.headers, limit=1)) == 1
    assert len(await audit_log(client, user.headers, limit=200)) == 2 + 60
    newest = (await audit_log(client, user.headers, limit=1))[0]
    assert newest == (await audit_log(client, user.headers))[0]


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten"])
async def test_limit_outside_1_to_200_is_422(client: httpx.AsyncClient, user: User, limit: str) -> None:
    assert_error(
        await client.get(AUDIT, headers=user.headers, params={"limit": limit}), 422, "validation_error"
    )


async def test_audit_log_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(AUDIT), 401)


async def test_sign_in_success_and_failure_are_recorded_with_the_ip(app: Any, user: User) -> None:
    async with client_for(app, ip="10.1.2.3") as remote:
        await sign_in(remote, user.email, "wrong password!")
        clock.advance(timedelta(seconds=1))
        await sign_in(remote, user.email, PASSWORD)
        entries = await audit_log(remote, user.headers)
    failed = next(e for e in entries if e["action"] == "session.sign_in_failed")
    created = next(e for e in entries if e["action"] == "session.created")
    assert failed["ip"] == "10.1.2.3"
    assert created["ip"] == "10.1.2.3"
    assert created["metadata"]["method"] == "password"
    assert entries.index(created) < entries.index(failed)


async def test_2fa_password_and_token_events_are_recorded(client: httpx.AsyncClient, user: User) -> None:
    factor = await enable_2fa(client, user)
    regenerated = await client.post(
        f"{API}/accounts/me/2fa/backup-codes",
        headers=user.headers,
        json={"code": current_code(factor.secret)},
    )
    assert regenerated.status_code == 200
    new_codes = regenerated.json()["backup_codes"]
    disabled = await client.request(
        "DELETE", f"{API}/accounts/me/2fa", headers=user.headers, json={"code": new_codes[0]}
    )
    assert disabled.status_code == 204
    token = await create_api_token(client, user, name="ci")
    await client.delete(f"{API}/accounts/me/api-tokens/{token['id']}", headers=user.headers)
    await client.put(
        f"{API}/accounts/me/password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )

    entries = await audit_log(client, user.headers)
    actions = {e["action"] for e in entries}
    assert {
        "2fa.setup_started",
        "2fa.enabled",
        "2fa.backup_codes_regenerated",
        "2fa.disabled",
        "api_token.created",
        "api_token.revoked",
        "password.changed",
    } <= actions
    created = next(e for e in entries if e["action"] == "api_token.created")
    assert created["metadata"] == {"token_id": token["id"], "name": "ci"}
    # No entry carries a credential.
    text = str(entries)
    assert token["token"] not in text
    assert factor.secret not in text
    assert not any(code in text for code in factor.backup_codes + new_codes)


async def test_rejected_2fa_codes_and_password_failures_are_recorded(
    client: httpx.AsyncClient, user: User
) -> None:
    await enable_2fa(client, user)
    await client.request("DELETE", f"{API}/accounts/me/2fa", headers=user.headers, json={"code": "000000"})
    await client.put(
        f"{API}/accounts/me/password",
        headers=user.headers,
        json={"current_password": "not it", "new_password": "a brand new passphrase"},
    )
    actions = {e["action"] for e in await audit_log(client, user.headers)}
    assert {"2fa.code_rejected", "password.change_failed"} <= actions


async def test_each_account_sees_only_its_own_entries(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    await sign_in(client, other.email, "wrong password!")
    await create_api_token(client, other)
    mine = await audit_log(client, user.headers)
    assert {e["action"] for e in mine} == {"account.created", "session.created"}


async def test_an_api_token_can_read_the_audit_log(client: httpx.AsyncClient, user: User) -> None:
    token = (await create_api_token(client, user))["token"]
    entries = await audit_log(client, {"X-API-Key": token})
    assert entries[0]["action"] == "api_token.created"


# --- retention -----------------------------------------------------------------------------


async def count_entries(runtime: Runtime, account_id: str) -> int:
    async with runtime.db.session() as session:
        counted = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.account_id == account_id)
        )
    return int(counted or 0)


async def test_purge_job_deletes_entries_older_than_180_days(
    client: httpx.AsyncClient, user: User, runtime: Runtime, worker: JobWorker
) -> None:
    assert runtime.settings.audit_retention_days == 180
    await sign_in(client, user.email, "wrong password!")
    old = await count_entries(runtime, user.id)
    assert old == 3

    clock.advance(timedelta(days=179))
    clock.freeze()
    assert (await sign_in(client, user.email, PASSWORD)).status_code == 200
    async with runtime.db.session() as session:
        enqueue(session, "audit.purge")
    assert await worker.run_until_idle() == 1
    assert await count_entries(runtime, user.id) == old + 1  # nothing was old enough

    clock.advance(timedelta(days=2))  # the first entries are 181 days old, the newest 2 days
    async with runtime.db.session() as session:
        enqueue(session, "audit.purge")
    assert await worker.run_until_idle() == 1
    async with runtime.db.session() as session:
        left = (await session.scalars(select(AuditEvent).where(AuditEvent.account_id == user.id))).all()
    assert [(e.action, e.meta.get("method")) for e in left] == [("session.created", "password")]
    assert left[0].created_at == clock.now() - timedelta(days=2)


async def test_purge_older_than_returns_how_many_it_deleted(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    clock.advance(timedelta(days=181))
    async with runtime.db.session() as session:
        audit.record(session, "test.recent", account_id=user.id)
    async with runtime.db.session() as session:
        deleted = await audit.purge_older_than(session, timedelta(days=180))
    assert deleted == 2  # account.created and session.created from sign-up
    async with runtime.db.session() as session:
        left = (await session.scalars(select(AuditEvent.action))).all()
    assert left == ["test.recent"]


async def test_events_of_the_same_instant_keep_the_order_they_happened_in(client: httpx.AsyncClient) -> None:
    clock.freeze()
    user = await sign_up(client)
    for name in ("first", "second", "third"):
        created = await client.post(
            f"{API}/accounts/me/api-tokens", json={"name": name}, headers=user.headers
        )
        assert created.status_code == 201
    entries = (await client.get(f"{API}/accounts/me/audit-log", headers=user.headers)).json()
    assert [e["metadata"].get("name") for e in entries if e["action"] == "api_token.created"] == [
        "third",
        "second",
        "first",
    ]
    assert [e["action"] for e in entries][-2:] == ["session.created", "account.created"]
