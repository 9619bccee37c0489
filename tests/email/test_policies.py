"""SMTP security policies (seed 002): CRUD with validation, credentials stored hashed and shown
masked, the in-use hook that guards deletion, and how a policy judges an incoming message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.email import service
from conduit.email.auth.dkim import DkimResult, verify_dkim
from conduit.email.auth.spf import SpfResult, check_spf
from conduit.email.dns import DnsResolver
from conduit.email.models import SmtpPolicy
from conduit.kit.runtime import Runtime
from tests.conftest import User, sign_up
from tests.email.dns_server import DnsServer
from tests.email.support import message, serve_key, sign
from tests.identity.conftest import API, assert_error

POLICIES = f"{API}/smtp-policies"
SECRET = "relay-password-7Qx!"
POLICY_FIELDS = {
    "allowed_dkim_domains",
    "allowed_source_ips",
    "allowed_spf_domains",
    "created_at",
    "id",
    "name",
    "require_dkim",
    "require_smtp_auth",
    "require_spf",
    "smtp_credentials",
    "updated_at",
}
FULL = {
    "name": "Billing relay",
    "require_spf": True,
    "allowed_spf_domains": "Example.com, mail.example.org",
    "require_dkim": True,
    "allowed_dkim_domains": "example.com",
    "allowed_source_ips": "192.0.2.0/24, 2001:db8::/32 10.1.2.3;198.51.100.7/24",
    "require_smtp_auth": True,
    "smtp_credentials": f"relay:{SECRET}",
}


@pytest.fixture
async def other(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def create(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    response = await client.post(POLICIES, json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored(runtime: Runtime, policy_id: str | None = None) -> list[SmtpPolicy]:
    async with runtime.db.session(write=False) as session:
        query = select(SmtpPolicy).order_by(SmtpPolicy.created_at)
        if policy_id is not None:
            query = query.where(SmtpPolicy.id == policy_id)
        return list((await session.scalars(query)).all())


# --- create and read -----------------------------------------------------------------------


async def test_create_normalizes_and_masks(client: httpx.AsyncClient, user: User) -> None:
    body = await create(client, user, **FULL)

    assert set(body) == POLICY_FIELDS
    assert body["id"].startswith("pol_")
    assert body["name"] == "Billing relay"
    assert body["allowed_spf_domains"] == "example.com,mail.example.org"
    assert body["allowed_dkim_domains"] == "example.com"
    assert body["allowed_source_ips"] == "192.0.2.0/24,2001:db8::/32,10.1.2.3/32,198.51.100.0/24"
    assert body["require_spf"] is body["require_dkim"] is body["require_smtp_auth"] is True
    assert body["smtp_credentials"] == "relay:********"
    assert body["created_at"].endswith("Z")
    assert (await client.get(f"{POLICIES}/{body['id']}", headers=user.headers)).json() == body
    assert (await client.get(POLICIES, headers=user.headers)).json() == [body]


async def test_a_minimal_policy_sets_no_checks(client: httpx.AsyncClient, user: User) -> None:
    body = await create(client, user, name="open")

    assert {k: body[k] for k in POLICY_FIELDS - {"id", "created_at", "updated_at"}} == {
        "name": "open",
        "require_spf": False,
        "allowed_spf_domains": None,
        "require_dkim": False,
        "allowed_dkim_domains": None,
        "allowed_source_ips": None,
        "require_smtp_auth": False,
        "smtp_credentials": None,
    }


async def test_the_database_holds_only_a_hash_of_the_password(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    body = await create(client, user, **FULL)

    [policy] = await stored(runtime)
    assert policy.smtp_username == "relay"
    assert policy.smtp_password_hash is not None
    assert policy.smtp_password_hash.startswith("$argon2id$")
    async with runtime.db.session(write=False) as session:
        rows = (await session.execute(text("SELECT * FROM smtp_policies"))).all()
        audit = (await session.execute(text("SELECT * FROM audit_log"))).all()
    assert SECRET not in repr(rows)
    assert SECRET not in repr(audit)
    for response in (
        await client.get(POLICIES, headers=user.headers),
        await client.get(f"{POLICIES}/{body['id']}", headers=user.headers),
        await client.get(f"{API}/accounts/me/audit-log", headers=user.headers),
    ):
        assert SECRET not in response.text


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"allowed_source_ips": "10.0.0.0/33"}, "invalid_source_ips", "allowed_source_ips"),
        ({"allowed_source_ips": "192.0.2.1, not-an-ip"}, "invalid_source_ips", "allowed_source_ips"),
        ({"allowed_source_ips": "300.1.1.1"}, "invalid_source_ips", "allowed_source_ips"),
        ({"allowed_source_ips": "fe80::1%eth0"}, "invalid_source_ips", "allowed_source_ips"),
        ({"allowed_spf_domains": "example.com, bad_domain.com"}, "invalid_domain", "allowed_spf_domains"),
        ({"allowed_spf_domains": "com"}, "invalid_domain", "allowed_spf_domains"),
        ({"allowed_dkim_domains": "192.0.2.1"}, "invalid_domain", "allowed_dkim_domains"),
        (
            {"allowed_dkim_domains": ",".join(f"d{i}.example.com" for i in range(101))},
            "too_many_entries",
            "allowed_dkim_domains",
        ),
        ({"require_smtp_auth": True}, "smtp_credentials_required", "smtp_credentials"),
        ({"smtp_credentials": SECRET}, "invalid_smtp_credentials", "smtp_credentials"),
        ({"smtp_credentials": f":{SECRET}"}, "invalid_smtp_credentials", "smtp_credentials"),
        ({"smtp_credentials": f"re lay:{SECRET}"}, "invalid_smtp_credentials", "smtp_credentials"),
        ({"smtp_credentials": "relay:short"}, "invalid_smtp_credentials", "smtp_credentials"),
        ({"smtp_credentials": "relay:********"}, "invalid_smtp_credentials", "smtp_credentials"),
    ],
)
async def test_invalid_fields_are_422_and_create_nothing(
    client: httpx.AsyncClient, user: User, runtime: Runtime, fields: dict[str, Any], code: str, field: str
) -> None:
    response = await client.post(POLICIES, json={"name": "bad", **fields}, headers=user.headers)

    body = assert_error(response, 422, code)
    assert {tuple(problem["loc"]) for problem in body["detail"]} == {("body", field)}
    assert SECRET not in response.text
    assert await stored(runtime) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "x", "require_spf": "maybe"},
        {"name": "x", "allowed_source_ips": ["10.0.0.0/8"]},
        {"name": "x", "smtp_credentials": 5},
    ],
)
async def test_malformed_bodies_are_422(
    client: httpx.AsyncClient, user: User, runtime: Runtime, body: dict[str, Any]
) -> None:
    assert_error(await client.post(POLICIES, json=body, headers=user.headers), 422, "validation_error")
    assert await stored(runtime) == []


# --- tenancy -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PUT", {"name": "mine now"}), ("DELETE", None)])
async def test_another_accounts_policy_is_404(
    client: httpx.AsyncClient,
    user: User,
    other: User,
    runtime: Runtime,
    method: str,
    body: dict[str, Any] | None,
) -> None:
    theirs = await create(client, other, name="theirs")

    for policy_id in (theirs["id"], "pol_doesnotexist"):
        response = await client.request(method, f"{POLICIES}/{policy_id}", json=body, headers=user.headers)
        assert_error(response, 404, "policy_not_found")
    assert (await client.get(POLICIES, headers=user.headers)).json() == []
    assert (await client.get(f"{POLICIES}/{theirs['id']}", headers=other.headers)).json() == theirs


# --- update --------------------------------------------------------------------------------


async def test_update_changes_only_what_is_sent(client: httpx.AsyncClient, user: User) -> None:
    created = await create(client, user, **FULL)
    url = f"{POLICIES}/{created['id']}"

    renamed = await client.put(url, json={"name": "Renamed", "require_spf": None}, headers=user.headers)

    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert body["name"] == "Renamed"
    assert {k: v for k, v in body.items() if k not in ("name", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("name", "updated_at")
    }
    assert body["updated_at"] >= created["updated_at"]
    assert (await client.get(url, headers=user.headers)).json() == body


async def test_null_or_empty_lists_remove_the_restriction(client: httpx.AsyncClient, user: User) -> None:
    created = await create(client, user, **FULL)

    response = await client.put(
        f"{POLICIES}/{created['id']}",
        json={"allowed_spf_domains": None, "allowed_dkim_domains": "", "allowed_source_ips": " , "},
        headers=user.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["allowed_spf_domains"] is body["allowed_dkim_domains"] is body["allowed_source_ips"] is None


async def test_credentials_sent_back_masked_keep_the_password(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    created = await create(client, user, **FULL)
    [before] = await stored(runtime)

    response = await client.put(f"{POLICIES}/{created['id']}", json=created, headers=user.headers)
    assert response.status_code == 200, response.text
    [unchanged] = await stored(runtime)
    assert unchanged.smtp_password_hash == before.smtp_password_hash

    renamed = await client.put(
        f"{POLICIES}/{created['id']}", json={"smtp_credentials": "relay2:********"}, headers=user.headers
    )
    assert renamed.json()["smtp_credentials"] == "relay2:********"
    [after_rename] = await stored(runtime)
    assert after_rename.smtp_password_hash == before.smtp_password_hash
    assert await service.verify_smtp_credentials(after_rename, "relay2", SECRET)

    changed = await client.put(
        f"{POLICIES}/{created['id']}",
        json={"smtp_credentials": "relay2:a new password"},
        headers=user.headers,
    )
    assert changed.status_code == 200
    [after_change] = await stored(runtime)
    assert after_change.smtp_password_hash != before.smtp_password_hash
    assert await service.verify_smtp_credentials(after_change, "relay2", "a new password")
    assert not await service.verify_smtp_credentials(after_change, "relay2", SECRET)


async def test_credentials_cannot_go_while_auth_is_required(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    created = await create(client, user, **FULL)
    url = f"{POLICIES}/{created['id']}"

    refused = await client.put(url, json={"smtp_credentials": None}, headers=user.headers)

    assert_error(refused, 422, "smtp_credentials_required")
    assert (await client.get(url, headers=user.headers)).json() == created
    cleared = await client.put(
        url, json={"require_smtp_auth": False, "smtp_credentials": None}, headers=user.headers
    )
    assert cleared.status_code == 200
    assert cleared.json()["smtp_credentials"] is None
    assert cleared.json()["require_smtp_auth"] is False
    [policy] = await stored(runtime)
    assert policy.smtp_username is policy.smtp_password_hash is None


async def test_an_invalid_update_changes_nothing(
    client: httpx.AsyncClient, user: User, runtime: Runtime
) -> None:
    created = await create(client, user, **FULL)
    [before] = await stored(runtime)

    response = await client.put(
        f"{POLICIES}/{created['id']}",
        json={
            "name": "changed",
            "smtp_credentials": "new:a fresh password",
            "allowed_source_ips": "10.0.0.0/40",
        },
        headers=user.headers,
    )

    assert_error(response, 422, "invalid_source_ips")
    assert (await client.get(f"{POLICIES}/{created['id']}", headers=user.headers)).json() == created
    [after] = await stored(runtime)
    assert after.smtp_password_hash == before.smtp_password_hash


async def test_changes_are_audited_without_values(client: httpx.AsyncClient, user: User) -> None:
    created = await create(client, user, **FULL)
    await client.put(
        f"{POLICIES}/{created['id']}", json={"smtp_credentials": f"relay:{SECRET}2"}, headers=user.headers
    )
    await client.delete(f"{POLICIES}/{created['id']}", headers=user.headers)

    log = await client.get(f"{API}/accounts/me/audit-log", headers=user.headers)
    entries = [e for e in log.json() if e["action"].startswith("smtp_policy.")]
    assert [e["action"] for e in entries] == [
        "smtp_policy.deleted",
        "smtp_policy.updated",
        "smtp_policy.created",
    ]
    assert entries[1]["metadata"]["fields"] == ["smtp_credentials"]
    assert SECRET not in log.text


# --- delete --------------------------------------------------------------------------------


async def test_delete(client: httpx.AsyncClient, user: User) -> None:
    created = await create(client, user, name="short-lived")

    response = await client.delete(f"{POLICIES}/{created['id']}", headers=user.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(f"{POLICIES}/{created['id']}", headers=user.headers), 404)
    assert_error(await client.delete(f"{POLICIES}/{created['id']}", headers=user.headers), 404)


@pytest.fixture
def policies_in_use() -> Iterator[set[str]]:
    """Policies a registered use check reports as used, as the email webhooks' check will."""
    used: set[str] = set()

    async def check(session: AsyncSession, policy_id: str) -> str | None:
        return f"email webhook whk_test ({policy_id})" if policy_id in used else None

    service.policy_user(check)
    yield used
    service.POLICY_USE_CHECKS.remove(check)


async def test_a_policy_in_use_cannot_be_deleted(
    client: httpx.AsyncClient, user: User, runtime: Runtime, policies_in_use: set[str]
) -> None:
    used = await create(client, user, name="in use")
    unused = await create(client, user, name="unused")
    policies_in_use.add(used["id"])

    response = await client.delete(f"{POLICIES}/{used['id']}", headers=user.headers)

    assert "email webhook whk_test" in assert_error(response, 409, "policy_in_use")["error"]
    assert (await client.get(f"{POLICIES}/{used['id']}", headers=user.headers)).status_code == 200
    assert (await client.delete(f"{POLICIES}/{unused['id']}", headers=user.headers)).status_code == 204
    async with runtime.db.session(write=False) as session:
        assert await service.policy_in_use(session, used["id"]) is not None
        assert await service.policy_in_use(session, unused["id"]) is None
    policies_in_use.clear()
    assert (await client.delete(f"{POLICIES}/{used['id']}", headers=user.headers)).status_code == 204


# --- SMTP AUTH -----------------------------------------------------------------------------


async def test_verify_smtp_credentials(client: httpx.AsyncClient, user: User, runtime: Runtime) -> None:
    with_auth = await create(client, user, **FULL)
    without = await create(client, user, name="no auth")
    [policy] = await stored(runtime, with_auth["id"])
    [bare] = await stored(runtime, without["id"])

    assert await service.verify_smtp_credentials(policy, "relay", SECRET)
    assert not await service.verify_smtp_credentials(policy, "relay", SECRET + "x")
    assert not await service.verify_smtp_credentials(policy, "Relay", SECRET)
    assert not await service.verify_smtp_credentials(policy, "relay", "")
    assert not await service.verify_smtp_credentials(policy, "rélay", SECRET)
    assert not await service.verify_smtp_credentials(bare, "", "")
    assert not await service.verify_smtp_credentials(bare, "relay", SECRET)


# --- evaluation ----------------------------------------------------------------------------


def policy(**fields: Any) -> SmtpPolicy:
    values: dict[str, Any] = {
        "name": "p",
        "require_spf": False,
        "allowed_spf_domains": [],
        "require_dkim": False,
        "allowed_dkim_domains": [],
        "allowed_source_ips": [],
        "require_smtp_auth": False,
    }
    return SmtpPolicy(**{**values, **fields})


def spf(result: str, domain: str = "example.com") -> SpfResult:
    return SpfResult(result, "", "mailfrom", domain)  # type: ignore[arg-type]


def dkim(result: str, domain: str = "example.com") -> DkimResult:
    return DkimResult(domain, "s1", "rsa-sha256", result, "")  # type: ignore[arg-type]


def evaluate(p: SmtpPolicy, **facts: Any) -> service.PolicyDecision:
    values: dict[str, Any] = {
        "remote_ip": "192.0.2.10",
        "spf_result": spf("pass"),
        "dkim_results": [dkim("pass")],
        "smtp_user": None,
        "smtp_password_ok": False,
    }
    return service.evaluate_policy(p, **{**values, **facts})


def test_a_policy_without_checks_allows_everything() -> None:
    decision = evaluate(policy(), remote_ip="203.0.113.9", spf_result=None, dkim_results=None)
    assert decision == service.PolicyDecision(True)
    assert decision.reply == "250 2.0.0 OK"


@pytest.mark.parametrize(
    ("remote_ip", "allowed"),
    [
        ("192.0.2.10", True),
        ("10.1.2.3", True),
        ("::ffff:192.0.2.200", True),
        ("2001:db8:1::25", True),
        ("192.0.3.1", False),
        ("2001:db9::1", False),
        ("not an ip", False),
    ],
)
def test_source_ip(remote_ip: str, allowed: bool) -> None:
    p = policy(allowed_source_ips=["192.0.2.0/24", "10.1.2.3/32", "2001:db8::/32"])

    decision = evaluate(p, remote_ip=remote_ip)

    assert decision.allowed is allowed
    if not allowed:
        assert (decision.check, decision.code, decision.status) == ("source_ip", 550, "5.7.1")
        assert decision.reply.startswith("550 5.7.1 ")


def test_smtp_auth() -> None:
    p = policy(require_smtp_auth=True, smtp_username="relay", smtp_password_hash="x")

    missing = evaluate(p, smtp_user=None, smtp_password_ok=False)
    wrong = evaluate(p, smtp_user="relay", smtp_password_ok=False)

    assert (missing.allowed, missing.check, missing.reply) == (
        False,
        "smtp_auth",
        "530 5.7.0 Authentication required",
    )
    assert (wrong.allowed, wrong.check, wrong.code, wrong.status) == (False, "smtp_auth", 550, "5.7.8")
    assert evaluate(p, smtp_user="relay", smtp_password_ok=True).allowed


@pytest.mark.parametrize(
    ("result", "code", "status"),
    [
        ("fail", 550, "5.7.23"),
        ("softfail", 550, "5.7.23"),
        ("neutral", 550, "5.7.23"),
        ("none", 550, "5.7.23"),
        ("permerror", 550, "5.7.24"),
        ("temperror", 451, "4.7.24"),
    ],
)
def test_spf_refusals(result: str, code: int, status: str) -> None:
    decision = evaluate(policy(require_spf=True), spf_result=spf(result))

    assert (decision.allowed, decision.check, decision.code, decision.status) == (False, "spf", code, status)
    assert decision.temporary is (code == 451)


def test_spf_pass_and_allowed_domains() -> None:
    required = policy(require_spf=True)
    listed = policy(allowed_spf_domains=["example.com"])

    assert evaluate(required, spf_result=spf("pass", "anything.example")).allowed
    assert evaluate(required, spf_result=None).status == "5.7.23"
    assert evaluate(listed, spf_result=spf("pass", "example.com")).allowed
    assert evaluate(listed, spf_result=spf("pass", "Bounces.Example.com.")).allowed
    for domain in ("notexample.com", "example.com.evil.test"):
        decision = evaluate(listed, spf_result=spf("pass", domain))
        assert (decision.allowed, decision.status) == (False, "5.7.23")
    assert evaluate(listed, spf_result=spf("fail", "example.com")).status == "5.7.23"


def test_dkim() -> None:
    required = policy(require_dkim=True)
    listed = policy(allowed_dkim_domains=["example.com"])

    assert evaluate(required, dkim_results=[dkim("fail"), dkim("pass", "other.test")]).allowed
    assert evaluate(listed, dkim_results=[dkim("pass", "mail.example.com")]).allowed
    cases = [
        (required, [], 550, "5.7.20"),
        (required, [dkim("fail"), dkim("permerror")], 550, "5.7.20"),
        (required, [dkim("temperror")], 451, "4.7.20"),
        (listed, [dkim("pass", "other.test")], 550, "5.7.21"),
        (listed, [dkim("pass", "other.test"), dkim("fail")], 550, "5.7.21"),
        (listed, [dkim("temperror"), dkim("pass", "other.test")], 451, "4.7.20"),
    ]
    for p, results, code, status in cases:
        decision = evaluate(p, dkim_results=results)
        assert (decision.allowed, decision.check, decision.code, decision.status) == (
            False,
            "dkim",
            code,
            status,
        )


def test_dkim_before_the_message_is_pending() -> None:
    decision = evaluate(policy(require_dkim=True, require_spf=True), dkim_results=None)
    assert (decision.allowed, decision.pending) == (True, ("dkim",))
    refused = evaluate(policy(require_dkim=True, require_spf=True), spf_result=spf("fail"), dkim_results=None)
    assert (refused.allowed, refused.check) == (False, "spf")


def test_the_first_failing_check_decides() -> None:
    strict = policy(
        allowed_source_ips=["10.0.0.0/8"],
        require_smtp_auth=True,
        require_spf=True,
        require_dkim=True,
    )
    facts: dict[str, Any] = {
        "remote_ip": "192.0.2.1",
        "smtp_user": None,
        "spf_result": spf("fail"),
        "dkim_results": [],
    }

    assert evaluate(strict, **facts).check == "source_ip"
    facts["remote_ip"] = "10.0.0.1"
    assert evaluate(strict, **facts).check == "smtp_auth"
    facts.update(smtp_user="relay", smtp_password_ok=True)
    assert evaluate(strict, **facts).check == "spf"
    facts["spf_result"] = spf("pass")
    assert evaluate(strict, **facts).check == "dkim"
    facts["dkim_results"] = [dkim("pass")]
    assert evaluate(strict, **facts).allowed


async def test_real_spf_and_dkim_results_against_a_policy(
    dns_server: DnsServer, resolver: DnsResolver
) -> None:
    """The facts as the SMTP server will get them: SPF and DKIM checked against the loopback DNS."""
    dns_server.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    serve_key(dns_server, "example.org")
    signed = sign(message(), "example.org")
    p = policy(require_spf=True, allowed_dkim_domains=["example.org"], allowed_source_ips=["192.0.2.0/24"])

    async def facts(ip: str, raw: bytes) -> dict[str, Any]:
        return {
            "remote_ip": ip,
            "spf_result": await check_spf(
                resolver, remote_ip=ip, helo="mx.example.org", mail_from="a@example.org"
            ),
            "dkim_results": await verify_dkim(resolver, raw),
        }

    assert evaluate(p, **await facts("192.0.2.25", signed)).allowed
    unsigned = evaluate(p, **await facts("192.0.2.25", message()))
    assert (unsigned.check, unsigned.status) == ("dkim", "5.7.20")
    tampered = evaluate(p, **await facts("192.0.2.25", signed.replace(b"Hi Bob.", b"Hi Eve.")))
    assert (tampered.check, tampered.status) == ("dkim", "5.7.20")
    p.allowed_source_ips = []
    outsider = evaluate(p, **await facts("203.0.113.5", signed))
    assert (outsider.check, outsider.reply.split(" ", 2)[:2]) == ("spf", ["550", "5.7.23"])
