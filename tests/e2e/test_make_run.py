"""What `make run` does, in a fresh data directory: `conduit migrate`, then `conduit serve`."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.processes import conduit_env, fresh_database, run_cli, start_server

pytestmark = pytest.mark.e2e

# PostgreSQL in the tests trusts local connections, so any password gets in: enough to check
# that none is ever printed.
DB_PASSWORD = "e2e-db-password-not-to-print"


def with_password(url: str | None) -> str | None:
    if url is None:
        return None
    return make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


def test_migrate_then_serve_in_a_fresh_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database_url = with_password(fresh_database("e2e"))
    env = conduit_env(data_dir, database_url)

    migrated = run_cli("migrate", env=env, cwd=tmp_path)
    assert "Database is at the latest schema" in migrated.stdout
    if database_url is None:
        assert (data_dir / "conduit.db").is_file()

    server = start_server(tmp_path, env)
    try:
        with server.client() as client:
            spec = client.get("/openapi.json")
            docs = client.get("/docs")
        banner = server.stdout
    finally:
        exit_code = server.stop()

    assert f"listening on {server.base_url}\n" in banner
    assert f"API docs:   {server.base_url}/docs\n" in banner
    assert "conduit init --email you@example.com\n" in banner
    assert spec.status_code == 200
    assert {"post", "delete"} <= set(spec.json()["paths"]["/api/v1/sessions"])
    assert "/api/v1/sessions/2fa" in spec.json()["paths"]
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    key_file = data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # uvicorn shuts down gracefully, then re-raises the signal it caught, as a process should.
    assert exit_code in (0, -signal.SIGTERM), server.stderr
    assert '"event": "worker_stopped"' in server.stderr, "SIGTERM stops the job workers cleanly"
    for output in (migrated.stdout, migrated.stderr, banner, server.stderr):
        assert DB_PASSWORD not in output
