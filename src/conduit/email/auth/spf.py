"""SPF (RFC 7208) of the connecting IP for the envelope sender, or for HELO when the sender is null.

pyspf evaluates the policy. It is synchronous and looks names up through its module-level
`DNSLookup`, so the check runs in a worker thread and that hook sends each lookup to the
`DnsResolver` of the check in progress (a context variable), never to the system's resolvers.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.txtbase
import spf as pyspf

from conduit.email.dns import BlockingResolver, DnsError, DnsResolver

logger = logging.getLogger(__name__)

SpfVerdict = Literal["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"]
SPF_VERDICTS: frozenset[str] = frozenset(get_args(SpfVerdict))
# RFC 7208 4.6.4: at least 20 seconds for a whole evaluation.
SPF_TIME_LIMIT_SECONDS = 20
# Names of RFC 4408 that pyspf may still return.
_LEGACY_VERDICTS = {"unknown": "permerror", "error": "temperror", "ambiguous": "permerror"}

_lookups: ContextVar[BlockingResolver | None] = ContextVar("spf_lookups", default=None)


@dataclass(frozen=True)
class SpfResult:
    result: SpfVerdict
    explanation: str
    identity: Literal["mailfrom", "helo"]
    """Which identity was checked: the MAIL FROM domain, or HELO for a null sender (RFC 7208 2.4)."""
    domain: str


async def check_spf(resolver: DnsResolver, *, remote_ip: str, helo: str, mail_from: str) -> SpfResult:
    return await asyncio.to_thread(_check, resolver.blocking(), remote_ip, helo, mail_from)


def _check(lookups: BlockingResolver, remote_ip: str, helo: str, mail_from: str) -> SpfResult:
    identity: Literal["mailfrom", "helo"] = "mailfrom" if mail_from else "helo"
    fallback_domain = mail_from.rpartition("@")[2] if mail_from else helo
    token = _lookups.set(lookups)
    try:
        query = pyspf.query(i=remote_ip, s=mail_from, h=helo, querytime=SPF_TIME_LIMIT_SECONDS)
        verdict, _code, explanation = query.check()
    except pyspf.PermError as exc:
        return SpfResult("permerror", str(exc), identity, fallback_domain)
    except Exception as exc:
        # A library fault on odd input must not cost the message: report it as retryable.
        logger.exception("spf check failed")
        return SpfResult("temperror", f"SPF check failed: {exc}", identity, fallback_domain)
    finally:
        _lookups.reset(token)
    verdict = _LEGACY_VERDICTS.get(verdict, verdict)
    if verdict not in SPF_VERDICTS:
        return SpfResult("permerror", f"unexpected SPF result {verdict}", identity, fallback_domain)
    return SpfResult(cast(SpfVerdict, verdict), explanation or "", query.ident, query.o or fallback_domain)


def _dns_lookup(name: str, qtype: str, strict: Any = True, timeout: float = 0) -> list[tuple[Any, Any]]:
    """pyspf's DNS hook: ((name, type), value) pairs in the shapes its own dnspython driver gives."""
    lookups = _lookups.get()
    if lookups is None:
        raise pyspf.TempError("DNS: no resolver for this SPF check")
    try:
        records = lookups.resolve(name, qtype)
    except DnsError as exc:
        raise pyspf.TempError(f"DNS {exc}") from exc
    return [((name, qtype), value) for value in map(_pyspf_value, records) if value is not None]


def _pyspf_value(rdata: dns.rdata.Rdata) -> Any:
    if isinstance(rdata, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
        return rdata.address
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        return (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))
    if isinstance(rdata, dns.rdtypes.ANY.PTR.PTR):
        return rdata.target.to_text(omit_final_dot=True)
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
        return rdata.strings
    return None


pyspf.DNSLookup = _dns_lookup
