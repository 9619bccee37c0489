"""Entry point of the `conduit` command."""

from __future__ import annotations

import typer

from conduit.cli import jobs, server, setup

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


def main() -> None:
    app()
