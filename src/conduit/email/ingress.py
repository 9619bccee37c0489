"""Email ingress: what the SMTP server decides for each message, and storing it for delivery.

At RCPT a recipient is routed to its active email webhook, and its SMTP security policy judges
what it can already: source IP, SMTP AUTH, SPF. At the end of DATA the message is authenticated
(SPF, DKIM, DMARC) and the policies needing DKIM judge the signatures; a refusal by any
recipient's policy refuses the message (one DATA reply speaks for every recipient). Accepting
parses the message and commits one signed webhook delivery (and its job) per recipient webhook in
one transaction, before the `250`: a message is delivered once, even when the server dies right
after answering.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.email.auth import MailAuthResult, SpfResult, check_spf, evaluate_dmarc, verify_dkim
from conduit.email.message import build_payload, parse_message
from conduit.email.models import EmailWebhook, SmtpPolicy
from conduit.email.service import (
    EMAIL_EVENT_TYPE,
    InvalidTemplate,
    delivery_attributes,
    evaluate_policy,
    mail_resolver_for,
    render_payload,
    verify_smtp_credentials,
    webhook_for_recipient,
)
from conduit.email.smtp import (
    AcceptResult,
    EnvelopeFacts,
    Recipient,
    RecipientAddress,
    Rejection,
    SessionFacts,
    SmtpServer,
    start_smtp_server,
)
from conduit.kit.ids import new_id
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import ACTIVE, WebhookEndpoint

log = structlog.get_logger("conduit.email")

# One SMTP transaction asks DNS about its sender once, however many recipients' policies ask.
SPF_CACHE_SECONDS = 300.0
SPF_CACHE_ENTRIES = 4096
# Where an address goes is read from the database at most this often per process: a webhook
# created, changed or deactivated takes effect for mail within this many seconds.
ROUTE_CACHE_SECONDS = 2.0
ROUTE_CACHE_ENTRIES = 10_000
MAX_AUTH_CANDIDATES = 20
DISABLED_REPLY = "550 5.2.1 Mailbox disabled: its webhook endpoint is disabled"

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Route:
    """Where one recipient's mail goes, and what its policy said at RCPT."""

    webhook_id: str
    policy: SmtpPolicy | None
    """Read at RCPT; only its check settings are used afterwards."""
    password_ok: bool
    """The session's SMTP AUTH credentials are this policy's."""


@dataclass(frozen=True)
class _Destination:
    """What the database says about an address: its webhook, that webhook's policy, and whether
    its endpoint takes deliveries."""

    webhook_id: str
    policy: SmtpPolicy | None
    endpoint_active: bool


class _Ttl(Generic[K, V]):
    """A small time-bounded LRU map."""

    def __init__(self, seconds: float, entries: int) -> None:
        self.seconds, self.entries = seconds, entries
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._items.get(key)
        if found is None or time.monotonic() - found[0] >= self.seconds:
            return False, None
        return True, found[1]

    def put(self, key: K, value: V) -> None:
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)


class IngressHooks:
    """`conduit.email.smtp.Hooks` over the database: routes, policies, storage."""

    def __init__(self, runtime: Runtime, *, route_cache_seconds: float = ROUTE_CACHE_SECONDS) -> None:
        self.runtime = runtime
        self._routes: _Ttl[str, _Destination | None] = _Ttl(route_cache_seconds, ROUTE_CACHE_ENTRIES)
        self._spf: _Ttl[tuple[str, str, str], SpfResult] = _Ttl(SPF_CACHE_SECONDS, SPF_CACHE_ENTRIES)

    async def _destination(self, address: RecipientAddress) -> _Destination | None:
        key = address.original.lower()
        cached, destination = self._routes.get(key)
        if cached:
            return destination
        async with self.runtime.db.session(write=False) as db:
            webhook = await webhook_for_recipient(db, self.runtime.settings, address.original)
            endpoint = await db.get(WebhookEndpoint, webhook.endpoint_id) if webhook else None
            if webhook is None or endpoint is None:
                destination = None
            else:
                policy_id = webhook.smtp_security_policy_id
                policy = await db.get(SmtpPolicy, policy_id) if policy_id else None
                destination = _Destination(webhook.id, policy, endpoint.status == ACTIVE)
        self._routes.put(key, destination)
        return destination

    async def recipient(
        self, address: RecipientAddress, session: SessionFacts, mail_from: str
    ) -> Route | Rejection | None:
        destination = await self._destination(address)
        if destination is None:
            return None
        if not destination.endpoint_active:
            # Its receiver answered 410, say: a bounce tells the sender, silence would not.
            return Rejection(DISABLED_REPLY)
        policy = destination.policy
        password_ok = False
        if policy is not None and policy.require_smtp_auth and session.credentials is not None:
            credentials = session.credentials
            password_ok = await verify_smtp_credentials(
                policy, credentials.username, credentials.password.get_secret_value()
            )
        if policy is not None:
            spf = await self._spf_for(session, mail_from) if _needs_spf(policy) else None
            decision = evaluate_policy(
                policy,
                remote_ip=session.remote_ip,
                spf_result=spf,
                dkim_results=None,
                smtp_user=session.auth_user,
                smtp_password_ok=password_ok,
            )
            if not decision.allowed:
                log.info(
                    "smtp.policy_refused",
                    check=decision.check,
                    webhook_id=destination.webhook_id,
                    remote_ip=session.remote_ip,
                )
                return Rejection(decision.reply)
        return Route(destination.webhook_id, policy, password_ok)

    async def authenticate(self, username: str, password: str, session: SessionFacts) -> bool:
        """Good when they are the credentials of some SMTP security policy; each recipient's own
        policy checks them again at RCPT."""
        async with self.runtime.db.session(write=False) as db:
            rows = await db.scalars(
                select(SmtpPolicy).where(SmtpPolicy.smtp_username == username).limit(MAX_AUTH_CANDIDATES)
            )
            policies = list(rows.all())
        for policy in policies:
            if await verify_smtp_credentials(policy, username, password):
                return True
        if not policies:  # the same argon2 cost for an unknown user: timing tells nothing
            await verify_smtp_credentials(SmtpPolicy(), username, password)
        return False

    async def check(self, envelope: EnvelopeFacts[Route], raw: bytes) -> MailAuthResult | Rejection:
        """Mail authentication of the message (SPF from RCPT when a policy asked for it then),
        and the DKIM checks of the recipients' policies."""
        session = envelope.session
        resolver = mail_resolver_for(self.runtime)
        spf, dkim = await asyncio.gather(
            self._spf_for(session, envelope.mail_from), verify_dkim(resolver, raw)
        )
        seen: set[str] = set()
        for recipient in envelope.recipients:
            route = recipient.route
            if route.policy is None or route.policy.id in seen:
                continue
            seen.add(route.policy.id)
            decision = evaluate_policy(
                route.policy,
                remote_ip=session.remote_ip,
                spf_result=spf,
                dkim_results=dkim,
                smtp_user=session.auth_user,
                smtp_password_ok=route.password_ok,
            )
            if not decision.allowed:
                log.info(
                    "smtp.policy_refused",
                    check=decision.check,
                    webhook_id=route.webhook_id,
                    remote_ip=session.remote_ip,
                )
                return Rejection(decision.reply)
        dmarc = await evaluate_dmarc(resolver, raw, spf, dkim)
        return MailAuthResult(spf, dkim, dmarc)

    async def accept(
        self, envelope: EnvelopeFacts[Route], raw: bytes, checked: MailAuthResult
    ) -> AcceptResult:
        """One transaction: a delivery (and its job) per recipient webhook. Parsing is done first,
        in a thread, so the write turn is held only for the inserts."""
        queue_id = new_id("eml")
        parsed = await asyncio.to_thread(parse_message, raw)
        auth = checked.as_dict()
        by_webhook: dict[str, list[Recipient[Route]]] = {}
        for recipient in envelope.recipients:
            by_webhook.setdefault(recipient.route.webhook_id, []).append(recipient)
        raw_base64: str | None = None
        async with self.runtime.db.session() as db:
            for webhook_id, recipients in by_webhook.items():
                webhook = await db.get(EmailWebhook, webhook_id)
                endpoint = await db.get(WebhookEndpoint, webhook.endpoint_id) if webhook else None
                if webhook is None or endpoint is None:
                    # Deleted since RCPT: its owner wants no more mail; the others still get theirs.
                    log.info("email.webhook_gone", queue_id=queue_id, webhook_id=webhook_id)
                    continue
                payload = build_payload(
                    envelope=envelope.as_dict(tuple(recipients)), auth=auth, parsed=parsed
                )
                payload["queue_id"] = queue_id
                if webhook.include_raw:
                    raw_base64 = raw_base64 or base64.b64encode(raw).decode("ascii")
                    payload["raw"] = raw_base64
                _queue(db, webhook, endpoint, payload, event_id=f"{queue_id}.{webhook.id}")
        return AcceptResult(queue_id)

    async def _spf_for(self, session: SessionFacts, mail_from: str) -> SpfResult:
        key = (session.remote_ip, session.helo or "", mail_from)
        cached, result = self._spf.get(key)
        if cached and result is not None:
            return result
        result = await check_spf(
            mail_resolver_for(self.runtime),
            remote_ip=session.remote_ip,
            helo=session.helo or "",
            mail_from=mail_from,
        )
        if result.result != "temperror":  # asked again next time
            self._spf.put(key, result)
        return result


def _needs_spf(policy: SmtpPolicy | None) -> bool:
    return policy is not None and bool(policy.require_spf or policy.allowed_spf_domains)


async def start_ingress(runtime: Runtime, *, route_cache_seconds: float = ROUTE_CACHE_SECONDS) -> SmtpServer:
    """The SMTP server of `conduit serve`, on `CONDUIT_SMTP_HOST:CONDUIT_SMTP_PORT`. With several
    HTTP workers each process listens on the port, the kernel spreading connections."""
    settings = runtime.settings
    hooks = IngressHooks(runtime, route_cache_seconds=route_cache_seconds)
    return await start_smtp_server(settings, hooks, reuse_port=settings.workers > 1)


def _queue(
    db: AsyncSession,
    webhook: EmailWebhook,
    endpoint: WebhookEndpoint,
    payload: dict[str, Any],
    *,
    event_id: str,
) -> None:
    attributes = {**delivery_attributes(payload), "queue_id": payload["queue_id"]}
    try:
        body = render_payload(webhook.payload_template, payload)
    except InvalidTemplate as exc:
        # Valid for the sample message, failing on this one: visible in the delivery log.
        webhooks.record_failed(
            db,
            endpoint,
            event_type=EMAIL_EVENT_TYPE,
            event_id=event_id,
            attributes=attributes,
            reason=f"Not sent: {exc.message}",
        )
        return
    # Attempted by this process as soon as the message is stored: no poll, no claim.
    webhooks.enqueue_delivery(
        db,
        endpoint,
        event_type=EMAIL_EVENT_TYPE,
        payload=body,
        event_id=event_id,
        attributes=attributes,
        here=True,
    )
