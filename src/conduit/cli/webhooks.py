"""`conduit webhooks`: webhook deliveries and their delivery log, and redelivery, through the REST
API (`/api/v1/webhooks/deliveries`). Tables by default, `--json` for scripts."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from conduit.cli.client import Api
from conduit.cli.common import console, print_rows

app = typer.Typer(
    help="Webhook deliveries: list them, read their delivery log, redeliver.", no_args_is_help=True
)

Url = Annotated[str | None, typer.Option("--url", help="Conduit server URL (CONDUIT_URL)")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]
DeliveryId = Annotated[str, typer.Argument(help="The delivery's id (whd_...)")]
DELIVERIES = "/api/v1/webhooks/deliveries"
DELIVERY_COLUMNS = [
    "id",
    "event_type",
    "status",
    "attempts",
    "last_http_status",
    "next_attempt_at",
    "created_at",
]
ATTEMPT_COLUMNS = ["attempt", "attempted_at", "http_status", "duration_ms", "outcome", "error"]
# C0 controls but tab and newline, and DEL: a receiver's answer must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Status(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    dead = "dead"
    disabled = "disabled"


def _path(delivery_id: str) -> str:
    return f"{DELIVERIES}/{quote(delivery_id, safe='')}"


def _printable(value: Any) -> Any:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value) if isinstance(value, str) else value


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _rows(items: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    return [{c: _printable(item.get(c)) for c in columns} for item in items]


@app.command("deliveries")
def deliveries(
    status: Annotated[Status | None, typer.Option("--status", help="Only deliveries in this status")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint's (whe_...)")] = None,
    page: Annotated[int, typer.Option("--page", min=1, help="Page number (1-based)")] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=200, help="Deliveries per page")] = 50,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """The organization's webhook deliveries, newest first."""
    params: dict[str, Any] = {"page": page, "page_size": page_size}
    if status is not None:
        params["status"] = status.value
    if endpoint is not None:
        params["endpoint_id"] = endpoint
    rows = Api.from_environment(url).request("GET", DELIVERIES, params=params)
    if as_json:
        _print_json(rows)
    elif not rows:
        console.print("No deliveries.", highlight=False)
    else:
        print_rows(_rows(rows, DELIVERY_COLUMNS), DELIVERY_COLUMNS, as_json=False)


@app.command("show")
def show(delivery_id: DeliveryId, url: Url = None, as_json: Json = False) -> None:
    """One delivery and its delivery log: every attempt, what the receiver answered."""
    delivery = Api.from_environment(url).request("GET", _path(delivery_id))
    if as_json:
        _print_json(delivery)
        return
    fields = {k: v for k, v in delivery.items() if k != "delivery_log" and v not in (None, "", {})}
    print_rows(
        [
            {"field": k, "value": _printable(v if isinstance(v, str) else json.dumps(v, default=str))}
            for k, v in fields.items()
        ],
        ["field", "value"],
        as_json=False,
    )
    log = delivery.get("delivery_log") or []
    if log:
        print_rows(_rows(log, ATTEMPT_COLUMNS), ATTEMPT_COLUMNS, as_json=False, title="Delivery log")
    last_body = next((a.get("response_body") for a in reversed(log) if a.get("response_body")), None)
    if last_body:
        console.print("Last response body:", highlight=False)
        console.print(escape(_printable(last_body)), highlight=False)


@app.command("redeliver")
def redeliver(delivery_id: DeliveryId, url: Url = None, as_json: Json = False) -> None:
    """Send a delivery again (same webhook-id, a fresh series of attempts); the worker sends it."""
    delivery = Api.from_environment(url).request("POST", f"{_path(delivery_id)}/redeliver")
    if as_json:
        _print_json(delivery)
        return
    console.print(escape(f"{delivery['id']}: queued for redelivery ({delivery['status']})"), highlight=False)
