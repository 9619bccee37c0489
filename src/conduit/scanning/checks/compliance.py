"""What the MCP spec and good practice expect of a catalog (every tool described, input schemas
that are object schemas, names clients accept), and how heavy and slow the server is to use."""

from __future__ import annotations

import re

from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check

ANALYZER = "compliance"

NO_DESCRIPTION = check(
    "CND-CMP-001",
    "Tool without a description",
    Severity.low,
    Category.compliance,
    owasp_llm="LLM06",
    owasp_mcp="MCP02",
    cwe=None,
    analyzer=ANALYZER,
    description="The model and the user have only the name to go by when deciding to call the tool.",
    remediation="Describe what the tool does, what it changes and what it returns.",
)
BAD_SCHEMA = check(
    "CND-CMP-002",
    "Input schema missing or not an object schema",
    Severity.low,
    Category.compliance,
    owasp_llm="LLM05",
    owasp_mcp="MCP05",
    cwe="CWE-20",
    analyzer=ANALYZER,
    description="MCP requires `inputSchema` to be a JSON Schema of type object; without one, clients "
    "cannot validate arguments before the call.",
    remediation="Declare `inputSchema: {type: object, properties: {...}}`.",
)
BAD_NAME = check(
    "CND-CMP-003",
    "Tool name outside the MCP naming rules",
    Severity.info,
    Category.compliance,
    owasp_llm="LLM06",
    owasp_mcp="MCP09",
    cwe=None,
    analyzer=ANALYZER,
    description="MCP tool names should be 1-128 characters of letters, digits, `_`, `-` and `.`; other "
    "names break clients or get rewritten.",
    remediation="Rename the tool.",
)
LARGE_CATALOG = check(
    "CND-PERF-001",
    "Large catalog",
    Severity.low,
    Category.performance,
    owasp_llm="LLM10",
    owasp_mcp="MCP10",
    cwe="CWE-400",
    analyzer=ANALYZER,
    description="The server's tool definitions take a large share of the model's context on every "
    "request, and many tools make the model pick the wrong one more often.",
    remediation="Expose fewer tools (curate them in Conduit) and shorten their descriptions.",
)
SLOW = check(
    "CND-PERF-002",
    "Slow to answer",
    Severity.low,
    Category.performance,
    owasp_llm="LLM10",
    owasp_mcp="MCP08",
    cwe="CWE-400",
    analyzer=ANALYZER,
    description="The server took long to initialize or to list its catalog.",
    remediation="Check the server's start-up and listing paths; keep catalogs static.",
)

NAME_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
LARGE_TOOLS = 60
LARGE_CHARS = 80_000  # about 20k tokens
SLOW_MS = 3000.0


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    total_chars = 0
    for server in context.inventory.servers:
        for i, tool in enumerate(server.tools):
            base = context.tool_location(server, i)
            total_chars += len(tool.description) + len(str(tool.input_schema))
            if not tool.description.strip():
                findings.append(
                    NO_DESCRIPTION.finding(
                        evidence=tool.name,
                        location=f"{base}.description",
                        server=server.name,
                        confidence=Confidence.confirmed,
                    )
                )
            if tool.input_schema.get("type") != "object":
                findings.append(
                    BAD_SCHEMA.finding(
                        evidence=f"{tool.name}: {str(tool.input_schema)[:120] or '(none)'}",
                        location=f"{base}.inputSchema",
                        server=server.name,
                        confidence=Confidence.confirmed,
                    )
                )
            if not NAME_RULE.match(tool.name):
                findings.append(
                    BAD_NAME.finding(
                        evidence=repr(tool.name),
                        location=f"{base}.name",
                        server=server.name,
                        confidence=Confidence.confirmed,
                    )
                )
        for step, elapsed in server.timings_ms.items():
            if elapsed > SLOW_MS:
                findings.append(
                    SLOW.finding(
                        evidence=f"{step}: {elapsed:.0f} ms",
                        location=f"timings.{step}",
                        server=server.name,
                        confidence=Confidence.confirmed,
                        severity=Severity.medium if elapsed > 4 * SLOW_MS else None,
                    )
                )
    tools = context.inventory.tool_count
    if tools > LARGE_TOOLS or total_chars > LARGE_CHARS:
        findings.append(
            LARGE_CATALOG.finding(
                evidence=f"{tools} tools, {total_chars} characters of definitions",
                location="tools",
                confidence=Confidence.confirmed,
            )
        )
    return findings
