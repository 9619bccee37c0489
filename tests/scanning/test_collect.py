"""Live scans of real MCP servers on 127.0.0.1: server-everything over streamable HTTP, legacy SSE
and stdio, and a poisoned SDK server over stdio."""

from conduit.scanning.collect import collect, spec_for_command, spec_for_url
from conduit.scanning.engine import scan
from conduit.scanning.findings import Severity
from tests.mcp_servers import ServerProcess, StdioCommand
from tests.scanning.support import POISONED_ARGV


async def test_streamable_http_server_everything(everything_http: ServerProcess) -> None:
    steps: list[str] = []
    inventory = await collect(spec_for_url(everything_http.url), progress=steps.append)
    server = inventory.servers[0]
    assert server.name == "mcp-servers/everything"
    assert len(server.tools) >= 10
    assert server.prompts
    assert server.resources
    assert server.templates
    assert {"echo", "get-sum"} <= {t.name for t in server.tools}
    assert "Listing tools" in steps
    facts = inventory.transport
    assert facts is not None
    assert facts.loopback
    assert facts.unauthenticated_status == 200
    result = await scan(inventory)
    found = {f.id: f for f in result.findings}
    assert found["CND-TR-004"].severity is Severity.info  # loopback: no exposure beyond this machine
    assert "CND-TR-006" in found  # it accepts a foreign Origin
    assert not [
        f for f in result.findings if f.id.startswith("CND-PI") and f.severity.at_least(Severity.medium)
    ]
    assert result.score.breakdown["auth"] is not None


async def test_legacy_sse_server_everything(everything_sse: ServerProcess) -> None:
    inventory = await collect(spec_for_url(everything_sse.url))
    assert inventory.transport is not None
    assert inventory.transport.transport == "sse"
    assert len(inventory.servers[0].tools) >= 10
    assert "CND-TR-009" in {f.id for f in (await scan(inventory)).findings}


async def test_stdio_server_everything_scores_well(everything_stdio: StdioCommand) -> None:
    inventory = await collect(spec_for_command(everything_stdio.command, everything_stdio.args))
    result = await scan(inventory)
    assert inventory.transport is None
    assert not result.partial
    assert result.score.grade in ("A", "B")
    assert result.hashes["tools/echo"].startswith("sha256:")


async def test_poisoned_stdio_server_is_graded_f() -> None:
    inventory = await collect(spec_for_command(POISONED_ARGV[0], POISONED_ARGV[1:]))
    result = await scan(inventory)
    assert result.score.grade == "F"
    by_location = {(f.id, f.location) for f in result.findings}
    assert ("CND-PI-001", "tools[0].description") in by_location
    assert ("CND-PI-002", "tools[1].description") in by_location
    tags = next(f for f in result.findings if f.id == "CND-PI-002")
    assert "attacker@evil.example" in tags.evidence
    assert not any(loc.startswith("tools[2]") for _id, loc in by_location)
