"""Webhook endpoints (a URL with its sealed secret), deliveries (one message to one endpoint) and
the delivery log (one row per HTTP attempt)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base
from conduit.kit.ids import new_id

ACTIVE, DISABLED = "active", "disabled"
ENDPOINT_STATUSES = (ACTIVE, DISABLED)

PENDING, DELIVERED, FAILED, DEAD = "pending", "delivered", "failed", "dead"
# A delivery is `disabled` when its endpoint was disabled before it could be delivered.
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED, DEAD, DISABLED)
# What an attempt led to: the delivery's new status, or `retry`.
RETRY = "retry"
OUTCOMES = (DELIVERED, RETRY, FAILED, DEAD, DISABLED)


class WebhookEndpoint(Base):
    """Where deliveries go. `kind` names the domain that owns it (`event`, `email`, ...)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whe"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="event")
    description: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    secret_sealed: Mapped[str] = mapped_column(Text)
    # The secret a rotation replaced: it keeps signing, next to the new one, until it expires.
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    headers_sealed: Mapped[str | None] = mapped_column(Text)
    rate_limit: Mapped[int | None]  # deliveries per minute; None: unlimited
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One message for one endpoint, retried until delivered, failed, dead or disabled.

    `message_id` is the `webhook-id` header: the same on every attempt, so receivers can
    deduplicate. `job_id` is the job that makes the next attempt; a job that finds another id
    there is stale and does nothing.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_org_id_created_at", "org_id", "created_at"),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whd"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(128), default="application/json")
    # The caller's own fields, shown with the delivery (an email's sender and Message-ID, say).
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    simulated: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    job_id: Mapped[str | None] = mapped_column(String(32))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookAttempt(Base):
    """The delivery log: one HTTP attempt, what the receiver answered and what it led to."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery_id_attempt", "delivery_id", "attempt"),
        Index("ix_webhook_attempts_endpoint_id_attempted_at", "endpoint_id", "attempted_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("wha"))
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int]
    url: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int | None]
    duration_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    attempted_at: Mapped[datetime]
    completed_at: Mapped[datetime]
