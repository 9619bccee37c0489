"""HTTP endpoints of seed 002's email groups: Domains and SMTP Policies.

Every resource belongs to the calling account; another account's is a 404. Each group is one
section below, with its own tag.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.email import service
from conduit.email.models import SmtpPolicy
from conduit.email.schemas import (
    CreateSmtpPolicyRequest,
    DomainClaimRequest,
    DomainResponse,
    SmtpSecurityPolicyResponse,
    UpdateSmtpPolicyRequest,
)
from conduit.identity.auth import AccountPrincipalDep, ClientDep, Principal, RuntimeDep
from conduit.kit.db import SessionDep
from conduit.kit.errors import responses

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
    """Commit what the request read so far before DNS lookups, which can take seconds: no
    transaction (on SQLite a POST's holds the write lock) stays open meanwhile."""
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
