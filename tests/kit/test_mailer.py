"""Outbound mail: queued as a sealed job, delivered to an SMTP relay or written to the outbox."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr
from sqlalchemy import select, text

from conduit.kit import mailer
from conduit.kit.jobs import DONE, PENDING, Job, JobWorker
from conduit.kit.runtime import Runtime

TO = "ada@example.com"
SUBJECT = "Reset your Conduit password"
BODY = "Open https://conduit.example/reset?token=cnd_pr_Zq8TESTONLYresetTOKEN to choose a new password."


@dataclass
class RelayInbox:
    """A real SMTP server on 127.0.0.1, in the test's event loop."""

    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((mechanism, data.login, data.password))
        return AuthResult(success=data.password == b"relay-password")

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].original_content
        assert content is not None
        parsed = BytesParser(policy=policy.default).parsebytes(content)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
async def relay() -> AsyncIterator[RelayInbox]:
    inbox = RelayInbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="relay.test", authenticator=inbox.authenticate, auth_require_tls=False),
        "127.0.0.1",
        0,
    )
    inbox.port = server.sockets[0].getsockname()[1]
    yield inbox
    server.close()
    await server.wait_closed()


def relay_runtime(runtime: Runtime, port: int, **overrides: Any) -> Runtime:
    settings = runtime.settings.model_copy(
        update={
            "smtp_relay_host": "127.0.0.1",
            "smtp_relay_port": port,
            "smtp_relay_starttls": False,
            **overrides,
        }
    )
    return Runtime(settings=settings, db=runtime.db, keyring=runtime.keyring)


async def queue(runtime: Runtime, *, to: str = TO, subject: str = SUBJECT, body: str = BODY) -> str:
    async with runtime.db.session() as session:
        mailer.queue_email(session, runtime.keyring, to=to, subject=subject, text=body)
    async with runtime.db.session(write=False) as session:
        job_id = await session.scalar(
            select(Job.id).where(Job.kind == "mail.send").order_by(Job.created_at.desc())
        )
    assert job_id is not None
    return job_id


def outbox_file(runtime: Runtime, job_id: str) -> Path:
    [path] = (runtime.settings.data_dir / "outbox").glob(f"*-{job_id}.eml")
    return path


async def job_status(runtime: Runtime, job_id: str) -> Job:
    async with runtime.db.session(write=False) as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def test_without_relay_the_message_is_written_to_the_outbox(
    runtime: Runtime, worker: JobWorker
) -> None:
    assert runtime.settings.smtp_relay_host is None
    job_id = await queue(runtime)

    assert await worker.run_until_idle() == 1

    path = outbox_file(runtime, job_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    assert message["To"] == TO
    assert message["Subject"] == SUBJECT
    assert message["From"] == runtime.settings.mail_from
    assert message["Message-ID"]
    assert message["Date"]
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().rstrip("\r\n") == BODY
    assert (await job_status(runtime, job_id)).status == DONE


async def test_queued_body_is_sealed_in_the_jobs_table(runtime: Runtime) -> None:
    job_id = await queue(runtime)

    async with runtime.db.session(write=False) as session:
        raw_payload = str(
            await session.scalar(text("SELECT payload FROM jobs WHERE id = :id"), {"id": job_id})
        )
    assert "cnd_pr_Zq8TESTONLYresetTOKEN" not in raw_payload
    assert "conduit.example/reset" not in raw_payload
    payload = (await job_status(runtime, job_id)).payload
    assert payload["to"] == TO
    assert runtime.keyring.unseal(payload["body"], context=mailer.SEAL_CONTEXT) == BODY


async def test_header_injection_is_refused_when_queued(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        with pytest.raises(ValueError, match="single line"):
            mailer.queue_email(
                session, runtime.keyring, to=TO, subject="Hello\r\nBcc: everyone@example.com", text=BODY
            )
        with pytest.raises(ValueError, match="single line"):
            mailer.queue_email(
                session, runtime.keyring, to=f"{TO}\nBcc: everyone@example.com", subject="Hi", text=BODY
            )


async def test_with_a_relay_the_message_reaches_the_smtp_server(runtime: Runtime, relay: RelayInbox) -> None:
    relayed = relay_runtime(runtime, relay.port)
    job_id = await queue(relayed)

    assert await JobWorker(relayed).run_until_idle() == 1

    [envelope] = relay.envelopes
    assert envelope.mail_from == "conduit@localhost"
    assert envelope.rcpt_tos == [TO]
    message = relay.message()
    assert message["Subject"] == SUBJECT
    assert message["To"] == TO
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().rstrip("\r\n") == BODY
    assert relay.logins == []
    assert list((runtime.settings.data_dir / "outbox").glob(f"*-{job_id}.eml")) == []
    assert (await job_status(runtime, job_id)).status == DONE


async def test_relay_credentials_are_used(runtime: Runtime, relay: RelayInbox) -> None:
    relayed = relay_runtime(
        runtime, relay.port, smtp_relay_username="conduit", smtp_relay_password=SecretStr("relay-password")
    )
    await queue(relayed)

    assert await JobWorker(relayed).run_until_idle() == 1

    assert [(login, password) for _, login, password in relay.logins] == [(b"conduit", b"relay-password")]
    assert len(relay.envelopes) == 1


async def test_unreachable_relay_leaves_the_mail_queued_for_retry(runtime: Runtime) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    relayed = relay_runtime(runtime, closed_port)
    job_id = await queue(relayed)

    assert await JobWorker(relayed).run_until_idle() == 1

    job = await job_status(runtime, job_id)
    assert job.status == PENDING
    assert job.last_error is not None
    assert job.last_error.startswith("ConnectionRefusedError")
    assert BODY not in job.last_error
