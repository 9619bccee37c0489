"""DNS for email ingress: an async resolver over dnspython, and the domain verification check.

Every email lookup goes through `DnsResolver`, configured from `dns_nameservers` (the system's
resolvers when empty), so operators and tests choose who answers. `verify_domain` checks the two
records a user adds to prove a domain: the `_conduit-verify` TXT token and an MX to our host.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.txtbase
import dns.resolver

from conduit.settings import Settings

DEFAULT_PORT = 53
VERIFY_TXT_LABEL = "_conduit-verify"


class DnsError(Exception):
    """A lookup that got no usable answer (timeout, SERVFAIL, refused): the records may well exist."""


@dataclass(frozen=True)
class Nameserver:
    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class MxRecord:
    preference: int
    exchange: str
    """Lowercase, without the final dot; `.` for a null MX (RFC 7505)."""


def parse_nameservers(text: str) -> list[Nameserver]:
    """Comma-separated `host[:port]`; IPv6 as `[2001:db8::53]:5353` or bare `2001:db8::53`."""
    return [_parse_nameserver(item.strip()) for item in text.split(",") if item.strip()]


def _parse_nameserver(item: str) -> Nameserver:
    host, port_text = item, ""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid nameserver {item!r}: expected [address]:port")
        port_text = rest[1:]
    elif item.count(":") == 1:
        host, port_text = item.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid nameserver {item!r}: the host must be an IP address") from None
    if not port_text:
        return Nameserver(str(address))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid nameserver {item!r}: bad port {port_text!r}")
    return Nameserver(str(address), int(port_text))


def normalize_host(name: str) -> str:
    """A DNS name as we compare it: lowercase, no surrounding space, no final dot."""
    return name.strip().rstrip(".").lower()


class DnsResolver:
    """Async lookups through the configured nameservers, or the system's when none are given.

    A name without records of the asked type, and a name that cannot exist, both give an empty
    list; a lookup that got no usable answer raises `DnsError`. Nothing is cached unless asked
    (`cache_entries`): a user who has just fixed a record gets the new answer on the next check.
    Mail authentication caches answers for their TTL, as any mail server's resolver does.
    """

    def __init__(
        self,
        nameservers: Sequence[Nameserver] = (),
        *,
        timeout: float = 2.0,
        lifetime: float = 5.0,
        cache_entries: int = 0,
    ) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ns.host, ns.port) for ns in nameservers]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.timeout = timeout
        resolver.lifetime = lifetime
        if cache_entries:
            resolver.cache = dns.resolver.LRUCache(cache_entries)
        self._resolver = resolver
        self.lifetime = lifetime

    @classmethod
    def from_settings(cls, settings: Settings, *, cache_entries: int = 0) -> DnsResolver:
        return cls(parse_nameservers(settings.dns_nameservers), cache_entries=cache_entries)

    @property
    def nameservers(self) -> list[Nameserver]:
        return [
            Nameserver(nameserver.address, nameserver.port)
            for nameserver in self._resolver.nameservers
            if isinstance(nameserver, dns.nameserver.Do53Nameserver)
        ]

    async def resolve(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        if not name.strip(". "):
            return []
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return []
        try:
            answer = await self._resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.resolver.LifetimeTimeout as exc:
            raise DnsError(f"the {rdtype} lookup of {name} timed out") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsError(f"no nameserver answered the {rdtype} lookup of {name}") from exc
        except dns.exception.DNSException as exc:
            raise DnsError(f"the {rdtype} lookup of {name} failed: {exc}") from exc
        return list(answer.rrset) if answer.rrset is not None else []

    async def txt(self, name: str) -> list[str]:
        """Each TXT record with its strings joined (RFC 7208 3.3), decoded as UTF-8."""
        return [record.decode("utf-8", "replace") for record in await self.txt_bytes(name)]

    async def txt_bytes(self, name: str) -> list[bytes]:
        return [
            b"".join(rdata.strings)
            for rdata in await self.resolve(name, "TXT")
            if isinstance(rdata, dns.rdtypes.txtbase.TXTBase)
        ]

    async def mx(self, name: str) -> list[MxRecord]:
        records = [
            MxRecord(rdata.preference, normalize_host(rdata.exchange.to_text()) or ".")
            for rdata in await self.resolve(name, "MX")
            if isinstance(rdata, dns.rdtypes.ANY.MX.MX)
        ]
        return sorted(records, key=lambda record: record.preference)

    async def a(self, name: str) -> list[str]:
        return [
            rdata.address for rdata in await self.resolve(name, "A") if isinstance(rdata, dns.rdtypes.IN.A.A)
        ]

    async def aaaa(self, name: str) -> list[str]:
        return [
            rdata.address
            for rdata in await self.resolve(name, "AAAA")
            if isinstance(rdata, dns.rdtypes.IN.AAAA.AAAA)
        ]

    def blocking(self) -> BlockingResolver:
        """This resolver for synchronous code in a worker thread, bound to the running event loop."""
        return BlockingResolver(self, asyncio.get_running_loop())


class BlockingResolver:
    """A `DnsResolver` seen from a worker thread, for synchronous libraries (pyspf).

    Each lookup runs on the event loop that owns the resolver while the thread waits for it, so
    the library queries exactly the servers everything else does.
    """

    def __init__(self, resolver: DnsResolver, loop: asyncio.AbstractEventLoop) -> None:
        self._resolver = resolver
        self._loop = loop

    def resolve(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        future = asyncio.run_coroutine_threadsafe(self._resolver.resolve(name, rdtype), self._loop)
        try:
            return future.result(timeout=self._resolver.lifetime + 1)
        except TimeoutError:
            future.cancel()
            raise DnsError(f"the {rdtype} lookup of {name} timed out") from None


VerificationCode = Literal["txt_missing", "txt_mismatch", "mx_missing", "mx_mismatch", "dns_error"]


@dataclass(frozen=True)
class VerificationProblem:
    record: Literal["TXT", "MX"]
    name: str
    """The DNS name that was looked up."""
    code: VerificationCode
    expected: str
    found: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class VerificationResult:
    domain: str
    problems: tuple[VerificationProblem, ...]

    @property
    def verified(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "verified": self.verified,
            "problems": [asdict(problem) for problem in self.problems],
        }


async def verify_domain(resolver: DnsResolver, domain: str, token: str, mx_host: str) -> VerificationResult:
    """Check that `_conduit-verify.<domain>` has a TXT record equal to `token` and that an MX record
    of the domain points to `mx_host`; each record that is missing or wrong is one problem."""
    domain = normalize_host(domain)
    txt_problem, mx_problem = await asyncio.gather(
        _check_token(resolver, domain, token), _check_mx(resolver, domain, normalize_host(mx_host))
    )
    return VerificationResult(domain, tuple(p for p in (txt_problem, mx_problem) if p is not None))


async def _check_token(resolver: DnsResolver, domain: str, token: str) -> VerificationProblem | None:
    name = f"{VERIFY_TXT_LABEL}.{domain}"
    try:
        values = await resolver.txt(name)
    except DnsError as exc:
        message = f"Could not look up the TXT record at {name}: {exc}"
        return VerificationProblem("TXT", name, "dns_error", token, (), message)
    if any(value.strip() == token for value in values):
        return None
    if not values:
        message = f"No TXT record at {name}: add one with the value {token}"
        return VerificationProblem("TXT", name, "txt_missing", token, (), message)
    found = ", ".join(repr(value) for value in values)
    message = f"The TXT record at {name} is {found}, expected {token!r}"
    return VerificationProblem("TXT", name, "txt_mismatch", token, tuple(values), message)


async def _check_mx(resolver: DnsResolver, domain: str, mx_host: str) -> VerificationProblem | None:
    try:
        records = await resolver.mx(domain)
    except DnsError as exc:
        message = f"Could not look up the MX records of {domain}: {exc}"
        return VerificationProblem("MX", domain, "dns_error", mx_host, (), message)
    exchanges = tuple(record.exchange for record in records)
    if mx_host in exchanges:
        return None
    if not exchanges:
        message = f"No MX record for {domain}: add one pointing to {mx_host}"
        return VerificationProblem("MX", domain, "mx_missing", mx_host, (), message)
    message = f"The MX records of {domain} point to {', '.join(exchanges)}, not to {mx_host}"
    return VerificationProblem("MX", domain, "mx_mismatch", mx_host, exchanges, message)
