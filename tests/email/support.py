"""Messages, DKIM signing and keys served from the loopback DNS server, for email tests."""

from __future__ import annotations

from pathlib import Path

import dkim

from tests.email.dns_server import DnsServer

VECTORS = Path(__file__).parent / "vectors"
DKIMPY = VECTORS / "dkimpy"
RSA_PRIVATE_KEY = (DKIMPY / "test.private").read_bytes()
RSA_KEY_RECORD = (DKIMPY / "test.txt").read_text().strip()
ED25519_PRIVATE_KEY = (DKIMPY / "ed25519test.key").read_bytes().strip()
ED25519_KEY_RECORD = (DKIMPY / "ed25519test.dns").read_text().strip()


def message(
    *, from_: str = "Alice <alice@example.org>", subject: str = "Quarterly report", body: str = "Hi Bob.\r\n"
) -> bytes:
    return (
        f"From: {from_}\r\nTo: Bob <bob@inbound.example.net>\r\nSubject: {subject}\r\n"
        "Date: Mon, 03 Feb 2025 10:00:00 +0000\r\nMessage-ID: <report-1@example.org>\r\n\r\n"
        f"{body}"
    ).encode()


def sign(raw: bytes, domain: str, selector: str = "s1", *, ed25519: bool = False) -> bytes:
    """`raw` with a relaxed/relaxed DKIM signature of `domain` prepended."""
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        ED25519_PRIVATE_KEY if ed25519 else RSA_PRIVATE_KEY,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        signature_algorithm=b"ed25519-sha256" if ed25519 else b"rsa-sha256",
    )
    return bytes(signature) + raw


def serve_key(server: DnsServer, domain: str, selector: str = "s1", *, ed25519: bool = False) -> None:
    server.add(f"{selector}._domainkey.{domain}", "TXT", ED25519_KEY_RECORD if ed25519 else RSA_KEY_RECORD)
