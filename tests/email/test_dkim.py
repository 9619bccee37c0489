"""DKIM verification with the RFC 6376 / RFC 8463 example and freshly signed messages, keys served by
the loopback DNS server."""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conduit.email.auth import DkimResult, verify_dkim
from conduit.email.dns import DnsResolver, Nameserver
from tests.email.dns_server import DnsServer
from tests.email.support import DKIMPY, RSA_KEY_RECORD, message, serve_key, sign

RFC_DOMAIN = "football.example.com"
RFC_SIGNED = (DKIMPY / "rfc6376.signed.msg").read_bytes()
# RFC 8463 Appendix A.2: the key record of selector brisbane (the RFC 8032 7.1 test key).
RFC8463_ED25519_RECORD = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def serve_rfc_keys(server: DnsServer, *, rsa_key: bool = True) -> None:
    server.add(f"brisbane._domainkey.{RFC_DOMAIN}", "TXT", RFC8463_ED25519_RECORD)
    if rsa_key:
        server.add(f"test._domainkey.{RFC_DOMAIN}", "TXT", RSA_KEY_RECORD)


def verdicts(results: list[DkimResult]) -> list[tuple[str, str, str, str]]:
    return [(r.domain, r.selector, r.algorithm, r.result) for r in results]


async def test_rfc8463_example_both_signatures_pass(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_rfc_keys(dns_server)

    results = await verify_dkim(resolver, RFC_SIGNED)

    assert verdicts(results) == [
        (RFC_DOMAIN, "brisbane", "ed25519-sha256", "pass"),
        (RFC_DOMAIN, "test", "rsa-sha256", "pass"),
    ]
    assert results[1].reason == "signature verified with a 1024-bit rsa key"
    assert (f"brisbane._domainkey.{RFC_DOMAIN}", "TXT") in dns_server.queries


async def test_tampered_body_fails(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_rfc_keys(dns_server)

    results = await verify_dkim(resolver, RFC_SIGNED.replace(b"We lost the game.", b"We won the game."))

    assert [r.result for r in results] == ["fail", "fail"]
    assert all(r.reason.startswith("body hash mismatch") for r in results)


async def test_tampered_header_fails(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_rfc_keys(dns_server)

    results = await verify_dkim(
        resolver, RFC_SIGNED.replace(b"Subject: Is dinner ready?", b"Subject: Wire $5000")
    )

    assert [(r.result, r.reason) for r in results] == [("fail", "signature did not verify")] * 2


async def test_missing_key_is_a_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_rfc_keys(dns_server, rsa_key=False)

    ed25519, rsa_result = await verify_dkim(resolver, RFC_SIGNED)

    assert ed25519.result == "pass"
    assert rsa_result.result == "permerror"
    assert rsa_result.reason == f"no key at test._domainkey.{RFC_DOMAIN}"


async def test_unanswered_key_lookup_is_a_temperror(dns_server: DnsServer) -> None:
    serve_rfc_keys(dns_server)
    dns_server.never_answer(f"test._domainkey.{RFC_DOMAIN}", "TXT")
    resolver = DnsResolver([Nameserver(dns_server.host, dns_server.port)], timeout=0.1, lifetime=0.2)

    results = await verify_dkim(resolver, RFC_SIGNED)

    assert [r.result for r in results] == ["pass", "temperror"]
    assert "timed out" in results[1].reason


async def test_garbled_key_is_a_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    raw = sign(message(), "example.org")
    dns_server.add("s1._domainkey.example.org", "TXT", "v=DKIM1; k=rsa; p=bm90IGEga2V5")

    (result,) = await verify_dkim(resolver, raw)

    assert result.result == "permerror"
    assert result.reason.startswith("unusable key at s1._domainkey.example.org")


async def test_invalid_signature_is_a_permerror(resolver: DnsResolver) -> None:
    raw = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA\r\n" + message()

    (result,) = await verify_dkim(resolver, raw)

    assert (result.domain, result.selector, result.result) == ("example.org", "s1", "permerror")
    assert result.reason.startswith("invalid signature: ")


async def test_unsigned_message_has_no_results(resolver: DnsResolver) -> None:
    assert await verify_dkim(resolver, message()) == []


async def test_relaxed_signatures_survive_rewrapping(dns_server: DnsServer, resolver: DnsResolver) -> None:
    serve_key(dns_server, "example.org")
    serve_key(dns_server, "example.org", "ed", ed25519=True)
    raw = sign(sign(message(), "example.org"), "example.org", "ed", ed25519=True)

    results = await verify_dkim(
        resolver, raw.replace(b"Subject: Quarterly report", b"Subject:  Quarterly   report")
    )

    assert verdicts(results) == [
        ("example.org", "ed", "ed25519-sha256", "pass"),
        ("example.org", "s1", "rsa-sha256", "pass"),
    ]


async def test_a_2048_bit_key_spans_several_txt_strings(dns_server: DnsServer, resolver: DnsResolver) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode()
    assert len(record) > 255
    dns_server.add("big._domainkey.example.org", "TXT", record)
    raw = message()
    raw = dkim.sign(raw, b"big", b"example.org", private_pem, include_headers=[b"from", b"subject"]) + raw

    (result,) = await verify_dkim(resolver, raw)

    assert (result.result, result.reason) == ("pass", "signature verified with a 2048-bit rsa key")
