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
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from loadgen import (
    WARMUP_SECONDS,
    Result,
    Server,
    arguments,
    checked,
    drive,
    http_request,
    machine,
    print_table,
    repeat,
    start_conduit,
)

PASSWORD = "bench correct horse battery staple"
HEADER = ("scenario", "concurrency", "req/s", "p50 ms", "p99 ms", "ratio vs ping", "requests", "errors")


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


# --- the run ---------------------------------------------------------------------------------


RequestFor = Callable[[int], bytes]  # client number -> the request it sends


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


def table_rows(results: list[Result]) -> list[tuple[str, ...]]:
    baseline = {r.concurrency: r.rps for r in results if r.scenario == "ping (baseline)"}
    return [
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


async def run(args: argparse.Namespace, server: Server) -> list[Result]:
    levels = sorted(set(args.concurrency))
    fixtures = await create_fixtures(server.base_url, max(levels))
    plan = scenarios(server.port, fixtures)
    print(
        f"conduit serve on {server.base_url}, database: {fixtures.backend}, {machine()}, "
        f"{args.duration:g} s per row after {WARMUP_SECONDS:g} s warm-up, server log level {args.log_level}",
        flush=True,
    )
    results = []
    for concurrency in levels:
        for name, request_for in plan.items():
            results.append(await drive(name, server.port, concurrency, repeat(request_for), args.duration))
    return results


def parse_args() -> argparse.Namespace:
    parser = arguments(__doc__)
    parser.add_argument("--database-url", help="CONDUIT_DATABASE_URL (default: SQLite in a temp dir)")
    return checked(parser)


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="conduit-bench-"))
    settings = {"CONDUIT_DATABASE_URL": args.database_url} if args.database_url else {}
    server = start_conduit(workdir, args.log_level, settings)
    try:
        results = asyncio.run(run(args, server))
        if server.process.poll() is not None:
            raise SystemExit(f"the server died during the run:\n{server.log_tail()}")
    finally:
        server.stop()
    print()
    print_table(HEADER, table_rows(results))
    total_errors = sum(r.errors for r in results)
    if total_errors:
        print(f"\n{total_errors} requests did not answer 200; the server log is in {workdir}")
        raise SystemExit(1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
