"""`conduit org`: operator commands on the local database (plans are the operator's to set)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy import func, or_, select

from conduit.billing import service as billing
from conduit.cli.common import console, err_console, load_settings, print_rows
from conduit.identity import audit
from conduit.kit.errors import ConduitError
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Membership, Organization

app = typer.Typer(
    help="Organizations and their plans (operator commands, on the local database).", no_args_is_help=True
)
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]


@app.command("list")
def list_orgs(as_json: Json = False) -> None:
    """Every organization with its plan and member count."""

    async def fetch() -> list[dict[str, object]]:
        runtime = Runtime.create(load_settings())
        try:
            async with runtime.db.session(write=False) as session:
                members = (
                    select(Membership.org_id, func.count().label("n")).group_by(Membership.org_id).subquery()
                )
                rows = await session.execute(
                    select(Organization, members.c.n)
                    .outerjoin(members, members.c.org_id == Organization.id)
                    .order_by(Organization.created_at)
                )
                return [
                    {
                        "id": o.id,
                        "slug": o.slug,
                        "name": o.name,
                        "plan": o.plan,
                        "members": n or 0,
                        "personal": o.personal,
                    }
                    for o, n in rows.all()
                ]
        finally:
            await runtime.close()

    rows = asyncio.run(fetch())
    if not as_json:  # a name like "Acme [EU]" is data, not Rich markup
        rows = [{**row, "name": escape(str(row["name"]))} for row in rows]
    print_rows(rows, ["id", "slug", "name", "plan", "members", "personal"], as_json=as_json)


@app.command("plans")
def plans(as_json: Json = False) -> None:
    """The plans and their limits (empty: unlimited)."""
    rows = [
        {
            "plan": p.key,
            "servers": p.servers,
            "keys": p.keys,
            "members": p.members,
            "scans_per_month": p.scans_per_month,
            "gateway_calls_per_day": p.gateway_calls_per_day,
            "gateway_requests_per_minute_per_key": p.gateway_requests_per_minute,
        }
        for p in billing.PLANS.values()
    ]
    print_rows(rows, list(rows[0]), as_json=as_json)


@app.command("set-plan")
def set_plan(
    org: Annotated[str, typer.Argument(help="Organization id or slug")],
    plan: Annotated[str, typer.Argument(help=f"One of: {', '.join(billing.PLANS)}")],
) -> None:
    """Put an organization on a plan. Limits apply from the next request."""

    async def run() -> tuple[str, str]:
        runtime = Runtime.create(load_settings())
        try:
            async with runtime.db.session() as session:
                billing.plan_for(plan)
                found = await session.scalar(
                    select(Organization).where(or_(Organization.id == org, Organization.slug == org))
                )
                if found is None:
                    raise ConduitError(f"No organization {org!r}", code="organization_not_found")
                previous, found.plan = found.plan, plan
                audit.record(
                    session,
                    "organization.plan_changed",
                    org_id=found.id,
                    previous=previous,
                    plan=plan,
                    source="conduit org set-plan",
                )
                return found.name, previous
        finally:
            await runtime.close()

    try:
        name, previous = asyncio.run(run())
    except ConduitError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)} ({exc.code})", highlight=False)
        raise typer.Exit(1) from exc
    console.print(escape(f"{name}: plan {previous} -> {plan}"), highlight=False)
