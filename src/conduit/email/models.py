"""Email ingress tables: the domains an account claims and proves by DNS, and the SMTP security
policies its email webhooks apply to incoming mail.

Each section is one resource of seed 002; an email webhook pairs an address with an endpoint of
the webhook engine, which owns its URL, secret, headers, rate limit and delivery log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from conduit.kit.clock import utcnow
from conduit.kit.db import Base, JSONType
from conduit.kit.ids import new_id

# --- Domains -------------------------------------------------------------------------------


class Domain(Base):
    """A domain claimed by one account; `verified` once its TXT token and MX record are in DNS.

    `name` is the lowercase A-label form (IDNA), unique across accounts: a domain has one owner.
    The token is not a secret: the user publishes it in DNS.
    """

    __tablename__ = "email_domains"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("dom"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    verification_token: Mapped[str] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(default=False)
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- SMTP policies -------------------------------------------------------------------------


class SmtpPolicy(Base):
    """Checks an incoming message must pass before an email webhook delivers it.

    Lists are stored normalized (domains as A-labels, networks as CIDRs); an empty list is no
    restriction. The SMTP password is stored as an argon2id hash only.
    """

    __tablename__ = "smtp_policies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pol"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    require_spf: Mapped[bool] = mapped_column(default=False)
    allowed_spf_domains: Mapped[list[str]] = mapped_column(JSONType, default=list)
    require_dkim: Mapped[bool] = mapped_column(default=False)
    allowed_dkim_domains: Mapped[list[str]] = mapped_column(JSONType, default=list)
    allowed_source_ips: Mapped[list[str]] = mapped_column(JSONType, default=list)
    require_smtp_auth: Mapped[bool] = mapped_column(default=False)
    smtp_username: Mapped[str | None] = mapped_column(String(128))
    smtp_password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- Email webhooks ------------------------------------------------------------------------


class EmailWebhook(Base):
    """Mail to `address` goes to the webhook engine's endpoint `endpoint_id` (of the account's
    personal organization), passed through `smtp_security_policy_id` when set.

    `address_key` is the routing form (lowercase local part, A-label domain), unique: an address
    has one webhook. A policy in use cannot be deleted (no ON DELETE action on purpose).
    """

    __tablename__ = "email_webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whk"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(320))
    address_key: Mapped[str] = mapped_column(String(320), unique=True)
    payload_template: Mapped[str | None] = mapped_column(Text)
    include_raw: Mapped[bool] = mapped_column(default=False, server_default=false())
    """Add the whole message, base64, as `raw` to the payload."""
    active: Mapped[bool] = mapped_column(default=True)
    smtp_security_policy_id: Mapped[str | None] = mapped_column(ForeignKey("smtp_policies.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
