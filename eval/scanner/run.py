"""Detection and false-positive rates of the scanner's offline checks, on a development set and
a held-out set: `.venv/bin/python eval/scanner/run.py` (add `--show-misses` / `--show-fps`).

A poisoned item counts as detected when a finding of medium severity or more points into its
target (e.g. `tools[0]`, `instructions`). A harmless tool counts as flagged when a finding of
medium or more points into that tool. Configuration-wide findings (the capability trifecta,
catalog size) name no tool and are counted on their own line per server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent.parent / "src"))

from conduit.scanning.engine import scan  # noqa: E402
from conduit.scanning.findings import Finding, Severity  # noqa: E402
from conduit.scanning.inventory import Inventory, ServerInventory  # noqa: E402

THRESHOLD = Severity.medium


def _hits(findings: list[Finding], target: str) -> list[Finding]:
    return [
        f
        for f in findings
        if f.severity.at_least(THRESHOLD) and (f.location == target or f.location.startswith(target + "."))
    ]


async def _scan_listing(name: str, listing: dict) -> list[Finding]:
    inventory = Inventory(target=name, kind="files", servers=[ServerInventory.from_listing(name, listing)])
    return (await scan(inventory)).findings


async def poisoned(split: str, show: bool, path: Path | None = None) -> tuple[int, int, dict[str, list[int]]]:
    if path is not None:
        files = [path]
    else:
        # dev.json plus any dev-*.json next to it; held-out splits are one file each.
        folder = ROOT / "data" / "poisoned"
        files = [folder / f"{split}.json", *sorted(folder.glob(f"{split}-*.json"))]
        if split != "dev":
            files = files[:1]
    items = [item for file in files for item in json.loads(file.read_text())["items"]]
    detected = 0
    by_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        findings = await _scan_listing(item["id"], item["listing"])
        hit = bool(_hits(findings, item["target"]))
        detected += hit
        by_family[item["family"]][0] += hit
        by_family[item["family"]][1] += 1
        if show and not hit:
            print(f"  MISS {item['id']} ({item['family']}, {item['source']})")
    return detected, len(items), by_family


def _harmless_listings(split: str, source: Path | None) -> list[dict]:
    """The split's server dumps in data/harmless; or every dump in `source` (a folder), or the
    items of `source` (a file of listings in the poisoned sets' format, none poisoned)."""
    if source is not None and source.is_file():
        return [{"server": item["id"], **item["listing"]} for item in json.loads(source.read_text())["items"]]
    folder = source or ROOT / "data" / "harmless"
    docs = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return [doc for doc in docs if source is not None or doc["split"] == split]


async def harmless(split: str, show: bool, source: Path | None = None) -> tuple[int, int, int, int]:
    flagged = total = servers = server_level = 0
    for doc in _harmless_listings(split, source):
        servers += 1
        findings = await _scan_listing(doc["server"], doc)
        for i, tool in enumerate(doc["tools"]):
            total += 1
            hits = _hits(findings, f"tools[{i}]")
            if hits:
                flagged += 1
                if show:
                    worst = max(hits, key=lambda f: f.severity.rank)
                    print(
                        f"  FP {doc['server']}/{tool['name']}: {worst.severity} {worst.id} {worst.location}: "
                        f"{worst.evidence[:150]}"
                    )
        if any(f.severity.at_least(THRESHOLD) and not f.location.startswith("tools[") for f in findings):
            server_level += 1
    return flagged, total, servers, server_level


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--show-fps", action="store_true")
    parser.add_argument("--split", choices=["dev", "heldout"], action="append")
    parser.add_argument(
        "--poisoned", type=Path, help="score this poisoned-items file instead of data/poisoned/<split>.json"
    )
    parser.add_argument(
        "--harmless",
        type=Path,
        help="score these harmless tools instead of the split's: a folder of server dumps, or a file "
        "of listings in the poisoned sets' format",
    )
    args = parser.parse_args()
    splits = args.split or ["dev", "heldout"]
    rows = []
    for split in splits:
        detected, attacks, families = await poisoned(split, args.show_misses, args.poisoned)
        flagged, tools, servers, server_level = await harmless(split, args.show_fps, args.harmless)
        rows.append((split, detected, attacks, flagged, tools, servers, server_level, families))
    print()
    print(
        f"{'set':<9} {'poisoned detected':>20} {'harmless tools flagged':>24} "
        f"{'servers':>8} {'server-level':>13}"
    )
    for split, detected, attacks, flagged, tools, servers, server_level, _families in rows:
        print(
            f"{split:<9} {detected:>5}/{attacks:<4} {detected / max(1, attacks):>7.1%}"
            f"   {flagged:>5}/{tools:<5} {flagged / max(1, tools):>8.1%} {servers:>8} {server_level:>13}"
        )
    print(
        f"\n(detected / flagged = a finding of {THRESHOLD.value} or more on the item; "
        "targets: >= 90% and <= 3%)"
    )
    for split, *_rest, families in rows:
        misses = {f: v for f, v in families.items() if v[0] < v[1]}
        if misses:
            print(
                f"{split} families with misses: "
                + ", ".join(f"{f} {d}/{n}" for f, (d, n) in sorted(misses.items()))
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
