"""Structured logs: JSON lines, one per request with a request id, secrets redacted.

Only the path is logged, never the query string, headers or bodies: those carry tokens.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conduit.kit import metrics
from conduit.kit.ids import random_base62

_SENSITIVE = re.compile(r"pass|secret|token|authorization|api[-_]?key|code|cookie|otp", re.IGNORECASE)
_CREDENTIAL = re.compile(r"(cnd_(?:live|rt|2fa|pr)_)[A-Za-z0-9_\-]{8,}")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if key != "event" and _SENSITIVE.search(key) and value is not None:
            event[key] = "********"
        elif isinstance(value, str):
            event[key] = _CREDENTIAL.sub(r"\1********", value)
    return event


def configure(level: str = "info", json: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # One line per upstream request would drown the relay's own request log.
    for noisy in ("httpx", "httpcore", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestLogMiddleware:
    """Assigns a request id (echoed as `X-Request-Id`), logs one line per request, and counts it
    in the Prometheus metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("conduit.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = random_base62(16)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe(scope, status, elapsed)
            client = scope.get("client")
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                client_ip=client[0] if client else None,
            )
            structlog.contextvars.unbind_contextvars("request_id")
