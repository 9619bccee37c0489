"""Webhook deliveries over HTTP: list them, read one with its delivery log, redeliver one.

Scoped to the caller's organization (its key's, or its session's); another tenant's delivery is
a 404. Endpoints are created by the domains that own them (email webhooks, scan events).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from conduit.identity.auth import ClientDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import responses
from conduit.orgs.access import current_org_access
from conduit.orgs.service import OrgAccess
from conduit.webhooks import service
from conduit.webhooks.models import WebhookAttempt, WebhookDelivery
from conduit.webhooks.schemas import AttemptOut, DeliveryDetail, DeliveryOut, DeliveryStatus

router = APIRouter()
DELIVERIES = "/api/v1/webhooks/deliveries"
TAG = "Webhook deliveries"
# Reading a delivery log is reading the organization; sending again changes what receivers got.
READ, REDELIVER = "webhooks:read", "webhooks:manage"
DeliveryId = Annotated[str, Path(max_length=64, description="Delivery ID (`whd_...`)")]


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_type=delivery.event_type,
        event_id=delivery.message_id,
        status=delivery.status,  # type: ignore[arg-type]
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_http_status=delivery.last_status_code,
        last_error=delivery.last_error,
        simulated=delivery.simulated,
        attributes=delivery.attributes,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        delivered_at=delivery.delivered_at,
        completed_at=delivery.completed_at,
    )


def attempt_out(attempt: WebhookAttempt) -> AttemptOut:
    return AttemptOut(
        id=attempt.id,
        attempt=attempt.attempt,
        url=attempt.url,
        http_status=attempt.status_code,
        duration_ms=attempt.duration_ms,
        error=attempt.error,
        response_body=attempt.response_body,
        outcome=attempt.outcome,  # type: ignore[arg-type]
        attempted_at=attempt.attempted_at,
        completed_at=attempt.completed_at,
    )


@router.get(
    DELIVERIES,
    tags=[TAG],
    summary="List webhook deliveries",
    response_model=list[DeliveryOut],
    responses=responses(401, 403, 404, 422),
)
async def list_deliveries(
    session: SessionDep,
    access: Annotated[OrgAccess, current_org_access(READ)],
    delivery_status: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this status")
    ] = None,
    endpoint_id: Annotated[str | None, Query(max_length=64, description="Only this endpoint's")] = None,
    page: Annotated[int, Query(ge=1, le=10_000, description="Page number (1-based)")] = 1,
    page_size: Annotated[int, Query(ge=1, le=200, description="Number of results per page")] = 50,
) -> list[DeliveryOut]:
    """Newest first, every kind of endpoint (email webhooks, scan events)."""
    rows = await service.deliveries_page(
        session,
        access.org.id,
        status=delivery_status,
        endpoint_id=endpoint_id,
        page=page,
        page_size=page_size,
    )
    return [delivery_out(d) for d in rows]


@router.get(
    f"{DELIVERIES}/{{id}}",
    tags=[TAG],
    summary="Get a webhook delivery with its delivery log",
    response_model=DeliveryDetail,
    responses=responses(401, 403, 404, 422),
)
async def get_delivery(
    id: DeliveryId, session: SessionDep, access: Annotated[OrgAccess, current_org_access(READ)]
) -> DeliveryDetail:
    delivery = await service.delivery(session, access.org.id, id)
    log = await service.attempts_of(session, delivery.id)
    return DeliveryDetail(**delivery_out(delivery).model_dump(), delivery_log=[attempt_out(a) for a in log])


@router.post(
    f"{DELIVERIES}/{{id}}/redeliver",
    tags=[TAG],
    summary="Send a webhook delivery again",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=responses(401, 403, 404, 409, 422),
)
async def redeliver(
    id: DeliveryId,
    session: SessionDep,
    client: ClientDep,
    access: Annotated[OrgAccess, current_org_access(REDELIVER)],
) -> DeliveryOut:
    """Queues a fresh series of attempts with the same `webhook-id`, for a delivery that is no
    longer pending (delivered ones too). 409 while it is pending, or while its endpoint is disabled."""
    delivery = await service.redeliver(session, await service.delivery(session, access.org.id, id))
    access.audit(session, "webhook.redelivered", client.ip, delivery_id=delivery.id)
    return delivery_out(delivery)
