"""The downstream HTTP wire of streamable HTTP, at the ASGI level: bodies, JSON answers, and an
`Exchange` that answers one request as JSON or, once the upstream sends something on the way
(progress, logging, a sampling or elicitation request), as an SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable
from typing import Any

from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.jsonrpc import Message

Headers = list[tuple[bytes, bytes]]
Scope = dict[str, Any]
Receive = Any
Send = Any
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    json: bool = True,
) -> None:
    out: Headers = [(b"content-type", b"application/json")] if json and body else []
    out.extend(headers)
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def respond_message(
    send: Send, status: int, message: Message, headers: Iterable[tuple[bytes, bytes]] = ()
) -> bytes:
    body = jsonrpc.dumps(message)
    await respond(send, status, body, headers)
    return body


def sse_frame(message: Message, raw: bytes | None = None) -> bytes:
    """One SSE event; `raw` is the message already serialised, usable if it is a single line."""
    if raw is None or b"\n" in raw or b"\r" in raw:
        raw = jsonrpc.dumps(message)
    return b"event: message\r\ndata: " + raw + b"\r\n\r\n"


class Exchange:
    """One downstream request waiting for its reply.

    The reply goes out as a single JSON body unless the upstream sends related messages first:
    then the answer becomes an SSE stream (if the client accepts one) carrying those messages,
    keep-alive comments every 15 s, and finally the reply. Writes are serialised.
    """

    def __init__(self, send: Send, *, sse_ok: bool, headers: Headers | None = None) -> None:
        self.send = send
        self.sse_ok = sse_ok
        self.headers = headers or []
        self.committed = False
        self.finished = False
        self.response_bytes = 0
        self._lock = asyncio.Lock()
        self._keepalive: asyncio.Task[None] | None = None

    async def interim(self, message: Message) -> None:
        if not self.sse_ok or self.finished:
            return  # a JSON-only client cannot receive it, as with an SDK server in JSON mode
        async with self._lock:
            if self.finished:
                return
            if not self.committed:
                await self._commit()
            frame = sse_frame(message)
            self.response_bytes += len(frame)
            await self.send({"type": "http.response.body", "body": frame, "more_body": True})

    async def _commit(self) -> None:
        self.committed = True
        await self.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + self.headers})
        self._keepalive = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(KEEPALIVE_SECONDS)
                async with self._lock:
                    if self.finished:
                        return
                    await self.send(
                        {"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True}
                    )

    async def finish(
        self,
        message: Message,
        status: int = 200,
        headers: Headers | None = None,
        *,
        sse: bool = False,
        raw: bytes | None = None,
    ) -> None:
        """Send the reply: on the stream if one is open, else as the upstream framed it (`sse`: it
        answered with an SSE stream), JSON when the client accepts nothing else. `raw`: the
        reply as the upstream serialised it, sent as it is."""
        async with self._lock:
            if self.finished:
                return
            self.finished = True
            if self._keepalive is not None:
                self._keepalive.cancel()
            if sse and self.sse_ok and not self.committed and status == 200:
                self.committed = True
                await self.send(
                    {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + self.headers}
                )
            if self.committed:
                frame = sse_frame(message, raw)
                self.response_bytes += len(frame)
                await self.send({"type": "http.response.body", "body": frame, "more_body": False})
                return
            body = raw if raw is not None else jsonrpc.dumps(message)
            self.response_bytes += len(body)
            await respond(self.send, status, body, [*self.headers, *(headers or [])])

    async def stream(self) -> None:
        """Commit to SSE now (long-lived listen streams)."""
        async with self._lock:
            if not self.committed:
                await self._commit()

    def close(self) -> None:
        self.finished = True
        if self._keepalive is not None:
            self._keepalive.cancel()


def accepts(headers: dict[str, str], media_type: str) -> bool:
    accept = headers.get("accept", "")
    if not accept:
        return media_type == "application/json"
    kinds = _media_types(accept)
    return media_type in kinds or "*/*" in kinds or f"{media_type.split('/')[0]}/*" in kinds


@functools.lru_cache(maxsize=64)  # clients send the same few Accept headers on every message
def _media_types(accept: str) -> frozenset[str]:
    return frozenset(part.split(";")[0].strip().lower() for part in accept.split(","))
