"""`conduit scans` and `conduit registry`: the trust scanner of a Conduit server (seed 004's
`/v1/scan` API) and its public registry (seed 000), from the command line.

`conduit scan` (singular) scans without a server; these commands ask the server, which queues
the scan, keeps its history and makes PDF reports. Tables by default, `--json` for scripts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from conduit.cli.client import Api, ApiError, fail
from conduit.cli.common import console, err_console, print_rows

app = typer.Typer(help="Scans run by the Conduit server: submit, follow, list, report.", no_args_is_help=True)
registry_app = typer.Typer(
    help="The public trust registry: servers their owners published.", no_args_is_help=True
)

Url = Annotated[str | None, typer.Option("--url", help="Conduit server URL (CONDUIT_URL)")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the scan until it ends")]
POLL_SECONDS = 1.0
WAIT_LIMIT_SECONDS = 600.0
FINDING_COLUMNS = ["severity", "id", "title", "owasp_category", "location"]
SCAN_COLUMNS = [
    "scan_id",
    "scan_type",
    "status",
    "overall_score",
    "letter_grade",
    "finding_count",
    "created_at",
]
REGISTRY_COLUMNS = ["id", "name", "trust_grade", "trust_score", "health_status", "last_scanned_at"]


def _q(value: str) -> str:
    return quote(value, safe="")


def _follow(api: Api, scan_id: str) -> dict[str, Any]:
    """Poll until the scan is complete or failed, showing its queue position or progress."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("queued", total=None)
        while True:
            scan: dict[str, Any] = api.request("GET", f"/v1/scan/{_q(scan_id)}")
            status = scan.get("status")
            if status in ("complete", "failed"):
                return scan
            if status == "queued":
                progress.update(task, description=f"queued (position {scan.get('position', '?')})")
            else:
                progress.update(task, description=str(scan.get("progress") or "running"))
            if time.monotonic() > deadline:
                fail(f"scan {scan_id} is still {status} after {WAIT_LIMIT_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)


def _show_scan(scan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(scan, indent=2))
        return
    status = scan.get("status")
    console.print(f"scan {scan['scan_id']}: {status}", highlight=False)
    if status == "failed":
        console.print(f"error: {scan.get('error')}", highlight=False, markup=False)
        return
    if status != "complete":
        return
    console.print(
        f"score {scan.get('overall_score')} / 100, grade {scan.get('letter_grade')}"
        + (" (partial)" if scan.get("partial") else ""),
        highlight=False,
    )
    breakdown = scan.get("breakdown") or {}
    if breakdown:
        console.print(
            "  " + ", ".join(f"{k} {'-' if v is None else v}" for k, v in breakdown.items()), highlight=False
        )
    findings = scan.get("findings") or []
    if findings:
        print_rows(findings, FINDING_COLUMNS, as_json=False, title=f"{len(findings)} findings")
        if any("upgrade_message" in finding for finding in findings):
            err_console.print("Descriptions, evidence and remediation come with the pro plan and above.")
    else:
        console.print("no findings")


def _queued(accepted: dict[str, Any], as_json: bool, detail: str) -> None:
    if as_json:
        print(json.dumps(accepted, indent=2))
    else:
        console.print(f"queued {accepted['scan_id']} ({detail})", highlight=False, markup=False)


def _exit_for(scan: dict[str, Any]) -> None:
    if scan.get("status") == "failed":
        raise typer.Exit(2)


@app.command("url")
def scan_url(
    target: Annotated[str, typer.Argument(help="The MCP server's URL (http:// or https://)")],
    auth_token: Annotated[str | None, typer.Option(help="Sent to the server as a bearer token")] = None,
    wait: Wait = True,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Scan a live MCP server by URL (uses one scan of the plan's monthly allowance)."""
    api = Api.from_environment(url)
    accepted = api.request("POST", "/v1/scan/mcp", json_body={"url": target, "auth_token": auth_token})
    if not wait:
        _queued(accepted, as_json, f"about {accepted['estimated_seconds']} s")
        return
    scan = _follow(api, accepted["scan_id"])
    _show_scan(scan, as_json)
    _exit_for(scan)


@app.command("upload")
def scan_upload(
    paths: Annotated[list[Path], typer.Argument(help="Configs, tool dumps, manifests, lockfiles, source")],
    wait: Wait = True,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Scan files on the server (10 MB in all; executables are refused)."""
    files = []
    for path in paths:
        try:
            files.append(("files", (path.name, path.read_bytes())))
        except OSError as exc:
            fail(f"{path}: {exc.strerror or exc}")
    api = Api.from_environment(url)
    accepted = api.request("POST", "/v1/scan/upload", files=files)
    if not wait:
        _queued(accepted, as_json, ", ".join(accepted["files_accepted"]))
        return
    scan = _follow(api, accepted["scan_id"])
    _show_scan(scan, as_json)
    _exit_for(scan)


@app.command("show")
def show(
    scan_id: Annotated[str, typer.Argument(help="The scan's id")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the scan until it ends")] = False,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """A scan's status, or its score and findings once complete."""
    api = Api.from_environment(url)
    scan = _follow(api, scan_id) if wait else api.request("GET", f"/v1/scan/{_q(scan_id)}")
    _show_scan(scan, as_json)


@app.command("list")
def list_scans(
    status: Annotated[str | None, typer.Option(help="queued, running, complete or failed")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 20,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Past scans, newest first (pro plan and above)."""
    params: dict[str, Any] = {"page": page, "per_page": per_page}
    if status:
        params["status"] = status
    body = Api.from_environment(url).request("GET", "/v1/scans", params=params)
    if as_json:
        print(json.dumps(body, indent=2))
        return
    print_rows(
        body["scans"], SCAN_COLUMNS, as_json=False, title=f"page {body['page']}, {body['total']} scans"
    )


@app.command("report")
def report(
    scan_id: Annotated[str, typer.Argument(help="A complete scan's id")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to save the PDF")] = None,
    url: Url = None,
) -> None:
    """Make the PDF report of a scan and save it (the link also works for 24 hours)."""
    api = Api.from_environment(url)
    created = api.request("POST", f"/v1/scan/{_q(scan_id)}/report")
    try:
        pdf = api.send("GET", created["report_url"]).content
    except ApiError as exc:
        fail(exc.message)
    target = output or Path(f"conduit-report-{scan_id}.pdf")
    target.write_bytes(pdf)
    console.print(
        f"saved {target} ({len(pdf):,} bytes); link valid until {created['expires_at']}", highlight=False
    )


@app.command("account")
def account(url: Url = None, as_json: Json = False) -> None:
    """The plan, the scans used this month and the scan webhook."""
    body = Api.from_environment(url).request("GET", "/v1/account")
    if as_json:
        print(json.dumps(body, indent=2))
        return
    for name in ("email", "tier", "api_key", "scans_used", "scans_limit", "resets_at", "webhook_url"):
        value = body.get(name)
        console.print(f"{name:12} {'-' if value is None else value}", highlight=False, markup=False)


@app.command("webhook")
def webhook(
    target: Annotated[str | None, typer.Argument(help="Where scan results go; omit with --remove")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop sending scan results")] = False,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Send each finished scan to a URL, signed (team plan and above). The secret is shown once."""
    if bool(target) == remove:
        fail("give a URL, or --remove")
    body = Api.from_environment(url).request("PUT", "/v1/account/webhook", json_body={"webhook_url": target})
    if as_json:
        print(json.dumps(body, indent=2))
        return
    if body.get("webhook_url") is None:
        console.print("scan webhook removed")
        return
    console.print(f"scan results go to {body['webhook_url']}", highlight=False)
    if body.get("webhook_secret"):
        console.print(f"signing secret (shown once): {body['webhook_secret']}", highlight=False, markup=False)


# --- the public registry ---------------------------------------------------------------------------


@registry_app.command("list")
def registry_list(
    grade: Annotated[str | None, typer.Option(help="Only this grade (A-F)")] = None,
    sort: Annotated[str, typer.Option(help="score, name or recent")] = "score",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Public servers with their trust grade and score."""
    params: dict[str, Any] = {"sort": sort, "limit": limit, "offset": offset}
    if grade:
        params["grade"] = grade
    body = Api.from_environment(url, require_key=False).request("GET", "/api/registry", params=params)
    if as_json:
        print(json.dumps(body, indent=2))
        return
    print_rows(body["servers"], REGISTRY_COLUMNS, as_json=False, title=f"{body['total']} public servers")


@registry_app.command("search")
def registry_search(
    query: Annotated[str, typer.Argument(help="Words in a server's name or description")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    body = Api.from_environment(url, require_key=False).request(
        "GET", "/api/registry/search", params={"q": query}
    )
    if as_json:
        print(json.dumps(body, indent=2))
        return
    print_rows(body["servers"], REGISTRY_COLUMNS, as_json=False, title=f"{body['total']} matches")


@registry_app.command("show")
def registry_show(
    server_id: Annotated[str, typer.Argument(help="The public server's id")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """A public server's latest scan, its findings and its score history."""
    body = Api.from_environment(url, require_key=False).request("GET", f"/api/registry/{_q(server_id)}")
    if as_json:
        print(json.dumps(body, indent=2))
        return
    server, latest = body["server"], body.get("latestScan")
    console.print(f"{server['name']} ({server['id']})", highlight=False, markup=False)
    if server.get("description"):
        console.print(server["description"], highlight=False, markup=False)
    if latest:
        console.print(f"grade {latest['grade']}, score {latest['total_score']} / 100", highlight=False)
    else:
        console.print("not scanned yet")
    if body.get("findings"):
        print_rows(body["findings"], FINDING_COLUMNS, as_json=False, title="findings")
    history = body.get("history") or []
    if history:
        print_rows(history, sorted(history[0]), as_json=False, title="history")
