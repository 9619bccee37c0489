"""Wall time of the trust scanner: a full live scan of a 50-tool local MCP server and a 10 MB
upload, with cisco-ai-mcp-scanner's offline YARA mode timed on the same server in the same run.

Starts bench/fifty_tools_server.py (mcp SDK, streamable HTTP on 127.0.0.1; stdio for the stdio
rows), then times each row over --runs runs after one warm-up:
- Conduit in this process exactly as `conduit scan <url>` does it (`collect`, transport probe
  included, then `scan`), and `conduit scan <url> --json` as a subprocess (interpreter start
  included); the same over stdio; the server's tool list saved as a file (`conduit scan --file`);
- a 10 MB upload (a tool dump of --dump-servers servers from eval/scanner/data/harmless, a
  package-lock.json, Python source, an MCP client config, requirements) scanned in process
  (`inventory_from_files` + `scan`), with `conduit scan --file ...`, and through the API of a
  `conduit serve` (POST /v1/scan/upload, polled until complete; POST /v1/scan/mcp likewise);
- Cisco's `mcp-scanner --analyzers yara` (`remote`, `stdio`, `static --tools`) as subprocesses,
  and its Python API (`Scanner`, `StaticAnalyzer`) in its own interpreter. Its package is
  installed into a scratch venv outside the repository when missing (--cisco-venv, else
  $CONDUIT_BENCH_CACHE/cisco-venv, else /tmp/conduit-bench-cisco-venv; /tmp/cisco-venv is reused
  when it holds one) and run with no API keys and LiteLLM's model cost map read from its package,
  so it contacts nothing but the loopback server.

    .venv/bin/python bench/scan.py [--runs 5] [--cli-runs 3] [--no-cisco] [--no-api]

Targets: a live scan under 1 s and an upload under 2 s. "ratio vs Conduit" divides a row's median
by Conduit's in the same scenario and the same mode (in process, subprocess). On a small shared
machine wall times are noisy: compare medians, and the minimum as the best case.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from loadgen import HOST, Server, free_port, listening, machine, print_table, start_conduit, start_process

from conduit.kit import logging as kit_logging
from conduit.scanning.collect import collect, spec_for_command, spec_for_url
from conduit.scanning.engine import ScanResult, scan
from conduit.scanning.files import UploadedFile, inventory_from_files
from conduit.scanning.findings import Severity
from conduit.scanning.service import MAX_UPLOAD_BYTES

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_SCRIPT = BENCH / "fifty_tools_server.py"
HARMLESS = ROOT / "eval" / "scanner" / "data" / "harmless"
CONDUIT = Path(sys.executable).parent / "conduit"
UPLOAD_BYTES = 10_000_000
DUMP_SERVERS = 10  # one team's MCP configuration; all 69 (about 1,150 tools) take minutes today
LIVE_TARGET_SECONDS = 1.0
UPLOAD_TARGET_SECONDS = 2.0
PASSWORD = "bench correct horse battery staple"
HEADER = (
    "scenario",
    "scanner",
    "how",
    "reads",
    "median ms",
    "min ms",
    "runs",
    "findings",
    "ratio vs Conduit",
)

CISCO_PACKAGE = "cisco-ai-mcp-scanner"
CISCO_VENVS = [Path("/tmp/conduit-bench-cisco-venv"), Path("/tmp/cisco-venv")]
# What keeps the Cisco scanner offline: LiteLLM (imported even when no LLM is used) otherwise
# fetches its model cost map from GitHub at import; without keys no analyzer calls a service.
CISCO_OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
CISCO_KEYS_PREFIXES = ("MCP_SCANNER_", "OPENAI_", "ANTHROPIC_", "AWS_", "AZURE_", "GEMINI_", "VIRUSTOTAL_")


# --- the Cisco scanner -----------------------------------------------------------------------


def cisco_env() -> dict[str, str]:
    """This environment without any key an analyzer could use, plus the offline switches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CISCO_KEYS_PREFIXES)}
    return env | CISCO_OFFLINE_ENV


def cisco_venv(chosen: Path | None = None) -> Path:
    """A venv holding `mcp-scanner`: the one given, or an existing scratch one, or a new one."""
    cache = os.environ.get("CONDUIT_BENCH_CACHE")
    candidates = [chosen] if chosen else [*([Path(cache) / "cisco-venv"] if cache else []), *CISCO_VENVS]
    for venv in candidates:
        if (venv / "bin" / "mcp-scanner").exists():
            return venv
    venv = candidates[0]
    print(f"installing {CISCO_PACKAGE} into {venv} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", CISCO_PACKAGE],
        check=True,
        env=cisco_env(),
    )
    return venv


def cisco_version(venv: Path) -> str:
    answer = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({CISCO_PACKAGE!r}))",
        ],
        capture_output=True,
        text=True,
        env=cisco_env(),
    )
    return answer.stdout.strip() or "unknown version"


# Run in Cisco's interpreter: its own Python API, timed there (warm-up, then `runs` runs each).
CISCO_IN_PROCESS = r"""
import asyncio, json, sys, time
from mcpscanner import Config, Scanner
from mcpscanner.core.models import AnalyzerEnum
from mcpscanner.core.analyzers.static_analyzer import StaticAnalyzer
from mcpscanner.core.analyzers.yara_analyzer import YaraAnalyzer

job = json.load(sys.stdin)
YARA = [AnalyzerEnum.YARA]
scanner = Scanner(Config())
static = StaticAnalyzer(analyzers=[YaraAnalyzer()])

def tally(findings):
    return [len(findings), sum(f.severity in ("HIGH", "MEDIUM") for f in findings)]

async def live_tools():
    results = await scanner.scan_remote_server_tools(job["url"], analyzers=YARA)
    return tally([f for r in results for f in r.findings])

async def live_everything():
    found = []
    for listing in ("tools", "prompts", "resources"):
        lister = getattr(scanner, f"scan_remote_server_{listing}")
        found += [f for r in await lister(job["url"], analyzers=YARA) for f in r.findings]
    found += (await scanner.scan_remote_server_instructions(job["url"], analyzers=YARA)).findings
    return tally(found)

def tools_file(path):
    async def run():
        return tally([f for r in await static.scan_tools_file(path) for f in r["findings"]])
    return run

async def main():
    rows = {}
    for name, action in [
        ("live_tools", live_tools),
        ("live_everything", live_everything),
        ("file", tools_file(job["tools_file"])),
        ("upload_tools", tools_file(job["upload_tools_file"])),
    ]:
        counts = await action()
        seconds = []
        for _ in range(job["runs"]):
            began = time.perf_counter()
            counts = await action()
            seconds.append(time.perf_counter() - began)
        rows[name] = {"seconds": seconds, "findings": counts}
    print(json.dumps(rows))

asyncio.run(main())
"""


def cisco_cli_findings(stdout: str) -> int:
    """Findings in `mcp-scanner --format raw` output (one summary per analyzer and item)."""
    document = json.loads(stdout[stdout.index("{") :])
    return sum(
        int(summary.get("total_findings", 0))
        for item in document.get("scan_results", [])
        for summary in (item.get("findings") or {}).values()
    )


# --- rows and timing -------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    scanner: str
    how: str  # "in process", "subprocess" or "API"
    reads: str
    seconds: list[float]
    findings: str

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


async def timed_async(runs: int, action: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    """One warm-up, then `runs` timed runs; the last run's answer."""
    answer = await action()
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        answer = await action()
        seconds.append(time.perf_counter() - began)
    return seconds, answer


def timed_command(runs: int, argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[list[float], str]:
    """Wall time of a command, one warm-up then `runs` runs; exits with its stderr if it fails."""
    seconds, stdout = [], ""
    for run in range(runs + 1):
        began = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL
        )
        if run:
            seconds.append(time.perf_counter() - began)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv[:4])}... exited with {done.returncode}:\n{done.stderr[-2000:]}")
        stdout = done.stdout
    return seconds, stdout


def conduit_findings(findings: list[dict[str, Any]] | list[Any]) -> str:
    def severity(f: Any) -> Severity:
        return Severity(f["severity"]) if isinstance(f, dict) else f.severity

    serious = sum(severity(f).at_least(Severity.medium) for f in findings)
    return f"{len(findings)} ({serious} medium+)"


def conduit_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}


# --- the upload --------------------------------------------------------------------------------


def lockfile(size: int) -> bytes:
    """A package-lock.json (v3) of made-up but well-formed packages, about `size` bytes."""
    words = [
        "ansi", "array", "async", "buffer", "chalk", "color", "debug", "define", "event", "fast",
        "glob", "graceful", "http", "is", "json", "merge", "mime", "path", "picomatch", "queue",
        "readable", "semver", "source", "stream", "string", "supports", "through", "util", "yaml",
    ]  # fmt: skip
    packages: dict[str, Any] = {"": {"name": "acme-console", "version": "4.2.0", "dependencies": {}}}
    document = {"name": "acme-console", "version": "4.2.0", "lockfileVersion": 3, "requires": True}
    written, n = 1000, 0
    while written < size:
        name = f"{words[n % len(words)]}-{words[(n // len(words)) % len(words)]}-{n}"
        version = f"{n % 7}.{n % 13}.{n % 5}"
        digest = hashlib.sha512(name.encode()).hexdigest()
        entry = {
            "version": version,
            "resolved": f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz",
            "integrity": f"sha512-{digest[:88]}",
            "license": "MIT",
            "dependencies": {words[(n + k) % len(words)] + f"-{k}": f"^{k}.0.0" for k in range(n % 4)},
            "engines": {"node": ">=18"},
        }
        text = json.dumps(entry, indent=2)
        written += len(text) + 4 * text.count("\n") + len(name) + 24  # its key and indentation
        packages[f"node_modules/{name}"] = entry
        n += 1
    while len(content := json.dumps(document | {"packages": packages}, indent=2).encode()) > size:
        packages.popitem()
    return content


def tool_dump(servers_wanted: int) -> bytes:
    """The first harmless servers' listings (by file name), as one `{"servers": [...]}` dump."""
    servers = []
    for path in sorted(HARMLESS.glob("*.json"))[:servers_wanted]:
        listing = json.loads(path.read_text())
        servers.append(
            {"name": listing.get("server", path.stem), **{k: listing[k] for k in listing if k != "server"}}
        )
    return json.dumps({"servers": servers}, indent=1).encode()


def upload_files(workdir: Path, dump_servers: int) -> list[UploadedFile]:
    """About 10 MB in all: a tool dump, a claude_desktop_config.json, requirements.txt, the
    largest Python files of this repository, and a package-lock.json making up the rest."""
    config = {
        "mcpServers": {
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
            },
            "github": {
                "command": "docker",
                "args": [
                    "run",
                    "-i",
                    "--rm",
                    "-e",
                    "GITHUB_PERSONAL_ACCESS_TOKEN",
                    "ghcr.io/github/github-mcp-server",
                ],
            },
            "time": {"command": "uvx", "args": ["mcp-server-time==2025.9.25"]},
            "workspace": {"url": "https://mcp.acme.example/mcp"},
        }
    }
    files = [
        UploadedFile("tool-dump.json", tool_dump(dump_servers)),
        UploadedFile("claude_desktop_config.json", json.dumps(config, indent=2).encode()),
        UploadedFile("requirements.txt", b"mcp>=1.9\nhttpx==0.28.1\npydantic>=2,<3\nuvicorn\nrich==14.0.0\n"),
    ]
    sources = sorted((ROOT / "src").rglob("*.py"), key=lambda p: p.stat().st_size, reverse=True)
    sources += sorted((ROOT / "tests").rglob("*.py"), key=lambda p: p.stat().st_size, reverse=True)
    budget = UPLOAD_BYTES * 3 // 10
    for path in sources[:190]:
        content = path.read_bytes()
        if len(content) > budget:
            continue
        budget -= len(content)
        files.append(UploadedFile(str(path.relative_to(ROOT)), content))
    rest = UPLOAD_BYTES - sum(len(f.content) for f in files)
    files.append(UploadedFile("package-lock.json", lockfile(rest)))
    assert sum(len(f.content) for f in files) <= MAX_UPLOAD_BYTES
    (workdir / "upload").mkdir(exist_ok=True)
    for upload in files:
        path = workdir / "upload" / upload.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.content)
    return files


def tools_only(dump: bytes) -> bytes:
    """The dump's tools as one tools/list result, the only tool-file shape Cisco's `static` reads."""
    servers = json.loads(dump)["servers"]
    return json.dumps({"tools": [tool for server in servers for tool in server.get("tools", [])]}).encode()


# --- Conduit -----------------------------------------------------------------------------------


async def conduit_live(spec: Any) -> ScanResult:
    return await scan(await collect(spec, timeout=30.0, probe=True))


async def conduit_rows(
    args: argparse.Namespace, url: str, workdir: Path, uploads: list[UploadedFile]
) -> list[Row]:
    rows = []
    every = "tools, prompts, resources, templates, instructions"
    http_spec = spec_for_url(url)
    seconds, result = await timed_async(args.runs, lambda: conduit_live(http_spec))
    rows.append(
        Row(
            "live HTTP",
            "conduit",
            "in process",
            every + ", transport probe",
            seconds,
            conduit_findings(result.findings),
        )
    )
    cli = [str(CONDUIT), "scan", "--json"]
    seconds, _ = timed_command(args.cli_runs, [str(CONDUIT), "scan", "--help"], conduit_env(), workdir)
    rows.append(Row("start-up only", "conduit", "subprocess", "`conduit scan --help`", seconds, "-"))
    seconds, stdout = timed_command(args.cli_runs, [*cli, url], conduit_env(), workdir)
    rows.append(
        Row(
            "live HTTP",
            "conduit",
            "subprocess",
            every + ", transport probe",
            seconds,
            conduit_findings(json.loads(stdout)["findings"]),
        )
    )

    stdio_argv = [sys.executable, str(SERVER_SCRIPT), "stdio"]
    stdio_spec = spec_for_command(stdio_argv[0], stdio_argv[1:])
    seconds, result = await timed_async(args.runs, lambda: conduit_live(stdio_spec))
    rows.append(
        Row(
            "live stdio",
            "conduit",
            "in process",
            every + ", launch command",
            seconds,
            conduit_findings(result.findings),
        )
    )
    seconds, stdout = timed_command(args.cli_runs, [*cli, "--", *stdio_argv], conduit_env(), workdir)
    rows.append(
        Row(
            "live stdio",
            "conduit",
            "subprocess",
            every + ", launch command",
            seconds,
            conduit_findings(json.loads(stdout)["findings"]),
        )
    )

    tools_file = workdir / "fifty-tools.json"
    listing = UploadedFile(tools_file.name, tools_file.read_bytes())
    seconds, result = await timed_async(args.runs, lambda: scan(inventory_from_files([listing])))
    rows.append(
        Row("tool list file", "conduit", "in process", "50 tools", seconds, conduit_findings(result.findings))
    )
    seconds, stdout = timed_command(args.cli_runs, [*cli, "--file", str(tools_file)], conduit_env(), workdir)
    rows.append(
        Row(
            "tool list file",
            "conduit",
            "subprocess",
            "50 tools",
            seconds,
            conduit_findings(json.loads(stdout)["findings"]),
        )
    )

    reads = f"{len(uploads)} files, {sum(len(u.content) for u in uploads) / 1e6:.1f} MB"
    seconds, result = await timed_async(args.runs, lambda: scan(inventory_from_files(uploads)))
    rows.append(
        Row("10 MB upload", "conduit", "in process", reads, seconds, conduit_findings(result.findings))
    )
    paths = [str(workdir / "upload" / u.name) for u in uploads]
    seconds, stdout = timed_command(
        args.cli_runs, [*cli, *(a for p in paths for a in ("--file", p))], conduit_env(), workdir
    )
    rows.append(
        Row(
            "10 MB upload",
            "conduit",
            "subprocess",
            reads,
            seconds,
            conduit_findings(json.loads(stdout)["findings"]),
        )
    )
    return rows


async def save_tool_list(url: str, path: Path) -> None:
    """The live server's tools/list result, as a file both scanners read."""
    inventory = await collect(spec_for_url(url), probe=False)
    path.write_text(json.dumps({"tools": [tool.raw for tool in inventory.servers[0].tools]}, indent=1))


# --- Conduit's API -----------------------------------------------------------------------------


async def api_key(client: httpx.AsyncClient) -> str:
    account = {"email": f"bench-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    (await client.post("/api/v1/accounts", json=account)).raise_for_status()
    session = await client.post("/api/v1/sessions", json=account)
    session.raise_for_status()
    bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
    created = await client.post("/api/keys", json={"name": "bench"}, headers=bearer)
    created.raise_for_status()
    return str(created.json()["key"])


async def until_complete(client: httpx.AsyncClient, submitted: httpx.Response) -> dict[str, Any]:
    """Poll a submitted scan every 10 ms until it is complete (or failed: exit)."""
    if submitted.status_code != 202:
        raise SystemExit(
            f"{submitted.request.url.path} answered {submitted.status_code}: {submitted.text[:500]}"
        )
    scan_id = submitted.json()["scan_id"]
    while True:
        answer = (await client.get(f"/v1/scan/{scan_id}")).json()
        if answer["status"] == "complete":
            return dict(answer)
        if answer["status"] == "failed":
            raise SystemExit(f"scan {scan_id} failed: {answer.get('error')}")
        await asyncio.sleep(0.01)


async def api_rows(
    args: argparse.Namespace, conduit: Server, url: str, uploads: list[UploadedFile]
) -> list[Row]:
    async with httpx.AsyncClient(base_url=conduit.base_url, timeout=120.0) as client:
        client.headers["Authorization"] = f"Bearer {await api_key(client)}"
        multipart = [("files", (u.name, u.content, "application/octet-stream")) for u in uploads]

        async def live() -> dict[str, Any]:
            return await until_complete(client, await client.post("/v1/scan/mcp", json={"url": url}))

        async def upload() -> dict[str, Any]:
            return await until_complete(client, await client.post("/v1/scan/upload", files=multipart))

        live_seconds, live_scan = await timed_async(args.runs, live)
        upload_seconds, upload_scan = await timed_async(args.runs, upload)
    reads = f"{len(uploads)} files, {sum(len(u.content) for u in uploads) / 1e6:.1f} MB"
    return [
        Row("live HTTP", "conduit", "API", "POST /v1/scan/mcp → complete", live_seconds,
            conduit_findings(live_scan["findings"] or [])),
        Row("10 MB upload", "conduit", "API", f"POST /v1/scan/upload ({reads}) → complete", upload_seconds,
            conduit_findings(upload_scan["findings"] or [])),
    ]  # fmt: skip


# --- Cisco -------------------------------------------------------------------------------------


def cisco_rows(args: argparse.Namespace, venv: Path, url: str, workdir: Path) -> list[Row]:
    scanner = [str(venv / "bin" / "mcp-scanner"), "--analyzers", "yara", "--format", "raw"]
    env = cisco_env()
    rows = []
    job = {
        "url": url,
        "runs": args.runs,
        "tools_file": str(workdir / "fifty-tools.json"),
        "upload_tools_file": str(workdir / "upload-tools.json"),
    }
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CISCO_IN_PROCESS],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    if done.returncode:
        raise SystemExit(f"Cisco's scanner failed in process:\n{done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    upload_tools = len(json.loads((workdir / "upload-tools.json").read_text())["tools"])
    for key, scenario, reads in [
        ("live_tools", "live HTTP", "tools"),
        ("live_everything", "live HTTP", "tools, prompts, resources (read), instructions"),
        ("file", "tool list file", "50 tools"),
        ("upload_tools", "10 MB upload", f"the dump's {upload_tools} tools only"),
    ]:
        total, serious = measured[key]["findings"]
        rows.append(
            Row(
                scenario,
                "cisco yara",
                "in process",
                reads,
                measured[key]["seconds"],
                f"{total} ({serious} medium+)",
            )
        )

    def cli(scenario: str, reads: str, argv: list[str]) -> None:
        seconds, stdout = timed_command(args.cli_runs, [*scanner, *argv], env, workdir)
        rows.append(
            Row(scenario, "cisco yara", "subprocess", reads, seconds, str(cisco_cli_findings(stdout)))
        )

    seconds, _ = timed_command(args.cli_runs, [*scanner, "remote", "--help"], env, workdir)
    rows.append(Row("start-up only", "cisco yara", "subprocess", "`mcp-scanner remote --help`", seconds, "-"))
    cli("live HTTP", "tools", ["remote", "--server-url", url])
    stdio = ["stdio", "--stdio-command", sys.executable, f"--stdio-arg={SERVER_SCRIPT}", "--stdio-arg=stdio"]
    cli("live stdio", "tools", stdio)
    cli("tool list file", "50 tools", ["static", "--tools", job["tools_file"]])
    cli(
        "10 MB upload",
        f"the dump's {upload_tools} tools only",
        ["static", "--tools", job["upload_tools_file"]],
    )
    return rows


# --- the run -----------------------------------------------------------------------------------


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    baseline = {(r.scenario, r.how): r.median for r in rows if r.scanner == "conduit"}
    order = {"start-up only": 0, "live HTTP": 1, "live stdio": 2, "tool list file": 3, "10 MB upload": 4}
    how = {"in process": 0, "subprocess": 1, "API": 2}
    ordered = sorted(rows, key=lambda r: (order[r.scenario], how[r.how], r.scanner != "conduit"))
    return [
        (
            r.scenario,
            r.scanner,
            r.how,
            r.reads,
            f"{r.median * 1000:,.0f}",
            f"{min(r.seconds) * 1000:,.0f}",
            str(len(r.seconds)),
            r.findings,
            f"{r.median / baseline[(r.scenario, r.how)]:.2f}" if (r.scenario, r.how) in baseline else "-",
        )
        for r in ordered
    ]


def verdicts(rows: list[Row]) -> list[str]:
    lines = []
    for scenario, target in (("live HTTP", LIVE_TARGET_SECONDS), ("10 MB upload", UPLOAD_TARGET_SECONDS)):
        for r in rows:
            if r.scanner == "conduit" and r.scenario == scenario:
                verdict = "meets" if r.median < target else "MISSES"
                lines.append(
                    f"{scenario} ({r.how}): median {r.median:.3f} s {verdict} the {target:g} s target"
                )
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per in-process and API row (default 5)"
    )
    parser.add_argument("--cli-runs", type=int, default=3, help="timed runs per subprocess row (default 3)")
    parser.add_argument(
        "--dump-servers",
        type=int,
        default=DUMP_SERVERS,
        help=f"servers in the upload's tool dump, from eval/scanner/data/harmless (default {DUMP_SERVERS})",
    )
    parser.add_argument("--no-cisco", action="store_true", help="time Conduit only")
    parser.add_argument("--no-api", action="store_true", help="skip the rows through `conduit serve`")
    parser.add_argument(
        "--cisco-venv", type=Path, help="a venv with cisco-ai-mcp-scanner (installed if missing)"
    )
    parser.add_argument("--log-level", default="warning", help="conduit serve's log level (default warning)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 50 or not 1 <= args.cli_runs <= 20:
        parser.error("--runs must be in 1..50 and --cli-runs in 1..20")
    return args


async def run(
    args: argparse.Namespace, url: str, workdir: Path, conduit: Server | None, venv: Path | None
) -> list[Row]:
    await save_tool_list(url, workdir / "fifty-tools.json")
    uploads = upload_files(workdir, args.dump_servers)
    dump = next(u.content for u in uploads if u.name == "tool-dump.json")
    (workdir / "upload-tools.json").write_bytes(tools_only(dump))
    rows = await conduit_rows(args, url, workdir, uploads)
    if conduit is not None:
        rows += await api_rows(args, conduit, url, uploads)
    if venv is not None:
        rows += cisco_rows(args, venv, url, workdir)
    return rows


def main() -> None:
    args = parse_args()
    kit_logging.configure("warning", json=False)  # as `conduit scan` does: stdio starts are noise here
    venv = None if args.no_cisco else cisco_venv(args.cisco_venv)
    workdir = Path(tempfile.mkdtemp(prefix="conduit-bench-scan-"))
    port = free_port()
    argv = [sys.executable, str(SERVER_SCRIPT), "http", "--port", str(port)]
    server = start_process("fifty-tools", argv, workdir, conduit_env(), port, listening)
    conduit = None
    try:
        if not args.no_api:
            settings = {"CONDUIT_DEFAULT_PLAN": "enterprise", "CONDUIT_ALLOW_PRIVATE_TARGETS": "true"}
            conduit = start_conduit(workdir, args.log_level, settings)
        url = f"http://{HOST}:{port}/mcp"
        cisco = f", {CISCO_PACKAGE} {cisco_version(venv)} from {venv}" if venv else ""
        print(f"50-tool server on {url}, {machine()}{cisco}; median and min of each row", flush=True)
        rows = asyncio.run(run(args, url, workdir, conduit, venv))
        for process in (server, conduit):
            if process is not None and not process.alive():
                raise SystemExit(f"{process.name} died during the run:\n{process.log_tail()}")
    finally:
        server.stop()
        if conduit is not None:
            conduit.stop()
    print()
    print_table(HEADER, table_rows(rows))
    print()
    print("\n".join(verdicts(rows)))
    print(
        "\nConduit reads every listing, probes the transport (live) and parses configs, lockfiles and source "
        "(upload); Cisco's YARA mode reads what the `reads` column says. Findings: all (medium or above)."
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
