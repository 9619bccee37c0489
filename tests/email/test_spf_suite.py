"""The OpenSPF test suite (RFC 7208, and the RFC 4408 one) through `check_spf`, each scenario's
zone served by the loopback DNS server."""

from __future__ import annotations

from typing import Any

import pytest
import spf as pyspf
import yaml

from conduit.email.auth import check_spf
from conduit.email.dns import DnsResolver, Nameserver
from tests.email.dns_server import DnsServer
from tests.email.support import VECTORS

SUITES = {"rfc7208": VECTORS / "rfc7208-tests.yml", "rfc4408": VECTORS / "rfc4408-tests.yml"}
# The suite's own "DEFAULT": whatever explanation the implementation gives without an exp= modifier.
DEFAULT_EXPLANATION = "DEFAULT"
KNOWN_FAILURES = {
    "rfc7208-ptr-cname-loop": (
        "pyspf 2.0.14 does not skip a validated-PTR name whose A lookup fails (RFC 7208 5.5/7). Through "
        "a real resolver a CNAME loop is a lookup failure, so the result is temperror; the suite's own "
        "driver hands pyspf raw CNAMEs, whose loop check returns no data instead"
    ),
}


def _cases() -> list[Any]:
    params = []
    for suite, path in SUITES.items():
        for scenario in yaml.safe_load_all(path.read_bytes()):
            for name, case in scenario["tests"].items():
                case_id = f"{suite}-{name}"
                reason = KNOWN_FAILURES.get(case_id)
                marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
                params.append(pytest.param(scenario["zonedata"], case, id=case_id, marks=marks))
    return params


def serve_zone(server: DnsServer, zonedata: dict[str, list[Any]]) -> None:
    """The suite's zone as its reference driver reads it: a bare TIMEOUT makes every later or
    missing type time out, `TYPE: TIMEOUT` that type, `TYPE: NONE` declares no record, and SPF
    records are copied to TXT when the name has no TXT of its own."""
    for name, entries in zonedata.items():
        copy_spf_to_txt = not any(entry == "TIMEOUT" or "TXT" in entry for entry in entries)
        for entry in entries:
            if entry == "TIMEOUT":
                server.never_answer(name)
                break
            ((rtype, value),) = entry.items()
            if value == "TIMEOUT":
                server.never_answer(name, rtype)
            elif value != "NONE":
                server.add(name, rtype, _value(value))
                if rtype == "SPF" and copy_spf_to_txt:
                    server.add(name, "TXT", _value(value))


def _value(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize(("zonedata", "case"), _cases())
async def test_openspf(dns_server: DnsServer, zonedata: dict[str, list[Any]], case: dict[str, Any]) -> None:
    serve_zone(dns_server, zonedata)
    resolver = DnsResolver([Nameserver(dns_server.host, dns_server.port)], timeout=0.2, lifetime=0.3)

    result = await check_spf(resolver, remote_ip=case["host"], helo=case["helo"], mail_from=case["mailfrom"])

    expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert result.result in expected, result.explanation
    if "explanation" in case:
        explanation = case["explanation"]
        if explanation == DEFAULT_EXPLANATION:
            explanation = pyspf.EXPLANATIONS[result.result]
        assert result.explanation == explanation
