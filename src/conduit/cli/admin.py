"""`conduit config|project|user|key|system`: seed 001's admin API from the terminal.

Every command calls the server's REST API with the stored (or `CONDUIT_API_KEY`) key, so it
works the same against a local or a remote Conduit. Tables by default, `--json` for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from conduit.cli.client import Api, fail, write_private_file
from conduit.cli.common import console, env_pairs, err_console, print_rows

Url = Annotated[str | None, typer.Option("--url", help="Conduit server URL (CONDUIT_URL)")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]

config_app = typer.Typer(help="Gateway configurations and their servers.", no_args_is_help=True)
project_app = typer.Typer(help="Projects: consumers bound to one configuration.", no_args_is_help=True)
user_app = typer.Typer(help="Users of the organization.", no_args_is_help=True)
key_app = typer.Typer(help="Users' project API keys.", no_args_is_help=True)
system_app = typer.Typer(help="Health, backup and restore.", no_args_is_help=True)


def _call(url: str | None, method: str, path: str, body: Any = None) -> Any:
    reply = Api.from_environment(url).request(method, path, json_body=body)
    return reply.get("data") if isinstance(reply, dict) and "data" in reply else reply


def _show(data: Any, columns: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    elif isinstance(data, list):
        rows = [row if isinstance(row, dict) else {columns[0]: row} for row in data]
        print_rows([{c: _cell(r.get(c)) for c in columns} for r in rows], columns, as_json=False)
    elif isinstance(data, dict):
        print_rows(
            [{"field": k, "value": _cell(v)} for k, v in data.items()], ["field", "value"], as_json=False
        )
    else:
        _done(str(data))


def _cell(value: Any) -> Any:
    # Escaped: a description like "see [docs]" is data, not Rich markup.
    if isinstance(value, list):
        value = ", ".join(v.get("server_name", str(v)) if isinstance(v, dict) else str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    return escape(value) if isinstance(value, str) else value


def _done(message: str) -> None:
    console.print(escape(message), highlight=False)


def _q(value: str) -> str:
    return quote(value, safe="@")


CONFIG_COLUMNS = ["config_name", "description", "servers", "projects"]
SERVER_COLUMNS = ["server_name", "transport", "server_command", "args", "url", "tools"]
PROJECT_COLUMNS = ["project_name", "config_name", "users", "description"]
USER_COLUMNS = ["email", "role", "projects"]
KEY_COLUMNS = ["key_id", "name", "project_name", "prefix", "status", "last_used_at"]


# --- config ---------------------------------------------------------------------------------


@config_app.command("list")
def config_list(url: Url = None, as_json: Json = False) -> None:
    """List configurations."""
    _show(_call(url, "GET", "/api/v1/configs"), CONFIG_COLUMNS, as_json)


@config_app.command("create")
def config_create(
    name: str,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Create a configuration."""
    _show(
        _call(url, "POST", "/api/v1/configs", {"config_name": name, "description": description}),
        CONFIG_COLUMNS,
        as_json,
    )


@config_app.command("show")
def config_show(name: str, url: Url = None, as_json: Json = False) -> None:
    """Show a configuration with its servers."""
    data = _call(url, "GET", f"/api/v1/configs/{_q(name)}")
    if as_json:
        _show(data, [], True)
        return
    _show({k: v for k, v in data.items() if k != "servers"}, [], False)
    _show(data["servers"], SERVER_COLUMNS, False)


@config_app.command("rename")
def config_rename(name: str, new_name: str, url: Url = None, as_json: Json = False) -> None:
    """Rename a configuration."""
    _show(
        _call(url, "PUT", f"/api/v1/configs/{_q(name)}", {"new_config_name": new_name}),
        CONFIG_COLUMNS,
        as_json,
    )


@config_app.command("copy")
def config_copy(name: str, new_name: str, url: Url = None, as_json: Json = False) -> None:
    """Copy a configuration under a new name."""
    _show(
        _call(url, "POST", f"/api/v1/configs/{_q(name)}/copy", {"new_config_name": new_name}),
        CONFIG_COLUMNS,
        as_json,
    )


@config_app.command("delete")
def config_delete(name: str, url: Url = None) -> None:
    """Delete a configuration."""
    _call(url, "DELETE", f"/api/v1/configs/{_q(name)}")
    _done(f"Configuration {name!r} deleted")


@config_app.command("servers")
def config_servers(name: str, url: Url = None, as_json: Json = False) -> None:
    """List a configuration's servers."""
    _show(_call(url, "GET", f"/api/v1/configs/{_q(name)}/servers"), SERVER_COLUMNS, as_json)


def _server_body(
    command: str | None,
    arg: list[str] | None,
    server_url: str | None,
    env: list[str] | None,
    tools: str | None,
    description: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "server_command": command,
        "args": arg,
        "url": server_url,
        "env": env_pairs(env),
        "description": description,
    }
    if tools is not None:
        body["tools"] = [t.strip() for t in tools.split(",") if t.strip()] or None
    return {k: v for k, v in body.items() if v is not None or k == "tools"}


@config_app.command("add-server")
def config_add_server(
    config: str,
    name: str,
    command: Annotated[str | None, typer.Option("--command", help="stdio command, e.g. npx")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="One argument; repeat")] = None,
    server_url: Annotated[
        str | None, typer.Option("--server-url", help="Upstream MCP URL instead of a command")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="NAME=VALUE; repeat; stored encrypted")
    ] = None,
    tools: Annotated[str | None, typer.Option(help="Comma-separated tools to expose (default: all)")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Add a server (stdio command or URL) to a configuration."""
    body = {"server_name": name, **_server_body(command, arg, server_url, env, tools, description)}
    _show(_call(url, "POST", f"/api/v1/configs/{_q(config)}/servers", body), SERVER_COLUMNS, as_json)


@config_app.command("update-server")
def config_update_server(
    config: str,
    name: str,
    command: Annotated[str | None, typer.Option("--command")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg")] = None,
    server_url: Annotated[str | None, typer.Option("--server-url")] = None,
    env: Annotated[list[str] | None, typer.Option("--env")] = None,
    tools: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Change a server of a configuration (only what is given)."""
    body = _server_body(command, arg, server_url, env, tools, description)
    if tools is None:
        body.pop("tools", None)
    _show(
        _call(url, "PUT", f"/api/v1/configs/{_q(config)}/servers/{_q(name)}", body), SERVER_COLUMNS, as_json
    )


@config_app.command("remove-server")
def config_remove_server(config: str, name: str, url: Url = None) -> None:
    """Remove a server from a configuration."""
    _call(url, "DELETE", f"/api/v1/configs/{_q(config)}/servers/{_q(name)}")
    _done(f"Server {name!r} removed from {config!r}")


# --- project --------------------------------------------------------------------------------


@project_app.command("list")
def project_list(url: Url = None, as_json: Json = False) -> None:
    """List projects."""
    _show(_call(url, "GET", "/api/v1/projects"), PROJECT_COLUMNS, as_json)


@project_app.command("create")
def project_create(
    name: str,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Create a project."""
    _show(
        _call(url, "POST", "/api/v1/projects", {"project_name": name, "description": description}),
        PROJECT_COLUMNS,
        as_json,
    )


@project_app.command("show")
def project_show(name: str, url: Url = None, as_json: Json = False) -> None:
    """Show a project."""
    _show(_call(url, "GET", f"/api/v1/projects/{_q(name)}"), PROJECT_COLUMNS, as_json)


@project_app.command("delete")
def project_delete(name: str, url: Url = None) -> None:
    """Delete a project (its users' keys for it are revoked)."""
    _call(url, "DELETE", f"/api/v1/projects/{_q(name)}")
    _done(f"Project {name!r} deleted")


@project_app.command("assign-config")
def project_assign(name: str, config: str, url: Url = None, as_json: Json = False) -> None:
    """Assign a configuration to a project."""
    _show(
        _call(url, "POST", f"/api/v1/projects/{_q(name)}/assign-config", {"config_name": config}),
        PROJECT_COLUMNS,
        as_json,
    )


@project_app.command("unassign-config")
def project_unassign(name: str, url: Url = None, as_json: Json = False) -> None:
    """Leave a project without a configuration."""
    _show(_call(url, "POST", f"/api/v1/projects/{_q(name)}/unassign-config"), PROJECT_COLUMNS, as_json)


@project_app.command("add-user")
def project_add_user(name: str, email: str, url: Url = None, as_json: Json = False) -> None:
    """Add a user to a project."""
    _show(
        _call(url, "POST", f"/api/v1/projects/{_q(name)}/users", {"email": email}), PROJECT_COLUMNS, as_json
    )


@project_app.command("remove-user")
def project_remove_user(name: str, email: str, url: Url = None, as_json: Json = False) -> None:
    """Remove a user from a project."""
    _show(_call(url, "DELETE", f"/api/v1/projects/{_q(name)}/users/{_q(email)}"), PROJECT_COLUMNS, as_json)


@project_app.command("users")
def project_users(name: str, url: Url = None, as_json: Json = False) -> None:
    """List a project's users."""
    _show(_call(url, "GET", f"/api/v1/projects/{_q(name)}/users"), ["email"], as_json)


# --- user -----------------------------------------------------------------------------------


@user_app.command("list")
def user_list(url: Url = None, as_json: Json = False) -> None:
    """List users."""
    _show(_call(url, "GET", "/api/v1/users"), USER_COLUMNS, as_json)


@user_app.command("create")
def user_create(
    email: str,
    role: Annotated[str, typer.Option(help="admin, developer or viewer")] = "viewer",
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Create a user (a member of the organization)."""
    _show(_call(url, "POST", "/api/v1/users", {"email": email, "role": role}), USER_COLUMNS, as_json)


@user_app.command("show")
def user_show(email: str, url: Url = None, as_json: Json = False) -> None:
    """Show a user."""
    _show(_call(url, "GET", f"/api/v1/users/{_q(email)}"), USER_COLUMNS, as_json)


@user_app.command("set-role")
def user_set_role(email: str, role: str, url: Url = None, as_json: Json = False) -> None:
    """Change a user's role."""
    _show(_call(url, "PUT", f"/api/v1/users/{_q(email)}", {"role": role}), USER_COLUMNS, as_json)


@user_app.command("delete")
def user_delete(email: str, url: Url = None) -> None:
    """Remove a user from the organization (their keys here are revoked)."""
    _call(url, "DELETE", f"/api/v1/users/{_q(email)}")
    _done(f"User {email} deleted")


@user_app.command("projects")
def user_projects(email: str, url: Url = None, as_json: Json = False) -> None:
    """List a user's projects."""
    _show(_call(url, "GET", f"/api/v1/users/{_q(email)}/projects"), ["project_name"], as_json)


# --- key ------------------------------------------------------------------------------------


@key_app.command("create")
def key_create(
    email: str,
    project: Annotated[str, typer.Option("--project", help="Project the key is for")],
    name: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Generate a key for a user in a project; it is shown only now."""
    data = _call(url, "POST", f"/api/v1/users/{_q(email)}/api-keys", {"project_name": project, "name": name})
    _show_new_key(data, as_json)


def _show_new_key(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _show(data, [], True)
        return
    _show({k: v for k, v in data.items() if k != "api_key"}, [], False)
    # On a line of its own: inside a table a terminal would fold it, and a folded key is useless.
    print(data["api_key"])
    err_console.print("Store the key now: it is shown only this once.")


@key_app.command("list")
def key_list(email: str, url: Url = None, as_json: Json = False) -> None:
    """List a user's keys (prefixes only)."""
    _show(_call(url, "GET", f"/api/v1/users/{_q(email)}/api-keys"), KEY_COLUMNS, as_json)


@key_app.command("rotate")
def key_rotate(email: str, key_id: str, url: Url = None, as_json: Json = False) -> None:
    """Replace a key: the old one stops working now."""
    _show_new_key(_call(url, "POST", f"/api/v1/users/{_q(email)}/api-keys/{_q(key_id)}/rotate"), as_json)


@key_app.command("disable")
def key_disable(email: str, key_id: str, url: Url = None, as_json: Json = False) -> None:
    """Disable a key (it can be enabled again)."""
    _show(
        _call(url, "POST", f"/api/v1/users/{_q(email)}/api-keys/{_q(key_id)}/disable"),
        KEY_COLUMNS,
        as_json,
    )


@key_app.command("enable")
def key_enable(email: str, key_id: str, url: Url = None, as_json: Json = False) -> None:
    """Enable a disabled key."""
    _show(
        _call(url, "POST", f"/api/v1/users/{_q(email)}/api-keys/{_q(key_id)}/enable"),
        KEY_COLUMNS,
        as_json,
    )


@key_app.command("delete")
def key_delete(email: str, key_id: str, url: Url = None) -> None:
    """Delete (revoke) a key."""
    _call(url, "DELETE", f"/api/v1/users/{_q(email)}/api-keys/{_q(key_id)}")
    _done(f"Key {key_id} deleted")


# --- system ---------------------------------------------------------------------------------


@system_app.command("health")
def system_health(url: Url = None, as_json: Json = False) -> None:
    """Database, jobs and organization status."""
    _show(_call(url, "GET", "/api/v1/system/health"), [], as_json)


@system_app.command("backup")
def system_backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write")] = Path(
        "conduit-backup.json"
    ),
    include_secrets: Annotated[
        bool, typer.Option("--include-secrets", help="Include server secrets, encrypted")
    ] = False,
    passphrase: Annotated[
        str | None, typer.Option(help="Passphrase for the secrets (prompted when omitted)")
    ] = None,
    url: Url = None,
) -> None:
    """Write the organization's configuration to a JSON file."""
    if include_secrets and passphrase is None:
        passphrase = typer.prompt("Passphrase for the secrets", hide_input=True, confirmation_prompt=True)
    data = _call(
        url, "POST", "/api/v1/system/backup", {"include_secrets": include_secrets, "passphrase": passphrase}
    )
    write_private_file(output, json.dumps(data, indent=2, sort_keys=True))
    conf = data["configuration"]
    _done(
        f"Backup written to {output}: {len(conf['servers'])} servers, {len(conf['configs'])} "
        f"configurations, {len(conf['projects'])} projects, {len(conf['users'])} users"
    )


@system_app.command("restore")
def system_restore(
    path: Annotated[Path, typer.Argument(help="A file written by `conduit system backup`")],
    passphrase: Annotated[str | None, typer.Option(help="Passphrase, if the backup holds secrets")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    url: Url = None,
) -> None:
    """Replace the organization's servers, configurations and projects with a backup."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    if not isinstance(document, dict):
        fail(f"{path} is not a backup written by `conduit system backup`")
    if document.get("secrets") and passphrase is None:
        passphrase = typer.prompt("Passphrase of the backup", hide_input=True)
    if not yes:
        typer.confirm(
            "This replaces every server, configuration and project of the organization. Go on?", abort=True
        )
    counts = _call(url, "POST", "/api/v1/system/restore", {"backup": document, "passphrase": passphrase})
    _done(
        f"Restored {counts['servers']} servers, {counts['configs']} configurations, "
        f"{counts['projects']} projects, {counts['users']} users"
    )
    if counts.get("env_missing"):
        err_console.print(
            escape(
                "warning: the backup holds no value for these environment variables; set them with "
                "`conduit config update-server --env`: " + ", ".join(counts["env_missing"])
            ),
            highlight=False,
        )
