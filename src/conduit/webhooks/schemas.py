"""Bodies of the webhook delivery API: deliveries and their delivery log, in seed 002's
snake_case (`http_status`, `duration_ms`, `attempted_at`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

DeliveryStatus = Literal["pending", "delivered", "failed", "dead", "disabled"]


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    event_type: str
    event_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    status: DeliveryStatus = Field(
        description="pending (queued or waiting for a retry), delivered (2xx), failed (3xx, 4xx or a "
        "refused target), dead (every attempt failed), disabled (the endpoint is disabled)"
    )
    attempts: int = Field(description="HTTP attempts made so far")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due, while pending")
    last_http_status: int | None
    last_error: str | None
    simulated: bool
    attributes: dict[str, Any] = Field(description="Fields of the domain that sent it (an email's sender)")
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    completed_at: datetime | None


class AttemptOut(BaseModel):
    id: str
    attempt: int = Field(description="1 for the first attempt of the delivery, counting redeliveries")
    url: str
    http_status: int | None = Field(description="The receiver's status code; null when none came")
    duration_ms: int
    error: str | None
    response_body: str | None = Field(description="The first 4 KB of the receiver's answer")
    outcome: Literal["delivered", "retry", "failed", "dead", "disabled"] = Field(
        description="What the attempt led to"
    )
    attempted_at: datetime
    completed_at: datetime


class DeliveryDetail(DeliveryOut):
    delivery_log: list[AttemptOut] = Field(description="Every attempt, first first")
