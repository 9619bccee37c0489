"""Email ingress end to end in one process: a real SMTP client (smtplib, swaks) talks to the SMTP
server `conduit serve` runs, mail is routed to the email webhooks made through the API, judged by
their SMTP security policies against the loopback DNS server, stored, and delivered, signed, to a
receiver on 127.0.0.1 by the job worker."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from conduit.app import create_app
from conduit.email.ingress import DISABLED_REPLY, start_ingress
from conduit.email.smtp import SmtpServer
from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from conduit.settings import Settings
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import WebhookDelivery, WebhookEndpoint
from conduit.webhooks.service import SENDER_EXTRA
from tests.conftest import User, sign_up
from tests.email.dns_server import DnsServer
from tests.email.support import serve_key, sign
from tests.email.test_domains import email_runtime
from tests.email.test_smtp import run_swaks, swaks, tls_client_context
from tests.email.test_webhooks_api import DOMAIN, create, verified_domain
from tests.identity.conftest import API
from tests.webhooks.receiver import Receiver, Reply

__all__ = ["swaks"]  # the session fixture, used by name

PASSWORD = "correct horse battery staple"
SENDER = "alice@sender.example.org"


@pytest.fixture
async def ingress_runtime(runtime: Runtime, dns_server: DnsServer) -> AsyncIterator[Runtime]:
    loopback = email_runtime(
        runtime,
        dns_server,
        allow_private_targets=True,
        smtp_port=0,
        smtp_hostname="mx.conduit.test",
    )
    yield loopback
    sender = loopback.extras.get(SENDER_EXTRA)
    if sender is not None:
        await sender.aclose()


@pytest.fixture
def app(ingress_runtime: Runtime) -> Any:
    return create_app(runtime=ingress_runtime)


@dataclass
class Mailer:
    """The SMTP server under test, and a client for it (smtplib, in a thread)."""

    server: SmtpServer
    settings: Settings

    @property
    def port(self) -> int:
        return self.server.port

    def _send(
        self, raw: bytes, to: list[str], sender: str, login: tuple[str, str] | None
    ) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.example.org", timeout=10) as client:
            client.ehlo()
            client.starttls(context=tls_client_context(self.settings))
            client.ehlo()
            if login is not None:
                client.login(*login)
            client.mail(sender)
            refused = {}
            for address in to:
                code, reply = client.rcpt(address)
                if code != 250:
                    refused[address] = (code, reply)
            if len(refused) == len(to):
                raise smtplib.SMTPRecipientsRefused(refused)
            return client.data(raw)

    async def send(
        self, raw: bytes, *, to: list[str], sender: str = SENDER, login: tuple[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One message over a fresh session with STARTTLS (and AUTH when `login`): the final
        reply to the message. Every recipient refused raises `SMTPRecipientsRefused`."""
        return await asyncio.to_thread(self._send, raw, to, sender, login)


@pytest.fixture
async def smtp(ingress_runtime: Runtime) -> AsyncIterator[Mailer]:
    # Routes read afresh for every RCPT: the tests change webhooks between messages.
    server = await start_ingress(ingress_runtime, route_cache_seconds=0)
    yield Mailer(server, ingress_runtime.settings)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 10)


@pytest.fixture
def jobs(ingress_runtime: Runtime) -> JobWorker:
    return JobWorker(ingress_runtime, concurrency=4, poll_seconds=0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    listener = await asyncio.start_server(hooks.handle, "127.0.0.1", 0)
    hooks.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield hooks


@pytest.fixture
async def owner(client: httpx.AsyncClient, user: User, dns_server: DnsServer) -> User:
    await verified_domain(client, user, dns_server, DOMAIN)
    return user


def message(*, to: str = f"support@{DOMAIN}", subject: str = "Quarterly report") -> EmailMessage:
    email = EmailMessage()
    email["From"] = f"Alice <{SENDER}>"
    email["To"] = to
    email["Subject"] = subject
    email["Message-ID"] = "<report-1@sender.example.org>"
    email.set_content("Numbers attached.\n")
    email.add_alternative("<p>Numbers <b>attached</b>.</p>", subtype="html")
    email.add_attachment(b"%PDF-1.4 numbers\n", maintype="application", subtype="pdf", filename="q3.pdf")
    return email


async def deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))
        return list(rows.all())


def verified(secret: str, received: Any) -> dict[str, Any]:
    """The body, after the Standard Webhooks verifier accepted the signature."""
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


# --- delivery -------------------------------------------------------------------------------------


async def test_a_message_reaches_its_webhook_signed_with_everything_parsed(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
    ingress_runtime: Runtime,
    dns_server: DnsServer,
) -> None:
    dns_server.add("sender.example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add("_dmarc.sender.example.org", "TXT", "v=DMARC1; p=reject")
    serve_key(dns_server, "sender.example.org")
    hook = await create(client, owner, receiver)
    raw = sign(message().as_bytes(policy=SMTP), "sender.example.org")

    code, reply = await smtp.send(raw, to=[f"support@{DOMAIN}"])

    assert code == 250, reply
    queue_id = reply.decode().rsplit(" ", 1)[-1]
    assert queue_id.startswith("eml_")
    # Durable before the 250: the delivery and its job are committed.
    assert [d.status for d in await deliveries(ingress_runtime)] == ["pending"]
    await jobs.run_until_idle()
    assert [d.status for d in await deliveries(ingress_runtime)] == ["delivered"]
    [received] = receiver.received
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == f"{queue_id}.{hook['id']}"
    payload = verified(hook["secret"], received)
    assert payload["queue_id"] == queue_id
    envelope = payload["envelope"]
    assert envelope["from"] == SENDER
    assert envelope["to"] == [f"support@{DOMAIN}"]
    assert (envelope["remote_ip"], envelope["helo"], envelope["tls"]) == (
        "127.0.0.1",
        "client.example.org",
        True,
    )
    assert envelope["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    assert payload["subject"] == "Quarterly report"
    assert payload["from"] == {"name": "Alice", "address": SENDER}
    assert payload["message_id"] == "<report-1@sender.example.org>"
    assert payload["text"] == "Numbers attached.\n"
    assert payload["html"] == "<p>Numbers <b>attached</b>.</p>\n"
    [attachment] = payload["attachments"]
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "q3.pdf",
        "application/pdf",
        17,
    )
    assert base64.b64decode(attachment["content_base64"]) == b"%PDF-1.4 numbers\n"
    auth = payload["auth"]
    assert (auth["spf"]["result"], auth["spf"]["domain"]) == ("pass", "sender.example.org")
    assert [(d["result"], d["domain"]) for d in auth["dkim"]] == [("pass", "sender.example.org")]
    assert (auth["dmarc"]["result"], auth["dmarc"]["policy"]) == ("pass", "reject")
    assert "raw" not in payload

    logs = (await client.get(f"{API}/webhooks/{hook['id']}/logs", headers=owner.headers)).json()
    [entry] = logs
    assert (entry["http_status"], entry["sender"], entry["simulated"]) == (200, SENDER, False)
    assert entry["smtp_message_id"] == "<report-1@sender.example.org>"


async def test_plus_tags_route_to_the_mailbox_and_each_webhook_sees_only_its_recipients(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
) -> None:
    support = await create(client, owner, receiver, address=f"support@{DOMAIN}")
    billing = await create(
        client, owner, receiver, address=f"billing@{DOMAIN}", target_url=receiver.url("/b")
    )
    to = [f"Support+Urgent@{DOMAIN}", f"billing@{DOMAIN}", f"support@{DOMAIN}"]

    code, _ = await smtp.send(message().as_bytes(policy=SMTP), to=to)

    assert code == 250
    await jobs.run_until_idle()
    by_path = {received.path: received for received in receiver.received}
    assert sorted(by_path) == ["/b", "/hook"]
    support_payload = verified(support["secret"], by_path["/hook"])
    assert support_payload["envelope"]["to"] == [f"Support+Urgent@{DOMAIN}", f"support@{DOMAIN}"]
    assert support_payload["envelope"]["recipients"][0] == {
        "address": f"Support+Urgent@{DOMAIN}",
        "routed_to": f"Support@{DOMAIN}",
        "tag": "Urgent",
    }
    billing_payload = verified(billing["secret"], by_path["/b"])
    assert billing_payload["envelope"]["to"] == [f"billing@{DOMAIN}"]  # no Bcc leaks across owners


async def test_unknown_and_inactive_addresses_are_refused_at_rcpt(
    client: httpx.AsyncClient, owner: User, receiver: Receiver, smtp: Mailer, ingress_runtime: Runtime
) -> None:
    hook = await create(client, owner, receiver, address=f"paused@{DOMAIN}", active=False)
    assert hook["active"] is False

    for address in (f"nobody@{DOMAIN}", f"paused@{DOMAIN}", "someone@elsewhere.example"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await smtp.send(message().as_bytes(policy=SMTP), to=[address])
        assert refused.value.recipients[address][0] == 550
        assert refused.value.recipients[address][1].startswith(b"5.1.1")
    assert await deliveries(ingress_runtime) == []


async def test_include_raw_and_a_payload_template(
    client: httpx.AsyncClient, owner: User, receiver: Receiver, smtp: Mailer, jobs: JobWorker
) -> None:
    template = '{"title": {{ payload.subject | tojson }}, "size": {{ payload.raw | length }}}'
    raw_hook = await create(client, owner, receiver, include_raw=True)
    assert raw_hook["include_raw"] is True
    templated = await create(
        client, owner, receiver, address=f"digest@{DOMAIN}", payload_template=template, include_raw=True
    )
    raw = message().as_bytes(policy=SMTP)

    await smtp.send(raw, to=[f"support@{DOMAIN}", f"digest@{DOMAIN}"])
    await jobs.run_until_idle()

    bodies = {received.headers["webhook-id"].rsplit(".", 1)[1]: received for received in receiver.received}
    assert base64.b64decode(verified(raw_hook["secret"], bodies[raw_hook["id"]])["raw"]) == raw
    assert verified(templated["secret"], bodies[templated["id"]]) == {
        "title": "Quarterly report",
        "size": len(base64.b64encode(raw)),
    }


async def test_a_template_that_fails_on_a_real_message_is_a_failed_delivery_in_the_log(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
    ingress_runtime: Runtime,
) -> None:
    # Renders JSON for the sample message on save; a real message with two attachments breaks it.
    template = '{"first": {{ payload.attachments[0].filename | tojson }}}'
    with pytest.raises(AssertionError):  # refused on save: the sample has no attachment
        await create(client, owner, receiver, payload_template=template)
    template = '{"n": {{ 1 // (payload.attachments | length - 1) }}}'
    await create(client, owner, receiver, payload_template=template)
    email = message()

    await smtp.send(email.as_bytes(policy=SMTP), to=[f"support@{DOMAIN}"])
    await jobs.run_until_idle()

    assert receiver.received == []
    [delivery] = await deliveries(ingress_runtime)
    assert delivery.status == "failed"
    assert "ZeroDivisionError" in str(delivery.last_error)


# --- SMTP security policies --------------------------------------------------------------------


async def make_policy(client: httpx.AsyncClient, user: User, **fields: Any) -> str:
    response = await client.post(
        f"{API}/smtp-policies", json={"name": "policy", **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    policy_id: str = response.json()["id"]
    return policy_id


async def test_source_ip_policy_refuses_at_rcpt_with_a_reply_naming_it(
    client: httpx.AsyncClient, owner: User, receiver: Receiver, smtp: Mailer, ingress_runtime: Runtime
) -> None:
    policy_id = await make_policy(client, owner, allowed_source_ips="192.0.2.0/24")
    await create(client, owner, receiver, smtp_security_policy_id=policy_id)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp.send(message().as_bytes(policy=SMTP), to=[f"support@{DOMAIN}"])

    code, text = refused.value.recipients[f"support@{DOMAIN}"]
    assert (code, text) == (550, b"5.7.1 Delivery not authorized: 127.0.0.1 may not send to this address")
    assert await deliveries(ingress_runtime) == []


async def test_smtp_auth_policy_needs_its_own_credentials_after_starttls(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
) -> None:
    policy_id = await make_policy(client, owner, require_smtp_auth=True, smtp_credentials=f"relay:{PASSWORD}")
    await create(client, owner, receiver, smtp_security_policy_id=policy_id)
    to = [f"support@{DOMAIN}"]
    raw = message().as_bytes(policy=SMTP)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp.send(raw, to=to)
    assert refused.value.recipients[to[0]] == (530, b"5.7.0 Authentication required")
    with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
        await smtp.send(raw, to=to, login=("relay", "not the password"))
    assert wrong.value.smtp_code == 535
    code, _ = await smtp.send(raw, to=to, login=("relay", PASSWORD))
    assert code == 250

    # The credentials of another account's policy are good for AUTH, not for this address.
    other = await sign_up(client)
    await make_policy(client, other, require_smtp_auth=True, smtp_credentials="other:another secret")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp.send(raw, to=to, login=("other", "another secret"))
    assert refused.value.recipients[to[0]] == (550, b"5.7.8 Authentication credentials invalid")

    await jobs.run_until_idle()
    assert len(receiver.received) == 1


async def test_spf_policy_judges_the_connecting_ip_for_the_envelope_sender(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
    dns_server: DnsServer,
) -> None:
    policy_id = await make_policy(client, owner, require_spf=True, allowed_spf_domains="sender.example.org")
    await create(client, owner, receiver, smtp_security_policy_id=policy_id)
    dns_server.add("sender.example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add("forged.example.net", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    dns_server.add("other.example.net", "TXT", "v=spf1 +all")
    to = [f"support@{DOMAIN}"]
    raw = message().as_bytes(policy=SMTP)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp.send(raw, to=to, sender="mallory@forged.example.net")
    assert refused.value.recipients[to[0]] == (
        550,
        b"5.7.23 SPF validation failed: forged.example.net does not authorize 127.0.0.1 (fail)",
    )
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp.send(raw, to=to, sender="eve@other.example.net")
    assert refused.value.recipients[to[0]][1].startswith(
        b"5.7.23 SPF validation failed: other.example.net is not"
    )
    assert (await smtp.send(raw, to=to))[0] == 250

    await jobs.run_until_idle()
    [received] = receiver.received
    assert json.loads(received.body)["auth"]["spf"]["result"] == "pass"


async def test_dkim_policy_refuses_the_message_at_the_end_of_data(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
    dns_server: DnsServer,
    ingress_runtime: Runtime,
) -> None:
    policy_id = await make_policy(client, owner, require_dkim=True, allowed_dkim_domains="sender.example.org")
    await create(client, owner, receiver, smtp_security_policy_id=policy_id)
    serve_key(dns_server, "sender.example.org")
    serve_key(dns_server, "elsewhere.example.net")
    to = [f"support@{DOMAIN}"]
    raw = message().as_bytes(policy=SMTP)

    assert await smtp.send(raw, to=to) == (550, b"5.7.20 No passing DKIM signature found")
    code, reply = await smtp.send(sign(raw, "elsewhere.example.net"), to=to)
    assert code == 550
    assert reply.startswith(b"5.7.21 No acceptable DKIM signature")
    assert await deliveries(ingress_runtime) == []
    assert (await smtp.send(sign(raw, "sender.example.org"), to=to))[0] == 250

    await jobs.run_until_idle()
    assert len(receiver.received) == 1


# --- retries and a receiver that is gone -------------------------------------------------------


async def test_a_receiver_failing_three_times_gets_the_message_exactly_once_more(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
    ingress_runtime: Runtime,
) -> None:
    clock.freeze(clock.now())  # the access token stays valid
    hook = await create(client, owner, receiver)
    receiver.answer(Reply(500), Reply(503), Reply(502))

    assert (await smtp.send(message().as_bytes(policy=SMTP), to=[f"support@{DOMAIN}"]))[0] == 250
    await jobs.run_until_idle()
    for _ in range(3):
        clock.advance(timedelta(hours=11))  # past any step of the schedule
        await jobs.run_until_idle()
    clock.advance(timedelta(days=2))
    await jobs.run_until_idle()

    assert [r.headers["webhook-id"] for r in receiver.received] == [
        receiver.received[0].headers["webhook-id"]
    ] * 4
    assert len({r.body for r in receiver.received}) == 1
    # The same body each time (later attempts are signed at the moved clock's time).
    assert verified(hook["secret"], receiver.received[0])["subject"] == "Quarterly report"
    [delivery] = await deliveries(ingress_runtime)
    assert (delivery.status, delivery.attempts) == ("delivered", 4)
    async with ingress_runtime.db.session(write=False) as session:
        attempts = await webhooks.attempts_of(session, delivery.id)
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 502), (4, 200)]


async def test_a_receiver_answering_410_disables_the_webhook_and_its_address_bounces(
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
    ingress_runtime: Runtime,
) -> None:
    hook = await create(client, owner, receiver)
    receiver.answer(Reply(410, b"gone"))
    to = [f"support@{DOMAIN}"]

    assert (await smtp.send(message(subject="first").as_bytes(policy=SMTP), to=to))[0] == 250
    await jobs.run_until_idle()

    assert len(receiver.received) == 1
    async with ingress_runtime.db.session(write=False) as session:
        endpoint = await session.scalar(select(WebhookEndpoint))
    assert endpoint is not None
    assert endpoint.status == "disabled"
    [first] = await deliveries(ingress_runtime)
    assert (first.status, first.last_status_code) == ("disabled", 410)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp.send(message(subject="second").as_bytes(policy=SMTP), to=to)
    assert refused.value.recipients[to[0]] == (
        550,
        DISABLED_REPLY[4:].encode(),
    )

    # Its owner turns it on again and redelivers what the 410 stopped.
    response = await client.put(f"{API}/webhooks/{hook['id']}", json={"active": True}, headers=owner.headers)
    assert response.status_code == 200, response.text
    async with ingress_runtime.db.session() as session:
        delivery = await session.get(WebhookDelivery, first.id)
        assert delivery is not None
        await webhooks.redeliver(session, delivery)
    await jobs.run_until_idle()
    assert len(receiver.received) == 2
    assert verified(hook["secret"], receiver.received[-1])["subject"] == "first"
    assert (await smtp.send(message(subject="third").as_bytes(policy=SMTP), to=to))[0] == 250


# --- swaks --------------------------------------------------------------------------------------


async def test_swaks_with_starttls_and_auth_login(
    swaks: str,
    client: httpx.AsyncClient,
    owner: User,
    receiver: Receiver,
    smtp: Mailer,
    jobs: JobWorker,
) -> None:
    policy_id = await make_policy(client, owner, require_smtp_auth=True, smtp_credentials=f"relay:{PASSWORD}")
    hook = await create(client, owner, receiver, smtp_security_policy_id=policy_id)

    code, output = await run_swaks(
        swaks,
        smtp,
        "--to",
        f"support+swaks@{DOMAIN}",
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "relay",
        "--auth-password",
        PASSWORD,
        "--header",
        "Subject: sent by swaks",
        "--body",
        "Hello from swaks.",
    )

    assert code == 0, output
    assert "250 2.0.0 Ok: queued as eml_" in output
    await jobs.run_until_idle()
    [received] = receiver.received
    payload = verified(hook["secret"], received)
    assert payload["subject"] == "sent by swaks"
    assert payload["text"].strip() == "Hello from swaks."
    assert payload["envelope"]["auth_user"] == "relay"
    assert payload["envelope"]["recipients"][0]["tag"] == "swaks"
