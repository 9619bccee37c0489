"""Email test fixtures: a loopback DNS server, and a resolver that asks it and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import dns.asyncresolver
import dns.resolver
import pytest

from conduit.email.dns import DnsResolver, Nameserver
from tests.email.dns_server import DnsServer


@pytest.fixture(autouse=True, scope="session")
def _no_system_resolvers() -> Iterator[None]:
    """A library falling back to dnspython's default resolver finds no nameserver instead of the
    system's: no email test can reach a real DNS server."""
    saved = dns.resolver.default_resolver, dns.asyncresolver.default_resolver
    dns.resolver.default_resolver = dns.resolver.Resolver(configure=False)
    dns.asyncresolver.default_resolver = dns.asyncresolver.Resolver(configure=False)
    yield
    dns.resolver.default_resolver, dns.asyncresolver.default_resolver = saved


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = DnsServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def resolver(dns_server: DnsServer) -> DnsResolver:
    return DnsResolver([Nameserver(dns_server.host, dns_server.port)], timeout=0.5, lifetime=1.0)
