"""A webhook receiver on 127.0.0.1: a minimal HTTP/1.1 server that records every request and
answers from a script (status, headers, body, delay), then 200 once the script runs out."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int = 0
    script: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, body))
            reply = self.script.pop(0) if self.script else Reply()
            if reply.delay:
                await asyncio.sleep(reply.delay)
            try:
                reason = HTTPStatus(reply.status).phrase
            except ValueError:
                reason = "Whatever"
            head = f"HTTP/1.1 {reply.status} {reason}\r\n"
            for name, value in {
                "Content-Length": str(len(reply.body)),
                "Connection": "close",
                **reply.headers,
            }.items():
                head += f"{name}: {value}\r\n"
            writer.write(head.encode() + b"\r\n" + reply.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client gave up (a timeout under test) or sent nothing
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()
