"""Dangerous capabilities and combinations: tools that destroy or execute without saying so in
their annotations, annotations that contradict the tool, and the "lethal trifecta" of one
configuration holding untrusted input, private data and an outbound channel together."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.inventory import Tool

ANALYZER = "capabilities"

UNANNOTATED_DESTRUCTIVE = check(
    "CND-CAP-001",
    "Destructive tool without annotations",
    Severity.low,
    Category.compliance,
    owasp_llm="LLM06",
    owasp_mcp="MCP02",
    cwe="CWE-749",
    analyzer=ANALYZER,
    description="The tool deletes or overwrites things but does not declare `destructiveHint`, so "
    "clients cannot ask for confirmation before calling it.",
    remediation="Declare `annotations: {destructiveHint: true}` (and `idempotentHint` where it applies).",
)
MISLEADING_ANNOTATION = check(
    "CND-CAP-002",
    "Annotations contradict what the tool does",
    Severity.medium,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP03",
    cwe="CWE-451",
    analyzer=ANALYZER,
    description="The tool claims `readOnlyHint: true` (or `destructiveHint: false`) while its name "
    "and description say it changes or deletes things; clients skip confirmation on such tools.",
    remediation="Fix the annotations; clients trust them to decide what needs a confirmation.",
)
CODE_EXECUTION = check(
    "CND-CAP-003",
    "Tool executes arbitrary commands or code",
    Severity.low,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP05",
    cwe="CWE-78",
    analyzer=ANALYZER,
    description="The tool runs shell commands or code the model writes. Any prompt injection that "
    "reaches the model becomes code execution on the server's host.",
    remediation="Run the server in a sandbox with the least privileges, and require a confirmation "
    "for every call.",
    monitor_candidate=True,
)
TRIFECTA = check(
    "CND-CAP-004",
    "Untrusted input, private data and an outbound channel together",
    Severity.medium,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP10",
    cwe="CWE-200",
    analyzer=ANALYZER,
    description="The tools in scope let content from outside (web pages, emails, issues) reach the "
    "model, give it private data, and give it a way to send data out: one injected instruction is "
    "enough to exfiltrate.",
    remediation="Split these capabilities across separate agents or configurations, or require a "
    "confirmation on the outbound tools.",
    monitor_candidate=True,
)

_I = re.IGNORECASE


def _words(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), _I)


DESTRUCTIVE_NAME = re.compile(
    r"(?:^|[_\-.])(?:delete|remove|drop|destroy|purge|wipe|truncate|kill|terminate|erase|uninstall|"
    r"revoke|overwrite|rm|unlink|rmdir|format|reset|force_?push)(?:$|[_\-.])|"
    r"^(?:delete|remove|drop|destroy|purge|wipe|truncate|kill|terminate|erase|uninstall|revoke|"
    r"overwrite|unlink|reset)[A-Z]",
    _I,
)
DESTRUCTIVE_TEXT = _words(r"\b(?:permanently|irreversibl[ey]|cannot be undone)\b")
WRITE_NAME = re.compile(
    r"(?:^|[_\-.])(?:write|create|update|set|put|post|send|insert|edit|move|rename|push|merge|"
    r"execute|exec|run|deploy|publish|upload)(?:$|[_\-.])|^(?:write|create|update|set|send|insert|"
    r"edit|move|push|merge|execute|run|deploy|publish)[A-Z]",
    _I,
)
EXEC_NAME = re.compile(
    r"(?:^|[_\-.])(?:exec|execute|run|shell|bash|sh|terminal|cmd|command|eval|spawn|start_?process|"
    r"interpreter|repl|python|script|code)(?:$|[_\-.])|^(?:exec|execute|run|shell|eval|spawn)[A-Z]",
    _I,
)
EXEC_TEXT = _words(
    r"\b(?:execut|run)\w*\s+(?:an?\s+|any\s+|arbitrary\s+|the\s+given\s+|the\s+provided\s+)?"
    r"(?:shell|terminal|bash|system|os|cli|powershell)?\s*(?:commands?|scripts?|code|programs?)\b",
    r"\b(?:shell|terminal)\s+commands?\b",
    r"\barbitrary\s+(?:code|commands?|sql|javascript|python)\b",
)
UNTRUSTED = _words(
    r"\b(?:fetch|scrape|crawl|browse|navigate|download)\w*\b.{0,60}\b(?:url|web|page|site|internet)",
    r"\b(?:web|internet|google|bing)\s+search\b",
    r"\b(?:read|get|list|search|fetch)\w*\s+(?:\w+\s+){0,2}?(?:emails?|inbox|mail|messages|issues?|"
    r"comments?|pull\s+requests?|tickets?|posts?|tweets?|reviews?)\b",
    r"\bsearch\s+(?:the\s+)?(?:web|internet)\b",
)
PRIVATE = _words(
    r"\b(?:read|get|query|search|list|open|fetch|retrieve)\w*\s+(?:\w+\s+){0,3}?(?:files?|directory|"
    r"directories|database|tables?|records?|rows|documents?|emails?|inbox|messages|calendar|contacts|"
    r"drive|notes|repositor(?:y|ies)|secrets?|credentials|customers?|orders|payments?)\b",
    r"\b(?:sql|query)\b.{0,40}\b(?:database|table)",
)
SINK = _words(
    r"\b(?:send|post|publish|tweet|share|forward|reply|upload|push|email)\w*\b.{0,50}\b(?:emails?|messages?|"
    r"channel|slack|webhook|url|comments?|issues?|tweets?|posts?|remote|repository|gist|recipients?)",
    r"\b(?:create|open|add)\w*\s+(?:an?\s+)?(?:\w+\s+)?(?:issues?|comments?|pull\s+requests?|gists?|posts?)\b",
    r"\bhttp\s+(?:post|put|request)\b|\bmake\s+(?:an?\s+)?(?:http|web)\s+requests?\b",
)


@dataclass
class Traits:
    destructive: bool
    writes: bool
    executes: bool
    untrusted: bool
    private: bool
    sink: bool


def traits(tool: Tool) -> Traits:
    text = f"{tool.name} {tool.title}. {tool.description[:600]}"
    name = tool.name
    return Traits(
        destructive=bool(DESTRUCTIVE_NAME.search(name))
        or bool(DESTRUCTIVE_TEXT.search(tool.description[:400])),
        writes=bool(WRITE_NAME.search(name)),
        executes=bool(EXEC_NAME.search(name)) and bool(EXEC_TEXT.search(text)),
        untrusted=bool(UNTRUSTED.search(text)),
        private=bool(PRIVATE.search(text)),
        sink=bool(SINK.search(text)),
    )


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    holders: dict[str, list[str]] = {"untrusted": [], "private": [], "sink": []}
    for server in context.inventory.servers:
        for i, tool in enumerate(server.tools):
            found = traits(tool)
            base = context.tool_location(server, i)
            annotations = tool.annotations
            for trait in holders:
                if getattr(found, trait):
                    holders[trait].append(
                        f"{server.name}/{tool.name}" if len(context.inventory.servers) > 1 else tool.name
                    )
            if found.destructive and annotations.get("readOnlyHint") is True:
                findings.append(
                    MISLEADING_ANNOTATION.finding(
                        evidence=f"{tool.name}: readOnlyHint=true",
                        location=f"{base}.annotations.readOnlyHint",
                        server=server.name,
                    )
                )
            elif (
                found.destructive
                and "destructiveHint" not in annotations
                and annotations.get("readOnlyHint") is not True
            ):
                findings.append(
                    UNANNOTATED_DESTRUCTIVE.finding(
                        evidence=tool.name,
                        location=f"{base}.annotations",
                        server=server.name,
                        confidence=Confidence.tentative,
                    )
                )
            if found.executes:
                findings.append(
                    CODE_EXECUTION.finding(
                        evidence=f"{tool.name}: {tool.description[:160]}",
                        location=base,
                        server=server.name,
                        confidence=Confidence.tentative,
                    )
                )
    if all(holders.values()):
        evidence = "; ".join(f"{trait}: {', '.join(names[:3])}" for trait, names in holders.items())
        findings.append(
            TRIFECTA.finding(evidence=evidence, location="tools", confidence=Confidence.tentative)
        )
    return findings
