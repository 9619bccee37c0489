"""Request and response bodies of seed 002's email groups, field for field.

The seed types the policy lists and credentials as strings: lists are comma-separated, and
`smtp_credentials` is `username:password`, returned masked.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# Generous bounds keep hostile bodies cheap to reject; the real rules are in service.py.
LIST_TEXT_MAX = 10_000

# --- Domains -------------------------------------------------------------------------------


class DomainClaimRequest(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=1024,
        description="The domain, e.g. `mail.example.com`; internationalized names are stored in "
        "their ASCII (IDNA) form",
    )


class DomainResponse(BaseModel):
    id: str
    account_id: str | None = Field(description="The owner; null for a public domain of the operator")
    name: str = Field(description="Lowercase, in ASCII (IDNA) form")
    verification_token: str | None = Field(
        description="Publish it as the TXT record `_conduit-verify.<name>`; null for a public domain"
    )
    verified: bool
    is_public: bool = Field(
        description="A domain of the operator (CONDUIT_PUBLIC_EMAIL_DOMAINS) on which any account may "
        "create webhook addresses; it cannot be deleted"
    )
    created_at: datetime | None = Field(description="Null for a public domain")
    updated_at: datetime | None = Field(description="Null for a public domain")


# --- SMTP policies -------------------------------------------------------------------------

_SPF_DOMAINS = (
    "Comma-separated domains (a domain also covers its subdomains); when set, a message needs an SPF "
    "pass for one of them"
)
_DKIM_DOMAINS = (
    "Comma-separated domains (a domain also covers its subdomains); when set, a message needs a valid "
    "DKIM signature (d=) of one of them"
)
_SOURCE_IPS = "Comma-separated IP addresses and CIDR ranges (v4, v6) the sending server must connect from"
_CREDENTIALS = (
    "`username:password` for SMTP AUTH (password 8 to 128 characters). Stored hashed and returned "
    "masked; sending the masked value back keeps the password"
)


class CreateSmtpPolicyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    require_spf: bool = Field(False, description="A message needs an SPF pass")
    allowed_spf_domains: str | None = Field(None, max_length=LIST_TEXT_MAX, description=_SPF_DOMAINS)
    require_dkim: bool = Field(False, description="A message needs a valid DKIM signature")
    allowed_dkim_domains: str | None = Field(None, max_length=LIST_TEXT_MAX, description=_DKIM_DOMAINS)
    allowed_source_ips: str | None = Field(None, max_length=LIST_TEXT_MAX, description=_SOURCE_IPS)
    require_smtp_auth: bool = Field(False, description="The sender must authenticate with smtp_credentials")
    smtp_credentials: str | None = Field(None, max_length=400, description=_CREDENTIALS)


class UpdateSmtpPolicyRequest(BaseModel):
    """Fields left out are unchanged. For the lists and `smtp_credentials`, null or an empty
    string removes the value; for `name` and the booleans, null is the same as leaving them out."""

    name: str | None = Field(None, min_length=1, max_length=200)
    require_spf: bool | None = None
    allowed_spf_domains: str | None = Field(None, max_length=LIST_TEXT_MAX, description=_SPF_DOMAINS)
    require_dkim: bool | None = None
    allowed_dkim_domains: str | None = Field(None, max_length=LIST_TEXT_MAX, description=_DKIM_DOMAINS)
    allowed_source_ips: str | None = Field(None, max_length=LIST_TEXT_MAX, description=_SOURCE_IPS)
    require_smtp_auth: bool | None = None
    smtp_credentials: str | None = Field(None, max_length=400, description=_CREDENTIALS)


class SmtpSecurityPolicyResponse(BaseModel):
    id: str
    name: str
    require_spf: bool
    allowed_spf_domains: str | None = Field(description="Comma-separated; null: any domain")
    require_dkim: bool
    allowed_dkim_domains: str | None = Field(description="Comma-separated; null: any domain")
    allowed_source_ips: str | None = Field(description="Comma-separated CIDRs; null: any address")
    require_smtp_auth: bool
    smtp_credentials: str | None = Field(description="`username:********`; null: none set")
    created_at: datetime
    updated_at: datetime
