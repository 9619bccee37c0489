"""Cisco's offline scanner (cisco-ai-mcp-scanner with `--analyzers yara`) on the data run.py
scores, counted the same way, beside Conduit's figures from run.py's own functions:
`.venv/bin/python eval/scanner/compare_cisco.py` (measurement only; no item is printed).

Cisco runs in its own venv (bench/scan.py's `cisco_venv`: reused, or installed into a scratch
venv outside the repository), offline, through the code its commands run: `StaticAnalyzer` with a
`YaraAnalyzer` over each listing's tools, prompts and resources (`mcp-scanner static`, default
MIME filter text/plain and text/html), and the `YaraAnalyzer` over the server instructions (as
`mcp-scanner instructions` does). Its findings name the item they are on, which maps onto run.py's
targets (`tools[0]`, `prompts[1]`, `instructions`). Severity: Cisco's HIGH and MEDIUM count as
run.py's "medium or more"; LOW (its YARA code-execution and injection-attack categories) does
not, and is shown apart in the "any" columns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent.parent / "bench"))

import run  # noqa: E402  eval/scanner/run.py: Conduit's counting
from loadgen import print_table  # noqa: E402  bench/loadgen.py
from scan import CISCO_PACKAGE, cisco_env, cisco_venv, cisco_version  # noqa: E402  bench/scan.py

SERIOUS = {"HIGH", "MEDIUM"}
POISONED = ROOT / "data" / "poisoned"
HARMLESS = ROOT / "data" / "harmless"
HARMLESS_FRESH = ROOT / "data" / "harmless-fresh"

# Run in Cisco's interpreter: a JSON list of listings in, a JSON list of {location: [severity]} out.
CISCO_FINDINGS = r"""
import asyncio, json, os, sys, tempfile
from mcpscanner.core.analyzers.static_analyzer import StaticAnalyzer
from mcpscanner.core.analyzers.yara_analyzer import YaraAnalyzer

yara = YaraAnalyzer()
static = StaticAnalyzer(analyzers=[yara])
MIME_TYPES = ["text/plain", "text/html"]  # `mcp-scanner static --resources` default

async def findings(listing, folder):
    found = {}
    for kind in ("tools", "prompts", "resources"):
        if not listing.get(kind):
            continue
        path = os.path.join(folder, kind + ".json")
        with open(path, "w", encoding="utf-8") as out:
            json.dump({kind: listing[kind]}, out)
        if kind == "tools":
            results = await static.scan_tools_file(path)
        elif kind == "prompts":
            results = await static.scan_prompts_file(path)
        else:
            results = await static.scan_resources_file(path, allowed_mime_types=MIME_TYPES)
        for i, result in enumerate(results):
            found[f"{kind}[{i}]"] = [f.severity for f in result["findings"]]
    if listing.get("instructions"):
        context = {"server_name": "server", "content_type": "instructions"}
        found["instructions"] = [f.severity for f in await yara.analyze(listing["instructions"], context)]
    return found

async def main():
    listings = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps([await findings(listing, folder) for listing in listings]))

asyncio.run(main())
"""


def cisco_findings(python: Path, listings: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    done = subprocess.run(  # noqa: S603  Cisco's own interpreter, our script
        [str(python), "-c", CISCO_FINDINGS],
        input=json.dumps(listings),
        capture_output=True,
        text=True,
        env=cisco_env(),
    )
    if done.returncode:
        raise SystemExit(f"Cisco's scanner failed:\n{done.stderr[-2000:]}")
    answer: list[dict[str, list[str]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def hit(found: dict[str, list[str]], target: str, levels: Iterable[str] | None) -> bool:
    """A finding on the target's item (Cisco names items, never a place inside one)."""
    item = target.split(".", 1)[0]
    severities = found.get(item, [])
    return any(s in levels for s in severities) if levels is not None else bool(severities)


def poisoned_files(split: str) -> list[Path]:
    """The files run.py reads for a split (dev: dev.json and dev-*.json), or the blind set."""
    if split == "dev":
        return [POISONED / "dev.json", *sorted(POISONED.glob("dev-*.json"))]
    return [POISONED / f"{split}.json"]


def cisco_poisoned(python: Path, split: str) -> tuple[int, int, int]:
    items = [item for file in poisoned_files(split) for item in json.loads(file.read_text())["items"]]
    found = cisco_findings(python, [item["listing"] for item in items])
    serious = sum(hit(f, item["target"], SERIOUS) for f, item in zip(found, items, strict=True))
    anything = sum(hit(f, item["target"], None) for f, item in zip(found, items, strict=True))
    return serious, anything, len(items)


def cisco_harmless(python: Path, split: str, source: Path | None) -> tuple[int, int, int]:
    documents = run._harmless_listings(split, source)
    found = cisco_findings(python, documents)
    serious = anything = tools = 0
    for document, findings in zip(documents, found, strict=True):
        for i in range(len(document["tools"])):
            tools += 1
            serious += hit(findings, f"tools[{i}]", SERIOUS)
            anything += hit(findings, f"tools[{i}]", None)
    return serious, anything, tools


def rate(count: int, total: int) -> str:
    return f"{count}/{total} {count / max(1, total):.1%}"


async def conduit_counts(split: str, harmless_split: str, source: Path | None) -> tuple[str, str]:
    path = POISONED / f"{split}.json" if split.startswith("heldout-blind") else None
    detected, attacks, _families = await run.poisoned(split, False, path)
    flagged, tools, _servers, _server_level = await run.harmless(harmless_split, False, source)
    return rate(detected, attacks), rate(flagged, tools)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cisco-venv", type=Path, help="a venv with cisco-ai-mcp-scanner (installed if missing)"
    )
    args = parser.parse_args()
    venv = cisco_venv(args.cisco_venv)
    python = venv / "bin" / "python"
    # A blind held-out set (`heldout-blind*.json`, when present, less its `-harmless` companion)
    # is scored against the fresh harmless servers, which nobody tuned on either.
    blind = [
        (path.stem, "heldout", HARMLESS_FRESH)
        for path in sorted(POISONED.glob("heldout-blind*.json"))
        if not path.stem.endswith("-harmless")
    ]
    splits: list[tuple[str, str, Path | None]] = [("dev", "dev", None), ("heldout", "heldout", None), *blind]
    header = (
        "set",
        "scanner",
        "poisoned detected",
        "(any severity)",
        "harmless tools flagged",
        "(any severity)",
    )
    rows = []
    for split, harmless_split, source in splits:
        detected, flagged = asyncio.run(conduit_counts(split, harmless_split, source))
        rows.append((split, "conduit", detected, "", flagged, ""))
        serious, anything, items = cisco_poisoned(python, split)
        flagged_serious, flagged_any, cisco_tools = cisco_harmless(python, harmless_split, source)
        rows.append(
            (
                split,
                "cisco yara",
                rate(serious, items),
                rate(anything, items),
                rate(flagged_serious, cisco_tools),
                rate(flagged_any, cisco_tools),
            )
        )
    print(
        f"{CISCO_PACKAGE} {cisco_version(venv)} (--analyzers yara, offline) beside Conduit's offline checks\n"
    )
    print_table(header, rows)
    print(
        f"\n(detected / flagged = a finding of {run.THRESHOLD.value} or more on the item; Cisco's HIGH and "
        "MEDIUM count as such, its LOW only in the (any severity) columns)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
