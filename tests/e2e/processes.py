"""Real `conduit` processes for the end-to-end and CLI tests: environment, database, server.

Each process gets a clean environment (no inherited `CONDUIT_*`) and runs in a temporary
directory, so a developer's `.env` or shell settings never leak into a test. On PostgreSQL the
processes use a database of their own, next to the in-process suite's, so neither wipes the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0


def suite_database_url() -> str | None:
    return os.environ.get("CONDUIT_TEST_DATABASE_URL") or None


def derived_database_url(suffix: str) -> str | None:
    """The PostgreSQL database `<test database>_<suffix>`, or None on SQLite (the default)."""
    url = suite_database_url()
    if url is None:
        return None
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{suffix}").render_as_string(hide_password=False)


async def _recreate_schema(url: str) -> None:
    parsed = make_url(url)
    connect = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
    }
    admin = await asyncpg.connect(**connect, database="postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database):
            # Another run may create it meanwhile.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(**connect, database=parsed.database)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def fresh_database(suffix: str) -> str | None:
    """An empty PostgreSQL database for processes (created if missing), or None on SQLite."""
    url = derived_database_url(suffix)
    if url is not None:
        # A thread of its own: the test session's event loop may be current in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _recreate_schema(url)).result()
    return url


def conduit_env(data_dir: Path, database_url: str | None, **settings: object) -> dict[str, str]:
    """The environment of a `conduit` process: no inherited CONDUIT_*, then ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["CONDUIT_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        env["CONDUIT_DATABASE_URL"] = database_url
    for name, value in settings.items():
        env[f"CONDUIT_{name.upper()}"] = str(value)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "conduit", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"conduit {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def start_server(workdir: Path, env: dict[str, str]) -> ServerProcess:
    """`conduit serve` on a free loopback port; returns once `/health` answers 200."""
    port = free_port()
    env = {**env, "CONDUIT_HOST": "127.0.0.1", "CONDUIT_PORT": str(port)}
    # Its SMTP server too, on a port of its own (2525 may be taken by another test's server).
    env.setdefault("CONDUIT_SMTP_PORT", str(free_port()))
    stdout_path, stderr_path = workdir / "server.stdout", workdir / "server.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "conduit", "serve"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    server = ServerProcess(
        process, f"http://127.0.0.1:{port}", Path(env["CONDUIT_DATA_DIR"]), stdout_path, stderr_path
    )
    try:
        _wait_until_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_healthy(server: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with server.client() as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"conduit serve exited with {server.process.returncode}:\n{server.stderr}")
            try:
                if client.get("/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"conduit serve did not become healthy in {START_TIMEOUT:.0f} s:\n{server.stderr}")
