"""`conduit scan`: the trust scanner without a server. Scans a URL, a stdio command (after `--`)
or files, shows progress on stderr, and prints a table, `--json` or `--sarif`. The exit code is
1 when a finding reaches `--fail-on`, 2 when the scan could not run."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from conduit.cli.common import console, env_pairs, err_console
from conduit.kit import logging as kit_logging
from conduit.kit.mcp.client import McpCallError
from conduit.kit.mcp.upstream import UpstreamError
from conduit.scanning.collect import collect, spec_for_command, spec_for_url
from conduit.scanning.engine import ScanResult, scan
from conduit.scanning.files import UnsupportedFile, UploadedFile, inventory_from_files
from conduit.scanning.findings import Severity
from conduit.scanning.inventory import Inventory
from conduit.scanning.judge import Judge, JudgeConfig
from conduit.scanning.sarif import to_sarif

SCAN_FAILED = 2
COLORS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


class Transport(StrEnum):
    streamable_http = "streamable_http"
    sse = "sse"


class FailOn(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"


def _failed(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(SCAN_FAILED)


def _headers(pairs: list[str] | None, token: str | None) -> dict[str, str]:
    headers = {}
    for pair in pairs or []:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter("takes 'Name: value'", param_hint="'--header'")
        headers[name.strip()] = value.strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _previous(path: Path | None) -> dict[str, str] | None:
    """Definition hashes from an earlier `--json` output (its `hashes`), or a plain mapping."""
    if path is None:
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _failed(f"--previous {path}: {exc}") from None
    hashes = document.get("hashes", document) if isinstance(document, dict) else None
    if not isinstance(hashes, dict):
        raise _failed(f"--previous {path}: no hashes in it")
    return {str(k): str(v) for k, v in hashes.items()}


async def _run(
    inventory_source: Any, previous: dict[str, str] | None, judge: Judge | None, show_progress: bool
) -> ScanResult:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("Starting", total=None)

        def say(message: str, _fraction: float | None = None) -> None:
            progress.update(task, description=message)

        inventory: Inventory = await inventory_source(say) if callable(inventory_source) else inventory_source
        return await scan(inventory, previous_hashes=previous, judge=judge, progress=say)


def _table(result: ScanResult) -> None:
    grade_color = {"A": "green", "B": "green", "C": "yellow", "D": "red", "F": "bold red"}[result.score.grade]
    console.print(
        Text.assemble(
            ("Score ", "bold"),
            (f"{result.score.total}/100 ", "bold"),
            ("grade ", "bold"),
            (result.score.grade, grade_color),
            f"  {result.target}",
        )
    )
    parts = [f"{k} {'-' if v is None else v}" for k, v in result.score.breakdown.items()]
    console.print(Text("  ".join(parts), style="dim"))
    if result.score.capped_by:
        console.print(Text(f"grade capped by {result.score.capped_by}", style="dim"))
    if result.partial:
        console.print(Text("partial scan: " + "; ".join(result.errors), style="yellow"))
    servers = result.summary.get("servers", [])
    for server in servers:
        console.print(
            Text(
                f"{server['name']}: {server['tools']} tools, {server['prompts']} prompts, "
                f"{server['resources']} resources, {server['resource_templates']} templates",
                style="dim",
            )
        )
    if not result.findings:
        console.print("No findings.")
        return
    table = Table()
    for column in ("severity", "id", "title", "where", "evidence"):
        table.add_column(column, overflow="fold")
    for finding in result.findings:
        where = (
            finding.location
            if not finding.file or finding.location.startswith(finding.file)
            else f"{finding.file}: {finding.location}"
        )
        table.add_row(
            Text(finding.severity.value, style=COLORS[finding.severity.value]),
            Text(finding.id),
            Text(finding.title),
            Text(where),
            Text(finding.evidence[:160]),
        )
    console.print(table)


def scan_command(
    target: Annotated[
        list[str] | None,
        typer.Argument(
            help="An MCP server URL, or `-- command args...` to start a stdio server", show_default=False
        ),
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file", "-f", help="Scan files: MCP configs, tool-list dumps, manifests, server source"
        ),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value' sent to the URL")
    ] = None,
    auth_token: Annotated[str | None, typer.Option("--auth-token", help="Bearer token for the URL")] = None,
    transport: Annotated[
        Transport | None, typer.Option(help="URL transport (default: sse if the path ends in /sse)")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for a stdio server")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="An earlier --json result: report tools that changed since"),
    ] = None,
    fail_on: Annotated[
        FailOn | None, typer.Option("--fail-on", help="Exit 1 when a finding is this severe")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    as_sarif: Annotated[bool, typer.Option("--sarif", help="Print SARIF 2.1.0 for code scanning")] = False,
    probe: Annotated[bool, typer.Option(help="Probe TLS, auth, Origin and CORS of a URL")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer from the server")] = 30.0,
    judge_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL of an LLM judge (CONDUIT_SCANNER_JUDGE_URL)"),
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="The judge's model")] = None,
) -> None:
    """Scan an MCP server or files for tool poisoning, secrets, risky launch commands and more."""
    kit_logging.configure("warning", json=False)  # on stderr; a stdio server's start and stop are noise here
    if as_json and as_sarif:
        raise typer.BadParameter("choose one of --json and --sarif")
    words = target or []
    if not words and not files:
        raise typer.BadParameter("give a URL, `-- command args...` or --file")
    if words and files:
        raise typer.BadParameter("scan a server or files, not both")
    hashes = _previous(previous)
    config = JudgeConfig.from_environment()
    if judge_url:
        config = JudgeConfig(
            base_url=judge_url,
            model=judge_model or (config.model if config else "gpt-4o-mini"),
            api_key=config.api_key if config else None,
        )
    judge = Judge(config) if config else None
    source: Any
    if files:
        uploads = []
        for path in files:
            try:
                uploads.append(UploadedFile(name=str(path), content=path.read_bytes()))
            except OSError as exc:
                raise _failed(f"{path}: {exc.strerror or exc}") from None
        try:
            source = inventory_from_files(uploads)
        except UnsupportedFile as exc:
            raise _failed(str(exc)) from None
    else:
        is_url = len(words) == 1 and words[0].startswith(("http://", "https://"))
        spec = (
            spec_for_url(
                words[0],
                headers=_headers(header, auth_token),
                transport=transport.value if transport else None,
            )
            if is_url
            else spec_for_command(words[0], words[1:], env_pairs(env))
        )

        async def source(say: Any) -> Inventory:
            return await collect(spec, timeout=timeout, probe=probe, progress=say)

    try:
        result = asyncio.run(_run(source, hashes, judge, show_progress=err_console.is_terminal))
    except (UpstreamError, McpCallError, OSError) as exc:
        raise _failed(f"could not scan {' '.join(words)}: {exc}") from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    elif as_sarif:
        print(json.dumps(to_sarif(result), indent=2, ensure_ascii=False))
    else:
        _table(result)
    if fail_on is not None and any(f.severity.at_least(Severity(fail_on.value)) for f in result.findings):
        raise typer.Exit(1)
