"""`conduit serve --workers N`: every HTTP worker process logs like a single one does."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import conduit_env, fresh_database, start_server

pytestmark = pytest.mark.e2e

REQUESTS = 12


def test_every_worker_process_logs_json_to_stderr(tmp_path: Path) -> None:
    env = conduit_env(tmp_path / "data", fresh_database("e2e"), workers=2, log_level="info")
    server = start_server(tmp_path, env)
    try:
        for _ in range(REQUESTS):
            # A new connection each time, so the requests spread over the worker processes.
            assert httpx.get(f"{server.base_url}/api/v1/ping", timeout=10).status_code == 200
    finally:
        server.stop()

    stdout_lines = server.stdout.splitlines()
    assert not [line for line in stdout_lines if "ping" in line or "worker_started" in line], server.stdout
    events = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    pings = [e for e in events if e.get("event") == "request" and e.get("path") == "/api/v1/ping"]
    assert len(pings) == REQUESTS
    started = [e["worker"] for e in events if e.get("event") == "worker_started"]
    assert len(set(started)) == 2, "one JSON line from each worker process's job worker"
    assert all(e["level"] != "debug" for e in events), "the configured level holds in every worker"
