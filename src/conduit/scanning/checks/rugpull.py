"""Tool definitions that changed since the last scan (a "rug pull"): the engine hashes every
tool, prompt, resource and template definition; the caller stores the hashes and hands them
back as `previous_hashes` next time."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.inventory import Inventory

ANALYZER = "integrity"

CHANGED = check(
    "CND-RUG-001",
    "Tool definition changed since the last scan",
    Severity.high,
    Category.security,
    owasp_llm="LLM03",
    owasp_mcp="MCP03",
    cwe="CWE-494",
    analyzer=ANALYZER,
    description="The server now describes a tool differently from what was scanned (and approved) "
    "before: a server can pass review and then change what the model is told.",
    remediation="Review the new definition before letting clients use it; pin approved definitions "
    "in the gateway.",
    monitor_candidate=True,
)
ADDED = check(
    "CND-RUG-002",
    "New tool since the last scan",
    Severity.low,
    Category.security,
    owasp_llm="LLM03",
    owasp_mcp="MCP02",
    cwe=None,
    analyzer=ANALYZER,
    description="The server lists a tool, prompt or resource that the previous scan did not see.",
    remediation="Review the new definition before letting clients use it.",
    monitor_candidate=True,
)
REMOVED = check(
    "CND-RUG-003",
    "Tool removed since the last scan",
    Severity.info,
    Category.security,
    owasp_llm="LLM03",
    owasp_mcp="MCP08",
    cwe=None,
    analyzer=ANALYZER,
    description="A definition the previous scan saw is gone.",
    remediation="Nothing to fix on its own; check that clients no longer rely on it.",
)

# What identifies a definition to the model; volatile fields (`_meta`, icons) are left out.
DEFINITION_FIELDS = {
    "tools": ("name", "title", "description", "inputSchema", "outputSchema", "annotations"),
    "prompts": ("name", "title", "description", "arguments"),
    "resources": ("uri", "name", "title", "description", "mimeType"),
    "resourceTemplates": ("uriTemplate", "name", "title", "description", "mimeType"),
}


def definition_hash(kind: str, raw: dict[str, Any]) -> str:
    body = {k: raw[k] for k in DEFINITION_FIELDS[kind] if k in raw}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def definition_hashes(inventory: Inventory) -> dict[str, str]:
    """`{"tools/<name>": "sha256:..."}` for every definition (keys start with `<server>/` when the
    inventory holds several servers)."""
    hashes: dict[str, str] = {}
    for server in inventory.servers:
        prefix = "" if len(inventory.servers) <= 1 else f"{server.name}/"
        groups: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = [
            ("tools", [(t.name, t.raw or {"name": t.name}) for t in server.tools]),
            ("prompts", [(p.name, p.raw or {"name": p.name}) for p in server.prompts]),
            ("resources", [(r.uri, r.raw or {"uri": r.uri}) for r in server.resources]),
            (
                "resourceTemplates",
                [(t.uri_template, t.raw or {"uriTemplate": t.uri_template}) for t in server.templates],
            ),
        ]
        for kind, items in groups:
            for name, raw in items:
                hashes[f"{prefix}{kind}/{name}"] = definition_hash(kind, raw)
    return hashes


def _kind(key: str) -> str:
    return next((part for part in key.split("/") if part in DEFINITION_FIELDS), "tools")


def run(context: Context) -> list[Finding]:
    previous = context.previous_hashes
    if previous is None:
        return []
    current = definition_hashes(context.inventory)
    findings = []
    for key, digest in current.items():
        before = previous.get(key)
        if before is None:
            findings.append(ADDED.finding(evidence=key, location=key, confidence=Confidence.confirmed))
        elif before != digest:
            findings.append(
                CHANGED.finding(
                    evidence=f"{key}: {before[:19]}… → {digest[:19]}…",
                    location=key,
                    severity=Severity.medium if _kind(key) == "resources" else Severity.high,
                    confidence=Confidence.confirmed,
                )
            )
    for key in previous.keys() - current.keys():
        findings.append(REMOVED.finding(evidence=key, location=key, confidence=Confidence.confirmed))
    return findings
