"""Email ingress: what the SMTP server decides, and the job turning a message into deliveries.

At RCPT a recipient is routed to its active email webhook, and its SMTP security policy judges
what it can already: source IP, SMTP AUTH, SPF. At the end of DATA the policies needing DKIM
judge the signatures; a refusal by any recipient's policy refuses the message (one DATA reply
speaks for every recipient). Accepting stores the raw message with its `email.ingest` job in one
transaction before the `250`. The job, off the SMTP path, completes the mail authentication
results (SPF, DKIM, DMARC), parses the MIME structure and queues one signed delivery per webhook,
deleting the stored message in the same transaction: a message is delivered once, even when the
server dies right after its `250`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from sqlalchemy import select

from conduit.email.auth import DkimResult, SpfResult, check_spf, evaluate_dmarc, verify_dkim
from conduit.email.message import build_payload, parse_message
from conduit.email.models import EmailWebhook, InboundMessage, SmtpPolicy
from conduit.email.service import (
    EMAIL_EVENT_TYPE,
    InvalidTemplate,
    delivery_attributes,
    evaluate_policy,
    render_payload,
    resolver_for,
    verify_smtp_credentials,
    webhook_for_recipient,
)
from conduit.email.smtp import (
    AcceptResult,
    EnvelopeFacts,
    RecipientAddress,
    Rejection,
    SessionFacts,
    SmtpServer,
    start_smtp_server,
)
from conduit.kit.ids import new_id
from conduit.kit.jobs import JobContext, enqueue, registry
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import ACTIVE, WebhookEndpoint

log = structlog.get_logger("conduit.email")

INGEST_JOB = "email.ingest"
# SPF is judged at RCPT for each recipient whose policy needs it; one transaction asks DNS once.
SPF_CACHE_SECONDS = 300.0
SPF_CACHE_ENTRIES = 4096
MAX_AUTH_CANDIDATES = 20
DISABLED_REPLY = "550 5.2.1 Mailbox disabled: its webhook endpoint is disabled"


@dataclass(frozen=True)
class Route:
    """Where one recipient's mail goes, and what its policy said at RCPT."""

    webhook_id: str
    policy: SmtpPolicy | None
    """Read at RCPT; only its check settings are used afterwards."""
    password_ok: bool
    """The session's SMTP AUTH credentials are this policy's."""


@dataclass(frozen=True)
class Checked:
    spf: SpfResult | None
    dkim: list[DkimResult] | None
    """What the policies needed; the ingest job fills in the rest."""


def _needs_spf(policy: SmtpPolicy | None) -> bool:
    return policy is not None and bool(policy.require_spf or policy.allowed_spf_domains)


def _needs_dkim(policy: SmtpPolicy | None) -> bool:
    return policy is not None and bool(policy.require_dkim or policy.allowed_dkim_domains)


class IngressHooks:
    """`conduit.email.smtp.Hooks` over the database: routes, policies, storage."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._spf: OrderedDict[tuple[str, str, str], tuple[float, SpfResult]] = OrderedDict()

    async def recipient(
        self, address: RecipientAddress, session: SessionFacts, mail_from: str
    ) -> Route | Rejection | None:
        settings = self.runtime.settings
        async with self.runtime.db.session(write=False) as db:
            webhook = await webhook_for_recipient(db, settings, address.original)
            if webhook is None:
                return None
            endpoint = await db.get(WebhookEndpoint, webhook.endpoint_id)
            if endpoint is None:
                return None
            if endpoint.status != ACTIVE:
                # Its receiver answered 410, say: a bounce tells the sender, silence would not.
                return Rejection(DISABLED_REPLY)
            policy = (
                await db.get(SmtpPolicy, webhook.smtp_security_policy_id)
                if webhook.smtp_security_policy_id
                else None
            )
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
                    webhook_id=webhook.id,
                    remote_ip=session.remote_ip,
                )
                return Rejection(decision.reply)
        return Route(webhook.id, policy, password_ok)

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

    async def check(self, envelope: EnvelopeFacts[Route], raw: bytes) -> Checked | Rejection:
        routes = [recipient.route for recipient in envelope.recipients]
        session = envelope.session
        spf = (
            await self._spf_for(session, envelope.mail_from)
            if any(_needs_spf(route.policy) for route in routes)
            else None
        )
        dkim = None
        if any(_needs_dkim(route.policy) for route in routes):
            dkim = await verify_dkim(resolver_for(self.runtime), raw)
        seen: set[str] = set()
        for route in routes:
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
        return Checked(spf, dkim)

    async def accept(self, envelope: EnvelopeFacts[Route], raw: bytes, checked: Checked) -> AcceptResult:
        auth: dict[str, Any] = {}
        if checked.spf is not None:
            auth["spf"] = asdict(checked.spf)
        if checked.dkim is not None:
            auth["dkim"] = [asdict(result) for result in checked.dkim]
        message = InboundMessage(
            id=new_id("eml"),
            raw=raw,
            envelope=envelope.as_dict(),
            routes=[recipient.route.webhook_id for recipient in envelope.recipients],
            auth=auth,
            received_at=envelope.received_at,
        )
        async with self.runtime.db.session() as db:
            db.add(message)
            enqueue(db, INGEST_JOB, {"message_id": message.id})
        return AcceptResult(message.id)

    async def _spf_for(self, session: SessionFacts, mail_from: str) -> SpfResult:
        key = (session.remote_ip, session.helo or "", mail_from)
        now = time.monotonic()
        cached = self._spf.get(key)
        if cached is not None and now - cached[0] < SPF_CACHE_SECONDS:
            return cached[1]
        result = await check_spf(
            resolver_for(self.runtime),
            remote_ip=session.remote_ip,
            helo=session.helo or "",
            mail_from=mail_from,
        )
        if result.result == "temperror":
            return result  # asked again next time
        self._spf[key] = (now, result)
        self._spf.move_to_end(key)
        while len(self._spf) > SPF_CACHE_ENTRIES:
            self._spf.popitem(last=False)
        return result


async def start_ingress(runtime: Runtime) -> SmtpServer:
    """The SMTP server of `conduit serve`, on `CONDUIT_SMTP_HOST:CONDUIT_SMTP_PORT`. With several
    HTTP workers each process listens on the port, the kernel spreading connections."""
    settings = runtime.settings
    return await start_smtp_server(settings, IngressHooks(runtime), reuse_port=settings.workers > 1)


# --- the ingest job ---------------------------------------------------------------------------


async def _authentication(runtime: Runtime, message: InboundMessage) -> dict[str, Any]:
    """SPF, DKIM and DMARC of the message: what the SMTP path already found, the rest now."""
    resolver = resolver_for(runtime)
    envelope = message.envelope
    stored = message.auth
    if "spf" in stored:
        spf = SpfResult(**stored["spf"])
    else:
        spf = await check_spf(
            resolver,
            remote_ip=envelope["remote_ip"],
            helo=envelope.get("helo") or "",
            mail_from=envelope["from"],
        )
    if "dkim" in stored:
        dkim = [DkimResult(**result) for result in stored["dkim"]]
    else:
        dkim = await verify_dkim(resolver, message.raw)
    dmarc = await evaluate_dmarc(resolver, message.raw, spf, dkim)
    return {"spf": asdict(spf), "dkim": [asdict(result) for result in dkim], "dmarc": asdict(dmarc)}


def _envelope_for(envelope: dict[str, Any], indexes: list[int]) -> dict[str, Any]:
    """The envelope a webhook's owner sees: only the recipients routed to that webhook."""
    recipients = [envelope["recipients"][index] for index in indexes]
    return {**envelope, "to": [recipient["address"] for recipient in recipients], "recipients": recipients}


@registry.handler(INGEST_JOB, max_attempts=10, timeout_seconds=300)
async def _ingest(ctx: JobContext) -> None:
    message_id = str(ctx.payload["message_id"])
    # Read and do the DNS and parsing work before the job's own session takes the write lock.
    async with ctx.runtime.db.session(write=False) as db:
        message = await db.get(InboundMessage, message_id)
    if message is None:
        return  # already turned into deliveries
    auth = await _authentication(ctx.runtime, message)
    parsed = await asyncio.to_thread(parse_message, message.raw)
    by_webhook: dict[str, list[int]] = {}
    for index, webhook_id in enumerate(message.routes):
        by_webhook.setdefault(webhook_id, []).append(index)

    session = ctx.session
    stored = await session.get(InboundMessage, message_id)
    if stored is None:
        return
    raw_base64: str | None = None
    for webhook_id, indexes in by_webhook.items():
        webhook = await session.get(EmailWebhook, webhook_id)
        endpoint = await session.get(WebhookEndpoint, webhook.endpoint_id) if webhook else None
        if webhook is None or endpoint is None:
            log.info("email.webhook_gone", message_id=message_id, webhook_id=webhook_id)
            continue
        payload = build_payload(envelope=_envelope_for(message.envelope, indexes), auth=auth, parsed=parsed)
        payload["queue_id"] = message_id
        if webhook.include_raw:
            raw_base64 = raw_base64 or _base64(message.raw)
            payload["raw"] = raw_base64
        attributes = {**delivery_attributes(payload), "queue_id": message_id}
        event_id = f"{message_id}.{webhook.id}"
        try:
            body = render_payload(webhook.payload_template, payload)
        except InvalidTemplate as exc:
            webhooks.record_failed(
                session,
                endpoint,
                event_type=EMAIL_EVENT_TYPE,
                event_id=event_id,
                attributes=attributes,
                reason=f"Not sent: {exc.message}",
            )
            continue
        webhooks.enqueue_delivery(
            session,
            endpoint,
            event_type=EMAIL_EVENT_TYPE,
            payload=body,
            event_id=event_id,
            attributes=attributes,
        )
    await session.delete(stored)


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
