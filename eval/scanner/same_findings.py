"""Every finding the engine gives on the evaluation inputs, dumped to JSON, to check that a change
meant only to make the scanner faster changes no result:

    .venv/bin/python eval/scanner/same_findings.py -o /tmp/before.json
    ... change the engine ...
    .venv/bin/python eval/scanner/same_findings.py -o /tmp/after.json --compare /tmp/before.json

Inputs: every dev poisoned item (`data/poisoned/dev*.json`), every harmless server
(`data/harmless/*.json`, both splits) alone, all harmless servers as one multi-server inventory
(the cross-server checks), a synthetic 50-tool listing, any `--listing` file, and a ~10 MB upload
(`files.inventory_from_files` over a tool dump, a package-lock.json, Python sources and a client
config) written once to `--upload-dir` and reused, so that later edits to the repository's sources
do not change it. Held-out poisoned items are scanned but only a digest of their findings is
stored, so nobody reads them through this file. Each finding is dumped whole (`Finding.to_dict`),
with the score and the definition hashes.

`--bench` instead times, in a fresh interpreter per run (caches cold, imports not counted), the
Google Workspace tool list, the synthetic listing, the dev poisoned set and the upload, and prints
the median of `--runs` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent.parent
sys.path.insert(0, str(REPO / "src"))

from conduit.scanning.engine import ScanResult, scan  # noqa: E402
from conduit.scanning.files import UploadedFile, inventory_from_files  # noqa: E402
from conduit.scanning.inventory import Inventory, ServerInventory  # noqa: E402

HARMLESS = ROOT / "data" / "harmless"
POISONED = ROOT / "data" / "poisoned"
UPLOAD_BYTES = 10_000_000
DEFAULT_UPLOAD_DIR = Path("/tmp/conduit-same-findings-upload")  # noqa: S108 (a scratch copy, rebuilt when missing)


# --- inputs ------------------------------------------------------------------------------------


def listing_inventory(name: str, listing: dict[str, Any]) -> Inventory:
    return Inventory(target=name, kind="files", servers=[ServerInventory.from_listing(name, listing)])


def harmless_docs() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(HARMLESS.glob("*.json"))]


def multi_server_inventory() -> Inventory:
    servers = [ServerInventory.from_listing(doc["server"], doc) for doc in harmless_docs()]
    return Inventory(target="all-harmless", kind="files", servers=servers)


def poisoned_items(prefix: str) -> list[dict[str, Any]]:
    files = [POISONED / f"{prefix}.json", *sorted(POISONED.glob(f"{prefix}-*.json"))]
    if prefix != "dev":
        files = [f for f in files if f.exists()]
    return [item for file in files for item in json.loads(file.read_text())["items"]]


_VERBS = ["Get", "List", "Create", "Update", "Delete", "Search", "Read", "Archive", "Export", "Sync"]
_THINGS = [
    ("issue", "an issue in the tracker"),
    ("invoice", "an invoice of the billing account"),
    ("calendar_event", "a calendar event"),
    ("file", "a file in the workspace repository"),
    ("deployment", "a deployment of a service"),
]


def synthetic_listing(count: int = 50) -> dict[str, Any]:
    """A workspace server of `count` plain tools, each with a few described parameters."""
    tools = []
    for i in range(count):
        verb = _VERBS[i % len(_VERBS)]
        thing, phrase = _THINGS[(i // len(_VERBS)) % len(_THINGS)]
        name = f"{verb.lower()}_{thing}" + (f"_{i // 50}" if i >= 50 else "")
        tools.append(
            {
                "name": name,
                "description": f"{verb} {phrase}. Returns the result as JSON with the id, the title, "
                f"the owner and the time it was last changed. Use `limit` to page through long lists; "
                f"results are sorted newest first.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": f"The id of the {thing.replace('_', ' ')}"},
                        "query": {"type": "string", "description": "Free-text filter on title and body"},
                        "limit": {"type": "integer", "description": "Maximum number of results (1-200)"},
                        "format": {
                            "type": "string",
                            "enum": ["json", "markdown"],
                            "description": "How to format the answer",
                            "default": "json",
                        },
                    },
                    "required": ["id"] if verb not in ("List", "Search") else [],
                },
                "annotations": {"readOnlyHint": verb in ("Get", "List", "Search", "Read", "Export")},
            }
        )
    return {
        "instructions": "Workspace assistant for the platform team: issues, billing, calendar, files "
        "and deployments.",
        "tools": tools,
    }


def _lockfile(size: int) -> bytes:
    words = [
        "ansi",
        "array",
        "async",
        "buffer",
        "chalk",
        "color",
        "debug",
        "define",
        "event",
        "fast",
        "glob",
        "http",
        "json",
        "merge",
        "mime",
        "path",
    ]
    packages: dict[str, Any] = {"": {"name": "acme-console", "version": "4.2.0", "dependencies": {}}}
    document = {"name": "acme-console", "version": "4.2.0", "lockfileVersion": 3, "requires": True}
    n = 0
    while True:
        name = f"{words[n % len(words)]}-{words[(n // len(words)) % len(words)]}-{n}"
        version = f"{n % 7}.{n % 13}.{n % 5}"
        packages[f"node_modules/{name}"] = {
            "version": version,
            "resolved": f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz",
            "integrity": "sha512-" + hashlib.sha512(name.encode()).hexdigest()[:88],
            "license": "MIT",
            "dependencies": {words[(n + k) % len(words)] + f"-{k}": f"^{k}.0.0" for k in range(n % 4)},
            "engines": {"node": ">=18"},
        }
        n += 1
        if n % 500 == 0 and len(json.dumps(document | {"packages": packages}, indent=2)) > size:
            break
    while len(content := json.dumps(document | {"packages": packages}, indent=2).encode()) > size:
        packages.popitem()
    return content


def make_upload(folder: Path) -> None:
    """About 10 MB: every harmless server as one tool dump, a client config, requirements, Python
    sources of this repository (copied now, frozen from then on) and a package-lock.json."""
    folder.mkdir(parents=True, exist_ok=True)
    servers = [
        {"name": d["server"], **{k: v for k, v in d.items() if k != "server"}} for d in harmless_docs()
    ]
    files: dict[str, bytes] = {
        "tool-dump.json": json.dumps({"servers": servers}, indent=1).encode(),
        "claude_desktop_config.json": json.dumps(
            {
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
            },
            indent=2,
        ).encode(),
        "requirements.txt": b"mcp>=1.9\nhttpx==0.28.1\npydantic>=2,<3\nuvicorn\nrich==14.0.0\n",
    }
    budget = UPLOAD_BYTES * 3 // 10
    sources = sorted((REPO / "src").rglob("*.py"), key=lambda p: (-p.stat().st_size, str(p)))
    sources += sorted((REPO / "tests").rglob("*.py"), key=lambda p: (-p.stat().st_size, str(p)))
    for path in sources[:190]:
        content = path.read_bytes()
        if len(content) <= budget:
            budget -= len(content)
            files[str(path.relative_to(REPO))] = content
    files["package-lock.json"] = _lockfile(UPLOAD_BYTES - sum(len(c) for c in files.values()))
    manifest = []
    for name, content in files.items():
        target = folder / "files" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        manifest.append(name)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def upload_files(folder: Path) -> list[UploadedFile]:
    if not (folder / "manifest.json").exists():
        make_upload(folder)
    names = json.loads((folder / "manifest.json").read_text())
    return [UploadedFile(name, (folder / "files" / name).read_bytes()) for name in names]


# --- the dump ----------------------------------------------------------------------------------


def _result(result: ScanResult) -> dict[str, Any]:
    return {
        "findings": [f.to_dict() for f in result.findings],
        "score": result.score.to_dict(),
        "total": result.score.total,
        "grade": result.score.grade,
        "hashes": result.hashes,
        "errors": result.errors,
        "partial": result.partial,
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def dump(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in poisoned_items("dev"):
        out[f"poisoned/{item['id']}"] = _result(await scan(listing_inventory(item["id"], item["listing"])))
    # Held-out items (heldout.json and any heldout-*.json, the blind sets too): a digest only,
    # never their findings.
    heldout = [
        _result(await scan(listing_inventory(item["id"], item["listing"])))
        for item in poisoned_items("heldout")
    ]
    out["heldout-digest"] = _digest(heldout)
    for doc in harmless_docs():
        out[f"harmless/{doc['server']}"] = _result(await scan(listing_inventory(doc["server"], doc)))
    out["multi-server"] = _result(await scan(multi_server_inventory()))
    out["synthetic-50"] = _result(await scan(listing_inventory("synthetic", synthetic_listing())))
    for path in args.listing or []:
        listing = json.loads(path.read_text())
        out[f"listing/{path.name}"] = _result(await scan(listing_inventory(path.stem, listing)))
    inventory = inventory_from_files(upload_files(args.upload_dir))
    out["upload"] = _result(await scan(inventory))
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> int:
    differing = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for key in differing:
        print(f"DIFFERS {key}")
        if key == "heldout-digest":
            continue
        old, new = before.get(key) or {}, after.get(key) or {}
        for field in ("findings", "score", "hashes", "errors", "partial"):
            if old.get(field) != new.get(field):
                print(f"  {field}:")
                print(f"    before {json.dumps(old.get(field), ensure_ascii=False)[:2000]}")
                print(f"    after  {json.dumps(new.get(field), ensure_ascii=False)[:2000]}")
    total = sum(len(v["findings"]) for k, v in after.items() if isinstance(v, dict))
    print(f"{len(after)} inputs, {total} findings; {len(differing)} differ")
    return 1 if differing else 0


# --- timings -----------------------------------------------------------------------------------

CASES = ("google-workspace", "synthetic-50", "dev-poisoned", "upload-parse", "upload-scan")


async def _time_case(case: str, upload_dir: Path, listing: Path | None) -> float:
    if case == "google-workspace":
        doc = json.loads((HARMLESS / "google-workspace.json").read_text())
        inventory = listing_inventory(doc["server"], doc)
        began = time.perf_counter()
        await scan(inventory)
        return time.perf_counter() - began
    if case == "synthetic-50":
        data = json.loads(listing.read_text()) if listing else synthetic_listing()  # noqa: ASYNC240
        inventory = listing_inventory("synthetic", data)
        began = time.perf_counter()
        await scan(inventory)
        return time.perf_counter() - began
    if case == "dev-poisoned":
        inventories = [listing_inventory(i["id"], i["listing"]) for i in poisoned_items("dev")]
        began = time.perf_counter()
        for inventory in inventories:
            await scan(inventory)
        return time.perf_counter() - began
    files = upload_files(upload_dir)
    began = time.perf_counter()
    inventory = inventory_from_files(files)
    parsed = time.perf_counter()
    if case == "upload-parse":
        return parsed - began
    await scan(inventory)
    return time.perf_counter() - began


def bench(args: argparse.Namespace) -> None:
    upload_files(args.upload_dir)  # written once, before any timing
    listing = args.listing[0] if args.listing else None
    for case in args.cases or CASES:
        label = case if not (case == "synthetic-50" and listing) else f"listing {listing.name}"
        times = []
        for _ in range(args.runs):
            argv = [sys.executable, __file__, "--one", case, "--upload-dir", str(args.upload_dir)]
            if listing:
                argv += ["--listing", str(listing)]
            answer = subprocess.run(argv, capture_output=True, text=True, check=True)  # noqa: S603
            times.append(float(answer.stdout.strip()))
        print(
            f"{label:<28} median {statistics.median(times) * 1000:8.1f} ms   "
            f"min {min(times) * 1000:8.1f} ms   ({args.runs} fresh interpreters)",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--output", type=Path, help="write the dump here")
    parser.add_argument("--compare", type=Path, help="a previous dump: report every difference")
    parser.add_argument("--listing", type=Path, action="append", help="another tools/list JSON to scan")
    parser.add_argument("--upload-dir", type=Path, default=DEFAULT_UPLOAD_DIR)
    parser.add_argument("--bench", action="store_true", help="time the scanner instead")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", nargs="+", choices=CASES, help="time only these (with --bench)")
    parser.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--fresh-upload", action="store_true", help="write the upload files again")
    args = parser.parse_args()
    if args.fresh_upload and args.upload_dir.exists():
        shutil.rmtree(args.upload_dir)
    if args.one:
        listing = args.listing[0] if args.listing else None
        print(asyncio.run(_time_case(args.one, args.upload_dir, listing)))
        return 0
    if args.bench:
        bench(args)
        return 0
    result = asyncio.run(dump(args))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1, ensure_ascii=False, sort_keys=True))
    if args.compare:
        return compare(json.loads(args.compare.read_text()), result)
    total = sum(len(v["findings"]) for v in result.values() if isinstance(v, dict))
    print(f"{len(result)} inputs, {total} findings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
