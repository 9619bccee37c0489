"""DKIM (RFC 6376, and ed25519 of RFC 8463): one result per DKIM-Signature of a raw message.

dkimpy does the cryptography. Its blocking `verify(dnsfunc=...)` folds every failure into False
and its async variant needs aiodns, so this follows dkimpy's own async split instead: the
signature is validated, the key is fetched through our `DnsResolver`, and dkimpy checks the
hashes in a worker thread. That keeps the reason of each failure and tells a missing key
(permerror) from a lookup that timed out (temperror).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from conduit.email.dns import DnsError, DnsResolver

DkimVerdict = Literal["pass", "fail", "temperror", "permerror"]
# RFC 8301 3.2: verifiers must accept RSA keys of 1024 bits and more.
MIN_RSA_KEY_BITS = 1024


@dataclass(frozen=True)
class DkimResult:
    domain: str
    selector: str
    algorithm: str
    result: DkimVerdict
    reason: str


async def verify_dkim(resolver: DnsResolver, raw_message: bytes) -> list[DkimResult]:
    """Every signature, topmost first; an empty list when the message has none (DKIM result none)."""
    try:
        verifier = dkim.DKIM(raw_message, minkey=MIN_RSA_KEY_BITS)
    except dkim.DKIMException:
        return []
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    return [
        await _verify_signature(resolver, verifier, index, header) for index, header in enumerate(signatures)
    ]


async def _verify_signature(
    resolver: DnsResolver, verifier: Any, index: int, header_value: bytes
) -> DkimResult:
    tags = _tags(header_value)
    domain, selector, algorithm = (tags.get(tag, "") for tag in ("d", "s", "a"))

    def result(verdict: DkimVerdict, reason: str) -> DkimResult:
        return DkimResult(domain, selector, algorithm, verdict, reason)

    try:
        signature, include_headers, signature_headers = verifier.verify_headerprep(index)
    except dkim.DKIMException as exc:
        return result("permerror", f"invalid signature: {exc}")
    key_name = f"{selector}._domainkey.{domain}"
    try:
        key_records = await resolver.txt_bytes(key_name)
    except DnsError as exc:
        return result("temperror", f"key lookup failed: {exc}")
    if not key_records:
        return result("permerror", f"no key at {key_name}")
    try:
        verifier.pk, verifier.keysize, verifier.ktag, verifier.seqtlsrpt = dkim.evaluate_pk(
            key_name.encode(), key_records[0]
        )
    except (dkim.DKIMException, ValueError) as exc:
        return result("permerror", f"unusable key at {key_name}: {exc}")
    if verifier.seqtlsrpt:
        return result("permerror", f"the key at {key_name} is for TLS reports only")
    try:
        verified = await asyncio.to_thread(
            verifier.verify_sig_process, signature, include_headers, signature_headers[index], None
        )
    except dkim.ValidationError as exc:
        return result("fail", str(exc))
    except (dkim.DKIMException, ValueError) as exc:
        return result("permerror", f"signature could not be checked: {exc}")
    if not verified:
        return result("fail", "signature did not verify")
    return result("pass", f"signature verified with a {verifier.keysize}-bit {verifier.ktag.decode()} key")


def _tags(header_value: bytes) -> dict[str, str]:
    """The tags of a signature leniently, to name it even when it is invalid."""
    try:
        tags = parse_tag_value(header_value)
    except InvalidTagValueList:
        return {}
    return {key.decode("ascii", "replace"): value.decode("ascii", "replace") for key, value in tags.items()}
