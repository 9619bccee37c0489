"""Backup and restore of an organization's configuration as one JSON document.

The `configuration` part is deterministic (sorted, no ids or timestamps), so backup → wipe →
restore → backup gives the same bytes. Secrets (server environments) are left out unless asked
for, and then sealed with a passphrase (scrypt + AES-256-GCM). Restore validates the whole
document before it changes anything, then brings the configuration to the backup's in one
transaction, matching rows by name so that what points at them (project keys) keeps working.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, Field, StringConstraints, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import conduit
from conduit.admin import service as admin
from conduit.admin.models import Config, ConfigServer, Project, ProjectMember
from conduit.admin.schemas import Name
from conduit.billing import service as billing
from conduit.identity.models import Account
from conduit.kit.clock import utcnow
from conduit.kit.errors import BadRequest, Conflict, Unprocessable
from conduit.kit.runtime import Runtime
from conduit.orgs import service as orgs
from conduit.orgs.models import Membership, Organization
from conduit.orgs.permissions import ROLE_KEYS
from conduit.servers import service as servers
from conduit.servers.models import Server

# Accounts are matched by lower-cased email, as everywhere else.
Email = Annotated[str, StringConstraints(min_length=3, max_length=320, strip_whitespace=True, to_lower=True)]
FORMAT = "conduit-backup"
VERSION = 1
SCRYPT_N = 2**15


class ServerEntry(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
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
    name: Name
    description: str | None = None
    servers: list[ConfigServerEntry] = []


class ProjectEntry(BaseModel):
    name: Name
    description: str | None = None
    config: str | None = None
    users: list[Email] = []


class UserEntry(BaseModel):
    email: Email
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


def _problems(conf: Configuration) -> list[str]:
    """Everything that would make the restore fail or leave dangling references."""
    problems: list[str] = []
    names = [s.name for s in conf.servers]
    if len(set(names)) != len(names) or len({s.slug for s in conf.servers}) != len(names):
        problems.append("server names and slugs must be unique")
    for server in conf.servers:
        try:
            servers.infer_transport(
                upstream_url=server.upstream_url, command=server.command, transport=server.transport
            )
            if server.upstream_url:
                servers.validate_url(server.upstream_url)
        except Unprocessable as exc:
            problems.append(f"server {server.name!r}: {exc.message}")
        bad_env = [n for n in server.env_names if not servers.ENV_NAME.match(n)]
        if bad_env:
            problems.append(f"server {server.name!r}: invalid environment variable names {bad_env}")
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
    if len(user_emails) != len(conf.users):
        problems.append("user emails must be unique")
    for user in conf.users:
        if user.role not in ROLE_KEYS:
            problems.append(f"user {user.email!r} has unknown role {user.role!r}")
    project_names = [p.name for p in conf.projects]
    if len(set(project_names)) != len(project_names):
        problems.append("project names must be unique")
    for project in conf.projects:
        if project.config is not None and project.config not in config_names:
            problems.append(f"project {project.name!r} names unknown configuration {project.config!r}")
        problems += [
            f"project {project.name!r} names unknown user {u!r}"
            for u in project.users
            if u not in user_emails
        ]
    return problems


def _validate(
    raw: dict[str, Any], passphrase: str | None
) -> tuple[BackupDocument, dict[str, dict[str, str]] | None]:
    """The document and its opened secrets (None when it holds none), or an error."""
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise BadRequest(f"Not a {FORMAT} version {VERSION} document", code="invalid_backup")
    try:
        document = BackupDocument.model_validate(raw)
    except ValidationError as exc:
        invalid = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise Unprocessable(
            "The backup document is not valid", code="invalid_backup", detail=invalid
        ) from exc
    problems = _problems(document.configuration)
    if problems:
        raise Unprocessable("The backup document is inconsistent", code="invalid_backup", detail=problems)
    if document.secrets is None:
        return document, None
    if not passphrase:
        raise Unprocessable("This backup holds secrets: give its passphrase", code="passphrase_required")
    return document, open_secrets(document.secrets, passphrase)


async def restore(
    session: AsyncSession, runtime: Runtime, org: Organization, raw: dict[str, Any], passphrase: str | None
) -> dict[str, Any]:
    """Make the organization's servers, configurations and projects those of the backup.

    Validated first; then everything is one transaction, so a failure leaves the old state.
    Rows are matched by name and updated in place, so project keys and anything else that
    points at a server, configuration or project by id keeps working. Keys of projects or
    project members the backup drops are revoked. Without sealed secrets, a server keeps the
    environment values it has for the names the backup lists; the others are reported in
    `env_missing`.
    """
    document, secret_env = _validate(raw, passphrase)
    conf = document.configuration
    await _ensure_capacity(session, runtime, org, conf)
    try:
        accounts = {user.email: await _ensure_member(session, org, user) for user in conf.users}
        server_ids, env_missing = await _restore_servers(session, runtime, org, conf.servers, secret_env)
        config_ids = await _restore_configs(session, org, conf.configs, server_ids)
        await _restore_projects(session, org, conf.projects, config_ids, accounts)
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "The configuration changed during the restore; nothing was restored, try again",
            code="concurrent_change",
        ) from exc
    return {
        "servers": len(conf.servers),
        "configs": len(conf.configs),
        "projects": len(conf.projects),
        "users": len(conf.users),
        "env_missing": env_missing,
    }


async def _ensure_capacity(
    session: AsyncSession, runtime: Runtime, org: Organization, conf: Configuration
) -> None:
    upgrade = admin.upgrade_url(runtime)
    # Held to the end of the transaction: counts stay true, and two restores run one after the other.
    await orgs.lock_org(session, org.id)
    billing.ensure_capacity(org.plan, "servers", 0, adding=len(conf.servers), upgrade_url=upgrade)
    members = set(
        (
            await session.scalars(
                select(Account.email)
                .join(Membership, Membership.account_id == Account.id)
                .where(Membership.org_id == org.id)
            )
        ).all()
    )
    joining = len({u.email for u in conf.users} - members)
    if joining:
        billing.ensure_capacity(org.plan, "members", len(members), adding=joining, upgrade_url=upgrade)


async def _restore_servers(
    session: AsyncSession,
    runtime: Runtime,
    org: Organization,
    entries: list[ServerEntry],
    secret_env: dict[str, dict[str, str]] | None,
) -> tuple[dict[str, str], list[str]]:
    """Server ids by name, and the environment variables left without a value."""
    config_ids = select(Config.id).where(Config.org_id == org.id)
    # Links are rebuilt from the backup; dropping them first lets servers go in any order.
    await session.execute(delete(ConfigServer).where(ConfigServer.config_id.in_(config_ids)))
    existing = {
        s.name: s for s in (await session.scalars(select(Server).where(Server.org_id == org.id))).all()
    }
    wanted = {entry.name: entry for entry in entries}
    for name, old in existing.items():
        if name not in wanted:
            await servers.delete_server(session, old)
        elif old.slug != wanted[name].slug:
            # Freed first, so two servers can swap slugs without breaking uniqueness.
            old.slug = f"restoring-{old.id}"
    await session.flush()
    ids: dict[str, str] = {}
    missing: list[str] = []
    for entry in entries:
        server = existing.get(entry.name)
        if secret_env is not None:
            env = secret_env.get(entry.name) or {}
        else:
            current = servers.unseal_env(runtime.keyring, server) if server else {}
            env = {n: current[n] for n in entry.env_names if n in current}
            missing += [f"{entry.name}: {n}" for n in entry.env_names if n not in current]
        if server is None:
            server = Server(org_id=org.id, name=entry.name)
            session.add(server)
        server.slug = entry.slug
        server.description = entry.description
        server.transport = entry.transport
        server.upstream_url = entry.upstream_url
        server.command = entry.command
        server.args = entry.args
        server.env_sealed = servers.seal_env(runtime.keyring, org.id, env or None)
        server.public = entry.public
        server.settings = entry.settings
        await session.flush()
        ids[entry.name] = server.id
    return ids, missing


async def _restore_configs(
    session: AsyncSession, org: Organization, entries: list[ConfigEntry], server_ids: dict[str, str]
) -> dict[str, str]:
    existing = {c.name: c for c in await admin.list_configs(session, org.id)}
    wanted = {entry.name for entry in entries}
    for name, old in existing.items():
        if name not in wanted:
            await session.delete(old)
    ids: dict[str, str] = {}
    for entry in entries:
        config = existing.get(entry.name)
        if config is None:
            config = Config(org_id=org.id, name=entry.name)
            session.add(config)
        config.description = entry.description
        await session.flush()
        ids[entry.name] = config.id
        for link in entry.servers:
            session.add(
                ConfigServer(config_id=config.id, server_id=server_ids[link.server], tools=link.tools)
            )
    await session.flush()
    return ids


async def _restore_projects(
    session: AsyncSession,
    org: Organization,
    entries: list[ProjectEntry],
    config_ids: dict[str, str],
    accounts: dict[str, str],
) -> None:
    existing = {p.name: p for p in await admin.list_projects(session, org.id)}
    wanted = {entry.name for entry in entries}
    for name, old in existing.items():
        if name not in wanted:
            await admin.revoke_project_keys(session, old.id)
            await session.delete(old)
    for entry in entries:
        project = existing.get(entry.name)
        if project is None:
            project = Project(org_id=org.id, name=entry.name)
            session.add(project)
        project.description = entry.description
        project.config_id = config_ids[entry.config] if entry.config else None
        await session.flush()
        members = [accounts[email] for email in entry.users]
        await session.execute(delete(ProjectMember).where(ProjectMember.project_id == project.id))
        if members:
            await admin.revoke_project_keys(session, project.id, except_accounts=members)
        else:
            await admin.revoke_project_keys(session, project.id)
        for account_id in members:
            session.add(ProjectMember(project_id=project.id, account_id=account_id))
    await session.flush()


async def _ensure_member(session: AsyncSession, org: Organization, user: UserEntry) -> str:
    """The account id of `user`, made a member of `org` with the backed-up role."""
    account = await session.scalar(select(Account).where(Account.email == user.email))
    if account is None:
        account = Account(email=user.email, password_hash=None)
        session.add(account)
        await session.flush()
    role = await orgs.role_in(session, org.id, account.id)
    if role is None:
        await orgs.add_member(session, org.id, account.id, user.role)
    elif role != user.role:
        await orgs.change_role(session, org.id, account.id, user.role)
    return account.id
