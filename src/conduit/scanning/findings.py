"""Findings and the checks that produce them. Every check is declared once, as a `Check` with a
stable id (`CND-PI-001`), its OWASP LLM Top 10 (2025) and OWASP MCP Top 10 ids, CWE, the score
category it weighs on and its remediation; analyzers call `Check.finding(...)` with evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_RANK = {Severity.info: 0, Severity.low: 1, Severity.medium: 2, Severity.high: 3, Severity.critical: 4}


class Confidence(StrEnum):
    confirmed = "confirmed"  # observed directly (a live probe, a decoded hidden payload)
    firm = "firm"  # several independent signals agree
    tentative = "tentative"  # one heuristic signal


class Category(StrEnum):
    """The score breakdown of seed 000 a check weighs on."""

    security = "security"
    compliance = "compliance"
    auth = "auth"
    performance = "performance"


OWASP_LLM = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM10": "Unbounded Consumption",
}
OWASP_MCP = {
    "MCP01": "Token Mismanagement & Secret Exposure",
    "MCP02": "Privilege Escalation via Scope Creep",
    "MCP03": "Tool Poisoning",
    "MCP04": "Software Supply Chain Attacks & Dependency Tampering",
    "MCP05": "Command Injection & Execution",
    "MCP06": "Prompt Injection via Contextual Payloads",
    "MCP07": "Insufficient Authentication & Authorization",
    "MCP08": "Lack of Audit and Telemetry",
    "MCP09": "Shadow MCP Servers",
    "MCP10": "Context Injection & Over-Sharing",
}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    category: Category
    owasp_llm: str
    owasp_mcp: str
    cwe: str | None
    analyzer: str
    description: str
    remediation: str
    monitor_candidate: bool = False

    def finding(
        self,
        *,
        evidence: str,
        location: str,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.firm,
        detail: str | None = None,
        server: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> Finding:
        description = self.description if detail is None else f"{self.description} {detail}"
        return Finding(
            id=self.id,
            title=self.title,
            severity=severity or self.severity,
            category=self.category,
            owasp_category=self.owasp_llm,
            owasp_mcp=self.owasp_mcp,
            cwe=self.cwe,
            confidence=confidence,
            description=description,
            remediation=self.remediation,
            evidence=_clip(evidence),
            location=location,
            analyzer=self.analyzer,
            monitor_candidate=self.monitor_candidate,
            server=server,
            file=file,
            line=line,
        )


EVIDENCE_LIMIT = 400


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


@dataclass
class Finding:
    id: str
    title: str
    severity: Severity
    category: Category
    owasp_category: str
    owasp_mcp: str
    cwe: str | None
    confidence: Confidence
    description: str
    remediation: str
    evidence: str
    location: str
    analyzer: str
    monitor_candidate: bool = False
    server: str | None = None
    file: str | None = None
    line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id, self.file or "", self.location)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "category": self.category.value,
            "owasp_category": self.owasp_category,
            "owasp_mcp_category": self.owasp_mcp,
            "cwe": self.cwe,
            "confidence": self.confidence.value,
            "description": self.description,
            "remediation": self.remediation,
            "evidence": self.evidence,
            "location": self.location,
            "server": self.server,
            "file": self.file,
            "line": self.line,
            "analyzer": self.analyzer,
            "monitor_candidate": self.monitor_candidate,
        }


REGISTRY: dict[str, Check] = {}


def check(
    id: str,
    title: str,
    severity: Severity,
    category: Category,
    *,
    owasp_llm: str,
    owasp_mcp: str,
    cwe: str | None,
    analyzer: str,
    description: str,
    remediation: str,
    monitor_candidate: bool = False,
) -> Check:
    """Declare a check (once, at import) and return it."""
    if id in REGISTRY:
        raise ValueError(f"check {id} is declared twice")
    assert owasp_llm in OWASP_LLM, id
    assert owasp_mcp in OWASP_MCP, id
    declared = Check(
        id,
        title,
        severity,
        category,
        owasp_llm,
        owasp_mcp,
        cwe,
        analyzer,
        description,
        remediation,
        monitor_candidate,
    )
    REGISTRY[id] = declared
    return declared


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)
