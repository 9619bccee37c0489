"""What the gateway adds: MCP `tools/call` echo sent straight to an upstream MCP server and through
Conduit's relay (`/s/{org}/{server}/mcp`), in one run, at each concurrency, side by side.

Starts the upstream (bench/fast_upstream.py, or the SDK fixture server of the tests with JSON
responses) and a real `conduit serve` (temporary SQLite data directory, enterprise plan so no
quota or rate limit applies), signs up, creates a key and registers the upstream. Each client
opens its own MCP session (initialize, notifications/initialized) on its own keep-alive
connection, then calls `echo` back to back; only a 200 whose body holds a `result` counts.

Wall-clock rates are noisy on a small machine (the clients, the upstream and Conduit share its
cores), so each row also shows the CPU time per call of each process (Linux `/proc`): the client
(this process), the upstream, and Conduit. CPU is counted over the whole row (session setup and
warm-up included) and divided by every answered message of the row; from those, the last lines
give the share of direct throughput that Conduit can reach at most while the three processes
share the machine's cores.

    .venv/bin/python bench/gateway.py [--duration 5] [--concurrency 1,32] [--upstream fast|fixture]

The targets (with a fast upstream): through Conduit, p50 less than 1 ms above direct and at least
80% of direct throughput, at the same client count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from loadgen import (
    WARMUP_SECONDS,
    Connection,
    NextRequest,
    Response,
    Result,
    Server,
    arguments,
    checked,
    drive,
    free_port,
    http_request,
    listening,
    machine,
    print_table,
    start_conduit,
    start_process,
)

BENCH = Path(__file__).resolve().parent
PASSWORD = "bench correct horse battery staple"
PROTOCOL_VERSION = "2025-11-25"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
MAX_ADDED_P50_MS = 1.0
MIN_THROUGHPUT_RATIO = 0.8
HEADER = (
    "path",
    "clients",
    "calls/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "added p50 ms",
    "throughput vs direct",
    "CPU ms/call: client",
    "upstream",
    "conduit",
)


class SetupFailed(Exception):
    """A client could not open its MCP session: the run stops, with the logs."""


# --- the two ends: an upstream and Conduit in front of it ------------------------------------


@dataclass
class Upstream:
    url: str
    description: str
    stop: Callable[[], None]
    alive: Callable[[], bool]
    log_tail: Callable[[], str]
    pid: int


def start_upstream(kind: str, workdir: Path) -> Upstream:
    if kind == "fast":
        port = free_port()
        argv = [sys.executable, str(BENCH / "fast_upstream.py"), "--port", str(port)]
        server = start_process("upstream", argv, workdir, dict(os.environ), port, listening)
        return Upstream(
            f"{server.base_url}/mcp",
            "bench/fast_upstream.py",
            server.stop,
            server.alive,
            server.log_tail,
            server.process.pid,
        )
    sys.path.insert(0, str(BENCH.parent))  # the fixture server lives with the tests
    from tests.mcp_servers import start_fixture_http

    fixture = start_fixture_http(json_response=True)

    def log_tail() -> str:
        return "\n".join(fixture.log().splitlines()[-20:])

    description = "tests/fixture_server.py (mcp SDK, JSON responses)"
    return Upstream(fixture.url, description, fixture.stop, fixture.alive, log_tail, fixture.process.pid)


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise SetupFailed(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def register(base_url: str, name: str, upstream_url: str) -> tuple[str, str]:
    """Sign up, create an API key and register the upstream: (key, gateway endpoint)."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    account = {"email": email, "password": PASSWORD}
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as api:
        expect(await api.post("/api/v1/accounts", json=account), 201)
        session = expect(await api.post("/api/v1/sessions", json=account), 200)
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        key = expect(await api.post("/api/keys", json={"name": "bench"}, headers=bearer), 201)
        server = {"name": name, "upstream_url": upstream_url}
        registered = expect(await api.post("/api/servers", json=server, headers=bearer), 201)
    return key["key"], registered["gateway_endpoint"]


# --- one MCP client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where a path's clients send their MCP messages, and the headers every message carries."""

    path_name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    @cached_property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    @cached_property
    def path(self) -> str:
        return urlsplit(self.url).path

    def post(self, message: dict[str, Any], session: str | None = None) -> bytes:
        headers = {**MCP_HEADERS, **self.headers}
        if session is not None:
            headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": PROTOCOL_VERSION}
        return http_request("POST", self.path, self.port, headers, json.dumps(message).encode())

    async def open_session(self, connection: Connection, number: int) -> NextRequest:
        """initialize and notifications/initialized on `connection`, then a fresh `tools/call`
        each time (a request id is never reused within a session)."""
        initialized = await self._setup(connection, number, INITIALIZE, session=None)
        session = initialized.headers.get("mcp-session-id")
        if not succeeded(initialized) or session is None:
            raise SetupFailed(
                f"{self.path_name} client {number}: initialize answered {describe(initialized)}"
            )
        await self._setup(connection, number, INITIALIZED, session)
        ids = itertools.count(2)
        message = f"bench {number}"

        def next_call() -> bytes:
            call = {"name": "echo", "arguments": {"message": message}}
            return self.post(
                {"jsonrpc": "2.0", "id": next(ids), "method": "tools/call", "params": call}, session
            )

        return next_call

    async def _setup(
        self, connection: Connection, number: int, message: dict[str, Any], session: str | None
    ) -> Response:
        try:
            response = await connection.send(self.post(message, session))
        except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as failure:
            raise SetupFailed(
                f"{self.path_name} client {number}: {message['method']} failed: {failure!r}"
            ) from None
        expected = 200 if "id" in message else 202
        if response.status != expected:
            raise SetupFailed(
                f"{self.path_name} client {number}: {message['method']} answered {describe(response)}"
            )
        return response


def succeeded(response: Response) -> bool:
    return response.status == 200 and b'"result"' in response.body


def describe(response: Response) -> str:
    return f"{response.status} {response.headers} {response.body[:500]!r}"


# --- the run ---------------------------------------------------------------------------------


# --- CPU per call ------------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process `pid` (all its threads), or of this process for None;
    NaN where /proc cannot tell."""
    if pid is None:
        return time.process_time()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuPerCall:
    """CPU milliseconds per answered message of one row, for each process involved."""

    pids: dict[str, int | None]
    answered: int = 0
    spent: dict[str, float] = field(default_factory=dict)

    def counting(self, succeeded: Callable[[Response], bool]) -> Callable[[Response], bool]:
        def count(response: Response) -> bool:
            self.answered += 1
            return succeeded(response)

        return count

    def start(self) -> None:
        self.spent = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.spent = {name: cpu_seconds(pid) - self.spent[name] for name, pid in self.pids.items()}

    def per_call_ms(self, name: str) -> float:
        """NaN if the process was not part of the row or /proc could not tell."""
        if name not in self.spent or not self.answered:
            return float("nan")
        return self.spent[name] * 1000 / self.answered

    def ms(self, name: str) -> str:
        value = self.per_call_ms(name)
        return "-" if value != value else f"{value:.3f}"

    def total_ms(self) -> float:
        return sum(self.per_call_ms(name) for name in self.pids)


async def run(
    args: argparse.Namespace, conduit: Server, upstream: Upstream
) -> list[tuple[Result, CpuPerCall]]:
    key, gateway_endpoint = await register(conduit.base_url, args.upstream, upstream.url)
    paths = [Endpoint("direct", upstream.url), Endpoint("conduit", gateway_endpoint, {"X-API-Key": key})]
    print(
        f"upstream {upstream.description} at {upstream.url}\n"
        f"conduit serve on {conduit.base_url} (SQLite, enterprise plan, log level {args.log_level}), "
        f"gateway endpoint {urlsplit(gateway_endpoint).path}\n"
        f"{machine()}, load average {os.getloadavg()[0]:.2f} at start, {args.duration:g} s per row "
        f"after {WARMUP_SECONDS:g} s warm-up; each client on its own connection and MCP session, "
        "tools/call echo",
        flush=True,
    )
    results = []
    for concurrency in sorted(set(args.concurrency)):
        for path in paths:
            pids: dict[str, int | None] = {"client": None, "upstream": upstream.pid}
            if path.path_name == "conduit":
                pids["conduit"] = conduit.process.pid
            cpu = CpuPerCall(pids)
            cpu.start()
            result = await drive(
                path.path_name,
                path.port,
                concurrency,
                path.open_session,
                args.duration,
                cpu.counting(succeeded),
            )
            cpu.stop()
            results.append((result, cpu))
    return results


def table_rows(measured: list[tuple[Result, CpuPerCall]]) -> list[tuple[str, ...]]:
    direct = {r.concurrency: r for r, _ in measured if r.scenario == "direct"}
    rows: list[tuple[str, ...]] = []
    for r, cpu in measured:
        base = direct[r.concurrency]
        through = r.scenario != "direct"
        rows.append(
            (
                r.scenario,
                str(r.concurrency),
                f"{r.rps:,.1f}",
                f"{r.percentile_ms(50):.2f}",
                f"{r.percentile_ms(99):.2f}",
                str(r.errors),
                f"{r.percentile_ms(50) - base.percentile_ms(50):+.2f}" if through else "-",
                f"{r.rps / base.rps:.3f}" if through and base.rps else "-",
                cpu.ms("client"),
                cpu.ms("upstream"),
                cpu.ms("conduit"),
            )
        )
    return rows


def verdicts(results: list[Result]) -> list[str]:
    direct = {r.concurrency: r for r in results if r.scenario == "direct"}
    lines = []
    for r in results:
        if r.scenario == "direct":
            continue
        base = direct[r.concurrency]
        added = r.percentile_ms(50) - base.percentile_ms(50)
        ratio = r.rps / base.rps if base.rps else 0.0
        latency = "met" if added < MAX_ADDED_P50_MS else "NOT met"
        throughput = "met" if ratio >= MIN_THROUGHPUT_RATIO else "NOT met"
        lines.append(
            f"{r.concurrency:>3} clients: added p50 {added:+.2f} ms (target < {MAX_ADDED_P50_MS:g} ms): "
            f"{latency}; throughput {ratio:.1%} of direct (target >= {MIN_THROUGHPUT_RATIO:.0%}): "
            f"{throughput}"
        )
    return lines


def ceilings(measured: list[tuple[Result, CpuPerCall]]) -> list[str]:
    """What the CPU per call allows when every process shares the machine's cores: calls/s can
    be at most cores / CPU per call, so through Conduit at most this share of direct."""
    direct = {r.concurrency: cpu for r, cpu in measured if r.scenario == "direct"}
    lines = []
    for r, cpu in measured:
        if r.scenario == "direct":
            continue
        alone, through = direct[r.concurrency].total_ms(), cpu.total_ms()
        if alone != alone or through != through:
            continue
        lines.append(
            f"{r.concurrency:>3} clients: CPU per call {alone:.3f} ms direct (client and upstream), "
            f"{through:.3f} ms through Conduit ({cpu.per_call_ms('conduit'):.3f} of it Conduit's): "
            f"where they share the cores, throughput through Conduit is at most {alone / through:.0%} "
            "of direct"
        )
    return lines


def parse_args() -> argparse.Namespace:
    parser = arguments(__doc__)
    parser.add_argument(
        "--upstream",
        choices=["fast", "fixture"],
        default="fast",
        help="fast: bench/fast_upstream.py (default); fixture: the tests' SDK server",
    )
    return checked(parser)


def logs(conduit: Server, upstream: Upstream) -> str:
    return (
        f"--- conduit log tail ---\n{conduit.log_tail(40)}\n--- upstream log tail ---\n{upstream.log_tail()}"
    )


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="conduit-bench-gateway-"))
    with contextlib.ExitStack() as running:
        upstream = start_upstream(args.upstream, workdir)
        running.callback(upstream.stop)
        # No SMTP ingress: not measured, and its fixed port may be taken by another server.
        settings = {"CONDUIT_DEFAULT_PLAN": "enterprise", "CONDUIT_SMTP_ENABLED": "false"}
        conduit = start_conduit(workdir, args.log_level, settings)
        running.callback(conduit.stop)
        try:
            measured = asyncio.run(run(args, conduit, upstream))
        except SetupFailed as failure:
            raise SystemExit(f"{failure}\n{logs(conduit, upstream)}\n(files in {workdir})") from None
        if not (conduit.alive() and upstream.alive()):
            raise SystemExit(f"a server died during the run:\n{logs(conduit, upstream)}")
        results = [result for result, _ in measured]
        total_errors = sum(r.errors for r in results)
        failure_logs = logs(conduit, upstream) if total_errors else ""
    print()
    print_table(HEADER, table_rows(measured))
    print()
    print("\n".join(verdicts(results)))
    print("\n".join(ceilings(measured)))
    if total_errors:
        print(
            f"\n{total_errors} calls failed (not a 200 with a result)\n{failure_logs}\n(files in {workdir})"
        )
        raise SystemExit(1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
