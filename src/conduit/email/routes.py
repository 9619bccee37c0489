"""HTTP endpoints of seed 002's email groups: Domains, SMTP Policies and Webhooks.

Every resource belongs to the calling account; another account's is a 404. Each group is one
section below, with its own tag.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.email import service
from conduit.email.models import EmailWebhook, SmtpPolicy
from conduit.email.schemas import (
    CreateSmtpPolicyRequest,
    CreateWebhookRequest,
    DeliveryLogResponse,
    DomainClaimRequest,
    DomainResponse,
    SimulateWebhookRequest,
    SimulateWebhookResponse,
    SmtpSecurityPolicyResponse,
    UpdateSmtpPolicyRequest,
    UpdateWebhookRequest,
    WebhookResponse,
)
from conduit.identity.auth import AccountPrincipalDep, ClientDep, Principal, RuntimeDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import responses
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import WebhookEndpoint

router = APIRouter(prefix="/api/v1")
NO_CONTENT = status.HTTP_204_NO_CONTENT
# Routes with an `{id}` list 422 too: a NUL character in the path is refused with one, in our error
# shape (kit.errors.RejectNulMiddleware), not in the one FastAPI documents by default.


def _account_id(principal: Principal) -> str:
    assert principal.account_id is not None
    return principal.account_id


# --- Domains -------------------------------------------------------------------------------

DOMAINS_TAG = "Domains"


def domain_response(domain: service.DomainEntry) -> DomainResponse:
    if isinstance(domain, service.PublicDomain):
        return DomainResponse(
            id=domain.id,
            account_id=None,
            name=domain.name,
            verification_token=None,
            verified=True,
            is_public=True,
            created_at=None,
            updated_at=None,
        )
    return DomainResponse(
        id=domain.id,
        account_id=domain.account_id,
        name=domain.name,
        verification_token=domain.verification_token,
        verified=domain.verified,
        is_public=False,
        created_at=domain.created_at,
        updated_at=domain.updated_at,
    )


@router.get(
    "/domains",
    tags=[DOMAINS_TAG],
    operation_id="listDomains",
    summary="List domains",
    response_model=list[DomainResponse],
    responses=responses(401, 403),
)
async def list_domains(
    principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> list[DomainResponse]:
    """The account's domains, oldest first, then the operator's public domains (`is_public`)."""
    domains = await service.list_domains(session, runtime.settings, _account_id(principal))
    return [domain_response(domain) for domain in domains]


@router.post(
    "/domains",
    tags=[DOMAINS_TAG],
    operation_id="createDomainClaim",
    summary="Claim a domain",
    status_code=status.HTTP_201_CREATED,
    response_model=DomainResponse,
    responses=responses(401, 403, 409, 422),
)
async def create_domain_claim(
    body: DomainClaimRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> DomainResponse:
    """Claims the domain, unverified. Publish `verification_token` as a TXT record at
    `_conduit-verify.<name>` and an MX record pointing to the configured MX host, then call
    `POST /api/v1/domains/{id}/verify`. 409 if the domain is already claimed (by anyone) or is a
    public domain; 422 if the name is not a domain (an IP address, a single label, a public suffix)."""
    domain = await service.claim_domain(session, runtime.settings, principal, body.name, client)
    return domain_response(domain)


@router.get(
    "/domains/{id}",
    tags=[DOMAINS_TAG],
    operation_id="getDomain",
    summary="Get domain",
    response_model=DomainResponse,
    responses=responses(401, 403, 404, 422),
)
async def get_domain(
    id: str, principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> DomainResponse:
    domain = await service.get_domain(session, runtime.settings, _account_id(principal), id)
    return domain_response(domain)


@router.delete(
    "/domains/{id}",
    tags=[DOMAINS_TAG],
    operation_id="deleteDomain",
    summary="Delete domain",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def delete_domain(
    id: str, principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    """Releases the claim: anyone may claim the domain again. A public domain cannot be deleted (403)."""
    await service.delete_domain(session, runtime.settings, principal, id, client)
    return Response(status_code=NO_CONTENT)


async def _end_transaction(session: AsyncSession) -> None:
    """Commit what the request read so far before DNS lookups or a webhook delivery, which can
    take seconds: no transaction (on SQLite a POST's holds the write lock) stays open meanwhile."""
    await session.commit()


@router.post(
    "/domains/{id}/verify",
    tags=[DOMAINS_TAG],
    operation_id="verifyDomain",
    summary="Trigger DNS verification for a domain (TXT ownership token + MX record)",
    response_model=DomainResponse,
    responses=responses(401, 403, 404, 422),
)
async def verify_domain(
    id: str, principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> DomainResponse:
    """Performs two DNS checks before marking the domain as verified: a TXT lookup under
    `_conduit-verify.<domain>` must return the domain's verification token, and an MX lookup for
    the domain must return a record pointing to the configured MX host (`mx.conduit.email` by
    default). If either fails, a 422 names each record that is missing or wrong in `detail`
    (`record`, `name`, `code`, `expected`, `found`, `message`); code `dns_lookup_failed` when the
    lookups got no answer at all. A failed check leaves the domain as it was."""
    domain = await service.get_domain(session, runtime.settings, _account_id(principal), id)
    if isinstance(domain, service.PublicDomain):
        return domain_response(domain)
    await _end_transaction(session)
    result = await service.check_domain_dns(runtime, domain)
    verified = await service.record_verification(session, principal, domain.id, result, client)
    return domain_response(verified)


# --- SMTP Policies -------------------------------------------------------------------------

POLICIES_TAG = "SMTP Policies"


def policy_response(policy: SmtpPolicy) -> SmtpSecurityPolicyResponse:
    return SmtpSecurityPolicyResponse(
        id=policy.id,
        name=policy.name,
        require_spf=policy.require_spf,
        allowed_spf_domains=",".join(policy.allowed_spf_domains) or None,
        require_dkim=policy.require_dkim,
        allowed_dkim_domains=",".join(policy.allowed_dkim_domains) or None,
        allowed_source_ips=",".join(policy.allowed_source_ips) or None,
        require_smtp_auth=policy.require_smtp_auth,
        smtp_credentials=service.masked_credentials(policy),
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


@router.get(
    "/smtp-policies",
    tags=[POLICIES_TAG],
    operation_id="listSmtpSecurityPolicies",
    summary="List SMTP security policies",
    response_model=list[SmtpSecurityPolicyResponse],
    responses=responses(401, 403),
)
async def list_smtp_policies(
    principal: AccountPrincipalDep, session: SessionDep
) -> list[SmtpSecurityPolicyResponse]:
    return [policy_response(p) for p in await service.list_policies(session, _account_id(principal))]


@router.post(
    "/smtp-policies",
    tags=[POLICIES_TAG],
    operation_id="createSmtpSecurityPolicy",
    summary="Create SMTP security policy",
    status_code=status.HTTP_201_CREATED,
    response_model=SmtpSecurityPolicyResponse,
    responses=responses(401, 403, 422),
)
async def create_smtp_policy(
    body: CreateSmtpPolicyRequest, principal: AccountPrincipalDep, session: SessionDep, client: ClientDep
) -> SmtpSecurityPolicyResponse:
    """Every check set must pass for a message to be delivered: `allowed_source_ips`, SMTP AUTH
    with `smtp_credentials` when `require_smtp_auth`, an SPF pass (for one of
    `allowed_spf_domains` when set), a valid DKIM signature (of one of `allowed_dkim_domains` when
    set). Lists are comma-separated; `smtp_credentials` is `username:password`, stored hashed and
    shown masked."""
    fields = cast(service.PolicyFields, body.model_dump())
    return policy_response(await service.create_policy(session, principal, fields, client))


@router.get(
    "/smtp-policies/{id}",
    tags=[POLICIES_TAG],
    operation_id="getSmtpSecurityPolicy",
    summary="Get SMTP security policy",
    response_model=SmtpSecurityPolicyResponse,
    responses=responses(401, 403, 404, 422),
)
async def get_smtp_policy(
    id: str, principal: AccountPrincipalDep, session: SessionDep
) -> SmtpSecurityPolicyResponse:
    return policy_response(await service.get_policy(session, _account_id(principal), id))


@router.put(
    "/smtp-policies/{id}",
    tags=[POLICIES_TAG],
    operation_id="updateSmtpSecurityPolicy",
    summary="Update SMTP security policy",
    response_model=SmtpSecurityPolicyResponse,
    responses=responses(401, 403, 404, 422),
)
async def update_smtp_policy(
    id: str,
    body: UpdateSmtpPolicyRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    client: ClientDep,
) -> SmtpSecurityPolicyResponse:
    """Fields left out are unchanged. A null or empty list or `smtp_credentials` removes it;
    `smtp_credentials` sent back masked (`username:********`) keeps the stored password."""
    fields = cast(service.PolicyFields, body.model_dump(exclude_unset=True))
    return policy_response(await service.update_policy(session, principal, id, fields, client))


@router.delete(
    "/smtp-policies/{id}",
    tags=[POLICIES_TAG],
    operation_id="deleteSmtpSecurityPolicy",
    summary="Delete SMTP security policy",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404, 409, 422),
)
async def delete_smtp_policy(
    id: str, principal: AccountPrincipalDep, session: SessionDep, client: ClientDep
) -> Response:
    """409 while an email webhook uses the policy."""
    await service.delete_policy(session, principal, id, client)
    return Response(status_code=NO_CONTENT)


# --- Webhooks ------------------------------------------------------------------------------

WEBHOOKS_TAG = "Webhooks"
WebhookId = Annotated[str, Path(max_length=64, description="Webhook ID")]
LogId = Annotated[str, Path(alias="logId", max_length=64, description="Delivery log entry ID")]
# The body is optional: each field has a default.
SIMULATE_DEFAULTS = SimulateWebhookRequest()


def webhook_response(
    runtime: Runtime, webhook: EmailWebhook, endpoint: WebhookEndpoint, secret: str | None = None
) -> WebhookResponse:
    return WebhookResponse(
        active=webhook.active,
        address=webhook.address,
        created_at=webhook.created_at,
        custom_headers=webhooks.custom_headers(runtime.keyring, endpoint),
        id=webhook.id,
        include_raw=webhook.include_raw,
        name=webhook.name,
        payload_template=webhook.payload_template,
        rate_limit=endpoint.rate_limit,
        secret=secret,
        smtp_security_policy_id=webhook.smtp_security_policy_id,
        target_url=endpoint.url,
        updated_at=webhook.updated_at,
    )


def delivery_log_response(webhook: EmailWebhook, entry: service.DeliveryLogEntry) -> DeliveryLogResponse:
    attributes = entry.delivery.attributes
    return DeliveryLogResponse(
        attempted_at=entry.attempt.attempted_at,
        duration_ms=entry.attempt.duration_ms,
        error=entry.attempt.error,
        http_status=entry.attempt.status_code,
        id=entry.attempt.id,
        sender=attributes.get("sender"),
        simulated=entry.delivery.simulated,
        smtp_message_id=attributes.get("smtp_message_id"),
        webhook_id=webhook.id,
    )


@router.get(
    "/webhooks",
    tags=[WEBHOOKS_TAG],
    operation_id="listWebhooks",
    summary="List webhooks",
    response_model=list[WebhookResponse],
    responses=responses(401, 403),
)
async def list_webhooks(
    principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> list[WebhookResponse]:
    """The account's email webhooks, oldest first; `secret` is null (it is shown once)."""
    found = []
    for webhook in await service.list_webhooks(session, _account_id(principal)):
        endpoint = await service.endpoint_of(session, webhook)
        found.append(webhook_response(runtime, webhook, endpoint))
    return found


@router.post(
    "/webhooks",
    tags=[WEBHOOKS_TAG],
    operation_id="createWebhook",
    summary="Create webhook",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookResponse,
    responses=responses(401, 403, 409, 422),
)
async def create_webhook(
    body: CreateWebhookRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> WebhookResponse:
    """Mail to `address` (on a verified domain of your account, or a public domain) is POSTed to
    `target_url` as JSON, signed per Standard Webhooks with `secret`, which this response shows
    once. 409 if the address already has a webhook; 422 for an address off your domains, a
    `payload_template` that does not render JSON, or custom headers that cannot be sent."""
    fields = cast(service.WebhookFields, body.model_dump())
    webhook, endpoint, secret = await service.create_webhook(session, runtime, principal, fields, client)
    return webhook_response(runtime, webhook, endpoint, secret)


@router.get(
    "/webhooks/{id}",
    tags=[WEBHOOKS_TAG],
    operation_id="getWebhook",
    summary="Get webhook",
    response_model=WebhookResponse,
    responses=responses(401, 403, 404, 422),
)
async def get_webhook(
    id: WebhookId, principal: AccountPrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> WebhookResponse:
    webhook = await service.get_webhook(session, _account_id(principal), id)
    return webhook_response(runtime, webhook, await service.endpoint_of(session, webhook))


@router.put(
    "/webhooks/{id}",
    tags=[WEBHOOKS_TAG],
    operation_id="updateWebhook",
    summary="Update webhook",
    response_model=WebhookResponse,
    responses=responses(401, 403, 404, 409, 422),
)
async def update_webhook(
    id: WebhookId,
    body: UpdateWebhookRequest,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> WebhookResponse:
    """Fields left out are unchanged; `clear_security_policy` detaches the policy. A new `secret`
    is shown in this response; the old one keeps signing too for 24 hours."""
    fields = cast(service.WebhookFields, body.model_dump(exclude_unset=True))
    webhook, endpoint, secret = await service.update_webhook(session, runtime, principal, id, fields, client)
    return webhook_response(runtime, webhook, endpoint, secret)


@router.delete(
    "/webhooks/{id}",
    tags=[WEBHOOKS_TAG],
    operation_id="deleteWebhook",
    summary="Delete webhook",
    status_code=NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def delete_webhook(
    id: WebhookId, principal: AccountPrincipalDep, session: SessionDep, client: ClientDep
) -> Response:
    """Deletes its delivery log too; the address takes no more mail."""
    await service.delete_webhook(session, principal, id, client)
    return Response(status_code=NO_CONTENT)


@router.get(
    "/webhooks/{id}/logs",
    tags=[WEBHOOKS_TAG],
    operation_id="listDeliveryLogs",
    summary="List delivery logs for a webhook",
    response_model=list[DeliveryLogResponse],
    responses=responses(401, 403, 404, 422),
)
async def list_delivery_logs(
    id: WebhookId,
    principal: AccountPrincipalDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=10_000, description="Page number (1-based)")] = 1,
    page_size: Annotated[int, Query(ge=1, le=100, description="Number of results per page")] = 50,
) -> list[DeliveryLogResponse]:
    """One entry per HTTP attempt, newest first."""
    webhook = await service.get_webhook(session, _account_id(principal), id)
    entries = await service.delivery_log_page(session, webhook, page=page, page_size=page_size)
    return [delivery_log_response(webhook, entry) for entry in entries]


@router.get(
    "/webhooks/{id}/logs/{logId}",
    tags=[WEBHOOKS_TAG],
    operation_id="getDeliveryLog",
    summary="Get a single delivery log entry",
    response_model=DeliveryLogResponse,
    responses=responses(401, 403, 404, 422),
)
async def get_delivery_log(
    id: WebhookId, log_id: LogId, principal: AccountPrincipalDep, session: SessionDep
) -> DeliveryLogResponse:
    webhook = await service.get_webhook(session, _account_id(principal), id)
    return delivery_log_response(webhook, await service.delivery_log_entry(session, webhook, log_id))


@router.post(
    "/webhooks/{id}/simulate",
    tags=[WEBHOOKS_TAG],
    operation_id="simulateWebhook",
    summary="Simulate an incoming email and trigger the webhook",
    response_model=SimulateWebhookResponse,
    responses=responses(401, 403, 404, 409, 422),
)
async def simulate_webhook(
    id: WebhookId,
    principal: AccountPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: SimulateWebhookRequest = SIMULATE_DEFAULTS,
) -> SimulateWebhookResponse:
    """Constructs a synthetic email message and delivers it to the webhook target now (one
    attempt, no retries), recording the result in the delivery log with a simulated flag. The
    receiver's answer is in `http_status` / `error`; 409 if delivery is disabled (after the
    receiver answered 410 Gone, say: updating the webhook with `active: true` enables it again)."""
    webhook = await service.get_webhook(session, _account_id(principal), id)
    message = service.SimulatedMessage(body.from_, body.subject, body.text)
    simulation = await service.prepare_simulation(session, webhook, message)
    await _end_transaction(session)
    entry = await service.simulate(session, runtime, simulation)
    return SimulateWebhookResponse(
        duration_ms=entry.attempt.duration_ms,
        error=entry.attempt.error,
        http_status=entry.attempt.status_code,
        simulated=entry.delivery.simulated,
    )
