"""What the benchmarks share: a `conduit serve` (or any server process) on a free 127.0.0.1 port,
a small keep-alive HTTP/1.1 load generator (one connection per client, so the client costs far
less than the server), the measured `Result` of one row and the table printer."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
WARMUP_SECONDS = 0.5


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {platform.python_version()}"


# --- server processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A process listening on `port`, its stderr (and stdout) in `workdir/<name>.stderr`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        text = (self.workdir / f"{self.name}.stderr").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_process(
    name: str, argv: list[str], workdir: Path, env: dict[str, str], port: int, ready: Callable[[Server], bool]
) -> Server:
    """Start `argv` and wait until `ready(server)`; exit with the log tail if it never is."""
    with (workdir / f"{name}.stdout").open("wb") as out, (workdir / f"{name}.stderr").open("wb") as err:
        process = subprocess.Popen(
            argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    server = Server(name, process, port, workdir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        if ready(server):
            return server
        time.sleep(0.05)
    server.stop()
    raise SystemExit(f"{name} was not ready after {START_TIMEOUT:.0f} s:\n{server.log_tail()}")


def healthy(server: Server) -> bool:
    try:
        return httpx.get(f"{server.base_url}/health", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def listening(server: Server) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((HOST, server.port)) == 0


def start_conduit(workdir: Path, log_level: str, settings: dict[str, str]) -> Server:
    """`conduit serve` on a free port with its data directory in `workdir`, configured by the
    `CONDUIT_*` `settings` only (none inherited from this environment)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env.update(
        CONDUIT_DATA_DIR=str(workdir / "data"),
        CONDUIT_HOST=HOST,
        CONDUIT_PORT=str(port),
        CONDUIT_LOG_LEVEL=log_level,
        **settings,
    )
    return start_process("server", [sys.executable, "-m", "conduit", "serve"], workdir, env, port, healthy)


# --- the load generator ----------------------------------------------------------------------


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length or be chunked."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(request)
        status = int((await self.reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        headers = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return Response(status, headers, await self._body(status, headers))

    async def _body(self, status: int, headers: dict[str, str]) -> bytes:
        assert self.reader is not None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._chunks()
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if status in (204, 304):
            return b""
        raise RuntimeError("response without Content-Length")

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        chunks = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return b"".join(chunks)

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


NextRequest = Callable[[], bytes]
# Client number and its connection -> its next request each time, after any setup on that connection.
StartClient = Callable[[Connection, int], Awaitable[NextRequest]]


def repeat(request_for: Callable[[int], bytes]) -> StartClient:
    """Clients with no setup, each sending one request over and over: client number -> request."""

    async def start(_connection: Connection, number: int) -> NextRequest:
        request = request_for(number)
        return lambda: request

    return start


def answered_200(response: Response) -> bool:
    return response.status == 200


async def drive(
    scenario: str,
    port: int,
    concurrency: int,
    start_client: StartClient,
    duration: float,
    succeeded: Callable[[Response], bool] = answered_200,
) -> Result:
    """`concurrency` clients, each on its own connection, set up, then send back to back for
    `duration` seconds after a short warm-up; requests that start in the measured window count,
    and those that fail or do not `succeed` count as errors."""
    result = Result(scenario, concurrency)
    connections = [Connection(port) for _ in range(concurrency)]
    loop = asyncio.get_running_loop()
    try:
        senders = await asyncio.gather(*(start_client(c, n) for n, c in enumerate(connections)))
        measure_from = loop.time() + WARMUP_SECONDS
        window = (measure_from, measure_from + duration)
        last_done = await asyncio.gather(
            *(_send_until(c, s, window, result, succeeded) for c, s in zip(connections, senders, strict=True))
        )
    finally:
        for connection in connections:
            await connection.close()
    result.elapsed = max(last_done) - measure_from
    return result


async def _send_until(
    connection: Connection,
    next_request: NextRequest,
    window: tuple[float, float],
    result: Result,
    succeeded: Callable[[Response], bool],
) -> float:
    """One client's loop; returns when its last measured request was done."""
    loop = asyncio.get_running_loop()
    measure_from, measure_until = window
    last_done = measure_from
    while True:
        request = next_request()  # built before the clock starts: the client's cost is not the server's
        started = loop.time()
        if started >= measure_until:
            return last_done
        try:
            ok = succeeded(await connection.send(request))
        except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError):
            ok = False
            await connection.close()
        done = loop.time()
        if started < measure_from:
            continue
        if not ok:
            result.errors += 1
            continue
        result.latencies.append(done - started)
        last_done = done


# --- the table -------------------------------------------------------------------------------


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """The first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = zip(cells, widths, strict=True)
        return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)])

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


# --- the command line ------------------------------------------------------------------------


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: --duration, --concurrency and --log-level."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per row (default 5)")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 32],
        help="comma-separated client counts (default 1,32)",
    )
    parser.add_argument("--log-level", default="info", help="server log level (default info, as deployed)")
    return parser


def checked(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.duration <= 0 or args.duration > 20 or min(args.concurrency) < 1 or max(args.concurrency) > 256:
        parser.error("--duration must be in (0, 20] and --concurrency in 1..256")
    return args
