"""Email ingress throughput: messages per second from SMTP accept to webhook delivered, against a
bare aiosmtpd server that does nothing with what it receives (the ceiling), measured in one run.

Starts a real `conduit serve` (SQLite in a temporary data directory, or `--database-url`) with an
email webhook on a public domain posting to a receiver in this process, and a loopback DNS server
(the SPF/DKIM/DMARC lookups are real queries, answered at once). Then, for each message size and
connection count, sends messages over persistent plain SMTP sessions (`MAIL`, `RCPT`, `DATA`
repeated; STARTTLS costs both servers the same) and times until the receiver has every one.
Conduit's figure includes mail authentication, parsing, the durable commit before each `250`, and
the signed HTTP delivery with its log row. A third server, the minimal relay, only stores and
posts each message: the most any store-then-deliver relay in Python reaches on the same machine.

    .venv/bin/python bench/smtp.py [--messages 300] [--sizes 1,100] [--connections 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiohttp import web
from loadgen import HOST, Server, free_port, listening, machine, print_table, start_conduit, start_process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.email.dns_server import DnsServer  # the same loopback DNS server the tests use

DOMAIN = "bench.conduit.test"
ADDRESS = f"inbox@{DOMAIN}"
SENDER = "alice@sender.conduit.test"
PASSWORD = "bench correct horse battery staple"
DELIVERY_TIMEOUT = 300.0
DNS_TTL = 300  # as a sender's real SPF and DMARC records have: a resolver may keep them
HEADER = (
    "server",
    "size",
    "connections",
    "accepted msg/s",
    "delivered msg/s",
    "p50 accept→delivered ms",
    "ratio vs bare",
    "messages",
)

BARE_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Nothing:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Nothing(), data_size_limit=None), "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
"""


# The least any store-then-deliver relay does, with no mail authentication, parsing, signing or
# delivery log: commit the message to SQLite (WAL, synchronous=NORMAL, as Conduit) before the
# `250`, POST it to the receiver over a kept-alive connection, mark it delivered. What it reaches
# is the ceiling of the design the issue asks for, in Python on this machine.
MINIMAL_SERVER = """
import asyncio, base64, itertools, json, sqlite3, sys
import aiohttp
from aiosmtpd.smtp import SMTP

class StoreAndPost:
    def __init__(self, db, url):
        self.db, self.url, self.ids, self.http = db, url, itertools.count(), None

    async def handle_DATA(self, server, session, envelope):
        queue_id = f"min-{next(self.ids)}"
        insert = "INSERT INTO messages (id, raw, delivered) VALUES (?, ?, 0)"
        self.db.execute(insert, (queue_id, envelope.content))
        self.db.commit()
        asyncio.get_running_loop().create_task(self.post(queue_id, envelope.content))
        return f"250 Ok: queued as {queue_id}"

    async def post(self, queue_id, raw):
        self.http = self.http or aiohttp.ClientSession()
        body = json.dumps({"queue_id": queue_id, "raw": base64.b64encode(raw).decode()})
        headers = {"Content-Type": "application/json"}
        async with self.http.post(self.url, data=body, headers=headers) as response:
            await response.read()
        self.db.execute("UPDATE messages SET delivered = 1 WHERE id = ?", (queue_id,))
        self.db.commit()

async def main(port, path, url):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, raw BLOB, delivered INTEGER)")
    loop = asyncio.get_running_loop()
    handler = StoreAndPost(db, url)
    server = await loop.create_server(lambda: SMTP(handler, data_size_limit=None), "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


def message(size_kb: int, number: int) -> bytes:
    """A plain-text message of about `size_kb` KiB, CRLF lines, dot-stuffing not needed."""
    head = (
        f"From: Alice <{SENDER}>\r\nTo: {ADDRESS}\r\nSubject: bench {number}\r\n"
        f"Message-ID: <bench-{number}-{uuid.uuid4().hex}@sender.conduit.test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size_kb * 1024 - len(head)) // len(line))
    return head + body


# --- a small SMTP client: persistent sessions, pipelining none -----------------------------------


class SmtpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> SmtpSession:
        reader, writer = await asyncio.open_connection(HOST, port)
        session = cls(reader, writer)
        await session.reply(220)
        await session.command(b"EHLO bench.conduit.test", 250)
        return session

    async def reply(self, expected: int) -> bytes:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
            lines.append(line)
            if line[3:4] != b"-":
                break
        code = int(lines[-1][:3])
        if code != expected:
            raise RuntimeError(f"expected {expected}, got {b''.join(lines)!r}")
        return lines[-1]

    async def command(self, line: bytes, expected: int) -> bytes:
        self.writer.write(line + b"\r\n")
        return await self.reply(expected)

    async def send(self, raw: bytes) -> bytes:
        await self.command(f"MAIL FROM:<{SENDER}>".encode(), 250)
        await self.command(f"RCPT TO:<{ADDRESS}>".encode(), 250)
        await self.command(b"DATA", 354)
        self.writer.write(raw + b".\r\n")
        return await self.reply(250)

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        await self.writer.drain()
        self.writer.close()


# --- the receiver ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    arrived: dict[str, float] = field(default_factory=dict)
    """queue id -> when its delivery arrived."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrived[body["queue_id"]] = time.perf_counter()
        self.changed.set()
        return web.Response(text="ok")

    async def wait_for(self, queue_ids: set[str]) -> float:
        """When the last of `queue_ids` arrived."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while not queue_ids <= self.arrived.keys():
            if time.monotonic() > deadline:
                missing = len(queue_ids - self.arrived.keys())
                raise SystemExit(f"{missing} messages were not delivered within {DELIVERY_TIMEOUT:.0f} s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)
        return max(self.arrived[queue_id] for queue_id in queue_ids)


class ThreadedDns:
    """The loopback DNS server on an event loop of its own thread: its answers do not wait for
    the SMTP client's work in this process's loop, as a real resolver's would not."""

    def __init__(self) -> None:
        self.server = DnsServer(ttl=DNS_TTL)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# --- one row --------------------------------------------------------------------------------------


@dataclass
class Row:
    server: str
    size_kb: int
    connections: int
    messages: int
    accepted_rate: float
    delivered_rate: float | None
    latency_ms: float | None


async def drive(
    port: int, size_kb: int, connections: int, messages: int
) -> tuple[float, float, dict[str, float]]:
    """Send `messages` over `connections` sessions; (start, last 250, queue id -> its 250 time)."""
    payloads = [message(size_kb, number) for number in range(messages)]
    sessions = [await SmtpSession.open(port) for _ in range(connections)]
    accepted: dict[str, float] = {}
    next_message = iter(range(messages))

    async def work(session: SmtpSession) -> None:
        for number in next_message:
            reply = (await session.send(payloads[number])).decode()
            queue_id = reply.rsplit(" ", 1)[-1].strip() if "queued as" in reply else f"message-{number}"
            accepted[queue_id] = time.perf_counter()

    started = time.perf_counter()
    await asyncio.gather(*(work(session) for session in sessions))
    finished = time.perf_counter()
    for session in sessions:
        await session.close()
    return started, finished, accepted


async def measure_bare(port: int, size_kb: int, connections: int, messages: int) -> Row:
    started, finished, _ = await drive(port, size_kb, connections, messages)
    return Row("bare aiosmtpd", size_kb, connections, messages, messages / (finished - started), None, None)


async def measure_delivering(
    server: str, port: int, receiver: Receiver, size_kb: int, connections: int, messages: int
) -> Row:
    started, finished, accepted = await drive(port, size_kb, connections, messages)
    last = await receiver.wait_for(set(accepted))
    latencies = [(receiver.arrived[queue_id] - at) * 1000 for queue_id, at in accepted.items()]
    return Row(
        server,
        size_kb,
        connections,
        messages,
        messages / (finished - started),
        messages / (last - started),
        statistics.median(latencies),
    )


# --- setup ----------------------------------------------------------------------------------------


async def create_webhook(base_url: str, receiver_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        (
            await client.post("/api/v1/accounts", json={"email": email, "password": PASSWORD})
        ).raise_for_status()
        session = await client.post("/api/v1/sessions", json={"email": email, "password": PASSWORD})
        session.raise_for_status()
        created = await client.post(
            "/api/v1/webhooks",
            json={"address": ADDRESS, "target_url": receiver_url},
            headers={"Authorization": f"Bearer {session.json()['access_token']}"},
        )
        created.raise_for_status()


def rows_for_table(rows: list[Row]) -> list[tuple[str, ...]]:
    bare = {(r.size_kb, r.connections): r.accepted_rate for r in rows if r.server == "bare aiosmtpd"}
    table = []
    for r in rows:
        rate = r.delivered_rate if r.delivered_rate is not None else r.accepted_rate
        table.append(
            (
                r.server,
                f"{r.size_kb} KB",
                str(r.connections),
                f"{r.accepted_rate:,.1f}",
                f"{r.delivered_rate:,.1f}" if r.delivered_rate is not None else "-",
                f"{r.latency_ms:.1f}" if r.latency_ms is not None else "-",
                f"{rate / bare[(r.size_kb, r.connections)]:.2f}",
                str(r.messages),
            )
        )
    return table


async def run(args: argparse.Namespace, workdir: Path) -> list[Row]:
    dns = ThreadedDns()
    dns.start()
    dns.server.add("sender.conduit.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    receiver_port = free_port()
    await web.TCPSite(runner, HOST, receiver_port).start()

    smtp_port = free_port()
    settings = {
        "CONDUIT_SMTP_PORT": str(smtp_port),
        "CONDUIT_PUBLIC_EMAIL_DOMAINS": DOMAIN,
        "CONDUIT_ALLOW_PRIVATE_TARGETS": "true",
        "CONDUIT_DNS_NAMESERVERS": f"{HOST}:{dns.port}",
    }
    if args.database_url:
        settings["CONDUIT_DATABASE_URL"] = args.database_url
    conduit: Server | None = None
    bare: Server | None = None
    minimal: Server | None = None
    try:
        conduit = await asyncio.to_thread(start_conduit, workdir, args.log_level, settings)
        await create_webhook(conduit.base_url, f"http://{HOST}:{receiver_port}/hook")
        bare_port = free_port()
        bare = await asyncio.to_thread(
            start_process,
            "bare",
            [sys.executable, "-c", BARE_SERVER, str(bare_port)],
            workdir,
            {},
            bare_port,
            listening,
        )
        minimal_port = free_port()
        minimal = await asyncio.to_thread(
            start_process,
            "minimal",
            [
                sys.executable,
                "-c",
                MINIMAL_SERVER,
                str(minimal_port),
                str(workdir / "minimal.db"),
                f"http://{HOST}:{receiver_port}/hook",
            ],
            workdir,
            {},
            minimal_port,
            listening,
        )
        backend = (await asyncio.to_thread(httpx.get, f"{conduit.base_url}/health")).json()["data"]["backend"]
        print(
            f"conduit serve (SMTP on {HOST}:{smtp_port}, database: {backend}) and a bare aiosmtpd on "
            f"{HOST}:{bare_port}, {machine()}, {args.messages} messages per row, plain SMTP, "
            f"server log level {args.log_level}",
            flush=True,
        )
        rows: list[Row] = []
        measures: list[tuple[str, Callable[[int, int, int], Awaitable[Row]]]] = [
            ("bare", lambda size, conns, n: measure_bare(bare_port, size, conns, n)),
            (
                "minimal",
                lambda size, conns, n: measure_delivering(
                    "minimal relay", minimal_port, receiver, size, conns, n
                ),
            ),
            (
                "conduit",
                lambda size, conns, n: measure_delivering("conduit", smtp_port, receiver, size, conns, n),
            ),
        ]
        for size_kb in args.sizes:
            for connections in args.connections:
                count = args.messages if size_kb < 50 else max(connections, args.messages // 3)
                for _name, measure in measures:
                    await measure(size_kb, connections, min(20, count))  # warm-up
                    rows.append(await measure(size_kb, connections, count))
        return rows
    finally:
        for process in (bare, minimal, conduit):
            if process is not None:
                process.stop()
        await runner.cleanup()
        dns.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    numbers = lambda text: [int(n) for n in text.split(",")]  # noqa: E731
    parser.add_argument("--messages", type=int, default=300, help="messages per row of 1 KB (default 300)")
    parser.add_argument("--sizes", type=numbers, default=[1, 100], help="message sizes in KB (default 1,100)")
    parser.add_argument("--connections", type=numbers, default=[1, 8], help="SMTP sessions (default 1,8)")
    parser.add_argument("--database-url", help="CONDUIT_DATABASE_URL (default: SQLite in a temp dir)")
    parser.add_argument("--log-level", default="info", help="server log level (default info, as deployed)")
    args = parser.parse_args()
    if not 1 <= args.messages <= 100_000 or min(args.connections) < 1 or max(args.connections) > 64:
        parser.error("--messages must be in 1..100000 and --connections in 1..64")
    return args


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="conduit-bench-smtp-"))
    try:
        rows = asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(HEADER, rows_for_table(rows))
    print()
    print("ratio vs bare: delivered msg/s (accept to webhook delivered) over the bare server's accepted")
    print("msg/s at the same size and connections; the target for Conduit is at least 0.50. The minimal")
    print("relay only commits each message to SQLite and POSTs it (no authentication, parsing, signing or")
    print("log): the most a store-then-deliver relay in Python reaches here.")


if __name__ == "__main__":
    main()
