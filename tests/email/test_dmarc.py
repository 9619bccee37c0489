"""DMARC over real SPF and DKIM results, through `authenticate_message` and the loopback DNS server."""

from __future__ import annotations

import json

import pytest

from conduit.email.auth import MailAuthResult, authenticate_message
from conduit.email.auth.dmarc import organizational_domain, parse_record
from conduit.email.dns import DnsResolver, Nameserver
from tests.email.dns_server import DnsServer
from tests.email.support import message, serve_key, sign

ALLOWED_IP = "192.0.2.25"
OTHER_IP = "198.51.100.99"


@pytest.fixture
def zone(dns_server: DnsServer) -> DnsServer:
    """example.org sends from 192.0.2.0/24 with bounces at mail.example.org, signs as s1._domainkey."""
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.org")
    dns_server.add("mail.example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    serve_key(dns_server, "example.org")
    serve_key(dns_server, "mail.example.org")
    serve_key(dns_server, "esp.example.net")
    return dns_server


async def authenticate(
    resolver: DnsResolver,
    raw: bytes,
    *,
    remote_ip: str = OTHER_IP,
    mail_from: str = "bounce@mail.example.org",
) -> MailAuthResult:
    return await authenticate_message(
        resolver, remote_ip=remote_ip, helo="mta.example.org", mail_from=mail_from, raw_message=raw
    )


async def test_aligned_dkim_passes_when_spf_fails(zone: DnsServer, resolver: DnsResolver) -> None:
    result = await authenticate(resolver, sign(message(), "example.org"))

    assert (result.spf.result, [d.result for d in result.dkim]) == ("fail", ["pass"])
    dmarc = result.dmarc
    assert (dmarc.result, dmarc.policy, dmarc.record_domain) == ("pass", "reject", "example.org")
    assert (dmarc.spf_aligned, dmarc.dkim_aligned) == (False, True)


async def test_relaxed_spf_alignment_accepts_a_subdomain(zone: DnsServer, resolver: DnsResolver) -> None:
    result = await authenticate(resolver, message(), remote_ip=ALLOWED_IP)

    assert result.spf.result == "pass"
    assert (result.dmarc.result, result.dmarc.spf_aligned, result.dmarc.dkim_aligned) == ("pass", True, False)
    assert result.dmarc.reason == "aligned SPF pass"


async def test_strict_spf_alignment_wants_the_exact_domain(zone: DnsServer, resolver: DnsResolver) -> None:
    zone.records["_dmarc.example.org"]["TXT"] = ["v=DMARC1; p=quarantine; aspf=s"]

    subdomain = await authenticate(resolver, message(), remote_ip=ALLOWED_IP)
    exact = await authenticate(resolver, message(), remote_ip=ALLOWED_IP, mail_from="bounce@example.org")

    assert (subdomain.spf.result, subdomain.dmarc.result, subdomain.dmarc.policy) == (
        "pass",
        "fail",
        "quarantine",
    )
    assert subdomain.dmarc.reason == "no aligned SPF or DKIM pass (aspf=s, adkim=r)"
    assert exact.dmarc.result == "pass"


async def test_strict_dkim_alignment_wants_the_exact_domain(zone: DnsServer, resolver: DnsResolver) -> None:
    raw = sign(message(), "mail.example.org")
    relaxed = await authenticate(resolver, raw)
    zone.records["_dmarc.example.org"]["TXT"] = ["v=DMARC1; p=reject; adkim=s"]
    strict = await authenticate(resolver, raw)

    assert [d.result for d in strict.dkim] == ["pass"]
    assert (relaxed.dmarc.result, relaxed.dmarc.dkim_aligned) == ("pass", True)
    assert (strict.dmarc.result, strict.dmarc.dkim_aligned) == ("fail", False)


async def test_a_third_party_signature_does_not_align(zone: DnsServer, resolver: DnsResolver) -> None:
    result = await authenticate(resolver, sign(message(), "esp.example.net"))

    assert [(d.domain, d.result) for d in result.dkim] == [("esp.example.net", "pass")]
    assert (result.dmarc.result, result.dmarc.policy) == ("fail", "reject")


async def test_a_failing_aligned_signature_does_not_count(zone: DnsServer, resolver: DnsResolver) -> None:
    raw = sign(message(), "example.org").replace(b"Hi Bob.", b"Hi Eve.")

    result = await authenticate(resolver, raw)

    assert [d.result for d in result.dkim] == ["fail"]
    assert result.dmarc.result == "fail"


async def test_no_record_is_none(zone: DnsServer, resolver: DnsResolver) -> None:
    result = await authenticate(resolver, sign(message(from_="carol@example.com"), "example.com"))

    assert (result.dmarc.result, result.dmarc.policy, result.dmarc.from_domain) == (
        "none",
        None,
        "example.com",
    )


async def test_subdomain_uses_the_organizational_record_and_its_sp(
    zone: DnsServer, resolver: DnsResolver
) -> None:
    zone.records["_dmarc.example.org"]["TXT"] = ["v=DMARC1; p=reject; sp=quarantine"]

    sub = await authenticate(resolver, message(from_="news@news.example.org"))
    top = await authenticate(resolver, message())

    assert (sub.dmarc.result, sub.dmarc.policy, sub.dmarc.record_domain) == (
        "fail",
        "quarantine",
        "example.org",
    )
    assert (top.dmarc.policy, top.dmarc.record_domain) == ("reject", "example.org")
    assert ("_dmarc.news.example.org", "TXT") in zone.queries


async def test_the_from_domains_own_record_wins(zone: DnsServer, resolver: DnsResolver) -> None:
    zone.add("_dmarc.news.example.org", "TXT", "v=DMARC1; p=none")

    result = await authenticate(resolver, message(from_="news@news.example.org"))

    assert (result.dmarc.result, result.dmarc.policy, result.dmarc.record_domain) == (
        "fail",
        "none",
        "news.example.org",
    )


async def test_organizational_domain_follows_the_public_suffix_list(
    dns_server: DnsServer, resolver: DnsResolver
) -> None:
    dns_server.add("_dmarc.example.co.uk", "TXT", "v=DMARC1; p=quarantine")
    serve_key(dns_server, "example.co.uk")

    result = await authenticate(resolver, sign(message(from_="a@shop.eu.example.co.uk"), "example.co.uk"))

    assert (result.dmarc.result, result.dmarc.record_domain, result.dmarc.policy) == (
        "pass",
        "example.co.uk",
        "quarantine",
    )
    assert organizational_domain("shop.eu.example.co.uk") == "example.co.uk"
    assert organizational_domain("Mail.Example.ORG.") == "example.org"


async def test_two_records_mean_no_policy(zone: DnsServer, resolver: DnsResolver) -> None:
    zone.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none")

    result = await authenticate(resolver, message())

    assert result.dmarc.result == "none"


async def test_unanswered_policy_lookup_is_a_temperror(zone: DnsServer) -> None:
    zone.never_answer("_dmarc.example.org", "TXT")
    resolver = DnsResolver([Nameserver(zone.host, zone.port)], timeout=0.1, lifetime=0.2)

    result = await authenticate(resolver, sign(message(), "example.org"))

    assert (result.dkim[0].result, result.dmarc.result) == ("pass", "temperror")


@pytest.mark.parametrize(
    ("from_", "reason"),
    [
        ("undisclosed-recipients:;", "the message has no From domain"),
        ("a@example.org, b@example.net", "the From addresses have several domains"),
    ],
)
async def test_from_without_one_domain_is_a_permerror(
    zone: DnsServer, resolver: DnsResolver, from_: str, reason: str
) -> None:
    result = await authenticate(resolver, message(from_=from_))

    assert (result.dmarc.result, result.dmarc.reason) == ("permerror", reason)


@pytest.mark.parametrize(
    ("record", "policy", "subdomain_policy", "strict", "pct"),
    [
        ("v=DMARC1; p=Reject; sp=none; adkim=s; aspf=s; pct=20", "reject", "none", True, 20),
        ("v=DMARC1;p=quarantine", "quarantine", None, False, 100),
        ("v=DMARC1; p=bogus; rua=mailto:d@example.org", "none", None, False, 100),  # 6.6.3: act as p=none
        ("v=DMARC1; rua=mailto:d@example.org", "none", None, False, 100),
    ],
)
def test_parse_record(record: str, policy: str, subdomain_policy: str | None, strict: bool, pct: int) -> None:
    parsed = parse_record("example.org", record)

    assert parsed is not None
    assert (parsed.policy, parsed.subdomain_policy) == (policy, subdomain_policy)
    assert (parsed.strict_dkim, parsed.strict_spf, parsed.pct) == (strict, strict, pct)


@pytest.mark.parametrize("record", ["v=DMARC1; p=bogus", "v=DMARC1", "v=DMARC1; p=reject; sp=bogus"])
def test_parse_record_without_a_usable_policy(record: str) -> None:
    assert parse_record("example.org", record) is None


async def test_non_dmarc_txt_records_are_ignored(zone: DnsServer, resolver: DnsResolver) -> None:
    zone.add("_dmarc.example.org", "TXT", "v=DMARC2; p=none", "some verification token")

    result = await authenticate(resolver, message())

    assert (result.dmarc.result, result.dmarc.policy) == ("fail", "reject")


async def test_result_is_json_for_the_webhook(zone: DnsServer, resolver: DnsResolver) -> None:
    result = await authenticate(resolver, sign(message(), "example.org"), remote_ip=ALLOWED_IP)

    payload = json.loads(json.dumps(result.as_dict()))

    assert payload == {
        "spf": {
            "result": "pass",
            "explanation": "sender SPF authorized",
            "identity": "mailfrom",
            "domain": "mail.example.org",
        },
        "dkim": [
            {
                "domain": "example.org",
                "selector": "s1",
                "algorithm": "rsa-sha256",
                "result": "pass",
                "reason": "signature verified with a 1024-bit rsa key",
            }
        ],
        "dmarc": {
            "result": "pass",
            "from_domain": "example.org",
            "reason": "aligned SPF and DKIM pass",
            "policy": "reject",
            "record_domain": "example.org",
            "spf_aligned": True,
            "dkim_aligned": True,
            "pct": 100,
        },
    }
