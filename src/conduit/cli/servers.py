"""`conduit servers`: register MCP servers, curate their tools, try them and read their logs,
through the REST API (seed 000 `/api/servers`, seed 003 `/mcp-servers`).

Tables by default, `--json` for scripts. Values given with `--env` are secrets: they go to the
server, which stores them encrypted, and are never printed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from conduit.cli.client import Api, fail
from conduit.cli.common import console, env_pairs, err_console, print_rows

app = typer.Typer(
    help="MCP servers behind the gateway: register, curate tools, try them, read their logs.",
    no_args_is_help=True,
)

# `--url` is the upstream's URL in `servers add`, so the Conduit server's has a name of its own here.
ConduitUrl = Annotated[str | None, typer.Option("--conduit-url", help="Conduit server URL (CONDUIT_URL)")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]
ServerRef = Annotated[str, typer.Argument(help="The server's name, slug or id")]
ToolRef = Annotated[str, typer.Argument(help="The tool's name (as the upstream lists it) or id")]

# The server gives up on an upstream after at most 600 s (twice the longest per-server timeout);
# waiting a little longer lets its answer, not our own timeout, say what happened.
UPSTREAM_WAIT_SECONDS = 660.0
LIST_COLUMNS = ["name", "slug", "transport", "status", "health", "gateway_endpoint"]
TOOL_COLUMNS = ["name", "enabled", "display_name", "status"]
LOG_COLUMNS = ["time", "method", "tool", "status", "duration_ms", "key"]
# C0 controls but tab and newline, and DEL: an upstream's text must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Transport(StrEnum):
    streamable_http = "streamable_http"
    sse = "sse"
    stdio = "stdio"


@dataclass
class Target:
    """A server found by name, slug or id in the caller's organization."""

    api: Api
    org_id: str
    server: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.server["name"])

    @property
    def path(self) -> str:
        return f"/api/v1/organizations/{_q(self.org_id)}/mcp-servers/{_q(self.server['id'])}"

    def slow(self) -> Api:
        """The API client for a request that waits on the upstream."""
        return replace(self.api, timeout=UPSTREAM_WAIT_SECONDS)

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = self.api.request("GET", self.path)
        return detail


def _q(value: str) -> str:
    return quote(value, safe="")


def _find(url: str | None, ref: str) -> Target:
    api = Api.from_environment(url)
    # With a key this is the one organization the key belongs to, the one `/api/servers` lists.
    organizations = api.request("GET", "/api/v1/organizations")
    if not organizations:
        fail("the key belongs to no organization")
    org_id = str(organizations[0]["id"])
    servers = api.request("GET", f"/api/v1/organizations/{_q(org_id)}/mcp-servers")
    for field in ("id", "name", "slug"):
        for server in servers:
            if server.get(field) == ref:
                return Target(api, org_id, server)
    fail(f"no server {ref!r} in the organization (see `conduit servers list`)")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _say(message: str) -> None:
    console.print(escape(message), highlight=False)


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _show_fields(fields: dict[str, Any]) -> None:
    print_rows(
        [{"field": k, "value": v} for k, v in fields.items() if v is not None and v != ""],
        ["field", "value"],
        as_json=False,
    )


def _show_tools(tools: list[dict[str, Any]]) -> None:
    if not tools:
        _say("No tools discovered yet: run `conduit servers discover`.")
        return
    rows = [
        {
            "name": t["name"],
            "enabled": "yes" if t["isEnabled"] else "no",
            "display_name": t.get("displayName"),
            "status": t["status"],
        }
        for t in tools
    ]
    print_rows(rows, TOOL_COLUMNS, as_json=False)


def _arguments(pairs: list[str], json_args: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if json_args is not None:
        try:
            arguments = json.loads(json_args)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="'--json-args'") from None
        if not isinstance(arguments, dict):
            raise typer.BadParameter("takes a JSON object", param_hint="'--json-args'")
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"takes key=value, got {pair!r}", param_hint="'--arg'")
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


@app.command("list")
def list_servers(url: ConduitUrl = None, as_json: Json = False) -> None:
    """List the organization's servers."""
    servers = Api.from_environment(url).request("GET", "/api/servers")
    if as_json:
        _print_json(servers)
        return
    if not servers:
        _say("No servers yet: register one with `conduit servers add`.")
        return
    rows = [
        {
            "name": s["name"],
            "slug": s["slug"],
            "transport": s["transport"],
            "status": s["status"],
            "health": s["health_status"],
            "gateway_endpoint": s["gateway_endpoint"],
        }
        for s in servers
    ]
    print_rows(rows, LIST_COLUMNS, as_json=False)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the server; its slug is derived from it")],
    upstream_url: Annotated[
        str | None, typer.Option("--url", help="The upstream's MCP endpoint (SSE if it ends in /sse)")
    ] = None,
    command: Annotated[
        str | None, typer.Option("--command", help="A stdio command instead, e.g. npx")
    ] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="One argument of the command; repeat (--arg=-y)")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="NAME=VALUE for the command; repeat; stored encrypted, never shown"),
    ] = None,
    transport: Annotated[
        Transport | None, typer.Option(help="Detected from the URL or command when omitted")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for one answer of this server")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    public: Annotated[
        bool, typer.Option("--public", help="List it in the public trust registry once scanned")
    ] = False,
    url: ConduitUrl = None,
    as_json: Json = False,
) -> None:
    """Register an MCP server by URL or stdio command, and print its gateway endpoint."""
    if (upstream_url is None) == (command is None):
        raise typer.BadParameter("give exactly one of them", param_hint="'--url' / '--command'")
    if upstream_url is not None and (arg or env):
        raise typer.BadParameter("go with --command", param_hint="'--arg' / '--env'")
    body = {
        "name": name,
        "upstream_url": upstream_url,
        "command": command,
        "args": arg or None,
        "env": env_pairs(env),
        "transport": transport.value if transport else None,
        "timeout_seconds": timeout,
        "description": description,
        "public": public or None,
    }
    server = Api.from_environment(url).request(
        "POST", "/api/servers", json_body={k: v for k, v in body.items() if v is not None}
    )
    if as_json:
        _print_json(server)
        return
    _say(f"Registered {server['name']} ({server['id']}) over {server['transport']}.")
    _say(f"Gateway endpoint: {server['gateway_endpoint']}")
    err_console.print(
        escape(f"Its tools are being discovered; `conduit servers discover {server['slug']}` does it now."),
        highlight=False,
    )


@app.command("show")
def show(server: ServerRef, url: ConduitUrl = None, as_json: Json = False) -> None:
    """Show a server with its tools."""
    detail = _find(url, server).detail()
    if as_json:
        _print_json(detail)
        return
    _show_fields(
        {
            "id": detail["id"],
            "name": detail["name"],
            "slug": detail["slug"],
            "description": detail.get("description"),
            "transport": detail["transport"],
            "upstream_url": detail.get("upstreamUrl"),
            "command": detail.get("command"),
            "args": " ".join(detail.get("args") or []),
            "gateway_endpoint": detail["gatewayEndpoint"],
            "status": detail["status"],
            "health": detail["healthStatus"],
            "last_error": detail.get("lastError"),
            "catalog": detail["catalogStatus"],
            "catalog_error": detail.get("catalogError"),
            "timeout_seconds": detail.get("timeoutSeconds"),
            "trust": f"{detail['trustGrade']} ({detail['trustScore']})" if detail.get("trustGrade") else None,
            "tools": detail["toolCount"],
            "invocations": detail["totalInvocations"],
            "created": detail["createdOn"],
        }
    )
    _show_tools(detail["tools"])


@app.command("discover")
def discover(server: ServerRef, url: ConduitUrl = None, as_json: Json = False) -> None:
    """Import the server's tools now, and show what changed."""
    target = _find(url, server)
    with err_console.status(escape(f"Discovering the tools of {target.name}...")):
        result = target.slow().request("POST", f"{target.path}/discover-tools")
    if as_json:
        _print_json(result)
        return
    counts = result["summary"]
    _say(
        f"{result['name']}: {result['toolCount']} tools ({counts['added']} added, {counts['changed']} "
        f"changed, {counts['removed']} removed, {counts['unchanged']} unchanged)"
    )
    _show_tools(result["tools"])


@app.command("tools")
def list_tools(server: ServerRef, url: ConduitUrl = None, as_json: Json = False) -> None:
    """List a server's tools."""
    detail = _find(url, server).detail()
    if as_json:
        _print_json(detail["tools"])
        return
    _show_tools(detail["tools"])


@app.command("tool")
def edit_tool(
    server: ServerRef,
    tool_ref: ToolRef,
    enable: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Expose the tool through the gateway, or hide it"),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Title shown to clients (empty: clear)")] = None,
    description: Annotated[
        str | None, typer.Option(help="Description replacing the upstream's (empty: clear)")
    ] = None,
    instructions: Annotated[str | None, typer.Option(help="Appended to the description")] = None,
    when_to_use: Annotated[str | None, typer.Option(help="Guidance appended to the description")] = None,
    when_not_to_use: Annotated[str | None, typer.Option(help="Guidance appended to the description")] = None,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve", help="Approve its current definition: a held tool (status held) is served again"
        ),
    ] = False,
    url: ConduitUrl = None,
    as_json: Json = False,
) -> None:
    """Enable, disable, override or approve one tool; only the options given change."""
    texts = {
        "displayName": display_name,
        "descriptionOverride": description,
        "instructions": instructions,
        "whenToUse": when_to_use,
        "whenNotToUse": when_not_to_use,
    }
    # An empty text clears the override: the upstream's own text shows again.
    changes: dict[str, Any] = {k: v or None for k, v in texts.items() if v is not None}
    if enable is not None:
        changes["isEnabled"] = enable
    if not changes and not approve:
        raise typer.BadParameter(
            "give --enable, --disable, --display-name, --description, --instructions, --when-to-use, "
            "--when-not-to-use or --approve (`conduit servers tools` lists the tools)"
        )
    target = _find(url, server)
    found = next(
        (t for t in target.detail()["tools"] if tool_ref in (t["id"], t["toolKey"], t["name"])), None
    )
    if found is None:
        fail(f"{target.name} has no tool {tool_ref!r} (see `conduit servers tools {target.server['slug']}`)")
    tool_path = f"{target.path}/tools/{_q(found['id'])}"
    updated = target.api.request("PATCH", tool_path, json_body=changes) if changes else found
    if approve:
        updated = target.api.request("POST", f"{tool_path}/approve")
    if as_json:
        _print_json(updated)
        return
    _show_fields(
        {
            "name": updated["name"],
            "enabled": "yes" if updated["isEnabled"] else "no",
            "display_name": updated.get("displayName"),
            "description": updated.get("description"),
            "status": updated["status"],
        }
    )


def _content_text(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "text":
        return str(item.get("text", ""))
    if kind == "resource":
        resource = item.get("resource") or {}
        return str(resource.get("text") or f"[resource {resource.get('uri', '')}]")
    if kind == "resource_link":
        return f"[resource link {item.get('uri', '')}]"
    return f"[{kind} {item.get('mimeType', '')}]".replace(" ]", "]")


@app.command("call")
def call(
    server: ServerRef,
    tool_name: Annotated[str, typer.Argument(help="The tool's name, as the upstream lists it")],
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="key=value; repeat; the value is read as JSON when it parses, else text"),
    ] = None,
    json_args: Annotated[
        str | None, typer.Option("--json-args", help="The arguments as a JSON object (--arg adds to it)")
    ] = None,
    url: ConduitUrl = None,
    as_json: Json = False,
) -> None:
    """Call a tool on the live upstream, past the gateway's curation, and print its result.

    Exits 1 when the tool reports an error (isError).
    """
    arguments = _arguments(arg or [], json_args)
    target = _find(url, server)
    path = f"{target.path}/mcp-smoke/tools/{_q(tool_name)}/call"
    with err_console.status(escape(f"Calling {tool_name} on {target.name}...")):
        reply = target.slow().request("POST", path, json_body={"arguments": arguments})
    if as_json:
        _print_json(reply)
    else:
        result = reply["result"]
        texts = [_content_text(item) for item in result.get("content") or [] if isinstance(item, dict)]
        if not texts and result.get("structuredContent") is not None:
            texts = [json.dumps(result["structuredContent"], indent=2)]
        for text in texts:
            print(_printable(text))
    if reply["isError"]:
        err_console.print(
            f"[red]error:[/red] {escape(tool_name)} reported an error (isError)", highlight=False
        )
        raise typer.Exit(1)


@app.command("logs")
def logs(
    server: ServerRef,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest entries")] = 50,
    stderr: Annotated[
        bool, typer.Option("--stderr", help="What a stdio server wrote to stderr, not the request log")
    ] = False,
    url: ConduitUrl = None,
    as_json: Json = False,
) -> None:
    """The gateway's request log of a server, or its stderr; oldest first."""
    target = _find(url, server)
    kind = "deployment/logs" if stderr else "logs"
    page = target.api.request("GET", f"{target.path}/{kind}", params={"limit": limit})
    if as_json:
        _print_json(page)
        return
    entries = list(reversed(page["logs"]))  # the API pages newest first; a log reads downwards
    if not entries:
        _say(f"{target.name} has written nothing to stderr yet." if stderr else "No requests logged yet.")
        return
    if stderr:
        for entry in entries:
            print(f"{entry['createdAt']}  {_printable(entry['line'])}")
        return
    rows = [
        {
            "time": e["createdAt"],
            "method": e["method"],
            "tool": e.get("tool"),
            "status": e["status"] if e.get("errorCode") is None else f"{e['status']} ({e['errorCode']})",
            "duration_ms": e["durationMs"],
            "key": e.get("keyId"),
        }
        for e in entries
    ]
    print_rows(rows, LOG_COLUMNS, as_json=False)


@app.command("scan")
def scan(server: ServerRef, url: ConduitUrl = None, as_json: Json = False) -> None:
    """Run the trust scanner on a registered server now; its score and grade are kept on it
    (and shown in the public registry if the server is public)."""
    target = _find(url, server)
    result = target.slow().request("POST", f"/api/servers/{_q(target.server['slug'])}/scan")
    if as_json:
        _print_json(result)
        return
    if result.get("error"):
        fail(f"{target.name}: {result['error']}")
    scores = result["scores"]
    count = result["findingsCount"]
    _say(f"{target.name}: score {scores['total']} / 100, grade {scores['grade']}, {count} findings")
    breakdown = scores.get("breakdown") or {}
    _say("  " + ", ".join(f"{name} {'-' if value is None else value}" for name, value in breakdown.items()))


@app.command("remove")
def remove(
    server: ServerRef,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    url: ConduitUrl = None,
) -> None:
    """Delete a server: its gateway endpoint stops answering, its tools and logs go."""
    target = _find(url, server)
    if not yes:
        typer.confirm(
            f"Remove {target.name} ({target.server['id']}) and its gateway endpoint, tools and logs?",
            abort=True,
        )
    target.api.request("DELETE", target.path)
    _say(f"Server {target.name!r} removed")
