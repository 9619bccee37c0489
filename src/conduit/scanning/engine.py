"""The scan itself: run every analyzer over an inventory, add the judge's findings if one is
configured, and score the result. No I/O here but the judge's; collection happens before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conduit.scanning.checks import ANALYZERS
from conduit.scanning.checks.base import Context
from conduit.scanning.checks.rugpull import definition_hashes
from conduit.scanning.findings import Finding, Severity
from conduit.scanning.inventory import Inventory
from conduit.scanning.judge import Judge
from conduit.scanning.scoring import Score, score

ProgressCallback = Callable[[str, float], Awaitable[None] | None]


@dataclass
class ScanResult:
    target: str
    kind: str
    started_at: datetime
    duration_ms: float
    findings: list[Finding]
    score: Score
    hashes: dict[str, str]  # store these; pass them back as `previous_hashes` next time
    partial: bool
    errors: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "scan_type": self.kind,
            "started_at": self.started_at.isoformat().replace("+00:00", "Z"),
            "duration_ms": round(self.duration_ms),
            "overall_score": self.score.total,
            "letter_grade": self.score.grade,
            "scores": self.score.to_dict(),
            "partial": self.partial,
            "errors": self.errors,
            "findings_count": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "inventory": self.summary,
            "hashes": self.hashes,
        }


async def _report(progress: ProgressCallback | None, message: str, fraction: float) -> None:
    if progress is None:
        return
    result = progress(message, fraction)
    if asyncio.iscoroutine(result):
        await result


def _summary(inventory: Inventory) -> dict[str, Any]:
    return {
        "servers": [
            {
                "name": s.name,
                "version": s.server_info.get("version"),
                "protocol_version": s.protocol_version,
                "tools": len(s.tools),
                "prompts": len(s.prompts),
                "resources": len(s.resources),
                "resource_templates": len(s.templates),
                "source": s.source,
            }
            for s in inventory.servers
        ],
        "launch_commands": len(inventory.launch_commands),
        "remote_endpoints": len(inventory.remote_endpoints),
        "files": [f.path for f in inventory.files],
    }


def _applicable(inventory: Inventory) -> set[str]:
    applicable = {"security", "compliance"}
    if inventory.transport is not None or inventory.remote_endpoints:
        applicable.add("auth")
    if any(s.timings_ms for s in inventory.servers) or inventory.tool_count:
        applicable.add("performance")
    return applicable


def _deduplicate(findings: list[Finding]) -> list[Finding]:
    kept: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        previous = kept.get(finding.key)
        if previous is None or finding.severity.rank > previous.severity.rank:
            kept[finding.key] = finding
    return sorted(kept.values(), key=lambda f: (-f.severity.rank, f.id, f.file or "", f.location))


async def scan(
    inventory: Inventory,
    *,
    previous_hashes: Mapping[str, str] | None = None,
    runtime: int | None = None,
    judge: Judge | None = None,
    progress: ProgressCallback | None = None,
) -> ScanResult:
    """Findings, score and definition hashes for an inventory. `runtime` is the runtime score
    (0-100) from outside the scan, e.g. the gateway's error rates; None when there is none."""
    started_at = datetime.now(UTC)
    began = time.monotonic()
    context = Context(inventory=inventory, previous_hashes=previous_hashes)
    findings: list[Finding] = []
    errors = list(inventory.errors)
    steps = len(ANALYZERS) + (1 if judge else 0)
    for i, analyzer in enumerate(ANALYZERS):
        name = analyzer.__module__.rsplit(".", 1)[-1]
        await _report(progress, f"Checking {name}", i / steps)
        # In a thread: a large upload keeps a check busy for a second or more, and the event
        # loop (the gateway's relays, in the server) must not wait for it.
        findings.extend(await asyncio.to_thread(analyzer, context))
    if judge is not None:
        await _report(progress, "Asking the LLM judge", len(ANALYZERS) / steps)
        judged, judge_errors = await judge.review(context.surfaces())
        findings.extend(judged)
        errors.extend(judge_errors)
    findings = _deduplicate(findings)
    partial = inventory.partial
    result = ScanResult(
        target=inventory.target,
        kind=inventory.kind,
        started_at=started_at,
        duration_ms=(time.monotonic() - began) * 1000,
        findings=findings,
        score=score(findings, partial=partial, runtime=runtime, applicable=_applicable(inventory)),
        hashes=definition_hashes(inventory),
        partial=partial,
        errors=errors,
        summary=_summary(inventory),
    )
    await _report(progress, "Done", 1.0)
    return result
