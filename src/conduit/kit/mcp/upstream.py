"""Connections to upstream MCP servers: streamable HTTP, the legacy HTTP+SSE transport, and stdio
processes. Each `Upstream` is one connection carrying JSON-RPC messages both ways.

Every request sent upstream gets an id of our own (`cnd-<n>`) and, when it asks for progress, a
progress token of our own; replies and progress are mapped back to what the caller sent. So one
connection can carry the requests of several callers, and a client's ids `1` and `"1"` cannot
collide. Messages the upstream sends in relation to a request (progress, logging, sampling,
elicitation, roots) go to that request's `sink`; the rest go to `on_message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import structlog
from mcp.client.stdio import get_default_environment

from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.httpclient import HttpClient, HttpError, Response, ResponseTooLarge
from conduit.kit.mcp.jsonrpc import Message

log = structlog.get_logger("conduit.gateway.upstream")

Sink = Callable[[Message], Awaitable[None]]
MAX_MESSAGE_BYTES = 64 << 20
SSE_ACCEPT = "application/json, text/event-stream"


class UpstreamError(Exception):
    """The upstream could not answer; `code` is the JSON-RPC error code the caller gets."""

    code = jsonrpc.CONNECTION_CLOSED


class UpstreamClosed(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    code = jsonrpc.REQUEST_TIMEOUT


class SessionLost(UpstreamError):
    """The upstream no longer knows our session (HTTP 404): initialize again."""


@dataclass(frozen=True)
class UpstreamSpec:
    server_id: str
    name: str
    transport: str  # streamable_http | sse | stdio
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """The largest message taken from the upstream; a larger one is an `UpstreamError`."""


@dataclass
class Reply:
    message: Message
    status: int = 200  # the HTTP status the upstream answered with; 200 off HTTP
    content_type: str = "application/json"
    # The reply as the upstream serialised it, with the caller's id put back: relayed as it came
    # rather than serialised again. None when the id could not be put back by substitution.
    raw: bytes | None = None


@dataclass
class _Pending:
    caller_id: Any
    sink: Sink | None
    future: asyncio.Future[Message] | None = None
    token: Any = None


class Upstream:
    """One connection to an upstream. Subclasses move the bytes; this class maps ids and routes."""

    def __init__(self, spec: UpstreamSpec, *, on_message: Sink | None = None) -> None:
        self.spec = spec
        self.on_message = on_message
        self.protocol_version: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._tokens: dict[str, _Pending] = {}
        self._closed = False

    @property
    def alive(self) -> bool:
        return not self._closed

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    async def connect(self) -> None:
        """Open the transport (start the process, open the SSE stream); no MCP handshake."""

    async def aclose(self) -> None:
        self._closed = True
        self._fail_all(UpstreamClosed("The upstream connection was closed"))

    async def send(self, message: Message) -> None:
        """A notification, or the answer to a request the upstream sent."""
        raise NotImplementedError

    async def request(
        self,
        message: Message,
        *,
        sink: Sink | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        if self._closed:
            raise UpstreamClosed("The upstream connection is closed")
        upstream_id = f"cnd-{next(self._ids)}"
        pending = _Pending(caller_id=message.get("id"), sink=sink)
        outgoing = jsonrpc.with_id(message, upstream_id)
        token = jsonrpc.progress_token(message)
        if token is not None:
            pending.token = token
            outgoing = jsonrpc.with_progress_token(outgoing, upstream_id)
            self._tokens[upstream_id] = pending
        self._pending[upstream_id] = pending
        try:
            async with asyncio.timeout(timeout):
                reply = await self._exchange(upstream_id, outgoing, pending, headers)
        except TimeoutError:
            self._cancel_upstream(upstream_id, "Request timed out")
            raise UpstreamTimeout(f"The upstream did not answer within {timeout:g} s") from None
        except asyncio.CancelledError:
            self._cancel_upstream(upstream_id, "Client went away")
            raise
        finally:
            self._pending.pop(upstream_id, None)
            self._tokens.pop(upstream_id, None)
        reply.message = jsonrpc.with_id(reply.message, pending.caller_id)
        if reply.raw is not None:
            reply.raw = _restore_id(reply.raw, upstream_id, pending.caller_id)
        return reply

    async def _exchange(
        self, upstream_id: str, message: Message, pending: _Pending, headers: Mapping[str, str] | None
    ) -> Reply:
        raise NotImplementedError

    def _cancel_upstream(self, upstream_id: str, reason: str) -> None:
        if self._closed:
            return
        notice = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": upstream_id, "reason": reason},
        }
        task = asyncio.get_running_loop().create_task(self._best_effort(notice))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _best_effort(self, message: Message) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.send(message)

    async def _route(self, message: Message, sink: Sink | None) -> None:
        """Deliver something the upstream sent that is not the reply being waited for."""
        if message.get("method") == "notifications/progress":
            params = jsonrpc.params_of(message)
            owner = self._tokens.get(str(params.get("progressToken")))
            if owner is not None:
                message = {**message, "params": {**params, "progressToken": owner.token}}
                target = owner.sink or sink
                if target is not None:
                    await target(message)
                return
        target = sink if sink is not None else self.on_message
        if target is not None:
            await target(message)

    def _fail_all(self, exc: UpstreamError) -> None:
        for pending in list(self._pending.values()):
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(exc)


_background: set[asyncio.Task[Any]] = set()


def _restore_id(raw: bytes, upstream_id: str, caller_id: Any) -> bytes | None:
    """`raw` with our id replaced by the caller's. The reply was parsed and its top-level id is
    `upstream_id`, so if that string occurs once in the bytes, that occurrence is the id. Only
    plain UTF-8 passes through as it came (not a BOM, nor UTF-16 or UTF-32)."""
    ours = f'"{upstream_id}"'.encode()
    if not raw.startswith(b"{") or raw.count(ours) != 1:
        return None
    return raw.replace(ours, jsonrpc.dumps(caller_id))


# --- streamable HTTP --------------------------------------------------------------------------


def _too_large(limit: int) -> UpstreamError:
    size = f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"
    return UpstreamError(f"The upstream sent a message over {size}")


async def _lines(response: Response, limit: int) -> AsyncIterator[str]:
    """Lines of a streamed body, split on CRLF, LF or CR; none longer than `limit` bytes."""
    buffer = b""
    async for chunk in response.chunks():
        buffer += chunk
        if len(buffer) > limit and b"\n" not in buffer and b"\r" not in buffer:
            raise _too_large(limit)
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                continue  # maybe the first half of a CRLF
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.rstrip(b"\r").decode("utf-8", errors="replace")


async def sse_messages(response: Response, limit: int = MAX_MESSAGE_BYTES) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of an SSE stream; comments, ids and priming events are dropped."""
    event, size = "message", 0
    data: list[str] = []
    async for line in _lines(response, limit):
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data, size = "message", [], 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            size += len(value)
            if size > limit:
                raise _too_large(limit)
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)


def _decode(text: str | bytes) -> Message | None:
    try:
        value = jsonrpc.parse(text.encode() if isinstance(text, str) else text)
    except jsonrpc.InvalidMessage:
        return None
    return value if isinstance(value, dict) else None


class HttpUpstream(Upstream):
    """Streamable HTTP: one POST per message; replies as JSON or as an SSE stream per request,
    plus a GET stream for messages unrelated to any request."""

    def __init__(self, spec: UpstreamSpec, client: HttpClient, *, on_message: Sink | None = None) -> None:
        super().__init__(spec, on_message=on_message)
        assert spec.url is not None
        self.url = spec.url
        self.client = client
        self.session_id: str | None = None
        self._listener: asyncio.Task[None] | None = None
        self._headers_of: tuple[str | None, str | None] | None = None
        self._base_headers: dict[str, str] = {}

    def _headers(self, extra: Mapping[str, str] | None = None) -> Mapping[str, str]:
        """The headers of every message (built again only when the session changes)."""
        session = (self.session_id, self.protocol_version)
        if session != self._headers_of:
            headers = {"accept": SSE_ACCEPT, "content-type": "application/json", **self.spec.headers}
            if self.session_id:
                headers["mcp-session-id"] = self.session_id
            if self.protocol_version:
                headers["mcp-protocol-version"] = self.protocol_version
            self._headers_of, self._base_headers = session, headers
        return {**self._base_headers, **extra} if extra else self._base_headers

    async def _exchange(
        self, upstream_id: str, message: Message, pending: _Pending, headers: Mapping[str, str] | None
    ) -> Reply:
        body = jsonrpc.dumps(message)
        modern = "mcp-protocol-version" in (headers or {})
        try:
            async with self.client.request("POST", self.url, self._headers(headers), body) as resp:
                if message.get("method") == "initialize" and "mcp-session-id" in resp.headers:
                    self.session_id = resp.headers["mcp-session-id"]
                if resp.status == 404 and self.session_id and not modern:
                    raise SessionLost("The upstream session expired")
                content_type = resp.content_type
                if content_type == "text/event-stream":
                    async for _event, data in sse_messages(resp, self.spec.max_message_bytes):
                        received = _decode(data)
                        if received is None:
                            continue
                        if jsonrpc.is_response(received) and received.get("id") == upstream_id:
                            return Reply(received, resp.status, content_type, data.encode())
                        await self._route(received, pending.sink)
                    raise UpstreamClosed("The upstream closed the stream before answering")
                raw = await resp.read(self.spec.max_message_bytes)
                received = _decode(raw) if raw else None
                if received is not None and jsonrpc.is_response(received):
                    relayed = raw if received.get("id") == upstream_id else None
                    return Reply(received, resp.status, content_type or "application/json", relayed)
                raise UpstreamError(f"The upstream answered HTTP {resp.status} without a JSON-RPC reply")
        except ResponseTooLarge:
            raise _too_large(self.spec.max_message_bytes) from None
        except HttpError as exc:
            raise UpstreamClosed(f"The upstream is unreachable: {exc}") from None

    async def send(self, message: Message) -> None:
        try:
            async with self.client.request("POST", self.url, self._headers(), jsonrpc.dumps(message)) as resp:
                await resp.read(self.spec.max_message_bytes)
                status = resp.status
        except HttpError as exc:
            raise UpstreamClosed(f"The upstream is unreachable: {exc}") from None
        if status == 404 and self.session_id:
            raise SessionLost("The upstream session expired")
        if status >= 400:
            raise UpstreamError(f"The upstream refused a message with HTTP {status}")

    def listen(self) -> None:
        """Open the GET stream (handshake era, once a session exists)."""
        if self._listener is None and self.session_id:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        delays = iter((0.5, 1.0, 2.0, 5.0))
        while not self._closed:
            try:
                headers = {k: v for k, v in self._headers().items() if k != "content-type"}
                headers["accept"] = "text/event-stream"
                async with self.client.request("GET", self.url, headers) as resp:
                    if resp.status >= 400:
                        return  # no GET stream here; nothing unsolicited will come
                    async for _event, data in sse_messages(resp, self.spec.max_message_bytes):
                        received = _decode(data)
                        if received is not None:
                            await self._route(received, None)
            except (HttpError, UpstreamError):
                pass
            delay = next(delays, None)
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await super().aclose()
        if self._listener is not None:
            self._listener.cancel()
        if self.session_id:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    async with self.client.request("DELETE", self.url, self._headers()) as resp:
                        await resp.read(self.spec.max_message_bytes)


# --- one stream for everything: legacy SSE and stdio ------------------------------------------


class StreamUpstream(Upstream):
    """Replies arrive on one shared stream and are matched to requests by id. Server requests
    and notifications without a progress token go to the newest request still waiting."""

    async def _exchange(
        self, upstream_id: str, message: Message, pending: _Pending, headers: Mapping[str, str] | None
    ) -> Reply:
        pending.future = asyncio.get_running_loop().create_future()
        await self._write(message)
        return Reply(await pending.future)

    async def _write(self, message: Message) -> None:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        await self._write(message)

    async def _dispatch(self, message: Message) -> None:
        if jsonrpc.is_response(message):
            pending = self._pending.get(str(message.get("id")))
            if pending is not None and pending.future is not None and not pending.future.done():
                pending.future.set_result(message)
            return
        newest = next((p.sink for p in reversed(self._pending.values()) if p.sink is not None), None)
        await self._route(message, newest)


class SseUpstream(StreamUpstream):
    """The 2024-11-05 HTTP+SSE transport: a GET stream announces where to POST; every reply comes
    back on the GET stream."""

    def __init__(self, spec: UpstreamSpec, client: HttpClient, *, on_message: Sink | None = None) -> None:
        super().__init__(spec, on_message=on_message)
        assert spec.url is not None
        self.client = client
        self.endpoint: str | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read(ready))
        try:
            async with asyncio.timeout(10):
                self.endpoint = await ready
        except TimeoutError:
            self._reader.cancel()
            raise UpstreamClosed("The SSE upstream did not announce its message endpoint") from None

    async def _read(self, ready: asyncio.Future[str]) -> None:
        assert self.spec.url is not None
        try:
            headers = {"accept": "text/event-stream", **self.spec.headers}
            async with self.client.request("GET", self.spec.url, headers) as resp:
                if resp.status >= 400:
                    raise UpstreamClosed(f"The SSE upstream answered HTTP {resp.status}")
                async for event, data in sse_messages(resp, self.spec.max_message_bytes):
                    if event == "endpoint":
                        if not ready.done():
                            ready.set_result(urljoin(self.spec.url, data.strip()))
                        continue
                    received = _decode(data)
                    if received is not None:
                        await self._dispatch(received)
            raise UpstreamClosed("The SSE upstream closed its stream")
        except (HttpError, UpstreamError) as exc:
            error = (
                exc if isinstance(exc, UpstreamError) else UpstreamClosed("The SSE upstream is unreachable")
            )
            if not ready.done():
                ready.set_exception(error)
            self._closed = True
            self._fail_all(error)

    async def _write(self, message: Message) -> None:
        if self.endpoint is None or self._closed:
            raise UpstreamClosed("The SSE upstream is not connected")
        try:
            headers = {"content-type": "application/json", **self.spec.headers}
            async with self.client.request("POST", self.endpoint, headers, jsonrpc.dumps(message)) as resp:
                await resp.read(self.spec.max_message_bytes)
                status = resp.status
        except HttpError:
            raise UpstreamClosed("The SSE upstream is unreachable") from None
        if status == 404:
            raise SessionLost("The SSE upstream no longer knows this session")
        if status >= 400:
            raise UpstreamError(f"The SSE upstream refused a message with HTTP {status}")

    async def aclose(self) -> None:
        await super().aclose()
        if self._reader is not None:
            self._reader.cancel()


class StdioUpstream(StreamUpstream):
    """A local process speaking newline-delimited JSON-RPC on stdin/stdout; its stderr is
    captured line by line (kept in `stderr_tail` and handed to `on_stderr`)."""

    def __init__(
        self,
        spec: UpstreamSpec,
        *,
        on_message: Sink | None = None,
        on_stderr: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(spec, on_message=on_message)
        self.on_stderr = on_stderr
        self.stderr_tail: deque[str] = deque(maxlen=50)
        self.process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self.started_at = 0.0

    async def connect(self) -> None:
        assert self.spec.command is not None
        env = {**get_default_environment(), **self.spec.env}
        program = shutil.which(self.spec.command, path=env.get("PATH")) or self.spec.command
        try:
            self.process = await asyncio.create_subprocess_exec(
                program,
                *self.spec.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=self.spec.max_message_bytes,
                start_new_session=True,
            )
        except OSError as exc:
            self._closed = True
            raise UpstreamClosed(f"Could not start {self.spec.command!r}: {exc.strerror or exc}") from None
        self.started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_stdout()), loop.create_task(self._read_stderr())]
        log.info("upstream_started", server=self.spec.name, pid=self.process.pid)

    async def _read_stdout(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        reason = "The upstream process closed its output"
        try:
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    break
                received = _decode(line)
                if received is not None:
                    await self._dispatch(received)
        except (ValueError, asyncio.LimitOverrunError):
            reason = str(_too_large(self.spec.max_message_bytes))
        code = await self._stop()
        if code is not None:
            reason = f"The upstream process exited (code {code})"
        self._fail_all(UpstreamClosed(reason))

    async def _read_stderr(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        with contextlib.suppress(ValueError, asyncio.LimitOverrunError):
            while line := await self.process.stderr.readline():
                text = line.decode(errors="replace").rstrip()
                self.stderr_tail.append(text)
                if self.on_stderr is not None:
                    self.on_stderr(text)

    async def _write(self, message: Message) -> None:
        process = self.process
        if self._closed or process is None or process.stdin is None or process.returncode is not None:
            raise UpstreamClosed("The upstream process is not running")
        try:
            async with self._write_lock:
                process.stdin.write(jsonrpc.dumps(message) + b"\n")
                await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise UpstreamClosed("The upstream process is not running") from None

    async def _stop(self) -> int | None:
        """Ask the process to end (close stdin, then SIGTERM, then SIGKILL); its exit code."""
        self._closed = True
        process = self.process
        if process is None:
            return None
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, sig)
                try:
                    async with asyncio.timeout(2):
                        await process.wait()
                    break
                except TimeoutError:
                    continue
        return process.returncode

    async def aclose(self) -> None:
        await super().aclose()
        await self._stop()
        for task in self._tasks:
            task.cancel()
        if self.process is not None:
            log.info("upstream_stopped", server=self.spec.name, pid=self.process.pid)


def open_upstream(
    spec: UpstreamSpec,
    client: HttpClient,
    *,
    on_message: Sink | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> Upstream:
    if spec.transport == "stdio":
        return StdioUpstream(spec, on_message=on_message, on_stderr=on_stderr)
    if spec.transport == "sse":
        return SseUpstream(spec, client, on_message=on_message)
    return HttpUpstream(spec, client, on_message=on_message)


def upstream_client(*, allow_private: bool = True) -> HttpClient:
    """The one client for upstream traffic (call it in the event loop that will use it).
    Upstreams may be on private addresses (a self-hosted gateway fronts internal servers), so
    this is not the SSRF-guarded client unless `allow_private=False` (a URL a user handed in)."""
    return HttpClient(allow_private=allow_private)


# --- a session kept alive: handshake, re-handshake, restart with backoff ----------------------

RESTART_DELAYS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)


class UpstreamSession:
    """One MCP session with an upstream, on behalf of one downstream session (or of Conduit).

    Opened on demand with the client's own `initialize`; if the process dies or the upstream
    forgets the session, the next request opens a new connection, repeats the handshake (and the
    logging level and resource subscriptions the client had set) and carries on. Restarts back
    off after repeated failures.
    """

    def __init__(
        self,
        spec: UpstreamSpec,
        client: HttpClient,
        *,
        on_message: Sink | None = None,
        on_stderr: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.on_message = on_message
        self.on_stderr = on_stderr
        self.upstream: Upstream | None = None
        self.init_message: Message | None = None
        self.init_result: Message | None = None
        self.initialized_sent = False
        self.log_level: Message | None = None
        self.subscriptions: dict[str, Message] = {}
        self.failures = 0
        self.next_start = 0.0
        self.last_used = time.monotonic()
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self.upstream is not None and self.upstream.alive

    async def initialize(self, message: Message, *, timeout: float) -> Reply:
        """Forward the client's `initialize` (first time) and remember it for re-handshakes."""
        self.init_message = message
        async with self._lock:
            await self._drop()
            upstream = await self._open(timeout)
            reply = await upstream.request(message, timeout=timeout)
            self._accept(upstream, reply)
            return reply

    def _accept(self, upstream: Upstream, reply: Reply) -> None:
        result = reply.message.get("result")
        if isinstance(result, dict):
            self.init_result = result
            version = result.get("protocolVersion")
            upstream.protocol_version = version if isinstance(version, str) else None

    async def _open(self, timeout: float) -> Upstream:
        wait = self.next_start - time.monotonic()
        if wait > timeout:
            raise UpstreamClosed(f"The upstream keeps failing; next restart in {wait:.0f} s")
        if wait > 0:
            await asyncio.sleep(wait)
        upstream = open_upstream(self.spec, self.client, on_message=self.on_message, on_stderr=self.on_stderr)
        try:
            await upstream.connect()
        except UpstreamError:
            self._failed()
            raise
        self.upstream = upstream
        return upstream

    def _failed(self) -> None:
        delay = RESTART_DELAYS[min(self.failures, len(RESTART_DELAYS) - 1)]
        self.failures += 1
        self.next_start = time.monotonic() + delay

    async def _drop(self) -> None:
        if self.upstream is not None:
            upstream, self.upstream = self.upstream, None
            await upstream.aclose()

    async def ensure(self, timeout: float) -> Upstream:
        """The live connection, re-opened and re-initialized if it was lost."""
        if self.upstream is not None and self.upstream.alive:
            return self.upstream
        async with self._lock:
            if self.upstream is not None and self.upstream.alive:
                return self.upstream
            if self.upstream is not None:
                self._failed()
            await self._drop()
            upstream = await self._open(timeout)
            if self.init_message is not None:
                try:
                    reply = await upstream.request(self.init_message, timeout=timeout)
                    self._accept(upstream, reply)
                    if self.initialized_sent:
                        await upstream.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                        self._listen(upstream)
                    for replay in (self.log_level, *self.subscriptions.values()):
                        if replay is not None:
                            await upstream.request(replay, timeout=timeout)
                except UpstreamError:
                    self._failed()
                    await self._drop()
                    raise
                log.info("upstream_reinitialized", server=self.spec.name)
            return upstream

    def _listen(self, upstream: Upstream) -> None:
        if isinstance(upstream, HttpUpstream):
            upstream.listen()

    async def request(
        self,
        message: Message,
        *,
        sink: Sink | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        self.last_used = time.monotonic()
        deadline = time.monotonic() + timeout
        upstream = await self.ensure(timeout)
        try:
            reply = await upstream.request(
                message, sink=sink, timeout=max(0.01, deadline - time.monotonic()), headers=headers
            )
        except SessionLost:
            await upstream.aclose()
            upstream = await self.ensure(max(0.01, deadline - time.monotonic()))
            reply = await upstream.request(
                message, sink=sink, timeout=max(0.01, deadline - time.monotonic()), headers=headers
            )
        self._remember(message, reply)
        # A process counts as recovered once it has stayed up a while; anything else at once.
        if not isinstance(upstream, StdioUpstream) or time.monotonic() - upstream.started_at > 30:
            self.failures = 0
        self.last_used = time.monotonic()
        return reply

    def _remember(self, message: Message, reply: Reply) -> None:
        if "error" in reply.message:
            return
        method = message.get("method")
        uri = str(jsonrpc.params_of(message).get("uri"))
        if method == "logging/setLevel":
            self.log_level = message
        elif method == "resources/subscribe":
            self.subscriptions[uri] = message
        elif method == "resources/unsubscribe":
            self.subscriptions.pop(uri, None)

    async def send(self, message: Message, *, timeout: float = 30.0) -> None:
        self.last_used = time.monotonic()
        if message.get("method") == "notifications/initialized":
            self.initialized_sent = True
        upstream = await self.ensure(timeout)
        try:
            await upstream.send(message)
        except SessionLost:
            await upstream.aclose()
            if message.get("method") != "notifications/initialized":
                await (await self.ensure(timeout)).send(message)
            return
        if message.get("method") == "notifications/initialized":
            self._listen(upstream)

    async def idle_stop(self) -> None:
        """Stop the connection while nothing is in flight; the next request starts it again."""
        async with self._lock:
            if self.upstream is not None and not self.upstream.busy:
                await self._drop()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()
