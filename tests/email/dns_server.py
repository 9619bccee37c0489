"""A small authoritative DNS server on loopback, UDP and TCP, for email tests.

Tests edit `records` (name -> type -> values) while it runs; each query reads it afresh.
Values: TXT/SPF a string (split into 255-byte strings when longer), bytes, or a tuple of
strings for one record made of several; MX `(preference, host)` or `"10 host"`; every other
type its presentation text (`"192.0.2.1"`, `"target.example."`). A name that is not there is
NXDOMAIN; a name that is there (or has names below it) without the asked type is NODATA;
CNAMEs are followed inside the zone. `never_answer(name)` makes queries time out instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rrset

ANY_TYPE = "*"
MAX_CNAME_CHAIN = 8
UDP_DEFAULT_PAYLOAD = 512
TCP_MAX_SIZE = 65535

Zone = dict[str, dict[str, list[Any]]]


class DnsServer:
    def __init__(self, host: str = "127.0.0.1", *, ttl: int = 0) -> None:
        self.host = host
        self.ttl = ttl  # 0: no resolver may cache an answer, so tests see every change at once
        self.port = 0
        self.records: Zone = {}
        self.unanswered: dict[str, set[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self.tcp_queries: list[tuple[str, str]] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Bind UDP and TCP on one free port."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, 0)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                transport.close()
                continue
            self._udp, self.port = transport, port
            return
        raise RuntimeError("no free port for the DNS server")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_clients):
                writer.close()
            await self._tcp.wait_closed()

    def add(self, name: str, rtype: str, *values: Any) -> None:
        self.records.setdefault(name, {}).setdefault(rtype, []).extend(values)

    def never_answer(self, name: str, rtype: str = ANY_TYPE) -> None:
        """Drop queries for `name` of `rtype`, or of every type it has no records of."""
        self.unanswered.setdefault(_key(name), set()).add(rtype)

    def clear(self) -> None:
        self.records.clear()
        self.unanswered.clear()
        self.queries.clear()
        self.tcp_queries.clear()

    def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The response to one query in wire format; None to stay silent. Over UDP an answer too
        long for the client's buffer is truncated (TC), so the client asks again over TCP."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        qname = _key(question.name)
        qtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((qname, qtype))
        if tcp:
            self.tcp_queries.append((qname, qtype))
        zone = self._zone()
        if self._is_silent(zone, qname, qtype):
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.set_rcode(self._fill(response, zone, qname, qtype))
        max_size = TCP_MAX_SIZE if tcp else UDP_DEFAULT_PAYLOAD
        if not tcp and query.edns >= 0:
            max_size = max(max_size, query.payload)
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    def _zone(self) -> Zone:
        zone: Zone = {}
        for name, types in self.records.items():
            node = zone.setdefault(_key(name), {})
            for rtype, values in types.items():
                node.setdefault(rtype, []).extend(values)
        return zone

    def _is_silent(self, zone: Zone, qname: str, qtype: str) -> bool:
        silent = self.unanswered.get(qname, set())
        return qtype in silent or (ANY_TYPE in silent and not zone.get(qname, {}).get(qtype))

    def _fill(self, response: dns.message.Message, zone: Zone, qname: str, qtype: str) -> int:
        """Answer records for the query, following CNAMEs inside the zone; returns the rcode."""
        name, seen = qname, set()
        for _ in range(MAX_CNAME_CHAIN):
            types = zone.get(name)
            if types is None:
                return dns.rcode.NOERROR if self._has_descendants(zone, name) else dns.rcode.NXDOMAIN
            seen.add(name)
            if qtype != "CNAME" and types.get("CNAME"):
                target = str(types["CNAME"][0])
                response.answer.append(_rrset(name, "CNAME", [target], self.ttl))
                name = _key(target)
                if name in seen:
                    break
                continue
            if types.get(qtype):
                response.answer.append(_rrset(name, qtype, types[qtype], self.ttl))
            break
        return dns.rcode.NOERROR

    @staticmethod
    def _has_descendants(zone: Zone, name: str) -> bool:
        suffix = "." + name
        return any(other.endswith(suffix) for other in zone)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_clients.add(writer)
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                response = self.answer(await reader.readexactly(length), tcp=True)
                if response is not None:
                    writer.write(struct.pack("!H", len(response)) + response)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        response = self.server.answer(data, tcp=False)
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)


def _key(name: str | dns.name.Name) -> str:
    """A name as the zone is indexed: lowercase, escaped like dnspython writes it, no final dot."""
    if isinstance(name, str):
        try:
            name = dns.name.from_text(name.strip())
        except dns.exception.DNSException:
            return name.strip().rstrip(".").lower()
    return name.canonicalize().to_text(omit_final_dot=True)


def _rrset(name: str, rtype: str, values: Sequence[Any], ttl: int) -> dns.rrset.RRset:
    rdatas = [_rdata(rtype, value) for value in values]
    return dns.rrset.from_rdata_list(dns.name.from_text(name), ttl, rdatas)


def _rdata(rtype: str, value: Any) -> dns.rdata.Rdata:
    rdclass, rdtype = dns.rdataclass.IN, dns.rdatatype.from_text(rtype)
    if rtype in ("TXT", "SPF"):
        strings = value if isinstance(value, tuple | list) else (value,)
        chunks = [chunk for string in strings for chunk in _chunks(string)] or [b""]
        return dns.rdata.get_rdata_class(rdclass, rdtype)(rdclass, rdtype, chunks)
    if rtype == "MX" and isinstance(value, tuple | list):
        preference, exchange = value
        return dns.rdtypes.ANY.MX.MX(rdclass, rdtype, int(preference), dns.name.from_text(exchange or "."))
    return dns.rdata.from_text(rdclass, rdtype, str(value), origin=dns.name.root, relativize=False)


def _chunks(string: str | bytes) -> list[bytes]:
    data = string.encode() if isinstance(string, str) else string
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
