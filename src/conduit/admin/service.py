"""Configurations, projects, users and their project keys: the business rules of seed 001.

A configuration links registered servers (one registry for the whole organization) and may
narrow each to a tool allowlist. A project uses one configuration; a project key reaches exactly
that configuration's servers through `/mcp`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.admin.models import Config, ConfigServer, Project, ProjectMember
from conduit.admin.schemas import ConfigServerIn, ConfigServerUpdate
from conduit.billing import service as billing
from conduit.identity import service as identity
from conduit.identity.models import Account, ApiKey
from conduit.kit.clock import utcnow
from conduit.kit.errors import Conflict, NotFound, Unprocessable
from conduit.kit.runtime import Runtime
from conduit.orgs import service as orgs
from conduit.orgs.models import Membership, Organization
from conduit.servers import service as servers
from conduit.servers.models import Server

CONFIG_ORIGIN = "config"


def upgrade_url(runtime: Runtime) -> str:
    return f"{runtime.settings.resolved_public_url}/api/v1/plans"


async def _flush_or(session: AsyncSession, conflict: Conflict) -> None:
    """Flush; a unique constraint broken by a concurrent request is `conflict`, not a 500.

    The checks before each insert answer the usual case; this one answers two requests racing
    past them (PostgreSQL runs them side by side; SQLite serializes writers).
    """
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict from exc


# --- configurations and projects: named, described, unique per organization ---------------

Named = TypeVar("Named", Config, Project)
_LABELS: dict[type[Any], tuple[str, str]] = {
    Config: ("Configuration", "config"),
    Project: ("Project", "project"),
}


def _exists(model: type[Named], name: str) -> Conflict:
    label, code = _LABELS[model]
    return Conflict(f"{label} {name!r} already exists", code=f"{code}_exists")


async def _list_named(session: AsyncSession, model: type[Named], org_id: str) -> list[Named]:
    rows = await session.scalars(select(model).where(model.org_id == org_id).order_by(model.name))
    return list(rows.all())


async def _get_named(session: AsyncSession, model: type[Named], org_id: str, name: str) -> Named:
    row = await session.scalar(select(model).where(model.org_id == org_id, model.name == name))
    if row is None:
        label, code = _LABELS[model]
        raise NotFound(f"{label} {name!r} not found", code=f"{code}_not_found")
    return row


async def _taken(session: AsyncSession, model: type[Named], org_id: str, name: str) -> bool:
    return (
        await session.scalar(select(model.id).where(model.org_id == org_id, model.name == name)) is not None
    )


async def _create_named(
    session: AsyncSession, model: type[Named], org_id: str, name: str, description: str | None
) -> Named:
    if await _taken(session, model, org_id, name):
        raise _exists(model, name)
    row = model(org_id=org_id, name=name, description=description)
    session.add(row)
    await _flush_or(session, _exists(model, name))
    return row


async def _rename_named(
    session: AsyncSession, row: Named, new_name: str | None, description: str | None
) -> None:
    model = type(row)
    if new_name and new_name != row.name:
        if await _taken(session, model, row.org_id, new_name):
            raise _exists(model, new_name)
        row.name = new_name
        await _flush_or(session, _exists(model, new_name))
    if description is not None:
        row.description = description
    row.updated_at = utcnow()


# --- configurations -------------------------------------------------------------------------


async def list_configs(session: AsyncSession, org_id: str) -> list[Config]:
    return await _list_named(session, Config, org_id)


async def get_config(session: AsyncSession, org_id: str, name: str) -> Config:
    return await _get_named(session, Config, org_id, name)


async def create_config(session: AsyncSession, org_id: str, name: str, description: str | None) -> Config:
    return await _create_named(session, Config, org_id, name, description)


async def rename_config(
    session: AsyncSession, config: Config, new_name: str | None, description: str | None
) -> None:
    await _rename_named(session, config, new_name, description)


async def copy_config(session: AsyncSession, config: Config, new_name: str) -> Config:
    copy = await create_config(session, config.org_id, new_name, config.description)
    for link in await config_links(session, config.id):
        session.add(ConfigServer(config_id=copy.id, server_id=link.server_id, tools=link.tools))
    await session.flush()
    return copy


async def delete_config(session: AsyncSession, config: Config) -> None:
    for link in await config_links(session, config.id):
        await _unlink(session, link)
    await session.delete(config)


async def config_links(session: AsyncSession, config_id: str) -> list[ConfigServer]:
    return list(
        (await session.scalars(select(ConfigServer).where(ConfigServer.config_id == config_id))).all()
    )


async def config_servers(session: AsyncSession, config_id: str) -> list[tuple[ConfigServer, Server]]:
    rows = await session.execute(
        select(ConfigServer, Server)
        .join(Server, Server.id == ConfigServer.server_id)
        .where(ConfigServer.config_id == config_id)
        .order_by(Server.name)
    )
    return list(rows.all())


async def config_projects(session: AsyncSession, config_id: str) -> list[str]:
    return list(
        (
            await session.scalars(
                select(Project.name).where(Project.config_id == config_id).order_by(Project.name)
            )
        ).all()
    )


def _same_definition(runtime: Runtime, server: Server, body: ConfigServerIn) -> bool:
    return (
        server.command == body.server_command
        and (server.args or []) == (body.args or [])
        and server.upstream_url == body.url
        and servers.unseal_env(runtime.keyring, server) == (body.env or {})
    )


def _config_server_exists(name: str) -> Conflict:
    return Conflict(f"Server {name!r} is already in this configuration", code="config_server_exists")


async def add_config_server(
    session: AsyncSession, runtime: Runtime, org: Organization, config: Config, body: ConfigServerIn
) -> tuple[ConfigServer, Server]:
    server = await servers.by_name(session, org.id, body.server_name)
    if server is None:
        server = await servers.create(
            session,
            runtime.keyring,
            org,
            name=body.server_name,
            upstream_url=body.url,
            command=body.server_command,
            args=body.args,
            env=body.env,
            description=body.description,
            upgrade_url=upgrade_url(runtime),
            settings={"origin": CONFIG_ORIGIN},
        )
    elif not _same_definition(runtime, server, body):
        raise Conflict(
            f"A different server named {body.server_name!r} is already registered in this organization; "
            "use another name or the same definition",
            code="server_exists",
        )
    if await session.scalar(
        select(ConfigServer.id).where(
            ConfigServer.config_id == config.id, ConfigServer.server_id == server.id
        )
    ):
        raise _config_server_exists(body.server_name)
    link = ConfigServer(config_id=config.id, server_id=server.id, tools=body.tools)
    session.add(link)
    config.updated_at = utcnow()
    await _flush_or(session, _config_server_exists(body.server_name))
    return link, server


async def get_config_server(
    session: AsyncSession, config: Config, server_name: str
) -> tuple[ConfigServer, Server]:
    row = (
        await session.execute(
            select(ConfigServer, Server)
            .join(Server, Server.id == ConfigServer.server_id)
            .where(ConfigServer.config_id == config.id, Server.name == server_name)
        )
    ).first()
    if row is None:
        raise NotFound(
            f"Server {server_name!r} is not in configuration {config.name!r}", code="config_server_not_found"
        )
    return row[0], row[1]


async def update_config_server(
    session: AsyncSession, runtime: Runtime, config: Config, server_name: str, body: ConfigServerUpdate
) -> tuple[ConfigServer, Server]:
    link, server = await get_config_server(session, config, server_name)
    to_url = body.url is not None and body.server_command is None
    servers.update_definition(
        runtime.keyring,
        server,
        upstream_url=body.url,
        command=body.server_command,
        # A server moved to a URL keeps no command arguments.
        args=[] if to_url else body.args,
        env=body.env,
        description=body.description,
    )
    if "tools" in body.model_fields_set:
        link.tools = body.tools
    server.updated_at = config.updated_at = utcnow()
    return link, server


async def _unlink(session: AsyncSession, link: ConfigServer) -> None:
    server = await session.get(Server, link.server_id)
    await session.delete(link)
    await session.flush()
    if server is None or (server.settings or {}).get("origin") != CONFIG_ORIGIN:
        return
    if not await session.scalar(select(ConfigServer.id).where(ConfigServer.server_id == server.id)):
        await servers.delete_server(session, server)


async def remove_config_server(session: AsyncSession, config: Config, server_name: str) -> None:
    link, _ = await get_config_server(session, config, server_name)
    await _unlink(session, link)
    config.updated_at = utcnow()


# --- projects -------------------------------------------------------------------------------


async def list_projects(session: AsyncSession, org_id: str) -> list[Project]:
    return await _list_named(session, Project, org_id)


async def get_project(session: AsyncSession, org_id: str, name: str) -> Project:
    return await _get_named(session, Project, org_id, name)


async def create_project(session: AsyncSession, org_id: str, name: str, description: str | None) -> Project:
    return await _create_named(session, Project, org_id, name, description)


async def update_project(
    session: AsyncSession, project: Project, new_name: str | None, description: str | None
) -> None:
    await _rename_named(session, project, new_name, description)


async def delete_project(session: AsyncSession, project: Project) -> None:
    await revoke_project_keys(session, project.id)
    await session.delete(project)


async def revoke_project_keys(
    session: AsyncSession,
    project_id: str,
    *,
    account_id: str | None = None,
    except_accounts: Collection[str] = (),
) -> None:
    """Revoke the project's keys: all of them, one account's, or all but some accounts'."""
    statement = update(ApiKey).where(ApiKey.project_id == project_id, ApiKey.revoked_at.is_(None))
    if account_id is not None:
        statement = statement.where(ApiKey.account_id == account_id)
    if except_accounts:
        statement = statement.where(ApiKey.account_id.not_in(list(except_accounts)))
    await session.execute(statement.values(revoked_at=utcnow()))


async def config_name(session: AsyncSession, config_id: str | None) -> str | None:
    if config_id is None:
        return None
    return await session.scalar(select(Config.name).where(Config.id == config_id))


async def project_users(session: AsyncSession, project_id: str) -> list[str]:
    rows = await session.scalars(
        select(Account.email)
        .join(ProjectMember, ProjectMember.account_id == Account.id)
        .where(ProjectMember.project_id == project_id)
        .order_by(Account.email)
    )
    return list(rows.all())


def _project_user_exists(email: str, project: Project) -> Conflict:
    return Conflict(f"{email} is already in project {project.name!r}", code="project_user_exists")


async def add_project_user(session: AsyncSession, project: Project, email: str) -> Account:
    account = await get_user(session, project.org_id, email)
    if await session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.account_id == account.id
        )
    ):
        raise _project_user_exists(email, project)
    session.add(ProjectMember(project_id=project.id, account_id=account.id))
    await _flush_or(session, _project_user_exists(email, project))
    return account


async def remove_project_user(session: AsyncSession, project: Project, email: str) -> None:
    account = await get_user(session, project.org_id, email)
    result = await session.execute(
        delete(ProjectMember).where(
            ProjectMember.project_id == project.id, ProjectMember.account_id == account.id
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"{email} is not in project {project.name!r}", code="project_user_not_found")
    await revoke_project_keys(session, project.id, account_id=account.id)


# --- users ----------------------------------------------------------------------------------


async def list_users(session: AsyncSession, org_id: str) -> list[tuple[Account, Membership]]:
    rows = await session.execute(
        select(Account, Membership)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.org_id == org_id)
        .order_by(Account.email)
    )
    return list(rows.all())


async def get_user(session: AsyncSession, org_id: str, email: str) -> Account:
    account = await session.scalar(
        select(Account)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.org_id == org_id, Account.email == email.strip().lower())
    )
    if account is None:
        raise NotFound(f"User {email} not found", code="user_not_found")
    return account


async def create_user(
    session: AsyncSession, runtime: Runtime, org: Organization, email: str, role: str
) -> tuple[Account, Membership]:
    """A member of the organization; a new account has no password until it is reset."""
    email = email.strip().lower()
    orgs.validate_role(role)
    account = await session.scalar(select(Account).where(Account.email == email))
    exists = Conflict(f"User {email} already exists", code="user_exists")
    if account is not None and await orgs.role_in(session, org.id, account.id) is not None:
        raise exists
    await orgs.lock_org(session, org.id)  # count, then add: concurrent creations cannot both fit
    billing.ensure_capacity(
        org.plan, "members", await orgs.member_count(session, org.id), upgrade_url=upgrade_url(runtime)
    )
    try:
        if account is None:
            account = Account(email=email, password_hash=None)
            session.add(account)
            await session.flush()
        membership = await orgs.add_member(session, org.id, account.id, role)
    except IntegrityError as exc:  # the same email created or added by a concurrent request
        raise exists from exc
    return account, membership


async def user_projects(session: AsyncSession, org_id: str, account_id: str) -> list[str]:
    rows = await session.scalars(
        select(Project.name)
        .join(ProjectMember, ProjectMember.project_id == Project.id)
        .where(Project.org_id == org_id, ProjectMember.account_id == account_id)
        .order_by(Project.name)
    )
    return list(rows.all())


async def delete_user(session: AsyncSession, org_id: str, email: str) -> None:
    """End the membership (which revokes the user's keys here) and leave every project."""
    account = await get_user(session, org_id, email)
    await orgs.remove_member(session, org_id, account.id)
    project_ids = select(Project.id).where(Project.org_id == org_id)
    await session.execute(
        delete(ProjectMember).where(
            ProjectMember.account_id == account.id, ProjectMember.project_id.in_(project_ids)
        )
    )


# --- user keys ------------------------------------------------------------------------------


def key_status(key: ApiKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.disabled_at is not None:
        return "disabled"
    if key.expires_at is not None and key.expires_at <= utcnow():
        return "expired"
    return "active"


async def create_user_key(
    session: AsyncSession,
    runtime: Runtime,
    org: Organization,
    email: str,
    project_name: str,
    name: str | None,
) -> tuple[ApiKey, str, Project]:
    account = await get_user(session, org.id, email)
    project = await get_project(session, org.id, project_name)
    if not await session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.account_id == account.id
        )
    ):
        raise Unprocessable(
            f"{email} is not in project {project_name!r}; add the user first", code="user_not_in_project"
        )
    key, raw = await identity.create_api_key(  # within the plan's key limit
        session,
        runtime,
        org_id=org.id,
        kind="project",
        name=name or f"{project_name} key",
        account_id=account.id,
        project_id=project.id,
    )
    return key, raw, project


async def user_keys(session: AsyncSession, org_id: str, email: str) -> list[ApiKey]:
    account = await get_user(session, org_id, email)
    rows = await session.scalars(
        select(ApiKey)
        .where(
            ApiKey.org_id == org_id,
            ApiKey.account_id == account.id,
            ApiKey.kind == "project",
            ApiKey.revoked_at.is_(None),
        )
        .order_by(ApiKey.created_at.desc())
    )
    return list(rows.all())


async def user_key(session: AsyncSession, org_id: str, email: str, key_id: str) -> ApiKey:
    for key in await user_keys(session, org_id, email):
        if key.id == key_id:
            return key
    raise NotFound("API key not found", code="api_key_not_found")


async def rotate_user_key(
    session: AsyncSession, runtime: Runtime, org_id: str, email: str, key_id: str
) -> tuple[ApiKey, str]:
    old = await user_key(session, org_id, email, key_id)
    old.revoked_at = utcnow()
    return await identity.create_api_key(
        session,
        runtime,
        org_id=org_id,
        kind="project",
        name=old.name,
        account_id=old.account_id,
        project_id=old.project_id,
        allowed_ips=old.allowed_ips,
        expires_at=old.expires_at,
    )


async def project_names(session: AsyncSession, project_ids: set[str | None]) -> dict[str, str]:
    ids = [p for p in project_ids if p]
    if not ids:
        return {}
    rows = await session.execute(select(Project.id, Project.name).where(Project.id.in_(ids)))
    return dict(rows.all())
