"""Backup and restore of an organization's configuration as one JSON document.

The `configuration` part is deterministic (sorted, no ids or timestamps), so backup → wipe →
restore → backup gives the same bytes. Secrets (server environments) are left out unless asked
for, and then sealed with a passphrase (scrypt + AES-256-GCM). Restore validates the whole
document before it changes anything, then replaces the configuration in one transaction.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

import conduit
from conduit.admin import service as admin
from conduit.admin.models import Config, ConfigServer, Project, ProjectMember
from conduit.billing import service as billing
from conduit.identity.models import Account
from conduit.kit.clock import utcnow
from conduit.kit.errors import BadRequest, Unprocessable
from conduit.kit.runtime import Runtime
from conduit.orgs import service as orgs
from conduit.orgs.models import Organization
from conduit.servers import service as servers
from conduit.servers.models import Server

FORMAT = "conduit-backup"
VERSION = 1
SCRYPT_N = 2**15


class ServerEntry(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=1, max_length=64)
    description: str | None = None
    transport: str
    upstream_url: str | None = None
    command: str | None = None
    args: list[str] | None = None
    env_names: list[str] = []
    public: bool = False
    settings: dict[str, Any] = {}


class ConfigServerEntry(BaseModel):
    server: str
    tools: list[str] | None = None


class ConfigEntry(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    servers: list[ConfigServerEntry] = []


class ProjectEntry(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    config: str | None = None
    users: list[str] = []


class UserEntry(BaseModel):
    email: str
    role: str


class Configuration(BaseModel):
    servers: list[ServerEntry]
    configs: list[ConfigEntry]
    projects: list[ProjectEntry]
    users: list[UserEntry]


class SealedSecrets(BaseModel):
    encryption: str
    salt: str
    data: str


class BackupDocument(BaseModel):
    format: str
    version: int
    configuration: Configuration
    secrets: SealedSecrets | None = None


def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase.encode())


def seal_secrets(values: dict[str, dict[str, str]], passphrase: str) -> dict[str, str]:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = AESGCM(_key(passphrase, salt)).encrypt(
        nonce, json.dumps(values, sort_keys=True).encode(), FORMAT.encode()
    )
    return {
        "encryption": "scrypt-n32768-r8-p1+aes-256-gcm",
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(nonce + sealed).decode(),
    }


def open_secrets(sealed: SealedSecrets, passphrase: str) -> dict[str, dict[str, str]]:
    try:
        raw = base64.b64decode(sealed.data)
        plain = AESGCM(_key(passphrase, base64.b64decode(sealed.salt))).decrypt(
            raw[:12], raw[12:], FORMAT.encode()
        )
    except (InvalidTag, ValueError) as exc:
        raise Unprocessable(
            "The passphrase does not open this backup's secrets", code="wrong_passphrase"
        ) from exc
    values: dict[str, dict[str, str]] = json.loads(plain)
    return values


async def build(
    session: AsyncSession,
    runtime: Runtime,
    org: Organization,
    *,
    include_secrets: bool,
    passphrase: str | None,
) -> dict[str, Any]:
    if include_secrets and not passphrase:
        raise Unprocessable(
            "A passphrase (12+ characters) is needed to include secrets", code="passphrase_required"
        )
    server_rows = (
        await session.scalars(select(Server).where(Server.org_id == org.id).order_by(Server.name))
    ).all()
    by_id = {s.id: s for s in server_rows}
    env = {s.name: servers.unseal_env(runtime.keyring, s) for s in server_rows}
    configs = []
    for config in await admin.list_configs(session, org.id):
        links = sorted(
            await admin.config_links(session, config.id), key=lambda link: by_id[link.server_id].name
        )
        configs.append(
            ConfigEntry(
                name=config.name,
                description=config.description,
                servers=[
                    ConfigServerEntry(server=by_id[link.server_id].name, tools=link.tools) for link in links
                ],
            )
        )
    projects = [
        ProjectEntry(
            name=p.name,
            description=p.description,
            config=await admin.config_name(session, p.config_id),
            users=await admin.project_users(session, p.id),
        )
        for p in await admin.list_projects(session, org.id)
    ]
    users = [UserEntry(email=a.email, role=m.role) for a, m in await admin.list_users(session, org.id)]
    configuration = Configuration(
        servers=[
            ServerEntry(
                name=s.name,
                slug=s.slug,
                description=s.description,
                transport=s.transport,
                upstream_url=s.upstream_url,
                command=s.command,
                args=s.args,
                env_names=sorted(env[s.name]),
                public=s.public,
                settings=s.settings or {},
            )
            for s in server_rows
        ],
        configs=configs,
        projects=projects,
        users=users,
    )
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "conduit_version": conduit.__version__,
        "created_at": utcnow().isoformat().replace("+00:00", "Z"),
        "organization": {"id": org.id, "name": org.name, "slug": org.slug, "plan": org.plan},
        "configuration": configuration.model_dump(mode="json"),
        "secrets": None,
    }
    if include_secrets and passphrase:
        document["secrets"] = seal_secrets(
            {name: values for name, values in env.items() if values}, passphrase
        )
    return document


def _validate(
    raw: dict[str, Any], passphrase: str | None
) -> tuple[BackupDocument, dict[str, dict[str, str]]]:
    try:
        document = BackupDocument.model_validate(raw)
    except ValidationError as exc:
        invalid = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise Unprocessable(
            "The backup document is not valid", code="invalid_backup", detail=invalid
        ) from exc
    if document.format != FORMAT or document.version != VERSION:
        raise BadRequest(f"Not a {FORMAT} version {VERSION} document", code="invalid_backup")
    conf = document.configuration
    problems: list[str] = []
    names = [s.name for s in conf.servers]
    if len(set(names)) != len(names) or len({s.slug for s in conf.servers}) != len(names):
        problems.append("server names and slugs must be unique")
    for server in conf.servers:
        try:
            servers.infer_transport(
                upstream_url=server.upstream_url, command=server.command, transport=server.transport
            )
        except Unprocessable as exc:
            problems.append(f"server {server.name!r}: {exc.message}")
    config_names = [c.name for c in conf.configs]
    if len(set(config_names)) != len(config_names):
        problems.append("configuration names must be unique")
    for config in conf.configs:
        problems += [
            f"configuration {config.name!r} names unknown server {e.server!r}"
            for e in config.servers
            if e.server not in names
        ]
    user_emails = {u.email for u in conf.users}
    for user in conf.users:
        if user.role not in ("admin", "developer", "viewer"):
            problems.append(f"user {user.email!r} has unknown role {user.role!r}")
    for project in conf.projects:
        if project.config is not None and project.config not in config_names:
            problems.append(f"project {project.name!r} names unknown configuration {project.config!r}")
        problems += [
            f"project {project.name!r} names unknown user {u!r}"
            for u in project.users
            if u not in user_emails
        ]
    if problems:
        raise Unprocessable("The backup document is inconsistent", code="invalid_backup", detail=problems)
    env: dict[str, dict[str, str]] = {}
    if document.secrets is not None:
        if not passphrase:
            raise Unprocessable("This backup holds secrets: give its passphrase", code="passphrase_required")
        env = open_secrets(document.secrets, passphrase)
    return document, env


async def restore(
    session: AsyncSession, runtime: Runtime, org: Organization, raw: dict[str, Any], passphrase: str | None
) -> dict[str, int]:
    document, env = _validate(raw, passphrase)
    conf = document.configuration
    upgrade = admin.upgrade_url(runtime)
    billing.ensure_capacity(org.plan, "servers", 0, adding=len(conf.servers), upgrade_url=upgrade)
    # Replace: everything below is one transaction, so a failure leaves the old configuration.
    project_ids = select(Project.id).where(Project.org_id == org.id)
    await session.execute(delete(ProjectMember).where(ProjectMember.project_id.in_(project_ids)))
    await session.execute(delete(Project).where(Project.org_id == org.id))
    config_ids = select(Config.id).where(Config.org_id == org.id)
    await session.execute(delete(ConfigServer).where(ConfigServer.config_id.in_(config_ids)))
    await session.execute(delete(Config).where(Config.org_id == org.id))
    await session.execute(delete(Server).where(Server.org_id == org.id))
    await session.flush()
    server_ids: dict[str, str] = {}
    for entry in conf.servers:
        server = Server(
            org_id=org.id,
            name=entry.name,
            slug=entry.slug,
            description=entry.description,
            transport=entry.transport,
            upstream_url=entry.upstream_url,
            command=entry.command,
            args=entry.args,
            env_sealed=servers.seal_env(runtime.keyring, org.id, env.get(entry.name) or None),
            public=entry.public,
            settings=entry.settings,
        )
        session.add(server)
        await session.flush()
        server_ids[entry.name] = server.id
    config_ids_by_name: dict[str, str] = {}
    for config_entry in conf.configs:
        config = Config(org_id=org.id, name=config_entry.name, description=config_entry.description)
        session.add(config)
        await session.flush()
        config_ids_by_name[config.name] = config.id
        for link in config_entry.servers:
            session.add(
                ConfigServer(config_id=config.id, server_id=server_ids[link.server], tools=link.tools)
            )
    accounts = {user.email: await _ensure_member(session, org, user) for user in conf.users}
    for project_entry in conf.projects:
        project = Project(
            org_id=org.id,
            name=project_entry.name,
            description=project_entry.description,
            config_id=config_ids_by_name.get(project_entry.config or ""),
        )
        session.add(project)
        await session.flush()
        for email in project_entry.users:
            session.add(ProjectMember(project_id=project.id, account_id=accounts[email]))
    await session.flush()
    return {
        "servers": len(conf.servers),
        "configs": len(conf.configs),
        "projects": len(conf.projects),
        "users": len(conf.users),
    }


async def _ensure_member(session: AsyncSession, org: Organization, user: UserEntry) -> str:
    """The account id of `user`, made a member of `org` with the backed-up role."""
    email = user.email.strip().lower()
    account = await session.scalar(select(Account).where(Account.email == email))
    if account is None:
        account = Account(email=email, password_hash=None)
        session.add(account)
        await session.flush()
    role = await orgs.role_in(session, org.id, account.id)
    if role is None:
        await orgs.add_member(session, org.id, account.id, user.role)
    elif role != user.role:
        await orgs.change_role(session, org.id, account.id, user.role)
    return account.id
