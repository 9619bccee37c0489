"""Webhook endpoints, deliveries and the job that attempts them.

An endpoint's secret and custom headers are sealed. A delivery is a row plus a job, both added
to the caller's transaction; each attempt is a `WebhookAttempt` row written together with what
follows it (the next attempt's job, the final status). Attempts follow `SCHEDULE`, or the
receiver's `Retry-After`; a per-endpoint rate limit postpones attempts, it never drops one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.kit.clock import utcnow
from conduit.kit.errors import Conflict, NotFound, Unprocessable
from conduit.kit.http import unsendable_headers, validate_target_url
from conduit.kit.ids import new_id
from conduit.kit.jobs import JobContext, enqueue, registry, retry_delay
from conduit.kit.ratelimit import RateEvent, record_event
from conduit.kit.runtime import Runtime
from conduit.kit.security import Keyring
from conduit.webhooks.models import (
    ACTIVE,
    DEAD,
    DELIVERED,
    DELIVERY_STATUSES,
    DISABLED,
    FAILED,
    PENDING,
    RETRY,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from conduit.webhooks.sender import REQUEST_TIMEOUT, AttemptResult, OutboundMessage, WebhookSender, classify
from conduit.webhooks.signing import generate_secret, secret_key

log = structlog.get_logger("conduit.webhooks")

DELIVER_JOB = "webhooks.deliver"
# Delay before attempts 2 to 8 (seconds, ±20% jitter): the first is immediate, the last comes
# about 28 hours after it; a delivery that fails them all is dead.
SCHEDULE: Final = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS: Final = len(SCHEDULE) + 1
RETRY_AFTER_CAP = timedelta(hours=10)
ROTATION_GRACE = timedelta(hours=24)
RATE_WINDOW = timedelta(minutes=1)
MAX_RATE_LIMIT = 100_000
SENDER_EXTRA = "webhooks.sender"

MAX_CUSTOM_HEADERS = 32
# Set by the engine, or able to change what the signed request means.
RESERVED_HEADERS = frozenset({"content-type", "content-encoding"})
RESERVED_PREFIXES = ("webhook-", "proxy-")
EVENT_ID = re.compile(r"^[\x21-\x7e]{1,255}$")


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP


# --- endpoints ---------------------------------------------------------------------------------


def _secret_context(endpoint_id: str) -> str:
    return f"webhook-secret:{endpoint_id}"


def _headers_context(endpoint_id: str) -> str:
    return f"webhook-headers:{endpoint_id}"


def validate_custom_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers as given, or `Unprocessable` naming the ones that cannot be sent."""
    headers = dict(headers or {})
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise Unprocessable(f"At most {MAX_CUSTOM_HEADERS} custom headers", code="invalid_headers")
    bad = unsendable_headers(headers, reserved=RESERVED_HEADERS, prefixes=RESERVED_PREFIXES)
    if bad:
        raise Unprocessable(
            "Custom headers must be valid HTTP field names with printable ASCII values, and not "
            "ones the engine sets or that change the exchange (Host, Content-*, Transfer-Encoding, "
            "Connection and other hop-by-hop headers, webhook-*)",
            code="invalid_headers",
            detail=bad,
        )
    return headers


def _rate_limit(value: int | None) -> int | None:
    if value is None or value == 0:
        return None
    if not 0 < value <= MAX_RATE_LIMIT:
        raise Unprocessable(
            f"rate_limit is deliveries per minute, 1 to {MAX_RATE_LIMIT} (0 or null: unlimited)",
            code="invalid_rate_limit",
        )
    return value


def _target(runtime: Runtime, url: str) -> str:
    if len(url) > 2048:
        raise Unprocessable("URL is longer than 2048 characters", code="invalid_url")
    return validate_target_url(url, allow_private=runtime.settings.allow_private_targets)


def _seal_headers(keyring: Keyring, endpoint_id: str, headers: Mapping[str, str] | None) -> str | None:
    checked = validate_custom_headers(headers)
    if not checked:
        return None
    return keyring.seal(json.dumps(checked, sort_keys=True), context=_headers_context(endpoint_id))


async def create_endpoint(
    session: AsyncSession,
    runtime: Runtime,
    *,
    org_id: str,
    url: str,
    secret: str | None = None,
    rate_limit: int | None = None,
    custom_headers: Mapping[str, str] | None = None,
    kind: str = "event",
    description: str | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (generated unless given), which is never shown again."""
    if not 0 < len(kind) <= 32 or (description is not None and len(description) > 200):
        raise Unprocessable("kind is 1 to 32 characters, description at most 200", code="invalid_endpoint")
    secret = secret or generate_secret()
    secret_key(secret)
    endpoint_id = new_id("whe")
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        org_id=org_id,
        kind=kind,
        description=description,
        url=_target(runtime, url),
        secret_sealed=runtime.keyring.seal(secret, context=_secret_context(endpoint_id)),
        headers_sealed=_seal_headers(runtime.keyring, endpoint_id, custom_headers),
        rate_limit=_rate_limit(rate_limit),
        status=ACTIVE,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


def update_endpoint(
    runtime: Runtime,
    endpoint: WebhookEndpoint,
    *,
    url: str | _Keep = KEEP,
    rate_limit: int | _Keep | None = KEEP,
    custom_headers: Mapping[str, str] | _Keep | None = KEEP,
    description: str | _Keep | None = KEEP,
) -> WebhookEndpoint:
    """Change what is given; `custom_headers` replaces every custom header."""
    if url is not KEEP:
        endpoint.url = _target(runtime, url)
    if rate_limit is not KEEP:
        endpoint.rate_limit = _rate_limit(rate_limit)
    if custom_headers is not KEEP:
        endpoint.headers_sealed = _seal_headers(runtime.keyring, endpoint.id, custom_headers)
    if description is not KEEP:
        if description is not None and len(description) > 200:
            raise Unprocessable("description is at most 200 characters", code="invalid_endpoint")
        endpoint.description = description
    endpoint.updated_at = utcnow()
    return endpoint


def rotate_secret(
    keyring: Keyring,
    endpoint: WebhookEndpoint,
    *,
    secret: str | None = None,
    grace: timedelta = ROTATION_GRACE,
) -> str:
    """A new signing secret (returned once); the current one keeps signing too for `grace`."""
    secret = secret or generate_secret()
    secret_key(secret)
    now = utcnow()
    endpoint.previous_secret_sealed = endpoint.secret_sealed if grace > timedelta() else None
    endpoint.previous_secret_expires_at = now + grace if grace > timedelta() else None
    endpoint.secret_sealed = keyring.seal(secret, context=_secret_context(endpoint.id))
    endpoint.updated_at = now
    return secret


def signing_secrets(keyring: Keyring, endpoint: WebhookEndpoint) -> tuple[str, ...]:
    """The current secret, then the previous one while its rotation grace lasts."""
    context = _secret_context(endpoint.id)
    current = keyring.unseal(endpoint.secret_sealed, context=context)
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires is not None and expires > utcnow():
        return current, keyring.unseal(endpoint.previous_secret_sealed, context=context)
    return (current,)


def custom_headers(keyring: Keyring, endpoint: WebhookEndpoint) -> dict[str, str]:
    if not endpoint.headers_sealed:
        return {}
    headers: dict[str, str] = json.loads(
        keyring.unseal(endpoint.headers_sealed, context=_headers_context(endpoint.id))
    )
    return headers


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """No delivery is attempted while disabled; queued ones end as `disabled` when they come due."""
    now = utcnow()
    endpoint.status, endpoint.disabled_reason, endpoint.disabled_at = DISABLED, reason, now
    endpoint.updated_at = now


def enable_endpoint(endpoint: WebhookEndpoint) -> None:
    endpoint.status, endpoint.disabled_reason, endpoint.disabled_at = ACTIVE, None, None
    endpoint.updated_at = utcnow()


async def get_endpoint(session: AsyncSession, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.org_id != org_id:
        raise NotFound("No such webhook endpoint", code="webhook_endpoint_not_found")
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Deletes its deliveries and their log too; jobs still queued for them find nothing to do."""
    await session.delete(endpoint)


# --- deliveries --------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_payload(payload: Mapping[str, Any] | bytes) -> bytes:
    """Compact JSON for a dict (datetimes as ISO 8601 with Z); bytes are sent as they are."""
    if isinstance(payload, bytes):
        return payload
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


def _new_delivery(
    endpoint: WebhookEndpoint,
    *,
    event_type: str,
    payload: Mapping[str, Any] | bytes,
    event_id: str | None,
    simulated: bool,
    attributes: Mapping[str, Any] | None,
    content_type: str,
) -> WebhookDelivery:
    if not 0 < len(event_type) <= 128:
        raise Unprocessable("event_type is 1 to 128 characters", code="invalid_event_type")
    if event_id is not None and not EVENT_ID.match(event_id):
        raise Unprocessable("event_id is 1 to 255 visible ASCII characters", code="invalid_event_id")
    return WebhookDelivery(
        id=new_id("whd"),
        endpoint_id=endpoint.id,
        org_id=endpoint.org_id,
        event_type=event_type,
        message_id=event_id or new_id("msg"),
        body=encode_payload(payload),
        content_type=content_type,
        attributes=dict(attributes or {}),
        simulated=simulated,
        status=PENDING,
        attempts=0,
    )


def _schedule(
    session: AsyncSession, delivery: WebhookDelivery, *, attempt: int, run_at: datetime, here: bool = False
) -> None:
    """Queue the job making `attempt` (1-based, within this series) at `run_at`."""
    payload = {"delivery_id": delivery.id, "attempt": attempt}
    job = enqueue(session, DELIVER_JOB, payload, run_at=run_at, here=here)
    delivery.status, delivery.job_id, delivery.next_attempt_at = PENDING, job.id, run_at


def _finish(delivery: WebhookDelivery, status: str, reason: str | None = None) -> None:
    now = utcnow()
    delivery.status, delivery.job_id, delivery.next_attempt_at = status, None, None
    delivery.completed_at = now
    if status == DELIVERED:
        delivery.delivered_at = now
    if reason is not None:
        delivery.last_error = reason


def enqueue_delivery(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    *,
    event_type: str,
    payload: Mapping[str, Any] | bytes,
    event_id: str | None = None,
    simulated: bool = False,
    attributes: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
    here: bool = False,
) -> WebhookDelivery:
    """Queue `payload` for `endpoint` in the caller's transaction: it is sent only if that commits.

    `here`: the first attempt is made by this process's worker as soon as the transaction
    commits (see `conduit.kit.jobs.enqueue`). To a disabled endpoint the delivery is recorded as
    `disabled` and not attempted.
    """
    delivery = _new_delivery(
        endpoint,
        event_type=event_type,
        payload=payload,
        event_id=event_id,
        simulated=simulated,
        attributes=attributes,
        content_type=content_type,
    )
    session.add(delivery)
    if endpoint.status != ACTIVE:
        _finish(delivery, DISABLED, _disabled_reason(endpoint))
    else:
        _schedule(session, delivery, attempt=1, run_at=utcnow(), here=here)
    return delivery


def record_failed(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    *,
    event_type: str,
    reason: str,
    event_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> WebhookDelivery:
    """A delivery that could not even be built (a template failing on a real message, say):
    logged as `failed` with `reason`, never attempted, visible with the endpoint's deliveries."""
    delivery = _new_delivery(
        endpoint,
        event_type=event_type,
        payload=b"",
        event_id=event_id,
        simulated=False,
        attributes=attributes,
        content_type="application/json",
    )
    session.add(delivery)
    _finish(delivery, FAILED, reason)
    return delivery


async def deliver_now(
    session: AsyncSession,
    runtime: Runtime,
    endpoint: WebhookEndpoint,
    *,
    event_type: str,
    payload: Mapping[str, Any] | bytes,
    event_id: str | None = None,
    simulated: bool = True,
    attributes: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
) -> tuple[WebhookDelivery, WebhookAttempt]:
    """One attempt, made now and awaited, never retried (a "simulate" or "send test" button).

    The request is made before `session` is used: on SQLite, commit the request's transaction
    first (see `servers.routes._end_transaction`) so no write lock is held while it waits.
    """
    if endpoint.status != ACTIVE:
        raise Conflict(_disabled_reason(endpoint), code="webhook_endpoint_disabled")
    delivery = _new_delivery(
        endpoint,
        event_type=event_type,
        payload=payload,
        event_id=event_id,
        simulated=simulated,
        attributes=attributes,
        content_type=content_type,
    )
    result = await sender_for(runtime).send(_message(runtime.keyring, endpoint, delivery))
    session.add(delivery)
    await session.flush()  # before its log row, which references it
    attempt = _apply(session, endpoint, delivery, result, series_attempt=None)
    return delivery, attempt


def _disabled_reason(endpoint: WebhookEndpoint) -> str:
    return f"The webhook endpoint is disabled: {endpoint.disabled_reason or 'by its owner'}"


async def deliveries_page(
    session: AsyncSession,
    org_id: str,
    *,
    status: str | None = None,
    endpoint_id: str | None = None,
    kind: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> list[WebhookDelivery]:
    """Newest first, optionally of one status, one endpoint or one kind of endpoint."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise Unprocessable(f"status is one of: {', '.join(DELIVERY_STATUSES)}", code="invalid_status")
    query = select(WebhookDelivery).where(WebhookDelivery.org_id == org_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if kind is not None:
        query = query.join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id).where(
            WebhookEndpoint.kind == kind
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    rows = await session.scalars(query.offset((max(page, 1) - 1) * page_size).limit(page_size))
    return list(rows.all())


async def delivery(session: AsyncSession, org_id: str, delivery_id: str) -> WebhookDelivery:
    found = await session.get(WebhookDelivery, delivery_id)
    if found is None or found.org_id != org_id:
        raise NotFound("No such webhook delivery", code="webhook_delivery_not_found")
    return found


async def attempts_of(session: AsyncSession, delivery_id: str) -> list[WebhookAttempt]:
    """The delivery log of one delivery, first attempt first."""
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.attempt)
    )
    return list(rows.all())


async def attempts_page(
    session: AsyncSession, endpoint_id: str, *, page: int = 1, page_size: int = 50
) -> list[WebhookAttempt]:
    """The delivery log of one endpoint, newest first."""
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.endpoint_id == endpoint_id)
        .order_by(WebhookAttempt.attempted_at.desc(), WebhookAttempt.id.desc())
        .offset((max(page, 1) - 1) * page_size)
        .limit(page_size)
    )
    return list(rows.all())


async def redeliver(session: AsyncSession, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a finished delivery again, same `webhook-id`, with a fresh series of attempts."""
    if delivery.status == PENDING:
        raise Conflict("The delivery is already queued for its next attempt", code="delivery_pending")
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook delivery", code="webhook_delivery_not_found")
    if endpoint.status != ACTIVE:
        raise Conflict(_disabled_reason(endpoint), code="webhook_endpoint_disabled")
    delivery.completed_at = None
    _schedule(session, delivery, attempt=1, run_at=utcnow())
    return delivery


# --- attempts ----------------------------------------------------------------------------------


def sender_for(runtime: Runtime) -> WebhookSender:
    """The process's webhook client (closed with the runtime)."""
    sender = runtime.extras.get(SENDER_EXTRA)
    if not isinstance(sender, WebhookSender):
        sender = WebhookSender(allow_private=runtime.settings.allow_private_targets)
        runtime.extras[SENDER_EXTRA] = sender
    return sender


HeaderSigner = Callable[[str, bytes], dict[str, str]]
# Extra signature headers a kind of endpoint sends besides Standard Webhooks' (seed 004's
# `X-TrustTrace-Signature`, say): a function of the current secret and the body.
_HEADER_SIGNERS: dict[str, HeaderSigner] = {}


def header_signer(kind: str) -> Callable[[HeaderSigner], HeaderSigner]:
    def register(fn: HeaderSigner) -> HeaderSigner:
        _HEADER_SIGNERS[kind] = fn
        return fn

    return register


def _message(keyring: Keyring, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> OutboundMessage:
    secrets = signing_secrets(keyring, endpoint)
    headers = custom_headers(keyring, endpoint)
    signer = _HEADER_SIGNERS.get(endpoint.kind)
    if signer is not None:
        headers.update(signer(secrets[0], delivery.body))
    return OutboundMessage(
        url=endpoint.url,
        message_id=delivery.message_id,
        body=delivery.body,
        content_type=delivery.content_type,
        signing_secrets=secrets,
        headers=headers,
    )


def _rate_bucket(endpoint_id: str) -> str:
    return f"webhook:{endpoint_id}"


async def _slot_free_at(session: AsyncSession, endpoint: WebhookEndpoint) -> datetime | None:
    """None when a request may go now, else when the window next has room."""
    assert endpoint.rate_limit is not None
    # The limit-th newest request in the window: once it leaves, there is room for one more.
    blocking = await session.scalar(
        select(RateEvent.created_at)
        .where(RateEvent.bucket == _rate_bucket(endpoint.id), RateEvent.created_at > utcnow() - RATE_WINDOW)
        .order_by(RateEvent.created_at.desc())
        .offset(endpoint.rate_limit - 1)
        .limit(1)
    )
    return None if blocking is None else blocking + RATE_WINDOW


async def _prepare(runtime: Runtime, delivery_id: str, job_id: str, attempt: int) -> OutboundMessage | None:
    """In a short transaction of its own: what to send, or None when nothing is to be sent now.

    The endpoint row is locked while its rate window is counted and a slot taken, so workers
    running side by side never exceed the limit. The common case, an active endpoint without a
    limit, needs nothing written: it is read without taking the write turn.
    """
    async with runtime.db.session(write=False) as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != PENDING or delivery.job_id != job_id:
            return None
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None:
            return None
        if endpoint.status == ACTIVE and endpoint.rate_limit is None:
            return _message(runtime.keyring, endpoint, delivery)
    async with runtime.db.session() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != PENDING or delivery.job_id != job_id:
            return None  # deleted, or superseded by a redelivery
        endpoint = await session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id).with_for_update()
        )
        if endpoint is None:
            return None
        if endpoint.status != ACTIVE:
            _finish(delivery, DISABLED, _disabled_reason(endpoint))
            return None
        if endpoint.rate_limit is not None:
            free_at = await _slot_free_at(session, endpoint)
            if free_at is not None:
                _schedule(session, delivery, attempt=attempt, run_at=free_at)
                log.info(
                    "webhook_rate_limited", delivery_id=delivery.id, endpoint_id=endpoint.id, until=free_at
                )
                return None
            record_event(session, _rate_bucket(endpoint.id))
        return _message(runtime.keyring, endpoint, delivery)


def _next_delay(result: AttemptResult, series_attempt: int) -> timedelta:
    if result.retry_after is not None:
        return min(timedelta(seconds=max(result.retry_after, 1.0)), RETRY_AFTER_CAP)
    return timedelta(seconds=retry_delay(SCHEDULE, series_attempt))


def _apply(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    delivery: WebhookDelivery,
    result: AttemptResult,
    *,
    series_attempt: int | None,
) -> WebhookAttempt:
    """Log the attempt and move the delivery on: delivered, retried, failed, dead or disabled.

    `series_attempt` is the attempt's place in its series; None for a one-off, never retried.
    """
    verdict = classify(result)
    outcome = verdict.outcome
    if outcome == "delivered":
        _finish(delivery, DELIVERED)
        delivery.last_error = None
    elif outcome == "disable":
        disable_endpoint(endpoint, f"{verdict.reason} at {result.finished_at.isoformat()}")
        _finish(delivery, DISABLED, verdict.reason)
        outcome = DISABLED
    elif outcome == RETRY and series_attempt is not None and series_attempt < MAX_ATTEMPTS:
        next_at = utcnow() + _next_delay(result, series_attempt)
        _schedule(session, delivery, attempt=series_attempt + 1, run_at=next_at)
        delivery.last_error = verdict.reason
    elif outcome == RETRY and series_attempt is not None:
        _finish(delivery, DEAD, f"{verdict.reason}; no attempt left after {MAX_ATTEMPTS}")
        outcome = DEAD
    else:
        _finish(delivery, FAILED, verdict.reason)
        outcome = FAILED
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    attempt = WebhookAttempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        attempt=delivery.attempts,
        url=endpoint.url,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=verdict.reason if outcome != DELIVERED else None,
        response_body=result.response_body,
        outcome=outcome,
        attempted_at=result.started_at,
        completed_at=result.finished_at,
    )
    session.add(attempt)
    log.info(
        "webhook_attempt",
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        attempt=attempt.attempt,
        http_status=result.status_code,
        duration_ms=result.duration_ms,
        outcome=outcome,
    )
    return attempt


async def _record(ctx: JobContext, delivery_id: str, series_attempt: int, result: AttemptResult) -> None:
    delivery = await ctx.session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.job_id != ctx.id:
        return
    endpoint = await ctx.session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None:
        return
    _apply(ctx.session, endpoint, delivery, result, series_attempt=series_attempt)


@registry.handler(DELIVER_JOB, max_attempts=5, timeout_seconds=REQUEST_TIMEOUT * 4)
async def _deliver(ctx: JobContext) -> None:
    """One attempt. Its retries are jobs of their own, so this job's own retries (on a database
    error, say) never eat into the schedule, and a rate-limited attempt costs none."""
    delivery_id, series_attempt = str(ctx.payload["delivery_id"]), int(ctx.payload.get("attempt", 1))
    message = await _prepare(ctx.runtime, delivery_id, ctx.id, series_attempt)
    if message is None:
        return
    # No transaction is open while the receiver is waited on (SQLite's write lock).
    result = await sender_for(ctx.runtime).send(message)
    await _record(ctx, delivery_id, series_attempt, result)
