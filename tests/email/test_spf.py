"""SPF through the loopback DNS server: the mechanisms real senders publish."""

from __future__ import annotations

import asyncio

import pytest
import spf as pyspf

from conduit.email.auth import check_spf
from conduit.email.dns import DnsResolver, Nameserver
from tests.email.dns_server import DnsServer

SENDER = "bounce@example.com"


@pytest.fixture
def zone(dns_server: DnsServer) -> DnsServer:
    dns_server.add(
        "example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8:25::/48 include:_spf.esp.test -all"
    )
    dns_server.add("_spf.esp.test", "TXT", "v=spf1 ip4:203.0.113.0/25 ~all")
    dns_server.add("example.net", "TXT", "v=spf1 mx a:relay.example.net ~all")
    dns_server.add("example.net", "MX", (10, "mail.example.net"))
    dns_server.add("mail.example.net", "A", "198.51.100.10")
    dns_server.add("relay.example.net", "AAAA", "2001:db8:77::1")
    return dns_server


@pytest.mark.parametrize(
    ("remote_ip", "mail_from", "result"),
    [
        ("192.0.2.44", SENDER, "pass"),  # ip4
        ("2001:db8:25::9", SENDER, "pass"),  # ip6
        ("203.0.113.7", SENDER, "pass"),  # include
        ("203.0.113.200", SENDER, "fail"),  # the include's ~all does not match: -all decides
        ("198.51.100.1", SENDER, "fail"),
        ("198.51.100.10", "news@example.net", "pass"),  # mx
        ("2001:db8:77::1", "news@example.net", "pass"),  # a, over IPv6
        ("192.0.2.44", "news@example.net", "softfail"),  # ~all
        ("192.0.2.44", "someone@unpublished.example", "none"),
    ],
)
async def test_mechanisms(
    zone: DnsServer, resolver: DnsResolver, remote_ip: str, mail_from: str, result: str
) -> None:
    spf = await check_spf(resolver, remote_ip=remote_ip, helo="mta.example.com", mail_from=mail_from)

    assert (spf.result, spf.identity, spf.domain) == (result, "mailfrom", mail_from.split("@")[1])


async def test_fail_explains_with_the_domains_exp(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.com", "TXT", "v=spf1 ip4:192.0.2.1 -all exp=why.example.com")
    dns_server.add("why.example.com", "TXT", "%{i} may not send for %{d}")

    spf = await check_spf(resolver, remote_ip="198.51.100.7", helo="mta.example.com", mail_from=SENDER)

    assert (spf.result, spf.explanation) == ("fail", "198.51.100.7 may not send for example.com")


async def test_null_sender_checks_helo(zone: DnsServer, resolver: DnsResolver) -> None:
    spf = await check_spf(resolver, remote_ip="192.0.2.9", helo="example.com", mail_from="")

    assert (spf.result, spf.identity, spf.domain) == ("pass", "helo", "example.com")


async def test_void_lookup_limit(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(
        "example.com",
        "TXT",
        "v=spf1 a:gone1.example.com a:gone2.example.com a:gone3.example.com ip4:192.0.2.1 -all",
    )

    spf = await check_spf(resolver, remote_ip="192.0.2.1", helo="mta.example.com", mail_from=SENDER)

    assert spf.result == "permerror"
    assert "Void lookup limit of 2 exceeded" in spf.explanation


async def test_two_void_lookups_are_allowed(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.com", "TXT", "v=spf1 a:gone1.example.com a:gone2.example.com ip4:192.0.2.1 -all")

    spf = await check_spf(resolver, remote_ip="192.0.2.1", helo="mta.example.com", mail_from=SENDER)

    assert spf.result == "pass"


async def test_two_records_are_a_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.com", "TXT", "v=spf1 -all", "v=spf1 +all")

    spf = await check_spf(resolver, remote_ip="192.0.2.1", helo="mta.example.com", mail_from=SENDER)

    assert spf.result == "permerror"


async def test_unanswered_lookup_is_a_temperror(dns_server: DnsServer) -> None:
    dns_server.never_answer("example.com")
    resolver = DnsResolver([Nameserver(dns_server.host, dns_server.port)], timeout=0.1, lifetime=0.2)

    spf = await check_spf(resolver, remote_ip="192.0.2.1", helo="mta.example.com", mail_from=SENDER)

    assert spf.result == "temperror"
    assert "timed out" in spf.explanation


async def test_a_bad_client_address_is_a_permerror(resolver: DnsResolver) -> None:
    spf = await check_spf(resolver, remote_ip="not-an-ip", helo="mta.example.com", mail_from=SENDER)

    assert (spf.result, spf.domain) == ("permerror", "example.com")


async def test_concurrent_checks_each_ask_their_own_resolver(
    dns_server: DnsServer, resolver: DnsResolver
) -> None:
    other_server = DnsServer()
    await other_server.start()
    try:
        dns_server.add("example.com", "TXT", "v=spf1 ip4:192.0.2.1 -all")
        other_server.add("example.com", "TXT", "v=spf1 -ip4:192.0.2.1 +all")
        other = DnsResolver([Nameserver(other_server.host, other_server.port)], timeout=0.5, lifetime=1.0)

        results = await asyncio.gather(
            *(
                check_spf(each, remote_ip="192.0.2.1", helo="mta.example.com", mail_from=SENDER)
                for each in [resolver, other] * 5
            )
        )
    finally:
        await other_server.stop()

    assert [spf.result for spf in results] == ["pass", "fail"] * 5


def test_pyspf_outside_a_check_never_reaches_the_system_resolvers() -> None:
    result, _code, explanation = pyspf.query(i="192.0.2.1", s=SENDER, h="mta.example.com").check()

    assert result == "temperror"
    assert "no resolver" in explanation
