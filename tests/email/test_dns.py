"""The resolver and domain verification against the loopback DNS server."""

from __future__ import annotations

import pytest

from conduit.email.dns import (
    DnsError,
    DnsResolver,
    MxRecord,
    Nameserver,
    parse_nameservers,
    verify_domain,
)
from conduit.settings import Settings
from tests.email.dns_server import DnsServer

DOMAIN = "example.com"
TOKEN = "cnd-verify-4f9c2a17e0b84d5c"
MX_HOST = "mx.conduit.email"
VERIFY_NAME = f"_conduit-verify.{DOMAIN}"


def test_parse_nameservers() -> None:
    assert parse_nameservers("") == []
    assert parse_nameservers(" 127.0.0.1:5353, 192.0.2.53 ,[::1]:5300, 2001:db8::53") == [
        Nameserver("127.0.0.1", 5353),
        Nameserver("192.0.2.53", 53),
        Nameserver("::1", 5300),
        Nameserver("2001:db8::53", 53),
    ]
    assert [str(ns) for ns in parse_nameservers("127.0.0.1, [::1]:5300")] == ["127.0.0.1:53", "[::1]:5300"]


@pytest.mark.parametrize("text", ["ns1.example.com", "127.0.0.1:0", "127.0.0.1:dns", "[::1", "[::1]x"])
def test_parse_nameservers_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid nameserver"):
        parse_nameservers(text)


def test_resolver_from_settings() -> None:
    settings = Settings(dns_nameservers="127.0.0.1:5353, [::1]:5354")
    assert DnsResolver.from_settings(settings).nameservers == [
        Nameserver("127.0.0.1", 5353),
        Nameserver("::1", 5354),
    ]
    assert Settings.model_fields["mx_host"].default == MX_HOST
    assert Settings.model_fields["dns_nameservers"].default == ""


async def test_lookups(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(DOMAIN, "TXT", "v=spf1 -all", ("first ", "second"), "x" * 300)
    dns_server.add(DOMAIN, "MX", (20, "Backup.Example.com."), "10 mx.example.com")
    dns_server.add(DOMAIN, "A", "192.0.2.1", "192.0.2.2")
    dns_server.add(DOMAIN, "AAAA", "2001:db8::1")
    dns_server.add(f"www.{DOMAIN}", "CNAME", f"{DOMAIN}.")

    assert sorted(await resolver.txt(DOMAIN)) == ["first second", "v=spf1 -all", "x" * 300]
    assert await resolver.mx(DOMAIN) == [MxRecord(10, "mx.example.com"), MxRecord(20, "backup.example.com")]
    assert sorted(await resolver.a(f"www.{DOMAIN}")) == ["192.0.2.1", "192.0.2.2"]
    assert await resolver.aaaa(DOMAIN) == ["2001:db8::1"]


async def test_missing_names_and_types_are_empty(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"a.b.{DOMAIN}", "A", "192.0.2.1")

    assert await resolver.txt(f"nowhere.{DOMAIN}") == []  # NXDOMAIN
    assert await resolver.txt(f"a.b.{DOMAIN}") == []  # NODATA
    assert await resolver.a(f"b.{DOMAIN}") == []  # empty non-terminal
    assert await resolver.txt("a..b.example.com") == []  # cannot exist: never asked
    assert ("nowhere.example.com", "TXT") in dns_server.queries
    assert all(".." not in name for name, _type in dns_server.queries)


async def test_a_long_answer_comes_over_tcp(dns_server: DnsServer, resolver: DnsResolver) -> None:
    records = [f"record {i} " + "y" * 200 for i in range(12)]
    dns_server.add(DOMAIN, "TXT", *records)

    assert sorted(await resolver.txt(DOMAIN)) == sorted(records)
    assert dns_server.tcp_queries == [(DOMAIN, "TXT")]


async def test_unanswered_lookup_raises(dns_server: DnsServer) -> None:
    dns_server.never_answer(DOMAIN)
    resolver = DnsResolver([Nameserver(dns_server.host, dns_server.port)], timeout=0.1, lifetime=0.2)

    with pytest.raises(DnsError, match="timed out"):
        await resolver.txt(DOMAIN)


async def test_a_caching_resolver_keeps_answers_for_their_ttl_and_a_plain_one_asks_again(
    dns_server: DnsServer,
) -> None:
    # Mail authentication caches (every message of a sender asks the same questions); domain
    # verification does not (a user who just fixed a record must see it).
    dns_server.ttl = 300
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none")
    nameservers = [Nameserver(dns_server.host, dns_server.port)]
    caching = DnsResolver(nameservers, cache_entries=100)
    plain = DnsResolver(nameservers)

    for resolver in (caching, caching, plain, plain):
        assert await resolver.txt("_dmarc.example.org") == ["v=DMARC1; p=none"]

    assert dns_server.queries.count(("_dmarc.example.org", "TXT")) == 3

    dns_server.ttl = 0
    dns_server.add("_dmarc.example.net", "TXT", "v=DMARC1; p=reject")
    for _ in range(2):
        assert await caching.txt("_dmarc.example.net") == ["v=DMARC1; p=reject"]
    assert dns_server.queries.count(("_dmarc.example.net", "TXT")) == 2, "a TTL of 0 was cached"


def serve_verification(server: DnsServer, *, token: str | None = TOKEN, mx: str | None = MX_HOST) -> None:
    if token is not None:
        server.add(VERIFY_NAME, "TXT", token)
    if mx is not None:
        server.add(DOMAIN, "MX", (10, mx))


async def test_verify_domain(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_verification(dns_server)
    dns_server.add(VERIFY_NAME, "TXT", "google-site-verification=abc")

    result = await verify_domain(resolver, "Example.COM.", TOKEN, MX_HOST)

    assert result.verified
    assert result.as_dict() == {"domain": DOMAIN, "verified": True, "problems": []}


async def test_verify_domain_mx_match_ignores_case_and_final_dot(
    dns_server: DnsServer, resolver: DnsResolver
) -> None:
    serve_verification(dns_server, mx="MX.Conduit.Email.")
    dns_server.add(DOMAIN, "MX", (5, "mail.example.com"))

    assert (await verify_domain(resolver, DOMAIN, TOKEN, "mx.conduit.email.")).verified


async def test_verify_domain_txt_missing(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_verification(dns_server, token=None)

    result = await verify_domain(resolver, DOMAIN, TOKEN, MX_HOST)

    assert not result.verified
    (problem,) = result.problems
    assert (problem.record, problem.code, problem.name, problem.found) == (
        "TXT",
        "txt_missing",
        VERIFY_NAME,
        (),
    )
    assert problem.message == f"No TXT record at {VERIFY_NAME}: add one with the value {TOKEN}"


async def test_verify_domain_txt_wrong(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_verification(dns_server, token="cnd-verify-someone-else")

    (problem,) = (await verify_domain(resolver, DOMAIN, TOKEN, MX_HOST)).problems

    assert (problem.code, problem.found, problem.expected) == (
        "txt_mismatch",
        ("cnd-verify-someone-else",),
        TOKEN,
    )
    assert "'cnd-verify-someone-else'" in problem.message
    assert TOKEN in problem.message


async def test_verify_domain_mx_missing(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_verification(dns_server, mx=None)

    (problem,) = (await verify_domain(resolver, DOMAIN, TOKEN, MX_HOST)).problems

    assert (problem.record, problem.code, problem.name, problem.found) == ("MX", "mx_missing", DOMAIN, ())
    assert problem.message == f"No MX record for {DOMAIN}: add one pointing to {MX_HOST}"


async def test_verify_domain_mx_elsewhere(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_verification(dns_server, mx="aspmx.l.example.net")
    dns_server.add(DOMAIN, "MX", "20 alt.example.net.")

    (problem,) = (await verify_domain(resolver, DOMAIN, TOKEN, MX_HOST)).problems

    assert (problem.code, problem.found) == ("mx_mismatch", ("aspmx.l.example.net", "alt.example.net"))
    assert problem.message == (
        f"The MX records of {DOMAIN} point to aspmx.l.example.net, alt.example.net, not to {MX_HOST}"
    )


async def test_verify_domain_reports_both_records(dns_server: DnsServer, resolver: DnsResolver) -> None:
    result = await verify_domain(resolver, DOMAIN, TOKEN, MX_HOST)

    assert [problem.code for problem in result.problems] == ["txt_missing", "mx_missing"]
    assert [problem["code"] for problem in result.as_dict()["problems"]] == ["txt_missing", "mx_missing"]


async def test_verify_domain_dns_failure_is_not_a_missing_record(dns_server: DnsServer) -> None:
    serve_verification(dns_server)
    dns_server.never_answer(DOMAIN, "MX")
    resolver = DnsResolver([Nameserver(dns_server.host, dns_server.port)], timeout=0.1, lifetime=0.2)

    (problem,) = (await verify_domain(resolver, DOMAIN, TOKEN, MX_HOST)).problems

    assert (problem.record, problem.code) == ("MX", "dns_error")
    assert "timed out" in problem.message
