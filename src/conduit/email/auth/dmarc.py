"""DMARC (RFC 7489): does an aligned SPF or DKIM pass vouch for the From domain, and what does
the domain ask receivers to do when nothing does.

Policy discovery asks `_dmarc.<From domain>`, then `_dmarc.<Organizational Domain>`, found with
the Public Suffix List that `publicsuffixlist` ships. The policy is reported, not applied: what to
do with a failing message (and `pct` sampling) is the SMTP policy's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from functools import cache
from typing import Literal, cast

from publicsuffixlist import PublicSuffixList

from conduit.email.auth.dkim import DkimResult
from conduit.email.auth.spf import SpfResult
from conduit.email.dns import DnsError, DnsResolver, normalize_host

DmarcVerdict = Literal["pass", "fail", "none", "temperror", "permerror"]
DmarcPolicy = Literal["none", "quarantine", "reject"]
POLICIES: frozenset[str] = frozenset({"none", "quarantine", "reject"})


@dataclass(frozen=True)
class DmarcResult:
    result: DmarcVerdict
    from_domain: str
    reason: str
    policy: DmarcPolicy | None = None
    """What the domain asks for messages that fail: `sp` for a subdomain covered by its
    Organizational Domain's record, else `p`. None when no record applies."""
    record_domain: str | None = None
    """The domain whose `_dmarc` record applied."""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    pct: int = 100


@dataclass(frozen=True)
class DmarcRecord:
    domain: str
    policy: DmarcPolicy
    subdomain_policy: DmarcPolicy | None
    strict_spf: bool
    strict_dkim: bool
    pct: int


@cache
def public_suffixes() -> PublicSuffixList:
    """The Public Suffix List, loaded once (DMARC and domain claims share it)."""
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registered domain (RFC 7489 3.2): one label below the longest public suffix."""
    domain = normalize_host(domain)
    return public_suffixes().privatesuffix(domain) or domain


def aligned(domain: str, from_domain: str, *, strict: bool) -> bool:
    domain, from_domain = normalize_host(domain), normalize_host(from_domain)
    if strict:
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


def from_domains(raw_message: bytes) -> list[str]:
    """The distinct domains of the RFC 5322 From addresses, in order."""
    headers = BytesHeaderParser().parsebytes(raw_message)
    addresses = getaddresses([str(value) for value in headers.get_all("From", [])])
    domains = [normalize_host(address.rpartition("@")[2]) for _name, address in addresses if "@" in address]
    return list(dict.fromkeys(domain for domain in domains if domain))


async def evaluate_dmarc(
    resolver: DnsResolver, raw_message: bytes, spf: SpfResult, dkim: list[DkimResult]
) -> DmarcResult:
    domains = from_domains(raw_message)
    if len(domains) != 1:
        reason = "the From addresses have several domains" if domains else "the message has no From domain"
        return DmarcResult("permerror", ",".join(domains), reason)
    from_domain = domains[0]
    try:
        record = await find_record(resolver, from_domain)
    except DnsError as exc:
        return DmarcResult("temperror", from_domain, f"policy lookup failed: {exc}")
    if record is None:
        return DmarcResult("none", from_domain, "no DMARC policy")
    spf_aligned = spf.result == "pass" and aligned(spf.domain, from_domain, strict=record.strict_spf)
    dkim_aligned = any(
        signature.result == "pass" and aligned(signature.domain, from_domain, strict=record.strict_dkim)
        for signature in dkim
    )
    policy = record.policy
    if record.domain != from_domain and record.subdomain_policy is not None:
        policy = record.subdomain_policy
    return DmarcResult(
        result="pass" if spf_aligned or dkim_aligned else "fail",
        from_domain=from_domain,
        reason=_reason(spf_aligned, dkim_aligned, record),
        policy=policy,
        record_domain=record.domain,
        spf_aligned=spf_aligned,
        dkim_aligned=dkim_aligned,
        pct=record.pct,
    )


def _reason(spf_aligned: bool, dkim_aligned: bool, record: DmarcRecord) -> str:
    passes = [name for name, ok in (("SPF", spf_aligned), ("DKIM", dkim_aligned)) if ok]
    if passes:
        return f"aligned {' and '.join(passes)} pass"
    modes = f"aspf={'s' if record.strict_spf else 'r'}, adkim={'s' if record.strict_dkim else 'r'}"
    return f"no aligned SPF or DKIM pass ({modes})"


async def find_record(resolver: DnsResolver, from_domain: str) -> DmarcRecord | None:
    """RFC 7489 6.6.3: the From domain's record, else its Organizational Domain's."""
    candidates = dict.fromkeys([from_domain, organizational_domain(from_domain)])
    for domain in candidates:
        records = [text for text in await resolver.txt(f"_dmarc.{domain}") if _is_dmarc(text)]
        if len(records) > 1:
            return None
        if records:
            return parse_record(domain, records[0])
    return None


def _is_dmarc(text: str) -> bool:
    version, _, value = text.partition(";")[0].partition("=")
    return version.strip() == "v" and value.strip() == "DMARC1"


def parse_record(domain: str, text: str) -> DmarcRecord | None:
    """A `v=DMARC1` record; None when it carries no usable policy (RFC 7489 6.6.3 step 6)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, separator, value = part.partition("=")
        if separator:
            tags.setdefault(name.strip().lower(), value.strip())
    policy = _policy(tags.get("p"))
    subdomain_policy = _policy(tags.get("sp"))
    if policy is None or (subdomain_policy is None and "sp" in tags):
        # A record without a valid policy still counts as p=none when it asks for aggregate reports.
        if not tags.get("rua"):
            return None
        policy, subdomain_policy = "none", None
    return DmarcRecord(
        domain=domain,
        policy=policy,
        subdomain_policy=subdomain_policy,
        strict_spf=tags.get("aspf", "r").lower() == "s",
        strict_dkim=tags.get("adkim", "r").lower() == "s",
        pct=_percent(tags.get("pct", "100")),
    )


def _policy(text: str | None) -> DmarcPolicy | None:
    value = (text or "").lower()
    return cast(DmarcPolicy, value) if value in POLICIES else None


def _percent(text: str) -> int:
    return min(int(text), 100) if text.isdigit() else 100
