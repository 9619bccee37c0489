"""Domains (seed 002): claim, list, get, delete and DNS verification against the loopback DNS
server, public domains of the operator, and which addresses Conduit takes mail for."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conduit.app import create_app
from conduit.email import service
from conduit.email.dns import DnsResolver, Nameserver
from conduit.email.models import Domain
from conduit.kit.errors import Unprocessable
from conduit.kit.runtime import Runtime
from tests.conftest import PASSWORD, User, sign_up
from tests.email.dns_server import DnsServer
from tests.identity.conftest import API, assert_error

DOMAINS = f"{API}/domains"
MX_HOST = "mx.conduit.email"
PUBLIC = "inbound.conduit-mail.net"
DOMAIN_FIELDS = {
    "account_id",
    "created_at",
    "id",
    "is_public",
    "name",
    "updated_at",
    "verification_token",
    "verified",
}


def email_runtime(runtime: Runtime, dns_server: DnsServer, **settings: Any) -> Runtime:
    """The test runtime's database and keys, asking the loopback DNS server and nobody else."""
    values = {
        "dns_nameservers": f"{dns_server.host}:{dns_server.port}",
        "public_email_domains": f"{PUBLIC.upper()}, not a domain",
        **settings,
    }
    return Runtime(
        settings=runtime.settings.model_copy(update=values), db=runtime.db, keyring=runtime.keyring
    )


@pytest.fixture
def dns_runtime(runtime: Runtime, dns_server: DnsServer) -> Runtime:
    return email_runtime(runtime, dns_server)


@pytest.fixture
def app(dns_runtime: Runtime) -> Any:
    return create_app(runtime=dns_runtime)


@pytest.fixture
async def other(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def claim(client: httpx.AsyncClient, user: User, name: str) -> dict[str, Any]:
    response = await client.post(DOMAINS, json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def publish(dns_server: DnsServer, domain: dict[str, Any], mx_host: str = MX_HOST) -> None:
    dns_server.add(f"_conduit-verify.{domain['name']}", "TXT", domain["verification_token"])
    dns_server.add(domain["name"], "MX", (10, f"{mx_host}."))


async def stored_domains(runtime: Runtime) -> list[Domain]:
    async with runtime.db.session(write=False) as session:
        return list((await session.scalars(select(Domain).order_by(Domain.name))).all())


# --- claim ---------------------------------------------------------------------------------


async def test_claim_returns_the_domain_with_its_token(client: httpx.AsyncClient, user: User) -> None:
    body = await claim(client, user, "acme.example.com")

    assert set(body) == DOMAIN_FIELDS
    assert body["id"].startswith("dom_")
    assert body["account_id"] == user.id
    assert body["name"] == "acme.example.com"
    assert body["verified"] is False
    assert body["is_public"] is False
    assert body["verification_token"].startswith("conduit-verify-")
    assert len(body["verification_token"]) == len("conduit-verify-") + 32
    assert body["created_at"].endswith("Z")
    again = await claim(client, user, "other.example.com")
    assert again["verification_token"] != body["verification_token"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("  Mail.Example.COM. ", "mail.example.com"),
        ("Bücher.example.com", "xn--bcher-kva.example.com"),
        ("xn--bcher-kva.example.org", "xn--bcher-kva.example.org"),
        ("\uff21\uff23\uff2d\uff25.example.net", "acme.example.net"),  # fullwidth ACME
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
async def test_names_are_normalized(client: httpx.AsyncClient, user: User, given: str, stored: str) -> None:
    assert (await claim(client, user, given))["name"] == stored


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "example",
        "com",
        "co.uk",
        "github.io",
        "192.0.2.1",
        "[2001:db8::1]",
        "2001:db8::1",
        "support@example.com",
        "https://example.com",
        "example.com:25",
        "exa mple.com",
        "-bad.example.com",
        "bad-.example.com",
        "a..example.com",
        "under_score.example.com",
        "*.example.com",
        "xn--zz.example.com",
        "example.123",
        "1.2.3",
        "a" * 64 + ".example.com",
        ".".join(["abcdefghi"] * 26) + ".com",
        ".",
        "   ",
    ],
)
async def test_invalid_names_are_422_and_store_nothing(
    client: httpx.AsyncClient, user: User, dns_runtime: Runtime, name: str
) -> None:
    response = await client.post(DOMAINS, json={"name": name}, headers=user.headers)

    body = assert_error(response, 422, "invalid_domain")
    assert body["error"]
    assert await stored_domains(dns_runtime) == []


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": None}, {"name": 42}, {"name": "x" * 1025}])
async def test_malformed_bodies_are_422(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> None:
    assert_error(await client.post(DOMAINS, json=body, headers=user.headers), 422, "validation_error")


async def test_a_domain_claimed_by_another_account_is_409(
    client: httpx.AsyncClient, user: User, other: User, dns_runtime: Runtime
) -> None:
    mine = await claim(client, user, "taken.example.com")

    for name in ("taken.example.com", "TAKEN.example.com.", " taken.EXAMPLE.com"):
        response = await client.post(DOMAINS, json={"name": name}, headers=other.headers)
        assert "another account" in assert_error(response, 409, "domain_already_claimed")["error"]
    response = await client.post(DOMAINS, json={"name": "taken.example.com"}, headers=user.headers)
    assert "you have" in assert_error(response, 409, "domain_already_claimed")["error"]
    assert [d.id for d in await stored_domains(dns_runtime)] == [mine["id"]]


async def test_a_public_domain_cannot_be_claimed(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(DOMAINS, json={"name": PUBLIC}, headers=user.headers)
    assert_error(response, 409, "domain_already_claimed")


async def test_concurrent_claims_of_one_name_leave_one_owner(
    client: httpx.AsyncClient, user: User, other: User, dns_runtime: Runtime
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(DOMAINS, json={"name": "race.example.com"}, headers=who.headers)
            for who in (user, other, user, other)
        )
    )

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert [d.name for d in await stored_domains(dns_runtime)] == ["race.example.com"]


# --- list, get, delete ---------------------------------------------------------------------


async def test_list_shows_own_domains_then_public_ones(
    client: httpx.AsyncClient, user: User, other: User
) -> None:
    first = await claim(client, user, "one.example.com")
    second = await claim(client, user, "two.example.com")
    await claim(client, other, "theirs.example.com")

    response = await client.get(DOMAINS, headers=user.headers)

    assert response.status_code == 200
    listed = response.json()
    assert [d["name"] for d in listed] == ["one.example.com", "two.example.com", PUBLIC]
    assert listed[:2] == [first, second]
    public = listed[2]
    assert set(public) == DOMAIN_FIELDS
    assert public["is_public"] is True
    assert public["verified"] is True
    assert public["account_id"] is None
    assert public["verification_token"] is None
    assert public["id"].startswith("dom_public_")
    assert [d["name"] for d in (await client.get(DOMAINS, headers=other.headers)).json()] == [
        "theirs.example.com",
        PUBLIC,
    ]


async def test_get_own_and_public_domains(client: httpx.AsyncClient, user: User) -> None:
    mine = await claim(client, user, "get.example.com")
    [_, public] = (await client.get(DOMAINS, headers=user.headers)).json()

    assert (await client.get(f"{DOMAINS}/{mine['id']}", headers=user.headers)).json() == mine
    assert (await client.get(f"{DOMAINS}/{public['id']}", headers=user.headers)).json() == public


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_another_accounts_domain_is_404(
    client: httpx.AsyncClient, user: User, other: User, dns_runtime: Runtime, method: str
) -> None:
    theirs = await claim(client, other, "private.example.com")

    for domain_id in (theirs["id"], "dom_doesnotexist", "dom_public_0000000000000000", "x" * 300):
        response = await client.request(method, f"{DOMAINS}/{domain_id}", headers=user.headers)
        assert_error(response, 404, "domain_not_found")
    assert [d.id for d in await stored_domains(dns_runtime)] == [theirs["id"]]


async def test_delete_releases_the_name(client: httpx.AsyncClient, user: User, other: User) -> None:
    mine = await claim(client, user, "released.example.com")

    response = await client.delete(f"{DOMAINS}/{mine['id']}", headers=user.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(f"{DOMAINS}/{mine['id']}", headers=user.headers), 404)
    assert (await claim(client, other, "released.example.com"))["account_id"] == other.id


async def test_a_public_domain_cannot_be_deleted(client: httpx.AsyncClient, user: User) -> None:
    [public] = (await client.get(DOMAINS, headers=user.headers)).json()

    response = await client.delete(f"{DOMAINS}/{public['id']}", headers=user.headers)

    assert_error(response, 403, "public_domain")
    assert (await client.get(DOMAINS, headers=user.headers)).json() == [public]


async def test_deleting_the_account_releases_its_domains(
    client: httpx.AsyncClient, user: User, other: User
) -> None:
    await claim(client, user, "leaving.example.com")
    deleted = await client.request(
        "DELETE", f"{API}/accounts/me", json={"confirm": True, "password": PASSWORD}, headers=user.headers
    )
    assert deleted.status_code == 204, deleted.text

    assert (await claim(client, other, "leaving.example.com"))["account_id"] == other.id


async def test_claims_and_verifications_are_audited(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer
) -> None:
    domain = await claim(client, user, "audited.example.com")
    publish(dns_server, domain)
    assert (await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)).status_code == 200
    assert (await client.delete(f"{DOMAINS}/{domain['id']}", headers=user.headers)).status_code == 204

    entries = (await client.get(f"{API}/accounts/me/audit-log", headers=user.headers)).json()
    actions = [e["action"] for e in entries if e["action"].startswith("domain.")]
    assert actions == ["domain.deleted", "domain.verified", "domain.claimed"]
    assert all(
        e["metadata"]["domain_id"] == domain["id"] for e in entries if e["action"].startswith("domain.")
    )


# --- verification --------------------------------------------------------------------------


async def test_verify_with_both_records_in_place(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer
) -> None:
    domain = await claim(client, user, "verified.example.com")
    publish(dns_server, domain)

    response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True
    assert {k: v for k, v in body.items() if k not in ("verified", "updated_at")} == {
        k: v for k, v in domain.items() if k not in ("verified", "updated_at")
    }
    assert ("_conduit-verify.verified.example.com", "TXT") in dns_server.queries
    assert ("verified.example.com", "MX") in dns_server.queries
    assert (await client.get(f"{DOMAINS}/{domain['id']}", headers=user.headers)).json()["verified"] is True
    again = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)
    assert again.status_code == 200
    assert again.json() == body


async def test_the_token_may_sit_among_other_txt_records(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer
) -> None:
    domain = await claim(client, user, "many.example.com")
    dns_server.add(f"_conduit-verify.{domain['name']}", "TXT", "something else", domain["verification_token"])
    dns_server.add(domain["name"], "MX", (5, "mx1.elsewhere.example."), (10, f"{MX_HOST}."))

    response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True


FAILURES = {
    "txt_missing": ("TXT", lambda s, d: s.add(d["name"], "MX", (10, f"{MX_HOST}."))),
    "txt_mismatch": (
        "TXT",
        lambda s, d: (
            s.add(f"_conduit-verify.{d['name']}", "TXT", "conduit-verify-someoneelse"),
            s.add(d["name"], "MX", (10, f"{MX_HOST}.")),
        ),
    ),
    "mx_missing": ("MX", lambda s, d: s.add(f"_conduit-verify.{d['name']}", "TXT", d["verification_token"])),
    "mx_mismatch": (
        "MX",
        lambda s, d: (
            s.add(f"_conduit-verify.{d['name']}", "TXT", d["verification_token"]),
            s.add(d["name"], "MX", (10, "mx.other-provider.example.")),
        ),
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_each_wrong_record_is_a_422_naming_it(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer, failure: str
) -> None:
    domain = await claim(client, user, "pending.example.com")
    record, setup = FAILURES[failure]
    setup(dns_server, domain)

    response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    body = assert_error(response, 422, "domain_verification_failed")
    [problem] = body["detail"]
    assert problem["record"] == record
    assert problem["code"] == failure
    assert problem["message"] in body["error"]
    if record == "TXT":
        assert problem["name"] == "_conduit-verify.pending.example.com"
        assert problem["expected"] == domain["verification_token"]
    else:
        assert problem["name"] == "pending.example.com"
        assert problem["expected"] == MX_HOST
    if failure.endswith("mismatch"):
        assert problem["found"] in (["conduit-verify-someoneelse"], ["mx.other-provider.example"])
    assert (await client.get(f"{DOMAINS}/{domain['id']}", headers=user.headers)).json() == domain


async def test_both_records_missing_are_both_named(client: httpx.AsyncClient, user: User) -> None:
    domain = await claim(client, user, "bare.example.com")

    response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    body = assert_error(response, 422, "domain_verification_failed")
    assert [(p["record"], p["code"]) for p in body["detail"]] == [
        ("TXT", "txt_missing"),
        ("MX", "mx_missing"),
    ]
    assert "_conduit-verify.bare.example.com" in body["error"]
    assert MX_HOST in body["error"]


async def test_a_failed_recheck_leaves_a_verified_domain_verified(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer
) -> None:
    domain = await claim(client, user, "steady.example.com")
    publish(dns_server, domain)
    assert (await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)).status_code == 200
    dns_server.clear()

    assert_error(await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers), 422)
    assert (await client.get(f"{DOMAINS}/{domain['id']}", headers=user.headers)).json()["verified"] is True


async def test_lookups_without_answers_are_a_422_not_a_500(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer, dns_runtime: Runtime, resolver: DnsResolver
) -> None:
    # The loopback server's resolver with short timeouts, in the slot the service keeps it in.
    dns_runtime.extras[service.DNS_RESOLVER_EXTRA] = resolver
    domain = await claim(client, user, "silent.example.com")
    dns_server.never_answer(f"_conduit-verify.{domain['name']}")
    dns_server.never_answer(domain["name"])

    response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    body = assert_error(response, 422, "dns_lookup_failed")
    assert {p["code"] for p in body["detail"]} == {"dns_error"}
    assert {p["record"] for p in body["detail"]} == {"TXT", "MX"}


async def test_the_configured_mx_host_is_the_one_checked(
    runtime: Runtime, dns_server: DnsServer, user: User
) -> None:
    custom = email_runtime(runtime, dns_server, mx_host="MX.Inbound.Example.net.")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime=custom)), base_url="http://testserver"
    ) as client:
        domain = await claim(client, user, "custom-mx.example.com")
        publish(dns_server, domain)
        refused = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)
        assert assert_error(refused, 422)["detail"][0]["expected"] == "mx.inbound.example.net"
        dns_server.add(domain["name"], "MX", (20, "mx.inbound.example.net."))

        response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True


async def test_verify_another_accounts_domain_is_404(
    client: httpx.AsyncClient, user: User, other: User, dns_server: DnsServer
) -> None:
    theirs = await claim(client, other, "not-yours.example.com")
    publish(dns_server, theirs)

    response = await client.post(f"{DOMAINS}/{theirs['id']}/verify", headers=user.headers)

    assert_error(response, 404, "domain_not_found")
    assert dns_server.queries == []
    assert (await client.get(f"{DOMAINS}/{theirs['id']}", headers=other.headers)).json()["verified"] is False


async def test_verify_a_public_domain_answers_it_as_is(
    client: httpx.AsyncClient, user: User, dns_server: DnsServer
) -> None:
    [public] = (await client.get(DOMAINS, headers=user.headers)).json()

    response = await client.post(f"{DOMAINS}/{public['id']}/verify", headers=user.headers)

    assert response.status_code == 200
    assert response.json() == public
    assert dns_server.queries == []


# --- addresses (for the SMTP server and email webhooks) ------------------------------------


async def test_which_addresses_conduit_takes_mail_for(
    client: httpx.AsyncClient, user: User, other: User, dns_server: DnsServer, dns_runtime: Runtime
) -> None:
    verified = await claim(client, user, "ours.example.com")
    publish(dns_server, verified)
    assert (await client.post(f"{DOMAINS}/{verified['id']}/verify", headers=user.headers)).status_code == 200
    await claim(client, user, "unverified.example.com")
    settings = dns_runtime.settings

    async with dns_runtime.db.session(write=False) as session:
        found = await service.domain_for_address(session, settings, "Support+Tag@OURS.example.com")
        assert found == service.AddressDomain("ours.example.com", False, user.id, verified["id"])
        assert await service.domain_for_address(session, settings, "a@ours.example.com", account_id=user.id)
        assert (
            await service.domain_for_address(session, settings, "a@ours.example.com", account_id=other.id)
            is None
        )
        assert await service.domain_for_address(session, settings, "a@unverified.example.com") is None
        assert await service.domain_for_address(session, settings, "a@elsewhere.example.com") is None
        public = await service.domain_for_address(
            session, settings, "anyone@Inbound.Conduit-Mail.net", account_id=other.id
        )
        assert public is not None
        assert public.is_public
        assert public.account_id is None
        assert public.domain_id.startswith("dom_public_")
        for invalid in ("no-at-sign", "a@", "a@bad_domain.example.com", "a@192.0.2.1", "a@[192.0.2.1]"):
            assert await service.domain_for_address(session, settings, invalid) is None
        # Only the domain counts here: the local part is the router's business.
        assert await service.domain_for_address(session, settings, '"a b"@ours.example.com') == found

        assert (
            await service.require_address_domain(session, settings, user.id, "x@ours.example.com")
        ).domain_id
        with pytest.raises(Unprocessable) as refused:
            await service.require_address_domain(session, settings, other.id, "x@ours.example.com")
        assert refused.value.code == "domain_not_verified"
        with pytest.raises(Unprocessable) as invalid_address:
            await service.require_address_domain(session, settings, user.id, "x y@ours.example.com")
        assert invalid_address.value.code == "invalid_address"


def test_addresses_are_normalized_on_the_domain_side_only() -> None:
    assert service.normalize_address(" Jane.Doe@Bücher.Example.com ") == "Jane.Doe@xn--bcher-kva.example.com"
    assert service.split_address("a+b@example.com") == ("a+b", "example.com")
    with pytest.raises(service.InvalidAddress):
        service.split_address(("x" * 65) + "@example.com")


def test_invalid_public_domains_are_left_out() -> None:
    assert service._parse_public_domains(" A.example.com,, b.EXAMPLE.com., com, 10.0.0.1 ,a.example.com") == (
        "a.example.com",
        "b.example.com",
    )


async def test_without_a_dns_server_verify_is_a_clean_422(
    client: httpx.AsyncClient, user: User, dns_runtime: Runtime
) -> None:
    """Nothing listens where the resolver asks (as on a machine without DNS): a 422, never a 500."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = DnsResolver([Nameserver("127.0.0.1", port)], timeout=0.5, lifetime=1.0)
    dns_runtime.extras[service.DNS_RESOLVER_EXTRA] = nowhere
    domain = await claim(client, user, "offline.example.com")

    response = await client.post(f"{DOMAINS}/{domain['id']}/verify", headers=user.headers)

    body = assert_error(response, 422, "dns_lookup_failed")
    assert [p["record"] for p in body["detail"]] == ["TXT", "MX"]
    assert (await client.get(f"{DOMAINS}/{domain['id']}", headers=user.headers)).json() == domain
