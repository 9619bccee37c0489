"""The HTTP/1.1 client of upstream MCP traffic: keep-alive connections per origin, one request
at a time on each, responses parsed by httptools (llhttp) and read whole or as a stream.

On the relay's hot path every relayed message is one request here, so it does only what MCP
over HTTP needs: no cookies, proxies, redirects or tracing. It cost a third of aiohttp's CPU
time per request (bench/gateway.py).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

import httptools

from conduit.kit.http import BlockedAddress, allowed_addresses

CONNECT_TIMEOUT = 10.0
KEEPALIVE_SECONDS = 30.0
MAX_CONNECTIONS = 1000
MAX_IDLE_PER_ORIGIN = MAX_CONNECTIONS
# Unread body beyond this pauses reading from the socket until the reader catches up.
READ_AHEAD = 1 << 20
INVALID_HEADER = re.compile(r"[\r\n\x00]")
PATH_SAFE = "/%:@!$&'()*+,;=-._~?"


class HttpError(Exception):
    """The request could not be sent or its response not read; `str()` is the kind of failure."""


class ResponseTooLarge(HttpError):
    pass


class _Target:
    """What a URL means on the wire, parsed once per URL."""

    __slots__ = ("authorization", "host", "origin", "port", "request_target", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("InvalidURL")
        self.tls = parts.scheme == "https"
        try:
            self.port = parts.port or (443 if self.tls else 80)
        except ValueError:
            raise HttpError("InvalidURL") from None
        self.host = parts.hostname
        self.origin = (parts.scheme, self.host, self.port)
        netloc = parts.netloc.rpartition("@")[2]
        path = quote(parts.path or "/", safe=PATH_SAFE)
        query = f"?{quote(parts.query, safe=PATH_SAFE)}" if parts.query else ""
        self.request_target = f"{path}{query} HTTP/1.1\r\nhost: {netloc}\r\n"
        self.authorization: str | None = None
        if parts.username is not None:  # credentials in the URL, as aiohttp sent them
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.authorization = f"Basic {base64.b64encode(pair).decode()}"


class Response:
    """Status, headers (names in lower case, the first of repeated ones) and the body as it
    arrives. Leave it (`release()`, or the `async with` of `HttpClient.request`) to give the
    connection back: at once if the body was read to its end, else by closing it."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: HttpError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._inflate: Any = None
        self._streaming = False  # read as chunks(): the reader sets the pace

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def read(self, limit: int) -> bytes:
        """The whole body (decoded if compressed); ResponseTooLarge past `limit` bytes."""
        while not self._complete:
            if self._buffered > limit:
                raise ResponseTooLarge(f"over {limit} bytes")
            await self._wait()
        if self._error is not None:
            raise self._error
        if self._buffered > limit:
            raise ResponseTooLarge(f"over {limit} bytes")
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives (a stream that may never end)."""
        self._streaming = True
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                self._connection.reading_drained(self._buffered)
                yield chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return
            await self._wait()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- fed by the connection ---

    def _feed(self, data: bytes) -> None:
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error:
                self._fail(HttpError("ContentEncodingError"))
                return
        self._keep(data)

    def _keep(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            self._wake()

    def _finish(self) -> None:
        if self._inflate is not None and not self._complete:
            self._keep(self._inflate.flush())
        self._complete = True
        self._wake()

    def _fail(self, error: HttpError) -> None:
        if not self._complete:
            self._error = error
            self._complete = True
        self._wake()

    def release(self) -> None:
        self._connection.release(self)


class _Connection(asyncio.Protocol):
    """One connection to an origin; carries one request at a time."""

    def __init__(self, client: HttpClient, origin: tuple[str, str, int]) -> None:
        self.client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.headers_ready: asyncio.Future[None] = asyncio.Future()
        self.idle_since = 0.0
        self.closed = False
        self.paused = False
        self._keep_alive = False
        self._delimited_by_close = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.response is None:
            self.close()  # nothing was asked: a confused server
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._lost(HttpError("UnexpectedUpgrade"))
        except httptools.HttpParserError:
            self._lost(HttpError("ServerDisconnectedError" if self.response.status else "BadStatusLine"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        response = self.response
        if response is None:
            return
        if response.status and self._delimited_by_close and not response._complete:
            response._finish()  # a body without length ends where the connection does
            return
        self._lost(HttpError("ServerDisconnectedError"))

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: a final response follows on the same message stream
            response.headers.clear()
            return
        response.status = status
        headers = response.headers
        self._delimited_by_close = (
            "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()
        )
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            response._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            response._inflate = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            self._lost(HttpError("ContentEncodingError"))
            return
        if not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        response._feed(body)
        if response._streaming and response._buffered > READ_AHEAD and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or not response.status:
            return  # the end of a 1xx
        self._keep_alive = self.parser.should_keep_alive()
        response._finish()

    # --- the client's side ---

    def send(self, request: bytes) -> Response:
        assert self.transport is not None
        self.response = Response(self)
        self.headers_ready = asyncio.get_running_loop().create_future()
        self._keep_alive = False
        self.transport.write(request)
        return self.response

    def reading_drained(self, buffered: int) -> None:
        if self.paused and buffered < READ_AHEAD // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def release(self, response: Response) -> None:
        if self.response is not response:
            return
        self.response = None
        self.client.returned(
            self, reusable=response._complete and response._error is None and self._keep_alive
        )

    def _lost(self, error: HttpError) -> None:
        if not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Exchange:
    """`async with client.request(...) as response:` (headers received; the body follows)."""

    __slots__ = ("_client", "_headers", "_method", "_response", "_target", "body")

    def __init__(
        self, client: HttpClient, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        self._client = client
        self._method = method
        self._target = client.target(url)
        self._headers = headers
        self.body = body
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._client.send(self._method, self._target, self._headers, self.body)
        return self._response

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._response is not None:
            self._response.release()


class HttpClient:
    """Keep-alive connections to upstream origins, at most `max_connections` open at once.

    A connection idle for `keepalive` seconds is closed rather than reused (while requests keep
    coming; when none do, the server's own keep-alive timeout ends it); one the server closed
    leaves the pool when it does. A request is never retried: an MCP message must not
    reach an upstream twice.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        keepalive: float = KEEPALIVE_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
        allow_private: bool = True,
    ) -> None:
        """`allow_private=False`: dial only public addresses, resolved at each connect (for
        URLs users hand in, like a scan's target)."""
        self.connect_timeout = connect_timeout
        self.allow_private = allow_private
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self.closed = False

    def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> _Exchange:
        return _Exchange(self, method, url, headers, body)

    def target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 10_000:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        return target

    async def send(self, method: str, target: _Target, headers: Mapping[str, str], body: bytes) -> Response:
        if INVALID_HEADER.search("".join(headers)) or INVALID_HEADER.search("".join(headers.values())):
            raise HttpError("InvalidHeader")
        lines = [method, " ", target.request_target]
        if target.authorization is not None and "authorization" not in headers:
            lines.append(f"authorization: {target.authorization}\r\n")
        for name, value in headers.items():
            lines += (name, ": ", value, "\r\n")
        if body or method not in ("GET", "DELETE"):
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        request = "".join(lines).encode() + body
        await self._slots.acquire()
        try:
            connection = await self._connection(target)
        except BaseException:
            self._slots.release()
            raise
        response = connection.send(request)
        try:
            await connection.headers_ready
        except BaseException:
            response.release()
            raise
        return response

    async def _connection(self, target: _Target) -> _Connection:
        if self.closed:
            raise HttpError("ClientClosed")
        idle = self._idle.get(target.origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive:
                self._busy.add(connection)
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if target.tls else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                hosts = [target.host]
                if not self.allow_private:
                    hosts = await allowed_addresses(target.host, target.port, allow_private=False)
                connection = await self._dial(loop, target, hosts, tls)
        except TimeoutError:
            raise HttpError("ConnectionTimeoutError") from None
        except BlockedAddress as exc:
            raise HttpError(f"BlockedAddress: {exc}") from None
        except (OSError, UnicodeError, ssl.SSLError) as exc:
            raise HttpError(f"ClientConnectorError: {type(exc).__name__}") from None
        self._busy.add(connection)
        return connection

    async def _dial(
        self, loop: asyncio.AbstractEventLoop, target: _Target, hosts: list[str], tls: ssl.SSLContext | None
    ) -> _Connection:
        for i, host in enumerate(hosts):
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, target.origin),
                    host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                )
                return connection
            except OSError:
                if i == len(hosts) - 1:
                    raise
        raise OSError("no address to dial")

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def returned(self, connection: _Connection, *, reusable: bool) -> None:
        if connection in self._busy:
            self._busy.discard(connection)
            self._slots.release()
        if not reusable or connection.closed or self.closed:
            connection.close()
            return
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        now = connection.idle_since = time.monotonic()
        if idle and now - idle[0].idle_since >= self.keepalive:
            idle.pop(0).close()  # the least recently used, idle too long: one per return
        idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    async def aclose(self) -> None:
        self.closed = True
        connections = [c for idle in self._idle.values() for c in idle] + list(self._busy)
        self._idle.clear()
        for connection in connections:
            connection.close()
        await asyncio.sleep(0)  # let the transports see their close
