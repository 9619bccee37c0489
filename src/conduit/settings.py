"""Every setting Conduit reads, from `CONDUIT_*` environment variables or a `.env` file.

Each setting has a safe default for the embedded single-process mode. `describe()` feeds
`conduit settings`: every value with where it came from, secrets masked.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CONDUIT_"
SECRET_KEY_FILE = "secret.key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(Path(".conduit"), description="Directory for the SQLite file, keys and outbox")
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default: SQLite file in the data directory"
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to")
    port: int = Field(8080, description="Port the HTTP server listens on")
    workers: int = Field(1, ge=1, description="HTTP worker processes")
    public_url: str | None = Field(
        None, description="Base URL users reach Conduit at; default from host/port"
    )
    secret_key: SecretStr | None = Field(
        None, description="Key for signing and encryption; generated into the data directory when unset"
    )
    auto_migrate: bool = Field(True, description="Apply database migrations when the server starts")
    log_level: str = Field("info", description="Log level: debug, info, warning, error")
    log_json: bool = Field(True, description="Write logs as JSON lines")
    forwarded_allow_ips: str = Field(
        "127.0.0.1", description="Proxies trusted for X-Forwarded-For (comma-separated, or *)"
    )

    run_jobs: bool = Field(True, description="Run the job workers inside `conduit serve`")
    job_concurrency: int = Field(4, ge=1, description="Jobs run at once per process")
    job_poll_seconds: float = Field(1.0, gt=0, description="How often idle workers look for due jobs")

    access_token_ttl_seconds: int = Field(900, ge=60, description="Lifetime of access tokens (JWT)")
    refresh_token_ttl_days: int = Field(30, ge=1, description="Lifetime of refresh tokens")
    refresh_reuse_grace_seconds: int = Field(
        10, ge=0, description="Window in which a just-spent refresh token may be replayed (lost response)"
    )
    password_reset_ttl_minutes: int = Field(60, ge=5, description="Lifetime of password reset tokens")
    login_max_failures_per_account: int = Field(
        10, ge=1, description="Failed sign-ins per account before it is locked for the window"
    )
    login_max_failures_per_ip: int = Field(
        50, ge=1, description="Failed sign-ins per client IP before it is locked for the window"
    )
    login_failure_window_seconds: int = Field(900, ge=60, description="Window for counting failed sign-ins")
    audit_retention_days: int = Field(180, ge=1, description="Audit log entries older than this are purged")

    mail_from: str = Field("Conduit <conduit@localhost>", description="From address of outbound email")
    smtp_relay_host: str | None = Field(
        None, description="SMTP relay for outbound email; unset: messages are written as .eml files"
    )
    smtp_relay_port: int = Field(587, description="SMTP relay port")
    smtp_relay_username: str | None = Field(None, description="SMTP relay user")
    smtp_relay_password: SecretStr | None = Field(None, description="SMTP relay password")
    smtp_relay_starttls: bool = Field(True, description="Use STARTTLS with the SMTP relay")

    smtp_enabled: bool = Field(True, description="Run the SMTP server (email ingress) inside `conduit serve`")
    smtp_host: str = Field("127.0.0.1", description="Address the SMTP server binds to")
    smtp_port: int = Field(
        2525, ge=0, le=65535, description="Port the SMTP server listens on (25 for a public MX; 0: any)"
    )
    smtp_hostname: str | None = Field(
        None, description="Name in the SMTP greeting and EHLO reply; default: the MX host, else localhost"
    )
    smtp_tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain for STARTTLS; default: a self-signed one generated once "
        "into the data directory",
    )
    smtp_tls_key: Path | None = Field(None, description="PEM private key of the STARTTLS certificate")
    smtp_max_message_bytes: int = Field(
        25 << 20, ge=1024, description="Largest message the SMTP server accepts (advertised as SIZE)"
    )

    dns_nameservers: str = Field(
        "",
        description="Nameservers for email DNS (domain checks, SPF, DKIM, DMARC): comma-separated "
        "host[:port] IP addresses; empty: the system's resolvers",
    )
    mx_host: str = Field(
        "mx.conduit.email", description="Host that verified email domains must name in their MX record"
    )
    public_email_domains: str = Field(
        "",
        description="Comma-separated domains of the operator on which any account may create email "
        "webhook addresses, without claiming them; listed to every account with is_public: true",
    )

    default_plan: str = Field(
        "free", description="Plan of organizations created by sign-up and the API (init uses enterprise)"
    )
    allow_private_targets: bool = Field(
        False, description="Allow outbound requests (webhooks, scans) to loopback and private addresses"
    )
    registry_rate_limit: int = Field(
        120,
        ge=0,
        description="Public registry requests (list, search, report) per minute per client IP and "
        "process; 0: unlimited",
    )

    gateway_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="How long a relayed request may wait for its upstream (per server: timeoutSeconds)",
    )
    gateway_allowed_origins: str = Field(
        "",
        description="Comma-separated browser origins allowed on gateway endpoints, besides the public URL's "
        "own and loopback origins; `*` allows any",
    )
    gateway_session_idle_seconds: int = Field(
        1800, ge=10, description="A gateway session unused this long is closed with its upstream sessions"
    )
    gateway_stdio_idle_seconds: int = Field(
        600, ge=5, description="A stdio upstream process unused this long is stopped (restarted on demand)"
    )
    gateway_cache_seconds: float = Field(
        2.0, ge=0, description="How long the gateway reuses a server's definition and curation"
    )
    gateway_log_retention_days: int = Field(
        30,
        ge=1,
        description="Gateway request logs and stdio servers' stderr lines older than this are purged",
    )
    gateway_max_message_bytes: int = Field(
        16 << 20, ge=1024, description="Largest JSON-RPC message a client may send through the gateway"
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'conduit.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @cached_property
    def master_key(self) -> bytes:
        """The configured secret key, or the one generated into the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        return _load_or_create_key_file(self.data_dir / SECRET_KEY_FILE)

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    # O_EXCL: two processes starting at once must not write different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


@dataclass(frozen=True)
class SettingView:
    name: str
    value: str
    source: str
    description: str


def describe(settings: Settings) -> list[SettingView]:
    """Every setting with its effective value and its source; secrets are masked."""
    dotenv = _read_dotenv(Path(".env"))
    rows = []
    for name, field in Settings.model_fields.items():
        env_name = f"{ENV_PREFIX}{name.upper()}"
        value: Any = getattr(settings, name)
        if env_name in os.environ:
            source = "env"
        elif env_name in dotenv:
            source = ".env"
        else:
            source = "default"
        if name == "secret_key" and value is None:
            key_file = settings.data_dir / SECRET_KEY_FILE
            source = f"file {key_file}" if key_file.exists() else "generated on first start"
            value = "********" if key_file.exists() else None
        elif isinstance(value, SecretStr):
            value = "********"
        elif name == "database_url" and value is None:
            value = settings.resolved_database_url
        elif name == "database_url":
            value = _mask_url_password(value)
        rows.append(
            SettingView(env_name, "" if value is None else str(value), source, field.description or "")
        )
    return rows


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "********"


def _read_dotenv(path: Path) -> set[str]:
    if not path.exists():
        return set()
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip().removeprefix("export ").strip())
    return names
