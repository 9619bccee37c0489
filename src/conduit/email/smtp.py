"""The SMTP server of email ingress: aiosmtpd's protocol served from Conduit's own event loop.

What a message means (who a recipient is, which credentials are good, which policy applies, where
the message is stored) is decided by `Hooks`, which the wiring implements. The server's promise:
`250` only once `Hooks.accept` has returned (the message and its delivery jobs are stored), `451`
when storing failed (the sender retries), the policy's own `5xx` when `Hooks.check` refused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, AnyStr, Generic, Protocol, TypeVar, cast

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from conduit.email.message import NormalizedAddress, normalize_recipient
from conduit.kit.clock import utcnow
from conduit.settings import Settings

log = structlog.get_logger("conduit.smtp")

# The greeting names the host and the protocol, never the software or its version.
IDENT = "ESMTP"
# RFC 5321 4.5.3.2.7: a server waits 5 minutes for a command; we apply it to any silence.
IDLE_TIMEOUT_SECONDS = 300.0
# RFC 5321 4.5.3.2.6: a client waits 10 minutes for the reply to the end of DATA.
HOOK_TIMEOUT_SECONDS = 600.0
# RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
MAX_RECIPIENTS = 100
MAX_CONNECTIONS = 200
MAX_AUTH_FAILURES = 3
# RFC 5321 caps lines at 1000 bytes, but mail with longer lines (unwrapped HTML) is common and
# harmless: refusing it would bounce real mail.
MAX_LINE_BYTES = 64 * 1024
TLS_DIRECTORY = "smtp-tls"
SELF_SIGNED_DAYS = 3650

# aiosmtpd's replies that lack the enhanced status code of RFC 3463.
_LIBRARY_REPLIES = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for system",
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message size exceeds fixed maximum message size"
    ),
}
_REPLY = re.compile(r"\A[45]\d\d [45]\.\d{1,3}\.\d{1,3} [^\r\n]+\Z")
_QUEUE_ID = re.compile(r"\A[\x21-\x7e]{1,128}\Z")

RouteT = TypeVar("RouteT")
CheckT = TypeVar("CheckT")


# --- what the hooks see and answer ----------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What a client authenticated with. The password stays in memory for the session only, so
    each recipient's policy can verify it at the end of DATA; it is masked in every repr."""

    username: str
    password: SecretStr


@dataclass(frozen=True)
class SessionFacts:
    remote_ip: str
    remote_port: int
    helo: str | None
    """The EHLO/HELO name, as the client gave it."""
    tls_version: str | None
    """`TLSv1.3`, `TLSv1.2`; None before STARTTLS."""
    tls_cipher: str | None
    credentials: Credentials | None
    """Set once AUTH succeeded (after STARTTLS only)."""

    @property
    def tls(self) -> bool:
        return self.tls_version is not None

    @property
    def auth_user(self) -> str | None:
        return self.credentials.username if self.credentials else None


@dataclass(frozen=True)
class RecipientAddress:
    original: str
    """As given in RCPT TO."""
    normalized: NormalizedAddress
    """Without the plus tag; `normalized.key` is what routing compares."""


@dataclass(frozen=True)
class Recipient(Generic[RouteT]):
    address: RecipientAddress
    route: RouteT
    """What `Hooks.recipient` returned for it."""


@dataclass(frozen=True)
class EnvelopeFacts(Generic[RouteT]):
    session: SessionFacts
    mail_from: str
    """The envelope sender without brackets; empty for the null sender `<>` (bounces)."""
    recipients: tuple[Recipient[RouteT], ...]
    """In RCPT order; two tags of one mailbox are two recipients with one route key."""
    size: int
    received_at: datetime

    def as_dict(self, recipients: tuple[Recipient[RouteT], ...] | None = None) -> dict[str, Any]:
        """The payload's `envelope`. Pass the recipients one webhook owns: the others (Bcc
        included) are no business of that webhook's owner. The password is never in it."""
        chosen = self.recipients if recipients is None else recipients
        session = self.session
        return {
            "from": self.mail_from,
            "to": [recipient.address.original for recipient in chosen],
            "recipients": [
                {
                    "address": recipient.address.original,
                    "routed_to": recipient.address.normalized.address,
                    "tag": recipient.address.normalized.tag,
                }
                for recipient in chosen
            ],
            "remote_ip": session.remote_ip,
            "helo": session.helo,
            "tls": session.tls,
            "tls_version": session.tls_version,
            "tls_cipher": session.tls_cipher,
            "auth_user": session.auth_user,
            "size": self.size,
            "received_at": self.received_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Rejection:
    """A refusal of the whole message, e.g. `550 5.7.1 SPF check failed` or, for a failure the
    sender should retry, `451 4.7.0 ...`."""

    reply: str

    def __post_init__(self) -> None:
        if not _REPLY.match(self.reply):
            raise ValueError(f"not an SMTP reply with an enhanced status code: {self.reply!r}")


@dataclass(frozen=True)
class AcceptResult:
    queue_id: str
    """Named in `250 2.0.0 Ok: queued as <queue_id>`; what the sender's logs will show."""

    def __post_init__(self) -> None:
        if not _QUEUE_ID.match(self.queue_id):
            raise ValueError(f"a queue id is 1 to 128 printable ASCII characters: {self.queue_id!r}")


class Hooks(Protocol[RouteT, CheckT]):
    """What the wiring decides; the server calls these from the event loop it runs in.

    An exception from `recipient`, `check` or `accept` answers `451 4.3.0` (try again later),
    one from `authenticate` answers `454 4.7.0`; both are logged, neither loses a message.
    """

    async def recipient(
        self, address: RecipientAddress, session: SessionFacts, mail_from: str
    ) -> RouteT | Rejection | None:
        """At RCPT: where mail for `address` goes. None answers `550 5.1.1`; a `Rejection` is
        the reply (a policy refusing what it can judge already: source IP, AUTH, SPF)."""
        ...

    async def authenticate(self, username: str, password: str, session: SessionFacts) -> bool:
        """At AUTH (after STARTTLS): False answers `535 5.7.8`. The credentials then travel in
        `session.credentials`, for each recipient's policy to verify in `check`."""
        ...

    async def check(self, envelope: EnvelopeFacts[RouteT], raw: bytes) -> CheckT | Rejection:
        """At the end of DATA, before anything is stored: mail authentication and policies.
        A `Rejection` is the reply; anything else is handed to `accept` (None is fine)."""
        ...

    async def accept(self, envelope: EnvelopeFacts[RouteT], raw: bytes, checked: CheckT) -> AcceptResult:
        """Durably store the message with its delivery jobs (one committed transaction), then
        return; only then does the sender get `250`."""
        ...


# --- the server -----------------------------------------------------------------------------------


class SmtpServer:
    """A listening SMTP server. `close()` stops accepting and ends idle sessions; a session
    storing a message finishes it and gets its reply first. `wait_closed()` waits for all."""

    def __init__(self, server: asyncio.Server, sessions: _Sessions) -> None:
        self._server = server
        self._sessions = sessions
        sockname = server.sockets[0].getsockname()
        self.host: str = sockname[0]
        self.port: int = sockname[1]

    def close(self) -> None:
        self._server.close()
        self._sessions.shut_down()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()
        await self._sessions.wait_empty()


async def start_smtp_server(
    settings: Settings,
    hooks: Hooks[Any, Any],
    *,
    tls_context: ssl.SSLContext | None = None,
    idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    max_recipients: int = MAX_RECIPIENTS,
    max_connections: int = MAX_CONNECTIONS,
    reuse_port: bool = False,
) -> SmtpServer:
    """Listen on `smtp_host:smtp_port` (port 0: any free port, see `.port`) in the running loop.

    `tls_context` defaults to `server_tls_context(settings)`. `reuse_port` lets several processes
    (`conduit serve --workers N`) share the port, the kernel spreading connections among them.
    """
    # aiosmtpd logs every command, and message lines at debug level: message bodies are never logged.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    config = _Config(
        hooks=hooks,
        hostname=smtp_hostname(settings),
        tls_context=tls_context or server_tls_context(settings),
        max_message_bytes=settings.smtp_max_message_bytes,
        idle_timeout=idle_timeout,
        max_recipients=max_recipients,
    )
    sessions = _Sessions()
    refusal = f"421 4.7.0 {config.hostname} Too many connections, try again later\r\n".encode()

    def new_connection() -> asyncio.Protocol:
        if len(sessions) >= max_connections:
            return _Refuse(refusal)
        connection = _Connection(config, sessions, loop)
        sessions.add(connection)
        return connection

    server = await loop.create_server(
        new_connection, settings.smtp_host, settings.smtp_port, reuse_port=reuse_port or None
    )
    smtp = SmtpServer(server, sessions)
    log.info("smtp.listening", host=smtp.host, port=smtp.port, hostname=config.hostname)
    return smtp


def smtp_hostname(settings: Settings) -> str:
    return settings.smtp_hostname or settings.mx_host or "localhost"


@dataclass(frozen=True)
class _Config:
    hooks: Hooks[Any, Any]
    hostname: str
    tls_context: ssl.SSLContext
    max_message_bytes: int
    idle_timeout: float
    max_recipients: int


class _Sessions:
    def __init__(self) -> None:
        self._open: set[_Connection] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: _Connection) -> None:
        self._open.add(connection)
        self._empty.clear()
        if self._shutting_down:
            connection.shut_down()

    def discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        if not self._open:
            self._empty.set()

    def shut_down(self) -> None:
        self._shutting_down = True
        for connection in list(self._open):
            connection.shut_down()

    async def wait_empty(self) -> None:
        await self._empty.wait()


class _Refuse(asyncio.Protocol):
    def __init__(self, reply: bytes) -> None:
        self._reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self._reply)
        transport.close()


class _Session(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.credentials: Credentials | None = None
        self.auth_failures = 0

    # aiosmtpd sets this after every AUTH, and its property logs a deprecation warning each time.
    login_data: Any = None


class _Envelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.recipients: list[Recipient[Any]] = []


class _Connection(SMTP):
    """One SMTP session: aiosmtpd's protocol with our replies, AUTH through the hooks, an idle
    timeout, and a graceful shutdown."""

    line_length_limit = MAX_LINE_BYTES

    def __init__(self, config: _Config, sessions: _Sessions, loop: asyncio.AbstractEventLoop) -> None:
        # aiosmtpd keeps these in a dict shared by every instance, and EHLO grows it.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(
            _Handler(config),
            data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=config.hostname,
            ident=IDENT,
            tls_context=config.tls_context,
            timeout=config.idle_timeout,
            auth_require_tls=True,
            # Only parses the credentials: `_verify` checks them with the async hook.
            authenticator=_parsed_credentials,
            loop=loop,
        )
        self._config = config
        self._sessions = sessions
        self._storing = False
        self._shutting_down = False

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _create_envelope(self) -> Envelope:
        return _Envelope()

    def facts(self) -> SessionFacts:
        session = cast(_Session, self.session)
        host, port = cast(tuple[str, int], session.peer)[:2]
        address = ipaddress.ip_address(host)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        version = cipher = None
        if ssl_object is not None:
            version = ssl_object.version()
            cipher = (ssl_object.cipher() or (None,))[0]
        return SessionFacts(
            remote_ip=str(address),
            remote_port=int(port),
            helo=session.host_name,
            tls_version=version,
            tls_cipher=cipher,
            credentials=session.credentials,
        )

    # -- AUTH: aiosmtpd parses PLAIN and LOGIN, the hook decides ---------------------------------

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, parsed: AuthResult) -> AuthResult:
        if not parsed.success or not isinstance(parsed.auth_data, LoginPassword):
            return parsed
        session = cast(_Session, self.session)
        try:
            username = parsed.auth_data.login.decode("utf-8")
            password = parsed.auth_data.password.decode("utf-8")
        except UnicodeDecodeError:
            return await self._auth_failed(session)
        try:
            accepted = await self._config.hooks.authenticate(username, password, self.facts())
        except Exception:
            log.exception("smtp.auth_error", remote_ip=self.facts().remote_ip)
            await self.push("454 4.7.0 Temporary authentication failure")
            return AuthResult(success=False, handled=True)
        if not accepted:
            return await self._auth_failed(session)
        session.credentials = Credentials(username, SecretStr(password))
        return AuthResult(success=True, auth_data=username)

    async def _auth_failed(self, session: _Session) -> AuthResult:
        session.auth_failures += 1
        if session.auth_failures < MAX_AUTH_FAILURES:
            return AuthResult(success=False, handled=False)  # 535 5.7.8
        await self.push("421 4.7.0 Too many failed authentication attempts")
        if self.transport is not None:
            self.transport.close()
        return AuthResult(success=False, handled=True)

    # -- timeouts, replies, shutdown --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # The timeout is for silence: a large message arriving slowly is not idle. While the
        # hooks store a message, the longer timeout of `storing` holds.
        if not self._storing:
            self._reset_timeout()
        super().data_received(data)

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            status = cast(AnyStr, _LIBRARY_REPLIES.get(status, status))
        await super().push(status)
        if self._shutting_down and not self._storing and self.transport is not None:
            self.transport.close()

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        """While the hooks check and store a message: neither the idle timeout nor a shutdown
        cuts the session before its reply."""
        self._storing = True
        self._reset_timeout(HOOK_TIMEOUT_SECONDS)
        try:
            yield
        finally:
            self._storing = False
            if self.transport is not None:  # a timer armed after the connection is lost would fire on nothing
                self._reset_timeout()

    def shut_down(self) -> None:
        self._shutting_down = True
        if not self._storing and self.transport is not None:
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._sessions.discard(self)


def _parsed_credentials(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=True, auth_data=auth_data)


class _Handler:
    """aiosmtpd's handler hooks: MAIL, RCPT and the end of DATA."""

    def __init__(self, config: _Config) -> None:
        self._config = config

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if not _is_text(address):
            return "553 5.1.7 Bad sender address syntax"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        envelope = cast(_Envelope, envelope)
        if len(envelope.recipients) >= self._config.max_recipients:
            return "452 4.5.3 Too many recipients"
        try:
            normalized = normalize_recipient(address) if _is_text(address) else None
        except ValueError:
            normalized = None
        if normalized is None:
            return "553 5.1.3 Bad recipient address syntax"
        recipient = RecipientAddress(address, normalized)
        mail_from = _sender(envelope)
        route = await self._config.hooks.recipient(recipient, cast(_Connection, server).facts(), mail_from)
        if route is None:
            return "550 5.1.1 No such recipient here"
        if isinstance(route, Rejection):
            return route.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.recipients.append(Recipient(recipient, route))
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        connection = cast(_Connection, server)
        raw = envelope.original_content or b""
        facts = EnvelopeFacts(
            session=connection.facts(),
            mail_from=_sender(envelope),
            recipients=tuple(cast(_Envelope, envelope).recipients),
            size=len(raw),
            received_at=utcnow(),
        )
        context = {"remote_ip": facts.session.remote_ip, "mail_from": facts.mail_from, "size": facts.size}
        with connection.storing():
            try:
                checked = await self._config.hooks.check(facts, raw)
            except Exception:
                log.exception("smtp.check_failed", **context)
                return "451 4.3.0 Temporary failure checking the message, try again later"
            if isinstance(checked, Rejection):
                log.info("smtp.rejected", reply=checked.reply, **context)
                return checked.reply
            try:
                result = await self._config.hooks.accept(facts, raw, checked)
            except Exception:
                log.exception("smtp.store_failed", **context)
                return "451 4.3.0 Temporary failure storing the message, try again later"
        log.info("smtp.accepted", queue_id=result.queue_id, recipients=len(facts.recipients), **context)
        return f"250 2.0.0 Ok: queued as {result.queue_id}"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A failed handshake is the client's doing (old TLS, scanners); aiosmtpd hangs up.
            log.info("smtp.tls_failed", reason=str(error.__cause__ or error))
        else:
            log.error("smtp.error", error=type(error).__name__, exc_info=error)
        return "451 4.3.0 Local error in processing, try again later"


def _sender(envelope: Envelope) -> str:
    """The envelope sender; aiosmtpd keeps the null sender as `<>`."""
    mail_from = envelope.mail_from or ""
    return "" if mail_from == "<>" else mail_from


def _is_text(address: str) -> bool:
    """False for bytes that are not UTF-8 (aiosmtpd keeps them as surrogates)."""
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- TLS ------------------------------------------------------------------------------------------


def server_tls_context(settings: Settings) -> ssl.SSLContext:
    """STARTTLS with the configured certificate, else the self-signed one of the data directory;
    TLS 1.2 or later. Client certificates are not asked for."""
    if (settings.smtp_tls_cert is None) != (settings.smtp_tls_key is None):
        raise ValueError("set both CONDUIT_SMTP_TLS_CERT and CONDUIT_SMTP_TLS_KEY, or neither")
    if settings.smtp_tls_cert is not None and settings.smtp_tls_key is not None:
        cert, key = settings.smtp_tls_cert, settings.smtp_tls_key
    else:
        cert, key = ensure_self_signed_certificate(settings.data_dir / TLS_DIRECTORY, smtp_hostname(settings))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def ensure_self_signed_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """`(cert.pem, key.pem)` in `directory`, generated on first use (key 0600, directory 0700).

    The pair is written to a private directory that is then renamed into place, so processes
    starting together end up sharing one pair, never a key of one with the certificate of another.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        key_pem, cert_pem = _self_signed(hostname)
        _write(staging / "key.pem", key_pem, 0o600)
        _write(staging / "cert.pem", cert_pem, 0o644)
        try:
            staging.rename(directory)
        except OSError:
            if not (cert.exists() and key.exists()):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cert, key


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        alt_name = x509.DNSName(hostname)
    # A common name is at most 64 characters; the subject alternative name is what clients check.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = utcnow()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)
