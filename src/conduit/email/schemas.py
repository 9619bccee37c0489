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


# --- Email webhooks ------------------------------------------------------------------------

_ADDRESS = (
    "The address mail arrives at, on a verified domain of your account or a public domain; one "
    "webhook per address (local parts compare case-insensitively)"
)
_TARGET_URL = "Where the webhook POSTs each message (https; private addresses are refused)"
_SECRET = (
    "Signing secret (`whsec_` + base64, Standard Webhooks); generated when absent. Shown only in the "
    "response that sets it"
)
_CUSTOM_HEADERS = "Sent with every delivery; not hop-by-hop, Content-*, Host or webhook-* headers"
_TEMPLATE = (
    "A Jinja2 template (sandboxed) rendering the JSON body from `payload`, the message as it would "
    'be sent otherwise, e.g. `{"subject": {{ payload.subject | tojson }}}`; empty: that payload'
)
_RATE_LIMIT = "Deliveries per minute; more wait their turn. 0 or null: unlimited"
_POLICY = "An SMTP security policy of your account that incoming mail must pass"
_INCLUDE_RAW = "Add the whole message, base64, as `raw` to the payload (a Conduit extension)"
TEMPLATE_MAX = 65_536


class CreateWebhookRequest(BaseModel):
    active: bool = Field(True, description="An inactive webhook's address takes no mail")
    address: str = Field(min_length=3, max_length=320, description=_ADDRESS)
    custom_headers: dict[str, str] | None = Field(None, description=_CUSTOM_HEADERS)
    include_raw: bool = Field(False, description=_INCLUDE_RAW)
    name: str | None = Field(None, min_length=1, max_length=200, description="Defaults to the address")
    payload_template: str | None = Field(None, max_length=TEMPLATE_MAX, description=_TEMPLATE)
    rate_limit: int | None = Field(None, description=_RATE_LIMIT)
    secret: str | None = Field(None, max_length=200, description=_SECRET)
    smtp_security_policy_id: str | None = Field(None, max_length=64, description=_POLICY)
    target_url: str = Field(min_length=1, max_length=2048, description=_TARGET_URL)


class UpdateWebhookRequest(BaseModel):
    """Fields left out are unchanged. Null or empty `custom_headers` and `payload_template` remove
    them; a new `secret` replaces the old one, which keeps signing too for 24 hours."""

    active: bool | None = None
    address: str | None = Field(None, min_length=3, max_length=320, description=_ADDRESS)
    clear_security_policy: bool | None = Field(None, description="Detach the SMTP security policy")
    custom_headers: dict[str, str] | None = Field(None, description=_CUSTOM_HEADERS)
    include_raw: bool | None = Field(None, description=_INCLUDE_RAW)
    name: str | None = Field(None, min_length=1, max_length=200)
    payload_template: str | None = Field(None, max_length=TEMPLATE_MAX, description=_TEMPLATE)
    rate_limit: int | None = Field(None, description=_RATE_LIMIT)
    secret: str | None = Field(None, max_length=200, description=_SECRET)
    smtp_security_policy_id: str | None = Field(None, max_length=64, description=_POLICY)
    target_url: str | None = Field(None, min_length=1, max_length=2048, description=_TARGET_URL)


class WebhookResponse(BaseModel):
    active: bool
    address: str
    created_at: datetime
    custom_headers: dict[str, str]
    id: str
    include_raw: bool = Field(description=_INCLUDE_RAW)
    name: str
    payload_template: str | None
    rate_limit: int | None = Field(description="Deliveries per minute; null: unlimited")
    secret: str | None = Field(description="Only in the response that creates or replaces it; null otherwise")
    smtp_security_policy_id: str | None
    target_url: str
    updated_at: datetime


class DeliveryLogResponse(BaseModel):
    attempted_at: datetime
    duration_ms: int
    error: str | None = Field(description="Why the attempt failed; null when the receiver answered 2xx")
    http_status: int | None = Field(description="The receiver's status; null when none came back")
    id: str
    sender: str | None = Field(description="The envelope sender of the message")
    simulated: bool = Field(description="Sent by POST /webhooks/{id}/simulate")
    smtp_message_id: str | None = Field(description="The message's Message-ID header")
    webhook_id: str


class SimulateWebhookRequest(BaseModel):
    from_: str = Field(
        "sender@example.com", alias="from", max_length=320, description="The sender of the synthetic message"
    )
    subject: str = Field("Test message from Conduit", max_length=998)
    text: str = Field("This is a simulated message.", max_length=100_000, description="Plain-text body")


class SimulateWebhookResponse(BaseModel):
    duration_ms: int
    error: str | None
    http_status: int | None
    simulated: bool
