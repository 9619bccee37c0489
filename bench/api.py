"""Throughput and latency of sign-in and of an API-key GET, against GET /api/v1/ping as baseline.

Starts a real `conduit serve` on a free 127.0.0.1 port (temporary SQLite data directory, or
`--database-url`), creates accounts and an API token, then drives each scenario at each
concurrency for a fixed time with a small keep-alive HTTP/1.1 load generator (one connection
per client), so the client costs far less than the server and the ping baseline is the server's.

    .venv/bin/python bench/api.py [--duration 5] [--concurrency 1,32] [--database-url URL]

Sign-in is slow on purpose (argon2id, m=19456 KiB, t=2); every sign-in must succeed, and any
other status is counted in the errors column.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
PASSWORD = "bench correct horse battery staple"
START_TIMEOUT = 60.0
WARMUP_SECONDS = 0.5


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        text = (self.workdir / "server.stderr").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(workdir: Path, database_url: str | None, log_level: str) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env.update(
        CONDUIT_DATA_DIR=str(workdir / "data"),
        CONDUIT_HOST=HOST,
        CONDUIT_PORT=str(port),
        CONDUIT_LOG_LEVEL=log_level,
    )
    if database_url:
        env["CONDUIT_DATABASE_URL"] = database_url
    with (workdir / "server.stdout").open("wb") as out, (workdir / "server.stderr").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "conduit", "serve"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    server = Server(process, port, workdir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"conduit serve exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise SystemExit(f"conduit serve was not healthy after {START_TIMEOUT:.0f} s:\n{server.log_tail()}")


# --- fixtures: accounts and a token ----------------------------------------------------------


@dataclass
class Fixtures:
    emails: list[str]
    api_token: str
    backend: str


async def create_fixtures(base_url: str, accounts: int) -> Fixtures:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        backend = (await client.get("/health")).json()["data"]["backend"]
        emails = [f"bench-{uuid.uuid4().hex[:12]}@example.com" for _ in range(accounts)]
        gate = asyncio.Semaphore(4)  # sign-up hashes a password: a few at a time

        async def sign_up(email: str) -> None:
            async with gate:
                created = await client.post("/api/v1/accounts", json={"email": email, "password": PASSWORD})
                created.raise_for_status()

        await asyncio.gather(*(sign_up(email) for email in emails))
        session = await client.post("/api/v1/sessions", json={"email": emails[0], "password": PASSWORD})
        session.raise_for_status()
        token = await client.post(
            "/api/v1/accounts/me/api-tokens",
            json={"name": "bench"},
            headers={"Authorization": f"Bearer {session.json()['access_token']}"},
        )
        token.raise_for_status()
        return Fixtures(emails, token.json()["token"], backend)


# --- the load generator ----------------------------------------------------------------------


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length (ours do)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(request)
        status = int((await self.reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        length = None
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("response without Content-Length")
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
            self.writer = None


@dataclass
class Result:
    scenario: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


RequestFor = Callable[[int], bytes]  # client number -> the request it sends


async def drive(
    scenario: str, port: int, concurrency: int, request_for: RequestFor, duration: float
) -> Result:
    """`concurrency` clients, each on its own connection, send back to back for `duration`
    seconds after a short warm-up; requests that start in the measured window count."""
    result = Result(scenario, concurrency)
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + WARMUP_SECONDS
    measure_until = measure_from + duration
    last_done = measure_from

    async def client(number: int) -> None:
        nonlocal last_done
        connection = Connection(port)
        request = request_for(number)
        try:
            while (started := loop.time()) < measure_until:
                try:
                    status = await connection.send(request)
                except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError):
                    status = 0
                    await connection.close()
                done = loop.time()
                if started < measure_from:
                    continue
                if status != 200:
                    result.errors += 1
                    continue
                result.latencies.append(done - started)
                last_done = max(last_done, done)
        finally:
            await connection.close()

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    result.elapsed = last_done - measure_from
    return result


# --- the run ---------------------------------------------------------------------------------


def scenarios(port: int, fixtures: Fixtures) -> dict[str, RequestFor]:
    ping = http_request("GET", "/api/v1/ping", port, {})
    me = http_request("GET", "/api/v1/accounts/me", port, {"X-API-Key": fixtures.api_token})
    sign_ins = [
        http_request(
            "POST",
            "/api/v1/sessions",
            port,
            {"Content-Type": "application/json"},
            json.dumps({"email": email, "password": PASSWORD}).encode(),
        )
        for email in fixtures.emails
    ]
    return {
        "ping (baseline)": lambda _: ping,
        "GET /accounts/me (API key)": lambda _: me,
        # One account per client: the load of many users signing in, not one account's rows.
        "POST /sessions (sign-in)": lambda n: sign_ins[n % len(sign_ins)],
    }


def print_table(results: list[Result]) -> None:
    baseline = {r.concurrency: r.rps for r in results if r.scenario == "ping (baseline)"}
    header = ("scenario", "concurrency", "req/s", "p50 ms", "p99 ms", "ratio vs ping", "requests", "errors")
    rows = [
        (
            r.scenario,
            str(r.concurrency),
            f"{r.rps:,.1f}",
            f"{r.percentile_ms(50):.2f}",
            f"{r.percentile_ms(99):.2f}",
            f"{r.rps / baseline[r.concurrency]:.3f}" if baseline.get(r.concurrency) else "-",
            str(len(r.latencies)),
            str(r.errors),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first, *rest = zip(cells, widths, strict=True)
        return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)])

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


async def run(args: argparse.Namespace, server: Server) -> list[Result]:
    levels = sorted(set(args.concurrency))
    fixtures = await create_fixtures(server.base_url, max(levels))
    plan = scenarios(server.port, fixtures)
    print(
        f"conduit serve on {server.base_url}, database: {fixtures.backend}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.duration:g} s per row after {WARMUP_SECONDS:g} s warm-up, server log level {args.log_level}",
        flush=True,
    )
    results = []
    for concurrency in levels:
        for name, request_for in plan.items():
            results.append(await drive(name, server.port, concurrency, request_for, args.duration))
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per row (default 5)")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 32],
        help="comma-separated client counts (default 1,32)",
    )
    parser.add_argument("--database-url", help="CONDUIT_DATABASE_URL (default: SQLite in a temp dir)")
    parser.add_argument("--log-level", default="info", help="server log level (default info, as deployed)")
    args = parser.parse_args()
    if args.duration <= 0 or args.duration > 20 or min(args.concurrency) < 1 or max(args.concurrency) > 256:
        parser.error("--duration must be in (0, 20] and --concurrency in 1..256")
    return args


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="conduit-bench-"))
    server = start_server(workdir, args.database_url, args.log_level)
    try:
        results = asyncio.run(run(args, server))
        if server.process.poll() is not None:
            raise SystemExit(f"the server died during the run:\n{server.log_tail()}")
    finally:
        server.stop()
    print()
    print_table(results)
    total_errors = sum(r.errors for r in results)
    if total_errors:
        print(f"\n{total_errors} requests did not answer 200; the server log is in {workdir}")
        raise SystemExit(1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
