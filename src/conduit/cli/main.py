"""Entry point of the `conduit` command."""

from __future__ import annotations

import typer
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from conduit.cli import admin, auth, jobs, org, scans, server, servers, setup
from conduit.cli.common import err_console
from conduit.cli.scan import scan_command
from conduit.cli.webhooks import app as webhooks_app

app = typer.Typer(
    name="conduit",
    help="Conduit: a self-hosted trust gateway for AI-agent integrations.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.migrate)
app.command()(setup.init)
app.command("settings")(setup.settings_command)
app.add_typer(jobs.app, name="jobs")
app.command()(auth.login)
app.command()(auth.whoami)
app.command()(auth.logout)
app.add_typer(org.app, name="org")
app.add_typer(admin.config_app, name="config")
app.add_typer(admin.project_app, name="project")
app.add_typer(admin.user_app, name="user")
app.add_typer(admin.key_app, name="key")
app.add_typer(servers.app, name="servers")
app.add_typer(webhooks_app, name="webhooks")
app.command("scan")(scan_command)
app.add_typer(scans.app, name="scans")
app.add_typer(scans.registry_app, name="registry")
admin.system_app.command("start-api", help="Start the API server (same as `conduit serve`).")(server.serve)
app.add_typer(admin.system_app, name="system")


def main() -> None:
    try:
        app()
    except DBAPIError as exc:
        # One line, not three screens of traceback: the cause is almost always the URL or the
        # server, and the driver's message names it.
        reason = str(exc.orig).strip() or type(exc.orig).__name__
        err_console.print(f"[red]error:[/red] database: {escape(reason)}")
        raise SystemExit(1) from None
    except OSError as exc:  # database server unreachable, data directory not writable, ...
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise SystemExit(1) from None
