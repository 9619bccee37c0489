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
CREDENTIAL_WORD = r"api_?key|apikey|secret|token|password|passwd|pwd|credential|private_?key"
ASSIGNMENT = re.compile(
    rf"""(?P<name>[A-Za-z_][\w-]*(?:{CREDENTIAL_WORD})[\w-]*)"""
    r"""["']?\s*[:=]\s*["'](?P<value>[^"'\s]{8,})["']""",
    re.IGNORECASE,
)
# The credential words in a folded text (`prefilter.fold`): where ASSIGNMENT's words match.
_FOLDED_CREDENTIAL_WORD = re.compile(CREDENTIAL_WORD)
_NAME_CHAR = re.compile(r"[\w-]")
_NAME_CHARS = re.compile(r"[\w-]*")


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


def known_secrets(text: str, folded: str | None = None) -> Iterator[tuple[str, re.Match[str]]]:
    """Provider-format credentials in a text; `folded` is `fold(text)` when the caller has it."""
    if folded is None:
        folded = fold(text)  # each format has a literal (`AKIA`, `ghp_`, `eyJ`...): most are skipped
    for label, pattern in _PROVIDERS:
        for match in pattern.finditer(text, folded):
            yield label, match


def assignments(text: str, folded: str) -> Iterator[re.Match[str]]:
    """The matches of `ASSIGNMENT.finditer(text)`, trying the regex only where one can start.

    A match's name is a run of name characters (`[\\w-]`) holding a credential word, so it starts
    in such a run; tried at every position of a text, the regex scanned each long run (a hash, a
    URL) back and forth, which took seconds on a large file. The words are found in the folded
    text, as IGNORECASE finds them; positions are tried in order, as `finditer` tries them.
    """
    position = 0  # every match starting before this has been yielded
    for word in _FOLDED_CREDENTIAL_WORD.finditer(folded):
        if word.start() < position:
            continue
        start = word.start()
        while start > position and _NAME_CHAR.match(text, start - 1):
            start -= 1
        run = _NAME_CHARS.match(text, word.start())
        end = run.end() if run else word.start()
        for at in range(start, end):
            match = ASSIGNMENT.match(text, at)
            if match:
                yield match
                position = match.end()
                break
        else:
            position = end


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
        folded = fold(source.text)
        for label, match in known_secrets(source.text, folded):
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
            for match in assignments(source.text, folded):
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
