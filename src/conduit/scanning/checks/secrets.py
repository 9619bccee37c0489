"""Secrets in client configs, source files and server metadata: provider key formats, private
keys, and credential-named settings holding literal values. Evidence is always redacted."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from conduit.scanning.checks.base import Context
from conduit.scanning.checks.prefilter import Prefiltered, fold
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check

ANALYZER = "secrets"

KNOWN_SECRET = check(
    "CND-SEC-001",
    "Credential in plain text",
    Severity.high,
    Category.security,
    owasp_llm="LLM02",
    owasp_mcp="MCP01",
    cwe="CWE-798",
    analyzer=ANALYZER,
    description="A credential in a recognised provider format (or a private key) is written in the "
    "file or metadata, where anyone who reads it, and any model it is shown to, can use it.",
    remediation="Revoke the credential now, then load it from a secret store or the environment.",
)
HARDCODED_SETTING = check(
    "CND-SEC-002",
    "Secret-named setting with a literal value",
    Severity.medium,
    Category.security,
    owasp_llm="LLM02",
    owasp_mcp="MCP01",
    cwe="CWE-798",
    analyzer=ANALYZER,
    description="A setting named like a credential (`*_TOKEN`, `*_API_KEY`, `password`) holds a "
    "literal value instead of a reference to the environment or a secret store.",
    remediation="Reference the secret (`${env:NAME}`, an input prompt, a secret manager) instead of "
    "writing it in the file; rotate it if the file was shared.",
)

PROVIDERS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private key",
        re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"),
    ),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    ("Slack token", re.compile(r"\bxox[baprse]-[A-Za-z0-9-]{10,}\b")),
    ("Slack webhook", re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+")),
    ("Anthropic key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    (
        "OpenAI key",
        re.compile(
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}|\bsk-(?:proj|svcacct)-[A-Za-z0-9_-]{40,}"
        ),
    ),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("PyPI token", re.compile(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{34,}\b")),
    ("JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("Conduit key", re.compile(r"\bcnd_live_[A-Za-z0-9]{32,}\b")),
    (
        "connection string password",
        re.compile(r"\b(?:postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqp)://[^:\s/@]+:[^@\s/]{4,}@"),
    ),
]
SECRET_NAME = re.compile(
    r"(?:^|_|-|\b)(?:api_?key|apikey|secret|token|password|passwd|pwd|pass|credentials?|private_?key|"
    r"access_?key|auth|bearer|client_?secret)(?:$|_|-|\b)",
    re.IGNORECASE,
)
NOT_SECRET_NAME = re.compile(
    r"(?:_URL|_URI|_PATH|_FILE|_DIR|_HOST|_PORT|_NAME|_USER|_ID|_REGION|_ENDPOINT)$", re.I
)
PLACEHOLDER = re.compile(
    r"^\$\{[^}]*\}$|^\$[A-Z_][A-Z0-9_]*$|^<[^>]*>$|\{\{.*\}\}|^%[A-Z_]+%$|your[_-]?|xxx|\*{3}|\.\.\.|"
    r"example|changeme|placeholder|replace|dummy|sample|insert|here|todo|^test$|^(?:true|false|null|none)$|"
    r"^env:|^op://|^vault:|^secret:",
    re.IGNORECASE,
)
ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z_][\w-]*(?:api_?key|apikey|secret|token|password|passwd|pwd|credential|private_?key)[\w-]*)"""
    r"""["']?\s*[:=]\s*["'](?P<value>[^"'\s]{8,})["']""",
    re.IGNORECASE,
)


def redact(value: str) -> str:
    value = value.strip()
    if len(value) <= 8:
        return "****"
    return f"{value[:4]}…{value[-2:]} ({len(value)} chars)"


def entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_secret(value: str) -> bool:
    value = value.strip()
    if len(value) < 8 or PLACEHOLDER.search(value) or " " in value:
        return False
    return len(set(value)) > 4 and entropy(value) >= 3.0


_PROVIDERS = [(label, Prefiltered(pattern)) for label, pattern in PROVIDERS]


def known_secrets(text: str) -> Iterator[tuple[str, re.Match[str]]]:
    folded = fold(text)  # each format has a literal (`AKIA`, `ghp_`, `eyJ`...): most are skipped
    for label, pattern in _PROVIDERS:
        for match in pattern.finditer(text, folded):
            yield label, match


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _settings(context: Context) -> Iterator[tuple[str, str, str, str | None, str | None]]:
    """(name, value, location, file, server) of every env var and header a config sets."""
    for command in context.inventory.launch_commands:
        for name, value in command.env.items():
            yield name, value, f"{command.location}.env.{name}", command.file, command.server
    for endpoint in context.inventory.remote_endpoints:
        for name, value in endpoint.headers.items():
            if name.lower() == "authorization":
                value = value.split(" ", 1)[-1]
            yield name, value, f"{endpoint.location}.headers.{name}", endpoint.file, endpoint.server


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[tuple[str | None, str]] = set()

    def add(finding: Finding, value: str) -> None:
        key = (finding.file, value)
        if key not in seen:
            seen.add(key)
            findings.append(finding)

    for name, value, location, file, server in _settings(context):
        for label, match in known_secrets(value):
            add(
                KNOWN_SECRET.finding(
                    evidence=f"{label}: {name}={redact(match.group())}",
                    location=location,
                    file=file,
                    server=server,
                    confidence=Confidence.confirmed,
                ),
                value,
            )
        is_secret = name.lower() == "authorization" or (
            SECRET_NAME.search(name) and not NOT_SECRET_NAME.search(name)
        )
        if is_secret and looks_secret(value):
            add(
                HARDCODED_SETTING.finding(
                    evidence=f"{name}={redact(value)}", location=location, file=file, server=server
                ),
                value,
            )
    for command in context.inventory.launch_commands:
        joined = " ".join(command.args)
        for label, match in known_secrets(joined):
            add(
                KNOWN_SECRET.finding(
                    evidence=f"{label} in arguments: {redact(match.group())}",
                    location=f"{command.location}.args",
                    file=command.file,
                    server=command.server,
                    confidence=Confidence.confirmed,
                ),
                match.group(),
            )
    for source in context.inventory.files:
        for label, match in known_secrets(source.text):
            add(
                KNOWN_SECRET.finding(
                    evidence=f"{label}: {redact(match.group())}",
                    location=source.path,
                    file=source.path,
                    line=_line(source.text, match.start()),
                    confidence=Confidence.firm,
                ),
                match.group(),
            )
        if source.kind in ("python", "javascript", "config", "text"):
            for match in ASSIGNMENT.finditer(source.text):
                value = match.group("value")
                if looks_secret(value) and not NOT_SECRET_NAME.search(match.group("name")):
                    add(
                        HARDCODED_SETTING.finding(
                            evidence=f"{match.group('name')}={redact(value)}",
                            location=source.path,
                            file=source.path,
                            line=_line(source.text, match.start()),
                        ),
                        value,
                    )
    for surface in context.surfaces():
        for label, match in known_secrets(surface.text):
            add(
                KNOWN_SECRET.finding(
                    evidence=f"{label}: {redact(match.group())}",
                    location=surface.location,
                    server=surface.server.name,
                    confidence=Confidence.firm,
                ),
                match.group(),
            )
    return findings
