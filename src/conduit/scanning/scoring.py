"""The 0-100 score, its breakdown (seed 000: security, compliance, auth, performance, runtime)
and the A-F grade. The method is written out in docs/scoring.md; change both together."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from conduit.scanning.findings import Category, Finding, Severity

PENALTY = {Severity.critical: 60, Severity.high: 25, Severity.medium: 10, Severity.low: 3, Severity.info: 0}
# The same check firing again costs less each time: 1, 1/2, 1/4, ... of its penalty.
REPEAT_DECAY = 0.5
WEIGHTS = {"security": 0.45, "auth": 0.2, "compliance": 0.15, "performance": 0.1, "runtime": 0.1}
GRADES = (("A", 90), ("B", 80), ("C", 70), ("D", 60), ("F", 0))
CAPS = {Severity.critical: ("F", 59), Severity.high: ("C", 79)}
PARTIAL_CAP = ("B", 89)


@dataclass
class Score:
    total: int
    grade: str
    breakdown: dict[str, int | None]
    capped_by: str | None = None  # why the grade is lower than the total alone would give

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "grade": self.grade, "breakdown": dict(self.breakdown)}


def grade_of(total: int) -> str:
    return next(letter for letter, floor in GRADES if total >= floor)


def category_score(findings: list[Finding]) -> int:
    by_check: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_check[finding.id].append(finding)
    lost = 0.0
    for same in by_check.values():
        penalties = sorted((PENALTY[f.severity] for f in same), reverse=True)
        lost += sum(p * REPEAT_DECAY**i for i, p in enumerate(penalties))
    return max(0, round(100 - lost))


def score(
    findings: list[Finding], *, partial: bool, runtime: int | None = None, applicable: set[str] | None = None
) -> Score:
    """`applicable` names the categories the scan could observe (a file scan sees no transport,
    so its auth score is None rather than a perfect 100); `runtime` comes from outside the scan."""
    applicable = applicable if applicable is not None else {c.value for c in Category}
    grouped: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        grouped[finding.category.value].append(finding)
    breakdown: dict[str, int | None] = {}
    for category in ("security", "compliance", "auth", "performance"):
        breakdown[category] = (
            category_score(grouped[category]) if category in applicable or grouped[category] else None
        )
    breakdown["runtime"] = None if runtime is None else max(0, min(100, int(runtime)))
    present = {k: v for k, v in breakdown.items() if v is not None}
    weight = sum(WEIGHTS[k] for k in present)
    total = round(sum(WEIGHTS[k] * v for k, v in present.items()) / weight) if weight else 0
    capped_by = None
    for severity in (Severity.critical, Severity.high):
        if any(f.severity == severity for f in findings):
            _grade, ceiling = CAPS[severity]
            if total > ceiling:
                total, capped_by = ceiling, f"a {severity.value} finding"
            break
    if partial and total > PARTIAL_CAP[1]:
        total, capped_by = PARTIAL_CAP[1], "a partial scan"
    return Score(total=total, grade=grade_of(total), breakdown=breakdown, capped_by=capped_by)
