"""`make conformance`: the official MCP conformance suite (server mode) against the fixture server,
first directly and then through a real `conduit serve`, and the two results side by side.

The suite cannot send headers, and Conduit refuses keyless requests, so the run through Conduit
goes via `KeyProxy`: a loopback pass-through that adds `X-API-Key` and changes nothing else
(method, path, every other header including Host and Origin, the body, the streamed response).

Conduit's result must equal the direct one, scenario by scenario; the one allowed difference is a
scenario Conduit passes that the upstream fails (Conduit checks Origin itself, so
`dns-rebinding-protection` can only get better). Exit status 0 when that holds.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.e2e.processes import conduit_env, free_port, start_server
from tests.mcp_servers import ROOT, running, start_fixture_http

SUMMARY_LINE = re.compile(r"^[✓✗]\s+(?P<name>[\w-]+): (?P<passed>\d+) passed, (?P<failed>\d+) failed")
PASSWORD = "conformance password 0123456789"


class KeyProxy:
    """Forwards every request to `target` with an API key added, streaming both ways."""

    def __init__(self, target: str, key: str) -> None:
        self.target = target.rstrip("/")
        self.key = key
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"x-api-key", self.key.encode()))
        query = f"?{scope['query_string'].decode()}" if scope.get("query_string") else ""
        request = self.client.build_request(
            scope["method"], self.target + query, headers=headers, content=body
        )
        response = await self.client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v)
                        for k, v in response.headers.raw
                        if k.lower() not in (b"content-length", b"transfer-encoding")
                    ],
                }
            )
            with contextlib.suppress(httpx.HTTPError):  # Conduit stopping with a GET stream open
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


@contextlib.contextmanager
def key_proxy(target: str, key: str) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(KeyProxy(target, key), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)


def provision(base_url: str, upstream_url: str) -> tuple[str, str]:
    """An account, a key and the fixture server registered in a fresh Conduit: (key, endpoint)."""
    with httpx.Client(base_url=base_url, timeout=30) as api:
        email = "conformance@example.com"
        api.post("/api/v1/accounts", json={"email": email, "password": PASSWORD}).raise_for_status()
        token = api.post("/api/v1/sessions", json={"email": email, "password": PASSWORD}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        key = api.post("/api/keys", json={"name": "conformance"}, headers=headers)
        key.raise_for_status()
        server = api.post(
            "/api/servers", json={"name": "fixture", "upstream_url": upstream_url}, headers=headers
        )
        server.raise_for_status()
        return key.json()["key"], server.json()["gateway_endpoint"]


def run_suite(url: str) -> tuple[dict[str, tuple[int, int]], str]:
    """Per-scenario (passed, failed) and the printed summary."""
    completed = subprocess.run(
        [str(ROOT / "scripts" / "conformance.sh"), url], cwd=ROOT, capture_output=True, text=True, check=False
    )
    scenarios: dict[str, tuple[int, int]] = {}
    for line in completed.stdout.splitlines():
        found = SUMMARY_LINE.match(line.strip())
        if found:
            scenarios[found["name"]] = (int(found["passed"]), int(found["failed"]))
    if not scenarios:
        raise RuntimeError(
            f"the conformance suite printed no summary:\n{completed.stdout}\n{completed.stderr}"
        )
    return scenarios, completed.stdout


def compare(direct: dict[str, tuple[int, int]], through: dict[str, tuple[int, int]]) -> list[str]:
    """Scenarios where Conduit does worse than the upstream alone."""
    worse = []
    for name in sorted(set(direct) | set(through)):
        d_pass, d_fail = direct.get(name, (0, 0))
        c_pass, c_fail = through.get(name, (0, 0))
        if c_pass < d_pass or c_fail > d_fail:
            worse.append(name)
    return worse


def table(direct: dict[str, tuple[int, int]], through: dict[str, tuple[int, int]]) -> str:
    rows = ["| scenario | direct passed/failed | through Conduit passed/failed |", "|---|---|---|"]
    for name in sorted(set(direct) | set(through)):
        d, c = direct.get(name, (0, 0)), through.get(name, (0, 0))
        rows.append(f"| {name} | {d[0]}/{d[1]} | {c[0]}/{c[1]} |")
    totals = [sum(v[i] for v in scores.values()) for scores in (direct, through) for i in (0, 1)]
    rows.append(f"| **total** | {totals[0]}/{totals[1]} | {totals[2]}/{totals[3]} |")
    return "\n".join(rows)


def main() -> int:
    with running(start_fixture_http()) as upstream:
        print(f"conformance: fixture server at {upstream.url}", flush=True)
        direct, _ = run_suite(upstream.url)
        workdir = Path(tempfile.mkdtemp(prefix="conduit-conformance-"))
        env = conduit_env(workdir / "data", None, default_plan="enterprise", log_level="warning")
        conduit = start_server(workdir, env)
        try:
            key, endpoint = provision(conduit.base_url, upstream.url)
            print(f"conformance: through Conduit at {endpoint}", flush=True)
            with key_proxy(endpoint, key) as proxied:
                through, _ = run_suite(proxied)
        finally:
            conduit.stop()
    print(table(direct, through))
    worse = compare(direct, through)
    if worse:
        print(f"conformance: Conduit scores lower than the upstream alone on: {', '.join(worse)}")
        return 1
    print("conformance: Conduit's score equals the direct score on every scenario")
    return 0


if __name__ == "__main__":
    sys.exit(main())
