"""Scan results as SARIF 2.1.0, the format code-scanning pipelines (GitHub, GitLab, Azure
DevOps) ingest: one rule per check, one result per finding, file findings with their line."""

from __future__ import annotations

import hashlib
from typing import Any

import conduit
from conduit.scanning.engine import ScanResult
from conduit.scanning.findings import REGISTRY, Finding, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
# GitHub reads `security-severity` (0-10) to rank security alerts.
SECURITY_SEVERITY = {
    Severity.critical: "9.5",
    Severity.high: "8.0",
    Severity.medium: "5.5",
    Severity.low: "3.0",
    Severity.info: "0.0",
}


def _rule(check_id: str) -> dict[str, Any]:
    declared = REGISTRY[check_id]
    tags = ["security", declared.owasp_llm, declared.owasp_mcp, *([declared.cwe] if declared.cwe else [])]
    return {
        "id": declared.id,
        "name": "".join(w.capitalize() for w in declared.title.replace("-", " ").split() if w.isalnum()),
        "shortDescription": {"text": declared.title},
        "fullDescription": {"text": declared.description},
        "help": {"text": declared.remediation},
        "defaultConfiguration": {"level": LEVEL[declared.severity]},
        "properties": {"tags": tags, "security-severity": SECURITY_SEVERITY[declared.severity]},
    }


def _location(finding: Finding, target: str) -> dict[str, Any]:
    if finding.file:
        physical: dict[str, Any] = {"artifactLocation": {"uri": finding.file}}
        if finding.line:
            physical["region"] = {"startLine": finding.line}
        return {"physicalLocation": physical, "logicalLocations": [{"fullyQualifiedName": finding.location}]}
    return {
        "physicalLocation": {"artifactLocation": {"uri": target}},
        "logicalLocations": [{"fullyQualifiedName": finding.location, "kind": "member"}],
    }


def to_sarif(result: ScanResult) -> dict[str, Any]:
    rule_ids = sorted({f.id for f in result.findings})
    index = {rule: i for i, rule in enumerate(rule_ids)}
    results = []
    for finding in result.findings:
        fingerprint = hashlib.sha256(
            "|".join((finding.id, finding.file or result.target, finding.location)).encode()
        )
        results.append(
            {
                "ruleId": finding.id,
                "ruleIndex": index[finding.id],
                "level": LEVEL[finding.severity],
                "message": {"text": f"{finding.title}: {finding.evidence}"},
                "locations": [_location(finding, result.target)],
                "partialFingerprints": {"conduitFinding/v1": fingerprint.hexdigest()[:32]},
                "properties": {
                    "severity": finding.severity.value,
                    "confidence": finding.confidence.value,
                    "owasp_category": finding.owasp_category,
                    "owasp_mcp_category": finding.owasp_mcp,
                    "cwe": finding.cwe,
                    "analyzer": finding.analyzer,
                    "security-severity": SECURITY_SEVERITY[finding.severity],
                },
            }
        )
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "conduit-scanner",
                        "semanticVersion": conduit.__version__,
                        "rules": [_rule(r) for r in rule_ids],
                    }
                },
                "results": results,
                "properties": {
                    "overall_score": result.score.total,
                    "letter_grade": result.score.grade,
                    "partial": result.partial,
                },
            }
        ],
    }
