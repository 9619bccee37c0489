"""`conduit init` (first admin, organization and admin key) and `conduit settings`."""

from __future__ import annotations

import asyncio
import secrets
import sys
from dataclasses import dataclass
from typing import Annotated

import typer
from sqlalchemy import select

from conduit.cli.common import console, err_console, load_settings, print_rows
from conduit.cli.server import apply_migrations
from conduit.identity import audit, service
from conduit.identity.auth import ClientInfo
from conduit.identity.models import Account
from conduit.kit.errors import ConduitError
from conduit.kit.runtime import Runtime
from conduit.orgs import service as orgs
from conduit.orgs.models import Membership, Organization
from conduit.settings import Settings, describe

CLI_CLIENT = ClientInfo(ip=None, user_agent="conduit-cli")


@dataclass
class InitResult:
    created: bool
    email: str
    org_name: str | None = None
    org_id: str | None = None
    api_key: str | None = None
    password: str | None = None


async def initialise(
    settings: Settings, *, email: str, password: str | None, org_name: str, new_key: bool
) -> InitResult:
    runtime = Runtime.create(settings)
    try:
        async with runtime.db.session() as session:
            admin = await session.scalar(select(Account).where(Account.is_instance_admin.is_(True)))
            if admin is not None and not new_key:
                return InitResult(created=False, email=admin.email)
            if admin is not None and admin.email != service.normalize_email(email):
                # A key for someone other than the account named would be a silent surprise.
                raise ConduitError(f"{email} is not the instance admin; the admin is {admin.email}")
            generated = None
            org: Organization | None
            if admin is None:
                if password is None:
                    generated = password = secrets.token_urlsafe(18)
                admin = await service.sign_up(
                    session,
                    email=email,
                    password=password,
                    client=CLI_CLIENT,
                    instance_admin=True,
                    personal_org=False,
                )
                org = await orgs.create_org(session, name=org_name, owner_id=admin.id, plan="enterprise")
            else:
                org = await session.scalar(
                    select(Organization)
                    .join(Membership, Membership.org_id == Organization.id)
                    .where(Membership.account_id == admin.id, Membership.role == "admin")
                    .order_by(Membership.created_at)
                )
                if org is None:
                    raise ConduitError("The instance admin belongs to no organization")
            key, raw = await service.create_api_key(
                session,
                runtime,
                org_id=org.id,
                kind="org",
                name="admin key (conduit init)",
                account_id=admin.id,
                role="admin",
            )
            audit.record(
                session,
                "api_key.created",
                account_id=admin.id,
                org_id=org.id,
                key_id=key.id,
                source="conduit init",
            )
            return InitResult(True, admin.email, org.name, org.id, raw, generated)
    finally:
        await runtime.close()


def init(
    email: Annotated[str, typer.Option(prompt="Admin email", help="Email of the first admin account")],
    password: Annotated[
        str | None, typer.Option(help="Admin password (prompted on a terminal; generated when not given)")
    ] = None,
    org_name: Annotated[str, typer.Option("--org-name", help="Name of the first organization")] = "Default",
    new_key: Annotated[
        bool, typer.Option("--new-key", help="Already initialised: issue another admin key")
    ] = False,
) -> None:
    """Create the first admin account and organization and print an admin API key, once.

    Safe to re-run: an initialised instance is left as it is.
    """
    settings = load_settings()
    apply_migrations(settings)
    if password is None and sys.stdin.isatty() and not new_key:
        password = (
            typer.prompt(
                "Admin password (empty: generate one)",
                default="",
                hide_input=True,
                confirmation_prompt=True,
                show_default=False,
            )
            or None
        )
    try:
        result = asyncio.run(
            initialise(settings, email=email, password=password, org_name=org_name, new_key=new_key)
        )
    except ConduitError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    if not result.created:
        console.print(f"Conduit is already initialised (admin: {result.email}). Nothing changed.")
        console.print("To issue another admin API key: conduit init --new-key --email <admin email>")
        return
    console.print(f"Admin account:  {result.email}")
    if result.password:
        console.print(f"Admin password: {result.password}   (generated; shown once)")
    console.print(f"Organization:   {result.org_name} ({result.org_id})")
    console.print(f"Admin API key:  {result.api_key}")
    console.print("[yellow]Store the key now: it is shown only this once.[/yellow]")


def settings_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Every setting, its effective value and where it comes from (secrets masked)."""
    settings = load_settings()
    rows = [
        {"setting": v.name, "value": v.value, "source": v.source, "description": v.description}
        for v in describe(settings)
    ]
    print_rows(rows, ["setting", "value", "source", "description"], as_json=as_json)
