"""The upstream HTTP client against a scripted HTTP/1.1 server: keep-alive reuse, the three ways a
body ends, compression, streaming, failures, and cancellation; on asyncio's loop and uvloop's."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import uvloop

from conduit.kit.mcp.httpclient import HttpClient, HttpError, ResponseTooLarge
from tests.mcp_servers import free_port

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # request -> keep the connection?


@dataclass
class Scripted:
    """Answers each request with `answer`; counts connections and keeps the requests seen."""

    answer: Answer
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> Scripted:
        scripted = Scripted(answer)
        port = free_port()
        servers.append(await asyncio.start_server(scripted.handle, "127.0.0.1", port))
        scripted.url = f"http://127.0.0.1:{port}/mcp?x=1"
        return scripted

    yield start
    for server in servers:
        server.close()


def fixed(status: int, body: bytes, *headers: str) -> Answer:
    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *headers]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return True

    return answer


async def test_reuses_one_connection_and_sends_what_it_is_given(serve) -> None:
    upstream = await serve(fixed(200, b'{"ok":1}', "content-type: application/json; charset=utf-8"))
    client = HttpClient()
    for _ in range(3):
        async with client.request("POST", upstream.url, {"accept": "application/json"}, b"{}") as response:
            assert (response.status, response.content_type) == (200, "application/json")
            assert await response.read(1000) == b'{"ok":1}'
    assert upstream.connections == 1
    first = upstream.requests[0]
    assert first.startswith(b"POST /mcp?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\naccept: application/json\r\ncontent-length: 2\r\n\r\n{}" in first
    await client.aclose()


async def test_a_client_for_user_urls_dials_no_private_address_by_number_or_by_name(serve) -> None:
    upstream = await serve(fixed(200, b"{}"))
    port = upstream.url.split(":")[2].split("/")[0]
    guarded = HttpClient(allow_private=False)
    for url in (upstream.url, f"http://localhost:{port}/mcp"):
        with pytest.raises(HttpError, match=r"BlockedAddress: .* private or reserved address"):
            async with guarded.request("POST", url, {}, b"{}"):
                pass
    assert upstream.connections == 0
    await guarded.aclose()

    trusting = HttpClient()  # the gateway's: upstreams may well be internal
    async with trusting.request("POST", upstream.url, {}, b"{}") as response:
        assert response.status == 200
    assert upstream.connections == 1
    await trusting.aclose()


async def test_a_connection_idle_past_keepalive_is_not_reused(serve) -> None:
    upstream = await serve(fixed(200, b"{}"))
    client = HttpClient(keepalive=0.05)
    for pause in (0, 0.1, 0):
        await asyncio.sleep(pause)
        async with client.request("POST", upstream.url, {}, b"{}") as response:
            assert await response.read(10) == b"{}"
    assert upstream.connections == 2
    await client.aclose()


async def test_a_chunked_stream_arrives_piece_by_piece(serve) -> None:
    release = asyncio.Event()

    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n"
        )
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
        await writer.drain()
        return True

    upstream = await serve(answer)
    client = HttpClient()
    async with client.request("GET", upstream.url, {}) as response:
        pieces = response.chunks()
        assert await anext(pieces) == b"first\n"
        release.set()
        assert [piece async for piece in pieces] == [b"second\n"]
    async with client.request("GET", upstream.url, {}) as response:
        assert await response.read(100) == b"first\nsecond\n"  # the event is still set
    assert upstream.connections == 1
    await client.aclose()


async def test_a_body_without_length_ends_with_the_connection(serve) -> None:
    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()
        return False

    upstream = await serve(answer)
    client = HttpClient()
    for _ in range(2):
        async with client.request("POST", upstream.url, {}, b"x") as response:
            assert await response.read(100) == b"until the end"
    assert upstream.connections == 2
    await client.aclose()


async def test_gzip_bodies_are_decoded(serve) -> None:
    upstream = await serve(fixed(200, gzip.compress(b'{"zipped":true}'), "content-encoding: gzip"))
    client = HttpClient()
    async with client.request("POST", upstream.url, {}, b"{}") as response:
        assert await response.read(100) == b'{"zipped":true}'
    await client.aclose()


async def test_a_connection_the_server_closed_is_not_reused(serve) -> None:
    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        await fixed(202, b"")(_request, writer)
        return False  # closes after answering, without saying so

    upstream = await serve(answer)
    client = HttpClient()
    for _ in range(3):
        async with client.request("POST", upstream.url, {}, b"{}") as response:
            assert response.status == 202
            assert await response.read(10) == b""
        await asyncio.sleep(0.05)
    assert upstream.connections == 3
    await client.aclose()


async def test_failures_are_http_errors(serve) -> None:
    client = HttpClient(connect_timeout=2)
    with pytest.raises(HttpError, match="ClientConnectorError"):
        async with client.request("POST", f"http://127.0.0.1:{free_port()}/mcp", {}, b"{}"):
            pass
    upstream = await serve(fixed(200, b"x" * 5000))
    with pytest.raises(HttpError, match="InvalidHeader"):
        async with client.request("POST", upstream.url, {"x-evil": "a\r\nhost: elsewhere"}, b"{}"):
            pass
    with pytest.raises(ResponseTooLarge):
        async with client.request("POST", upstream.url, {}, b"{}") as response:
            await response.read(4000)

    async def hang_up(_request: bytes, _writer: asyncio.StreamWriter) -> bool:
        return False

    rude = await serve(hang_up)
    with pytest.raises(HttpError, match="ServerDisconnected"):
        async with client.request("POST", rude.url, {}, b"{}"):
            pass
    await client.aclose()


async def test_a_cancelled_request_gives_its_connection_up(serve) -> None:
    answered = asyncio.Event()

    async def slow(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"slow" in request:
            await asyncio.sleep(5)
        await fixed(200, b"{}")(request, writer)
        answered.set()
        return True

    upstream = await serve(slow)
    client = HttpClient(max_connections=1)
    waiting = asyncio.create_task(client.request("POST", upstream.url, {}, b"slow").__aenter__())
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    async with asyncio.timeout(2), client.request("POST", upstream.url, {}, b"fast") as response:
        assert await response.read(10) == b"{}"  # the only slot was given back
    assert upstream.connections == 2
    await client.aclose()


def test_works_on_uvloop() -> None:
    async def scenario() -> None:
        async def answer(_request: bytes, writer: asyncio.StreamWriter) -> bool:
            await fixed(200, b"uv")(_request, writer)
            return True

        port = free_port()
        scripted = Scripted(answer)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", port)
        client = HttpClient()
        for _ in range(2):
            async with client.request("POST", f"http://127.0.0.1:{port}/", {}, b"{}") as response:
                assert await response.read(10) == b"uv"
        assert scripted.connections == 1
        await client.aclose()
        server.close()

    uvloop.run(scenario())
