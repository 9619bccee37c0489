"""Outbound email (password resets, invitations), sent by a job after the request commits.

With an SMTP relay configured, messages go through it. Without one, each message is written as
an `.eml` file under `<data dir>/outbox/` and its path is logged, so a self-hosted operator can
always complete a reset. Bodies carry one-time links, so they are sealed while queued and never
logged.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.kit.clock import utcnow
from conduit.kit.jobs import JobContext, enqueue, registry
from conduit.kit.security import Keyring
from conduit.settings import Settings

log = structlog.get_logger("conduit.mail")

SEAL_CONTEXT = "mail-body"


def queue_email(session: AsyncSession, keyring: Keyring, *, to: str, subject: str, text: str) -> None:
    # Refused here, in the request, rather than as a job that can never be sent and dies later.
    if any(c in value for value in (to, subject) for c in "\r\n"):
        raise ValueError("email recipient and subject must be a single line")
    enqueue(
        session,
        "mail.send",
        {"to": to, "subject": subject, "body": keyring.seal(text, context=SEAL_CONTEXT)},
    )


def build_message(settings: Settings, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = utcnow().strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["Message-ID"] = make_msgid(domain="conduit.local")
    message.set_content(text)
    return message


def _send_via_relay(settings: Settings, message: EmailMessage) -> None:
    assert settings.smtp_relay_host
    with smtplib.SMTP(settings.smtp_relay_host, settings.smtp_relay_port, timeout=30) as smtp:
        if settings.smtp_relay_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_relay_username and settings.smtp_relay_password:
            smtp.login(settings.smtp_relay_username, settings.smtp_relay_password.get_secret_value())
        smtp.send_message(message)


def write_to_outbox(settings: Settings, message: EmailMessage, name: str) -> Path:
    outbox = settings.data_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{name}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(bytes(message))
    return path


async def deliver(settings: Settings, message: EmailMessage, name: str) -> None:
    """Send through the relay, or write to the outbox when none is configured."""
    if settings.smtp_relay_host:
        await asyncio.to_thread(_send_via_relay, settings, message)
        log.info("mail_sent", relay=settings.smtp_relay_host, subject=message["Subject"])
    else:
        path = write_to_outbox(settings, message, name)
        log.info(
            "mail_written",
            path=str(path.resolve()),
            subject=message["Subject"],
            hint="no SMTP relay configured (CONDUIT_SMTP_RELAY_HOST); open the .eml file",
        )


@registry.handler("mail.send", max_attempts=10)
async def send_mail(ctx: JobContext) -> None:
    settings = ctx.runtime.settings
    text = ctx.runtime.keyring.unseal(ctx.payload["body"], context=SEAL_CONTEXT)
    await deliver(settings, build_message(settings, ctx.payload["to"], ctx.payload["subject"], text), ctx.id)
