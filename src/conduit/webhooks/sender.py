"""One signed webhook request through the SSRF-guarded client, and what the receiver answered.

No database here: `WebhookSender.send` takes a message and returns an `AttemptResult`, and
`classify` says what the answer means (delivered, retry, failed, or disable the endpoint);
`service` turns that into the delivery's new state and its next attempt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

import conduit
from conduit.kit.clock import utcnow
from conduit.kit.errors import Unprocessable
from conduit.kit.http import BlockedAddress, safe_client, validate_target_url
from conduit.webhooks.signing import signature_headers

REQUEST_TIMEOUT = 15.0
RESPONSE_BODY_LIMIT = 4096
USER_AGENT = f"Conduit-Webhooks/{conduit.__version__}"
# Statuses worth another attempt: the receiver is overloaded, restarting or timed out.
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class OutboundMessage:
    url: str
    message_id: str
    body: bytes
    content_type: str
    signing_secrets: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    status_code: int | None = None
    response_body: str | None = None
    retry_after: float | None = None  # seconds, from the receiver's Retry-After
    location: str | None = None
    error: str | None = None
    refused: bool = False  # the target is not allowed: retrying cannot help


@dataclass(frozen=True)
class Verdict:
    outcome: str  # delivered | retry | failed | disable
    reason: str | None = None


class WebhookSender:
    """The shared outbound client of webhook deliveries: guarded, 15 s per request, no redirects."""

    def __init__(self, *, allow_private: bool, timeout: float = REQUEST_TIMEOUT) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.client = safe_client(allow_private=allow_private, timeout=timeout, user_agent=USER_AGENT)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, message: OutboundMessage) -> AttemptResult:
        started, clock_start = utcnow(), time.perf_counter()

        def result(**values: object) -> AttemptResult:
            elapsed = round((time.perf_counter() - clock_start) * 1000)
            return AttemptResult(started, utcnow(), elapsed, **values)  # type: ignore[arg-type]

        try:
            validate_target_url(message.url, allow_private=self.allow_private)
        except Unprocessable as exc:
            return result(error=f"target refused: {exc.message}", refused=True)
        headers = {
            **message.headers,
            "Content-Type": message.content_type,
            **signature_headers(message.signing_secrets, message.message_id, started, message.body),
        }
        status: int | None = None
        answer: dict[str, object] = {}
        try:
            async with (
                asyncio.timeout(self.timeout),
                self.client.stream("POST", message.url, content=message.body, headers=headers) as response,
            ):
                status = response.status_code
                answer = {
                    "status_code": status,
                    "retry_after": parse_retry_after(response.headers.get("retry-after")),
                    "location": response.headers.get("location"),
                }
                answer["response_body"] = await _read_limited(response)
        except BlockedAddress as exc:
            return result(error=f"target refused: {exc}", refused=True)
        except (TimeoutError, httpx.TimeoutException):
            if status is None:
                return result(error=f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as exc:
            if status is None:
                return result(error=_describe(exc))
        # An answer whose body was cut short still counts: the receiver has decided.
        return result(**answer)


async def _read_limited(response: httpx.Response) -> str:
    """The first 4 KB of the body: enough to see the receiver's error, never a huge download."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_BODY_LIMIT:
            break
    text = b"".join(chunks)[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL


def _describe(exc: httpx.HTTPError) -> str:
    detail = str(exc).replace("\x00", "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After of delay-seconds or an HTTP date; None if unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utcnow()).total_seconds())


def classify(result: AttemptResult) -> Verdict:
    if result.refused:
        return Verdict("failed", result.error)
    status = result.status_code
    if status is None:
        return Verdict("retry", result.error)
    if 200 <= status < 300:
        return Verdict("delivered")
    if status == 410:
        return Verdict("disable", "the receiver answered 410 Gone")
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        return Verdict("retry", f"the receiver answered {status}")
    if 300 <= status < 400:
        where = f" to {result.location}" if result.location else ""
        return Verdict("failed", f"the receiver answered {status}: redirect{where} not followed")
    return Verdict("failed", f"the receiver answered {status}")
