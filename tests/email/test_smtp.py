"""The SMTP server against real clients on loopback (Python's smtplib, swaks): STARTTLS, AUTH,
routing, limits, and when the sender hears `250`. In-test hooks stand in for the wiring."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
import structlog.testing
from cryptography import x509

from conduit.email.message import parse_message
from conduit.email.smtp import (
    AcceptResult,
    EnvelopeFacts,
    RecipientAddress,
    Rejection,
    SessionFacts,
    SmtpServer,
    ensure_self_signed_certificate,
    server_tls_context,
    start_smtp_server,
)
from conduit.settings import Settings
from tests.email.support import message

HOSTNAME = "mx.test.example"
CLIENT_NAME = "client.test"
PASSWORD = "correct horse battery staple"
BOB = "bob@inbound.example.net"
MAX_BYTES = 64 * 1024
INSTALL_SWAKS = Path(__file__).resolve().parents[2] / "scripts" / "install-swaks.sh"
T = TypeVar("T")


class Hooks:
    """Routes two mailboxes, knows one user, records the order of what happens."""

    def __init__(self) -> None:
        self.mailboxes = {BOB, "carol@inbound.example.net", "dave@strict.example.net"}
        self.users = {"alice": PASSWORD}
        self.events: list[str] = []
        self.stored: list[tuple[EnvelopeFacts[str], bytes]] = []
        self.rejection: Rejection | None = None
        self.store_error: Exception | None = None
        self.storing = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def recipient(
        self, address: RecipientAddress, session: SessionFacts, mail_from: str
    ) -> str | Rejection | None:
        self.events.append(f"rcpt:{mail_from}")
        if address.normalized.domain == "strict.example.net" and session.auth_user is None:
            return Rejection("550 5.7.1 Authentication required by this recipient's policy")
        key = address.normalized.key
        return key if key in self.mailboxes else None

    async def authenticate(self, username: str, password: str, session: SessionFacts) -> bool:
        self.events.append(f"auth:{username}")
        return self.users.get(username) == password

    async def check(self, envelope: EnvelopeFacts[str], raw: bytes) -> Rejection | None:
        self.events.append("check")
        return self.rejection

    async def accept(self, envelope: EnvelopeFacts[str], raw: bytes, checked: None) -> AcceptResult:
        self.events.append("store:start")
        self.storing.set()
        if self.release is not None:
            await self.release.wait()
        if self.store_error is not None:
            raise self.store_error
        self.stored.append((envelope, raw))
        self.events.append("store:done")
        return AcceptResult(f"msg{len(self.stored)}")


@pytest.fixture
def smtp_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=0,
        smtp_hostname=HOSTNAME,
        smtp_max_message_bytes=MAX_BYTES,
    )


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


async def started(settings: Settings, hooks: Hooks, **options: Any) -> SmtpServer:
    return await start_smtp_server(settings, hooks, **options)


async def stop(server: SmtpServer) -> None:
    server.close()
    await asyncio.wait_for(server.wait_closed(), 10)


@pytest.fixture
async def server(smtp_settings: Settings, hooks: Hooks) -> AsyncIterator[SmtpServer]:
    server = await started(smtp_settings, hooks)
    yield server
    await stop(server)


def tls_client_context(settings: Settings) -> ssl.SSLContext:
    """Trusts exactly the server's self-signed certificate."""
    context = ssl.create_default_context(cafile=settings.data_dir / "smtp-tls" / "cert.pem")
    context.check_hostname = False  # we connect to 127.0.0.1; the chain is still verified
    return context


def connect(server: SmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.port, local_hostname=CLIENT_NAME, timeout=10)


def secure(client: smtplib.SMTP, settings: Settings) -> smtplib.SMTP:
    client.ehlo()
    client.starttls(context=tls_client_context(settings))
    client.ehlo()
    return client


async def in_thread(call: Callable[[], T]) -> T:
    """Blocking clients run in a thread so the server keeps running in this loop."""
    return await asyncio.to_thread(call)


def send(
    client: smtplib.SMTP, raw: bytes, *, sender: str = "alice@example.org", to: str = BOB
) -> tuple[int, bytes]:
    assert client.mail(sender)[0] == 250
    assert client.rcpt(to)[0] == 250
    return client.data(raw)


# --- greeting, EHLO, TLS, AUTH ------------------------------------------------------------------


async def test_banner_and_ehlo_name_the_host_and_no_software(server: SmtpServer) -> None:
    def talk() -> tuple[bytes, tuple[int, bytes], tuple[int, bytes]]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw_socket:
            banner = raw_socket.makefile("rb").readline()
        with connect(server) as client:
            return banner, client.ehlo(), client.docmd("HELP")

    banner, (ehlo_code, ehlo), (_, help_text) = await in_thread(talk)
    assert banner == f"220 {HOSTNAME} ESMTP\r\n".encode()
    assert ehlo_code == 250
    lines = ehlo.decode().splitlines()
    assert lines[0] == HOSTNAME
    assert f"SIZE {MAX_BYTES}" in lines
    assert "STARTTLS" in lines
    assert not any(line.startswith("AUTH") for line in lines)
    for text in (banner, ehlo, help_text):
        assert b"Python" not in text
        assert b"aiosmtpd" not in text.lower()


async def test_auth_only_after_starttls(server: SmtpServer, smtp_settings: Settings, hooks: Hooks) -> None:
    credentials = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()

    def talk() -> tuple[tuple[int, bytes], list[str], tuple[int, bytes]]:
        with connect(server) as client:
            client.ehlo()
            before = client.docmd("AUTH", f"PLAIN {credentials}")
            secure(client, smtp_settings)
            advertised = client.esmtp_features.get("auth", "").split()
            return before, advertised, client.docmd("AUTH", f"PLAIN {credentials}")

    before, advertised, after = await in_thread(talk)
    assert before[0] == 538
    assert before[1].startswith(b"5.7.11")
    assert sorted(advertised) == ["LOGIN", "PLAIN"]
    assert after == (235, b"2.7.0 Authentication successful")
    assert hooks.events == ["auth:alice"]


async def test_starttls_auth_plain_and_the_envelope_facts(
    server: SmtpServer, smtp_settings: Settings, hooks: Hooks
) -> None:
    raw = message()

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            secure(client, smtp_settings)
            client.login("alice", PASSWORD)  # smtplib picks PLAIN of the two offered
            return send(client, raw, to="Bob+Invoices@Inbound.Example.NET")

    assert await in_thread(talk) == (250, b"2.0.0 Ok: queued as msg1")
    [(envelope, stored_raw)] = hooks.stored
    assert stored_raw == raw
    session = envelope.session
    assert session.remote_ip == "127.0.0.1"
    assert session.helo == CLIENT_NAME
    assert session.tls_version in ("TLSv1.2", "TLSv1.3")
    assert session.tls_cipher
    assert session.auth_user == "alice"
    assert session.credentials is not None
    assert session.credentials.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(envelope)
    assert envelope.mail_from == "alice@example.org"
    assert envelope.size == len(raw)
    [recipient] = envelope.recipients
    assert recipient.route == BOB
    assert recipient.address.original == "Bob+Invoices@Inbound.Example.NET"
    assert tuple(recipient.address.normalized) == ("Bob", "inbound.example.net", "Invoices")

    facts = envelope.as_dict()
    assert PASSWORD not in str(facts)
    assert facts | {"received_at": None, "tls_version": None, "tls_cipher": None} == {
        "from": "alice@example.org",
        "to": ["Bob+Invoices@Inbound.Example.NET"],
        "recipients": [
            {
                "address": "Bob+Invoices@Inbound.Example.NET",
                "routed_to": "Bob@inbound.example.net",
                "tag": "Invoices",
            }
        ],
        "remote_ip": "127.0.0.1",
        "helo": CLIENT_NAME,
        "tls": True,
        "tls_version": None,
        "tls_cipher": None,
        "auth_user": "alice",
        "size": len(raw),
        "received_at": None,
    }
    assert facts["received_at"].endswith("Z")


async def test_auth_login_with_and_without_initial_response(
    server: SmtpServer, smtp_settings: Settings, hooks: Hooks
) -> None:
    def login(initial_response: bool) -> tuple[int, bytes]:
        with connect(server) as client:
            secure(client, smtp_settings)
            client.user, client.password = "alice", PASSWORD
            return client.auth("LOGIN", client.auth_login, initial_response_ok=initial_response)

    assert await in_thread(lambda: login(True)) == (235, b"2.7.0 Authentication successful")
    assert await in_thread(lambda: login(False)) == (235, b"2.7.0 Authentication successful")


async def test_wrong_credentials_535_and_the_third_failure_ends_the_session(
    server: SmtpServer, smtp_settings: Settings
) -> None:
    def talk() -> list[Any]:
        replies: list[Any] = []
        with connect(server) as client:
            secure(client, smtp_settings)
            for password in ("wrong", "wronger", "wrongest"):
                blob = base64.b64encode(f"\0alice\0{password}".encode()).decode()
                replies.append(client.docmd("AUTH", f"PLAIN {blob}"))
            try:
                client.noop()
            except smtplib.SMTPServerDisconnected:
                replies.append("disconnected")
        return replies

    first, second, third, after = await in_thread(talk)
    assert first == second == (535, b"5.7.8 Authentication credentials invalid")
    assert third == (421, b"4.7.0 Too many failed authentication attempts")
    assert after == "disconnected"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_is_1_2_or_later(server: SmtpServer, smtp_settings: Settings) -> None:
    assert server_tls_context(smtp_settings).minimum_version == ssl.TLSVersion.TLSv1_2
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1

    def talk() -> None:
        with connect(server) as client:
            client.ehlo()
            client.starttls(context=old)

    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        await in_thread(talk)


# --- recipients -------------------------------------------------------------------------------


async def test_unknown_recipient_550_at_rcpt_and_the_others_still_get_the_message(
    server: SmtpServer, hooks: Hooks
) -> None:
    def talk() -> tuple[Any, Any, Any]:
        with connect(server) as client:
            client.ehlo()
            client.mail("alice@example.org")
            unknown = client.rcpt("nobody@inbound.example.net")
            known = client.rcpt("carol@inbound.example.net")
            return unknown, known, client.data(message())

    unknown, known, data = await in_thread(talk)
    assert unknown == (550, b"5.1.1 No such recipient here")
    assert known == (250, b"2.1.5 Ok")
    assert data[0] == 250
    [(envelope, _)] = hooks.stored
    assert [recipient.route for recipient in envelope.recipients] == ["carol@inbound.example.net"]


async def test_a_policy_can_refuse_a_recipient_at_rcpt(
    server: SmtpServer, smtp_settings: Settings, hooks: Hooks
) -> None:
    def talk() -> tuple[Any, Any]:
        with connect(server) as client:
            client.ehlo()
            client.mail("alice@example.org")
            anonymous = client.rcpt("dave@strict.example.net")
            client.rset()
            secure(client, smtp_settings)
            client.login("alice", PASSWORD)
            client.mail("alice@example.org")
            return anonymous, client.rcpt("dave@strict.example.net")

    anonymous, authenticated = await in_thread(talk)
    assert anonymous == (550, b"5.7.1 Authentication required by this recipient's policy")
    assert authenticated == (250, b"2.1.5 Ok")


async def test_plus_tags_of_one_mailbox_route_to_it(server: SmtpServer, hooks: Hooks) -> None:
    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            client.mail("alice@example.org")
            for address in (
                "bob+a@inbound.example.net",
                "BOB@INBOUND.EXAMPLE.NET",
                "bob+@inbound.example.net",
            ):
                assert client.rcpt(address)[0] == 250
            assert client.rcpt("bobby+bob@inbound.example.net")[0] == 550
            return client.data(message())

    assert (await in_thread(talk))[0] == 250
    [(envelope, _)] = hooks.stored
    assert [(r.route, r.address.normalized.tag) for r in envelope.recipients] == [
        (BOB, "a"),
        (BOB, None),
        (BOB, ""),
    ]
    only_first = envelope.as_dict(envelope.recipients[:1])
    assert only_first["to"] == ["bob+a@inbound.example.net"]


async def test_bad_recipient_syntax_553(server: SmtpServer) -> None:
    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            client.mail("alice@example.org")
            return client.rcpt("bob@exa mple..net")

    code, _ = await in_thread(talk)
    assert code in (501, 553)


async def test_too_many_recipients_452(smtp_settings: Settings, hooks: Hooks) -> None:
    server = await started(smtp_settings, hooks, max_recipients=2)
    try:

        def talk() -> list[tuple[int, bytes]]:
            with connect(server) as client:
                client.ehlo()
                client.mail("alice@example.org")
                return [
                    client.rcpt(to) for to in (BOB, "carol@inbound.example.net", "bob+x@inbound.example.net")
                ]

        replies = await in_thread(talk)
    finally:
        await stop(server)
    assert [code for code, _ in replies] == [250, 250, 452]
    assert replies[2][1] == b"4.5.3 Too many recipients"


async def test_null_sender_is_accepted_as_empty(server: SmtpServer, hooks: Hooks) -> None:
    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            assert client.docmd("MAIL", "FROM:<>")[0] == 250
            assert client.rcpt(BOB)[0] == 250
            return client.data(message(from_="MAILER-DAEMON@example.org"))

    assert (await in_thread(talk))[0] == 250
    assert hooks.stored[0][0].mail_from == ""


async def test_internationalized_addresses_with_smtputf8(server: SmtpServer, hooks: Hooks) -> None:
    hooks.mailboxes.add("jürgen@xn--bcher-kva.example")

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            assert client.has_extn("smtputf8")
            assert client.mail("ålice@exämple.org", ["SMTPUTF8"])[0] == 250
            assert client.rcpt("Jürgen+Rechnungen@Bücher.example")[0] == 250
            return client.data(message())

    assert (await in_thread(talk))[0] == 250
    [(envelope, _)] = hooks.stored
    assert envelope.mail_from == "ålice@exämple.org"
    assert envelope.recipients[0].address.normalized == ("Jürgen", "xn--bcher-kva.example", "Rechnungen")


async def test_message_bodies_and_passwords_are_never_logged(
    server: SmtpServer, smtp_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "confidential-body-marker-4711"

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            secure(client, smtp_settings)
            client.login("alice", PASSWORD)
            return send(client, message(body=f"{marker}\r\n"))

    with structlog.testing.capture_logs() as events:
        assert (await in_thread(talk))[0] == 250
    output = caplog.text + repr(events)
    assert "smtp.accepted" in output
    assert marker not in output
    assert PASSWORD not in output


# --- size -----------------------------------------------------------------------------------------


async def test_oversize_552_declared_or_not_and_the_session_goes_on(server: SmtpServer, hooks: Hooks) -> None:
    padding = MAX_BYTES - len(message(body=""))
    line = "z" * 998 + "\r\n"
    exactly = message(body=line * (padding // len(line)) + "z" * (padding % len(line) - 2) + "\r\n")
    assert len(exactly) == MAX_BYTES
    big = exactly + b"z\r\n"

    def talk() -> tuple[Any, Any, Any]:
        with connect(server) as client:
            client.ehlo()
            declared = client.mail("alice@example.org", [f"SIZE={len(big)}"])
            client.rset()
            client.mail("alice@example.org")
            client.rcpt(BOB)
            undeclared = client.data(big)
            return declared, undeclared, send(client, exactly)

    declared, undeclared, at_the_limit = await in_thread(talk)
    assert declared[0] == 552
    assert declared[1].startswith(b"5.3.4 ")
    assert undeclared == (552, b"5.3.4 Message too big for system")
    assert at_the_limit == (250, b"2.0.0 Ok: queued as msg1")
    assert hooks.stored[0][1] == exactly


# --- the end of DATA: check, store, reply -------------------------------------------------------


async def test_lines_longer_than_rfc_5321_allows_are_received(server: SmtpServer, hooks: Hooks) -> None:
    """Unwrapped HTML from careless senders is still mail someone wants."""
    raw = message(body="<p>" + "word " * 2000 + "</p>\r\n")

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            return send(client, raw)

    assert (await in_thread(talk))[0] == 250
    assert hooks.stored[0][1] == raw


async def test_250_only_after_the_message_is_stored(server: SmtpServer, hooks: Hooks) -> None:
    hooks.release = asyncio.Event()

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            reply = send(client, message())
            hooks.events.append("client:reply")
            return reply

    client = asyncio.ensure_future(in_thread(talk))
    await asyncio.wait_for(hooks.storing.wait(), 10)
    await asyncio.sleep(0.3)
    assert not client.done(), "the client heard back while the message was being stored"
    hooks.release.set()
    assert await client == (250, b"2.0.0 Ok: queued as msg1")
    assert hooks.events == ["rcpt:alice@example.org", "check", "store:start", "store:done", "client:reply"]


async def test_451_when_storing_fails(server: SmtpServer, hooks: Hooks) -> None:
    hooks.store_error = RuntimeError("database is down")

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            return send(client, message())

    code, text = await in_thread(talk)
    assert code == 451
    assert text.startswith(b"4.3.0 ")
    assert b"database" not in text
    assert hooks.stored == []


async def test_a_policy_rejection_is_the_reply_and_nothing_is_stored(
    server: SmtpServer, hooks: Hooks
) -> None:
    hooks.rejection = Rejection("550 5.7.23 SPF validation failed for example.org")

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            return send(client, message())

    assert await in_thread(talk) == (550, b"5.7.23 SPF validation failed for example.org")
    assert hooks.events == ["rcpt:alice@example.org", "check"]


def test_rejections_and_queue_ids_cannot_inject_lines() -> None:
    with pytest.raises(ValueError):
        Rejection("550 5.7.1 nope\r\n250 2.0.0 Ok")
    with pytest.raises(ValueError):
        Rejection("250 2.0.0 fine")
    with pytest.raises(ValueError):
        AcceptResult("id with spaces")


# --- sessions: timeouts, limits, shutdown ---------------------------------------------------------


async def test_an_idle_session_is_closed(smtp_settings: Settings, hooks: Hooks) -> None:
    server = await started(smtp_settings, hooks, idle_timeout=0.5)
    try:

        def talk() -> bytes:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw_socket:
                reader = raw_socket.makefile("rb")
                reader.readline()
                return reader.read()  # returns once the server hangs up

        assert await asyncio.wait_for(in_thread(talk), 5) == b""
    finally:
        await stop(server)


async def test_a_slow_message_is_not_idle(smtp_settings: Settings, hooks: Hooks) -> None:
    """The timeout counts silence, not the whole transfer: a message trickling in for longer
    than the timeout, a line at a time, is received."""
    server = await started(smtp_settings, hooks, idle_timeout=0.6)
    try:

        def talk() -> bytes:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw_socket:
                reader = raw_socket.makefile("rb")
                reader.readline()
                for command in (
                    b"HELO client.test",
                    b"MAIL FROM:<alice@example.org>",
                    f"RCPT TO:<{BOB}>".encode(),
                ):
                    raw_socket.sendall(command + b"\r\n")
                    reader.readline()
                raw_socket.sendall(b"DATA\r\n")
                reader.readline()
                for line in [*message().splitlines(keepends=True), b".\r\n"]:
                    time.sleep(0.2)
                    raw_socket.sendall(line)
                return reader.readline()

        assert await in_thread(talk) == b"250 2.0.0 Ok: queued as msg1\r\n"
    finally:
        await stop(server)


async def test_connections_beyond_the_limit_get_421(smtp_settings: Settings, hooks: Hooks) -> None:
    server = await started(smtp_settings, hooks, max_connections=1)
    try:

        def talk() -> bytes:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as first:
                first.makefile("rb").readline()
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as second:
                    return second.makefile("rb").readline()

        assert (await in_thread(talk)).startswith(b"421 4.7.0 ")
    finally:
        await stop(server)


async def test_close_lets_the_message_being_stored_finish(smtp_settings: Settings, hooks: Hooks) -> None:
    server = await started(smtp_settings, hooks)
    hooks.release = asyncio.Event()

    def talk() -> tuple[int, bytes]:
        with connect(server) as client:
            client.ehlo()
            return send(client, message())

    client = asyncio.ensure_future(in_thread(talk))
    await asyncio.wait_for(hooks.storing.wait(), 10)
    server.close()
    closed = asyncio.ensure_future(server.wait_closed())
    await asyncio.sleep(0.2)
    assert not closed.done()
    hooks.release.set()
    assert await client == (250, b"2.0.0 Ok: queued as msg1")
    await asyncio.wait_for(closed, 10)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


# --- certificates ---------------------------------------------------------------------------------


def test_self_signed_certificate_is_generated_once_with_a_private_key(tmp_path: Path) -> None:
    directory = tmp_path / "smtp-tls"
    cert, key = ensure_self_signed_certificate(directory, "mx.example.net")
    first = cert.read_bytes(), key.read_bytes()
    assert ensure_self_signed_certificate(directory, "other.example") == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == first
    assert key.stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o077 == 0
    certificate = x509.load_pem_x509_certificate(first[0])
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mx.example.net"]
    assert [p.name for p in tmp_path.iterdir()] == ["smtp-tls"]  # no staging left behind


async def test_a_configured_certificate_is_served(tmp_path: Path, hooks: Hooks) -> None:
    cert, key = ensure_self_signed_certificate(tmp_path / "operator", "mail.operator.example")
    settings = Settings(
        data_dir=tmp_path / "data", smtp_port=0, smtp_tls_cert=cert, smtp_tls_key=key, smtp_hostname=HOSTNAME
    )
    server = await started(settings, hooks)
    try:

        def talk() -> dict[str, Any]:
            context = ssl.create_default_context(cafile=cert)
            context.check_hostname = False
            with connect(server) as client:
                client.ehlo()
                client.starttls(context=context)
                peer = client.sock.getpeercert()  # type: ignore[union-attr]
                assert peer is not None
                return dict(peer)

        peer = await in_thread(talk)
    finally:
        await stop(server)
    assert ("DNS", "mail.operator.example") in peer["subjectAltName"]
    assert not (tmp_path / "data" / "smtp-tls").exists()


def test_a_certificate_without_its_key_is_an_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, smtp_tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValueError, match="CONDUIT_SMTP_TLS_KEY"):
        server_tls_context(settings)


# --- swaks ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def swaks() -> str:
    if shutil.which("swaks") is None or _swaks_lacks_tls():
        result = subprocess.run(["bash", str(INSTALL_SWAKS)], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            pytest.skip(
                f"swaks could not be installed by {INSTALL_SWAKS.name}: {result.stderr.strip()[-300:]}"
            )
    path = shutil.which("swaks")
    if path is None or _swaks_lacks_tls():
        pytest.skip("swaks with TLS support is not available after running scripts/install-swaks.sh")
    return path


def _swaks_lacks_tls() -> bool:
    result = subprocess.run(["swaks", "--support"], capture_output=True, text=True, timeout=30)
    return "TLS supported" not in result.stdout + result.stderr


async def run_swaks(swaks: str, server: SmtpServer, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        swaks,
        "--server",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--ehlo",
        CLIENT_NAME,
        "--from",
        "alice@example.org",
        "--timeout",
        "10",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return await process.wait(), output.decode(errors="replace")


async def test_swaks_starttls_auth_plain_with_attachments(
    swaks: str, server: SmtpServer, hooks: Hooks, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 quarterly numbers\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("Grüße aus Köln\n", encoding="utf-8")
    code, output = await run_swaks(
        swaks,
        server,
        "--to",
        "bob+reports@inbound.example.net",
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        PASSWORD,
        "--header",
        "Subject: Quarterly report",
        "--body",
        "Numbers attached.",
        "--attach-type",
        "application/pdf",
        "--attach-name",
        "report.pdf",
        "--attach",
        f"@{report}",
        "--attach-type",
        "text/plain",
        "--attach-name",
        "notes.txt",
        "--attach",
        f"@{notes}",
    )
    assert code == 0, output
    assert "250 2.0.0 Ok: queued as msg1" in output
    assert "235 2.7.0 Authentication successful" in output
    [(envelope, raw)] = hooks.stored
    assert envelope.session.tls
    assert envelope.session.auth_user == "alice"
    assert envelope.recipients[0].address.normalized.tag == "reports"
    parsed = parse_message(raw)
    assert parsed["subject"] == "Quarterly report"
    assert parsed["text"].strip() == "Numbers attached."
    attachments = {item["filename"]: item for item in parsed["attachments"]}
    assert base64.b64decode(attachments["report.pdf"]["content_base64"]) == report.read_bytes()
    assert attachments["report.pdf"]["content_type"] == "application/pdf"
    assert base64.b64decode(attachments["notes.txt"]["content_base64"]) == notes.read_bytes()


async def test_swaks_auth_login(swaks: str, server: SmtpServer, hooks: Hooks) -> None:
    code, output = await run_swaks(
        swaks,
        server,
        "--to",
        BOB,
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice",
        "--auth-password",
        PASSWORD,
    )
    assert code == 0, output
    assert hooks.stored[0][0].session.auth_user == "alice"


async def test_swaks_auth_without_tls_is_not_offered(swaks: str, server: SmtpServer, hooks: Hooks) -> None:
    code, output = await run_swaks(
        swaks, server, "--to", BOB, "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", PASSWORD
    )
    assert code != 0
    assert "STARTTLS" in output
    assert hooks.stored == []
    assert hooks.events == []


async def test_swaks_unknown_recipient(swaks: str, server: SmtpServer, hooks: Hooks) -> None:
    code, output = await run_swaks(swaks, server, "--to", "nobody@inbound.example.net", "--tls")
    assert code != 0
    assert "550 5.1.1 No such recipient here" in output
    assert hooks.stored == []
