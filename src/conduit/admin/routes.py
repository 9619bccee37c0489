"""Seed 001's admin REST API under /api/v1: configs, projects, users, user keys, system.

Authorized by an organization admin key (the one `conduit init` prints) or any caller whose
role grants the permission. Success bodies are `{message, data, timestamp}`; errors on these
paths are `{error, detail, timestamp}` (see `ERROR_STYLES`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.admin import backup
from conduit.admin import service as admin
from conduit.admin.models import Config, ConfigServer, Project
from conduit.admin.schemas import (
    AssignConfig,
    BackupRequest,
    ConfigServerIn,
    ConfigServerUpdate,
    CopyConfig,
    CreateConfig,
    CreateProject,
    CreateUser,
    CreateUserKey,
    Envelope,
    ErrorOut,
    RestoreRequest,
    UpdateConfig,
    UpdateProject,
    UpdateUser,
    UserEmail,
    envelope,
)
from conduit.identity.auth import ClientDep, RuntimeDep
from conduit.identity.models import ApiKey
from conduit.kit.clock import utcnow
from conduit.kit.db import SessionDep
from conduit.kit.errors import ConduitError, ErrorStyle, responses
from conduit.kit.jobs import DEAD, PENDING, Job
from conduit.kit.runtime import Runtime
from conduit.orgs import service as orgs
from conduit.orgs.access import current_org_access
from conduit.orgs.service import OrgAccess
from conduit.servers import service as servers
from conduit.servers.models import Server

router = APIRouter(prefix="/api/v1")
Data = dict[str, Any]
Reply = Envelope[Any]
PREFIXES = ("/api/v1/configs", "/api/v1/projects", "/api/v1/users", "/api/v1/system")


def _render_error(error: ConduitError) -> dict[str, Any]:
    body = envelope("")
    body.pop("message")
    body.pop("data")
    detail: Any = (
        error.message if error.detail is None else {"message": error.message, "problems": error.detail}
    )
    return {"error": error.code, "detail": detail, "code": error.code, **error.extra, **body}


ERROR_STYLES = [ErrorStyle(prefix, _render_error) for prefix in PREFIXES]

Read = Annotated[OrgAccess, current_org_access("configs:read")]
Write = Annotated[OrgAccess, current_org_access("configs:write")]
Users = Annotated[OrgAccess, current_org_access("users:manage")]
System = Annotated[OrgAccess, current_org_access("system:manage")]
ERRORS = {
    status: {**doc, "model": ErrorOut} for status, doc in responses(400, 401, 403, 404, 409, 422).items()
}


def _audit(
    session: AsyncSession, access: OrgAccess, action: str, client: ClientDep, **metadata: object
) -> None:
    access.audit(session, action, client.ip, **metadata)


def _server_data(runtime: Runtime, link: ConfigServer, server: Server) -> Data:
    return {
        "server_id": server.id,
        "server_name": server.name,
        "server_command": server.command,
        "args": server.args,
        "url": server.upstream_url,
        "transport": server.transport,
        "description": server.description,
        "env": servers.masked_env(runtime.keyring, server),
        "tools": link.tools,
    }


async def _config_data(session: AsyncSession, runtime: Runtime, config: Config) -> Data:
    return {
        "id": config.id,
        "config_name": config.name,
        "description": config.description,
        "servers": [
            _server_data(runtime, link, server)
            for link, server in await admin.config_servers(session, config.id)
        ],
        "projects": await admin.config_projects(session, config.id),
        "created_at": config.created_at,
        "updated_at": config.updated_at,
    }


async def _project_data(session: AsyncSession, project: Project) -> Data:
    return {
        "id": project.id,
        "project_name": project.name,
        "description": project.description,
        "config_name": await admin.config_name(session, project.config_id),
        "users": await admin.project_users(session, project.id),
        "created_at": project.created_at,
        "updated_at": project.updated_at,
    }


def _key_data(key: ApiKey, project_name: str | None, raw: str | None = None) -> Data:
    return {
        "key_id": key.id,
        "name": key.name,
        "project_name": project_name,
        "prefix": key.prefix,
        "status": admin.key_status(key),
        "api_key": raw,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
    }


# --- configurations -------------------------------------------------------------------------


@router.get(
    "/configs", tags=["Configurations"], summary="List configurations", response_model=Reply, responses=ERRORS
)
async def list_configs(session: SessionDep, runtime: RuntimeDep, access: Read) -> Data:
    configs = [
        await _config_data(session, runtime, c) for c in await admin.list_configs(session, access.org.id)
    ]
    return envelope(f"{len(configs)} configuration(s)", configs)


@router.post(
    "/configs",
    tags=["Configurations"],
    summary="Create a configuration",
    status_code=201,
    response_model=Reply,
    responses=ERRORS,
)
async def create_config(
    body: CreateConfig, session: SessionDep, runtime: RuntimeDep, client: ClientDep, access: Write
) -> Data:
    config = await admin.create_config(session, access.org.id, body.config_name, body.description)
    _audit(session, access, "config.created", client, config=config.name)
    return envelope(f"Configuration {config.name!r} created", await _config_data(session, runtime, config))


@router.get(
    "/configs/{config_name}",
    tags=["Configurations"],
    summary="Get a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def get_config(config_name: str, session: SessionDep, runtime: RuntimeDep, access: Read) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    return envelope(f"Configuration {config.name!r}", await _config_data(session, runtime, config))


@router.put(
    "/configs/{config_name}",
    tags=["Configurations"],
    summary="Rename or describe a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def update_config(
    config_name: str,
    body: UpdateConfig,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Write,
) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    await admin.rename_config(session, config, body.new_config_name, body.description)
    _audit(session, access, "config.updated", client, config=config_name, new_name=body.new_config_name)
    return envelope(f"Configuration {config.name!r} updated", await _config_data(session, runtime, config))


@router.delete(
    "/configs/{config_name}",
    tags=["Configurations"],
    summary="Delete a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def delete_config(config_name: str, session: SessionDep, client: ClientDep, access: Write) -> Data:
    """Projects using it are left without a configuration."""
    config = await admin.get_config(session, access.org.id, config_name)
    await admin.delete_config(session, config)
    _audit(session, access, "config.deleted", client, config=config_name)
    return envelope(f"Configuration {config_name!r} deleted", {"config_name": config_name})


@router.post(
    "/configs/{config_name}/copy",
    tags=["Configurations"],
    summary="Copy a configuration",
    status_code=201,
    response_model=Reply,
    responses=ERRORS,
)
async def copy_config(
    config_name: str,
    body: CopyConfig,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Write,
) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    copy = await admin.copy_config(session, config, body.new_config_name)
    _audit(session, access, "config.copied", client, config=config_name, new_name=copy.name)
    return envelope(
        f"Configuration {config_name!r} copied to {copy.name!r}", await _config_data(session, runtime, copy)
    )


@router.get(
    "/configs/{config_name}/servers",
    tags=["Configurations"],
    summary="List a configuration's servers",
    response_model=Reply,
    responses=ERRORS,
)
async def list_config_servers(
    config_name: str, session: SessionDep, runtime: RuntimeDep, access: Read
) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    rows = [
        _server_data(runtime, link, server) for link, server in await admin.config_servers(session, config.id)
    ]
    return envelope(f"{len(rows)} server(s) in {config.name!r}", rows)


@router.post(
    "/configs/{config_name}/servers",
    tags=["Configurations"],
    summary="Add a server to a configuration",
    status_code=201,
    response_model=Reply,
    responses=ERRORS,
)
async def add_config_server(
    config_name: str,
    body: ConfigServerIn,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Write,
) -> Data:
    """`server_command` + `args` (stdio) or `url` (streamable HTTP or SSE). `env` is stored
    encrypted and shown masked."""
    config = await admin.get_config(session, access.org.id, config_name)
    link, server = await admin.add_config_server(session, runtime, access.org, config, body)
    _audit(session, access, "config.server_added", client, config=config_name, server=server.name)
    return envelope(f"Server {server.name!r} added to {config.name!r}", _server_data(runtime, link, server))


@router.get(
    "/configs/{config_name}/servers/{server_name}",
    tags=["Configurations"],
    summary="Get a server of a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def get_config_server(
    config_name: str, server_name: str, session: SessionDep, runtime: RuntimeDep, access: Read
) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    link, server = await admin.get_config_server(session, config, server_name)
    return envelope(f"Server {server.name!r}", _server_data(runtime, link, server))


@router.put(
    "/configs/{config_name}/servers/{server_name}",
    tags=["Configurations"],
    summary="Update a server of a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def update_config_server(
    config_name: str,
    server_name: str,
    body: ConfigServerUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Write,
) -> Data:
    """Changes the server's definition everywhere it is used; `tools` applies to this
    configuration only."""
    config = await admin.get_config(session, access.org.id, config_name)
    link, server = await admin.update_config_server(session, runtime, config, server_name, body)
    _audit(session, access, "config.server_updated", client, config=config_name, server=server_name)
    return envelope(f"Server {server.name!r} updated", _server_data(runtime, link, server))


@router.delete(
    "/configs/{config_name}/servers/{server_name}",
    tags=["Configurations"],
    summary="Remove a server from a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def remove_config_server(
    config_name: str, server_name: str, session: SessionDep, client: ClientDep, access: Write
) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    await admin.remove_config_server(session, config, server_name)
    _audit(session, access, "config.server_removed", client, config=config_name, server=server_name)
    return envelope(f"Server {server_name!r} removed from {config_name!r}", {"server_name": server_name})


@router.get(
    "/configs/{config_name}/projects",
    tags=["Configurations"],
    summary="Projects using a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def config_projects(config_name: str, session: SessionDep, access: Read) -> Data:
    config = await admin.get_config(session, access.org.id, config_name)
    names = await admin.config_projects(session, config.id)
    return envelope(f"{len(names)} project(s) use {config.name!r}", names)


# --- projects -------------------------------------------------------------------------------


@router.get("/projects", tags=["Projects"], summary="List projects", response_model=Reply, responses=ERRORS)
async def list_projects(session: SessionDep, access: Read) -> Data:
    projects = [await _project_data(session, p) for p in await admin.list_projects(session, access.org.id)]
    return envelope(f"{len(projects)} project(s)", projects)


@router.post(
    "/projects",
    tags=["Projects"],
    summary="Create a project",
    status_code=201,
    response_model=Reply,
    responses=ERRORS,
)
async def create_project(body: CreateProject, session: SessionDep, client: ClientDep, access: Write) -> Data:
    project = await admin.create_project(session, access.org.id, body.project_name, body.description)
    _audit(session, access, "project.created", client, project=project.name)
    return envelope(f"Project {project.name!r} created", await _project_data(session, project))


@router.get(
    "/projects/{project_name}",
    tags=["Projects"],
    summary="Get a project",
    response_model=Reply,
    responses=ERRORS,
)
async def get_project(project_name: str, session: SessionDep, access: Read) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    return envelope(f"Project {project.name!r}", await _project_data(session, project))


@router.put(
    "/projects/{project_name}",
    tags=["Projects"],
    summary="Rename or describe a project",
    response_model=Reply,
    responses=ERRORS,
)
async def update_project(
    project_name: str, body: UpdateProject, session: SessionDep, client: ClientDep, access: Write
) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    await admin.update_project(session, project, body.new_project_name, body.description)
    _audit(session, access, "project.updated", client, project=project_name, new_name=body.new_project_name)
    return envelope(f"Project {project.name!r} updated", await _project_data(session, project))


@router.delete(
    "/projects/{project_name}",
    tags=["Projects"],
    summary="Delete a project",
    response_model=Reply,
    responses=ERRORS,
)
async def delete_project(project_name: str, session: SessionDep, client: ClientDep, access: Write) -> Data:
    """Its users' keys for this project are revoked."""
    project = await admin.get_project(session, access.org.id, project_name)
    await admin.delete_project(session, project)
    _audit(session, access, "project.deleted", client, project=project_name)
    return envelope(f"Project {project_name!r} deleted", {"project_name": project_name})


@router.post(
    "/projects/{project_name}/assign-config",
    tags=["Projects"],
    summary="Assign a configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def assign_config(
    project_name: str, body: AssignConfig, session: SessionDep, client: ClientDep, access: Write
) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    config = await admin.get_config(session, access.org.id, body.config_name)
    project.config_id = config.id
    project.updated_at = utcnow()
    _audit(session, access, "project.config_assigned", client, project=project_name, config=config.name)
    return envelope(
        f"Configuration {config.name!r} assigned to {project.name!r}", await _project_data(session, project)
    )


@router.post(
    "/projects/{project_name}/unassign-config",
    tags=["Projects"],
    summary="Remove the configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def unassign_config(project_name: str, session: SessionDep, client: ClientDep, access: Write) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    project.config_id = None
    project.updated_at = utcnow()
    _audit(session, access, "project.config_unassigned", client, project=project_name)
    return envelope(f"Project {project.name!r} has no configuration", await _project_data(session, project))


@router.get(
    "/projects/{project_name}/config",
    tags=["Projects"],
    summary="The project's configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def project_config(project_name: str, session: SessionDep, runtime: RuntimeDep, access: Read) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    if project.config_id is None:
        return envelope(f"Project {project.name!r} has no configuration", None)
    config = await session.get(Config, project.config_id)
    assert config is not None
    return envelope(f"Configuration of {project.name!r}", await _config_data(session, runtime, config))


@router.get(
    "/projects/{project_name}/users",
    tags=["Projects"],
    summary="List a project's users",
    response_model=Reply,
    responses=ERRORS,
)
async def list_project_users(project_name: str, session: SessionDep, access: Read) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    users = await admin.project_users(session, project.id)
    return envelope(f"{len(users)} user(s) in {project.name!r}", users)


@router.post(
    "/projects/{project_name}/users",
    tags=["Projects"],
    summary="Add a user to a project",
    status_code=201,
    response_model=Reply,
    responses=ERRORS,
)
async def add_project_user(
    project_name: str, body: UserEmail, session: SessionDep, client: ClientDep, access: Write
) -> Data:
    project = await admin.get_project(session, access.org.id, project_name)
    account = await admin.add_project_user(session, project, body.email)
    _audit(session, access, "project.user_added", client, project=project_name, email=account.email)
    return envelope(f"{account.email} added to {project.name!r}", await _project_data(session, project))


@router.delete(
    "/projects/{project_name}/users/{email}",
    tags=["Projects"],
    summary="Remove a user from a project",
    response_model=Reply,
    responses=ERRORS,
)
async def remove_project_user(
    project_name: str, email: str, session: SessionDep, client: ClientDep, access: Write
) -> Data:
    """The user's keys for this project are revoked."""
    project = await admin.get_project(session, access.org.id, project_name)
    await admin.remove_project_user(session, project, email)
    _audit(session, access, "project.user_removed", client, project=project_name, email=email)
    return envelope(f"{email} removed from {project.name!r}", await _project_data(session, project))


# --- users ----------------------------------------------------------------------------------


async def _user_data(session: AsyncSession, org_id: str, account: Any, role: str) -> Data:
    return {
        "id": account.id,
        "email": account.email,
        "role": role,
        "projects": await admin.user_projects(session, org_id, account.id),
        "created_at": account.created_at,
    }


@router.get("/users", tags=["Users"], summary="List users", response_model=Reply, responses=ERRORS)
async def list_users(session: SessionDep, access: Read) -> Data:
    users = [
        await _user_data(session, access.org.id, a, m.role)
        for a, m in await admin.list_users(session, access.org.id)
    ]
    return envelope(f"{len(users)} user(s)", users)


@router.post(
    "/users", tags=["Users"], summary="Create a user", status_code=201, response_model=Reply, responses=ERRORS
)
async def create_user(
    body: CreateUser, session: SessionDep, runtime: RuntimeDep, client: ClientDep, access: Users
) -> Data:
    """A member of the organization (role viewer unless given). A new account has no password
    until its owner resets it."""
    account, membership = await admin.create_user(session, runtime, access.org, str(body.email), body.role)
    _audit(session, access, "user.created", client, email=account.email, role=membership.role)
    return envelope(
        f"User {account.email} created", await _user_data(session, access.org.id, account, membership.role)
    )


@router.get("/users/{email}", tags=["Users"], summary="Get a user", response_model=Reply, responses=ERRORS)
async def get_user(email: str, session: SessionDep, access: Read) -> Data:
    account = await admin.get_user(session, access.org.id, email)
    role = await orgs.role_in(session, access.org.id, account.id) or "viewer"
    return envelope(f"User {account.email}", await _user_data(session, access.org.id, account, role))


@router.put(
    "/users/{email}", tags=["Users"], summary="Change a user's role", response_model=Reply, responses=ERRORS
)
async def update_user(
    email: str, body: UpdateUser, session: SessionDep, client: ClientDep, access: Users
) -> Data:
    account = await admin.get_user(session, access.org.id, email)
    member = await orgs.change_role(session, access.org.id, account.id, body.role)
    _audit(session, access, "user.updated", client, email=account.email, role=body.role)
    return envelope(
        f"User {account.email} updated", await _user_data(session, access.org.id, account, member.role)
    )


@router.delete(
    "/users/{email}", tags=["Users"], summary="Delete a user", response_model=Reply, responses=ERRORS
)
async def delete_user(email: str, session: SessionDep, client: ClientDep, access: Users) -> Data:
    """Removes the user from the organization and its projects and revokes their keys here."""
    await admin.delete_user(session, access.org.id, email)
    _audit(session, access, "user.deleted", client, email=email)
    return envelope(f"User {email} deleted", {"email": email})


@router.get(
    "/users/{email}/projects",
    tags=["Users"],
    summary="A user's projects",
    response_model=Reply,
    responses=ERRORS,
)
async def user_projects(email: str, session: SessionDep, access: Read) -> Data:
    account = await admin.get_user(session, access.org.id, email)
    names = await admin.user_projects(session, access.org.id, account.id)
    return envelope(f"{len(names)} project(s)", names)


# --- user API keys --------------------------------------------------------------------------


@router.post(
    "/users/{email}/api-keys",
    tags=["API Keys"],
    summary="Generate an API key for a user",
    status_code=201,
    response_model=Reply,
    responses=ERRORS,
)
async def create_user_key(
    email: str,
    body: CreateUserKey,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: Users,
) -> Data:
    """Bound to `project_name`: it reaches that project's configuration through `/mcp`. The
    key is in this response only."""
    key, raw, project = await admin.create_user_key(
        session, runtime, access.org, email, body.project_name, body.name
    )
    _audit(
        session,
        access,
        "api_key.created",
        client,
        email=email,
        project=project.name,
        key=key.id,
        kind="project",
    )
    return envelope(f"API key created for {email}", _key_data(key, project.name, raw))


@router.get(
    "/users/{email}/api-keys",
    tags=["API Keys"],
    summary="List a user's API keys",
    response_model=Reply,
    responses=ERRORS,
)
async def list_user_keys(email: str, session: SessionDep, access: Users) -> Data:
    found = await admin.user_keys(session, access.org.id, email)
    names = await admin.project_names(session, {k.project_id for k in found})
    return envelope(f"{len(found)} key(s)", [_key_data(k, names.get(k.project_id or "")) for k in found])


@router.post(
    "/users/{email}/api-keys/{key_id}/rotate",
    tags=["API Keys"],
    summary="Rotate a user's API key",
    response_model=Reply,
    responses=ERRORS,
)
async def rotate_user_key(
    email: str, key_id: str, session: SessionDep, runtime: RuntimeDep, client: ClientDep, access: Users
) -> Data:
    """The old key stops working now; the new one is in this response only."""
    key, raw = await admin.rotate_user_key(session, runtime, access.org.id, email, key_id)
    names = await admin.project_names(session, {key.project_id})
    _audit(session, access, "api_key.rotated", client, email=email, old_key=key_id, key=key.id)
    return envelope("API key rotated", _key_data(key, names.get(key.project_id or ""), raw))


async def _set_disabled(
    session: AsyncSession, access: OrgAccess, client: ClientDep, email: str, key_id: str, disabled: bool
) -> Data:
    key = await admin.user_key(session, access.org.id, email, key_id)
    key.disabled_at = utcnow() if disabled else None
    state = "disabled" if disabled else "enabled"
    _audit(session, access, f"api_key.{state}", client, email=email, key=key_id)
    names = await admin.project_names(session, {key.project_id})
    return envelope(f"API key {state}", _key_data(key, names.get(key.project_id or "")))


@router.post(
    "/users/{email}/api-keys/{key_id}/disable",
    tags=["API Keys"],
    summary="Disable a user's API key",
    response_model=Reply,
    responses=ERRORS,
)
async def disable_user_key(
    email: str, key_id: str, session: SessionDep, client: ClientDep, access: Users
) -> Data:
    return await _set_disabled(session, access, client, email, key_id, True)


@router.post(
    "/users/{email}/api-keys/{key_id}/enable",
    tags=["API Keys"],
    summary="Enable a user's API key",
    response_model=Reply,
    responses=ERRORS,
)
async def enable_user_key(
    email: str, key_id: str, session: SessionDep, client: ClientDep, access: Users
) -> Data:
    return await _set_disabled(session, access, client, email, key_id, False)


@router.delete(
    "/users/{email}/api-keys/{key_id}",
    tags=["API Keys"],
    summary="Delete a user's API key",
    response_model=Reply,
    responses=ERRORS,
)
async def delete_user_key(
    email: str, key_id: str, session: SessionDep, client: ClientDep, access: Users
) -> Data:
    key = await admin.user_key(session, access.org.id, email, key_id)
    key.revoked_at = utcnow()
    _audit(session, access, "api_key.revoked", client, email=email, key=key_id)
    return envelope("API key deleted", {"key_id": key_id})


# --- system ---------------------------------------------------------------------------------


@router.get(
    "/system/health",
    tags=["System"],
    summary="System health (authenticated)",
    response_model=Reply,
    responses=ERRORS,
)
async def system_health(session: SessionDep, runtime: RuntimeDep, access: Read) -> Data:
    await session.execute(text("SELECT 1"))
    rows = await session.execute(
        select(Job.status, func.count()).where(Job.status.in_((PENDING, DEAD))).group_by(Job.status)
    )
    counts: dict[str, int] = {status: count for status, count in rows.all()}
    return envelope(
        "System is healthy",
        {
            "database": "ok",
            "backend": runtime.db.engine.dialect.name,
            "jobs_pending": counts.get(PENDING, 0),
            "jobs_dead": counts.get(DEAD, 0),
            "organization": {"id": access.org.id, "name": access.org.name, "plan": access.org.plan},
        },
    )


@router.post(
    "/system/backup",
    tags=["System"],
    summary="Back up the organization's configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def system_backup(
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    access: System,
    body: Annotated[BackupRequest | None, Body()] = None,
) -> Data:
    """One JSON document. Server secrets are left out unless `include_secrets` is true, and then
    encrypted with `passphrase`."""
    request = body or BackupRequest()
    document = await backup.build(
        session, runtime, access.org, include_secrets=request.include_secrets, passphrase=request.passphrase
    )
    _audit(session, access, "system.backup", client, include_secrets=request.include_secrets)
    return envelope("Backup created", document)


@router.post(
    "/system/restore",
    tags=["System"],
    summary="Restore the organization's configuration",
    response_model=Reply,
    responses=ERRORS,
)
async def system_restore(
    body: RestoreRequest, session: SessionDep, runtime: RuntimeDep, client: ClientDep, access: System
) -> Data:
    """Validated first; then servers, configurations and projects become the backup's, all at
    once, matched by name (project keys keep working; keys of dropped projects or project
    members are revoked). Members are added or updated, never removed. Without sealed secrets,
    servers keep their current environment values; names without one are in `env_missing`."""
    counts = await backup.restore(session, runtime, access.org, body.backup, body.passphrase)
    _audit(session, access, "system.restore", client, **counts)
    return envelope("Backup restored", counts)
