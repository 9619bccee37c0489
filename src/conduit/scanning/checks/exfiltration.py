"""Exfiltration channels in input schemas: parameters whose name or description asks the model
for secrets, the conversation, its instructions, or free-form "notes" nobody needs to call the
tool (the side channel of the classic poisoned `add(a, b, sidenote)`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from conduit.scanning.checks import lexicon
from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.inventory import Tool

ANALYZER = "schema"

EXFIL_PARAMETER = check(
    "CND-EX-001",
    "Parameter that collects the conversation or the model's context",
    Severity.high,
    Category.security,
    owasp_llm="LLM02",
    owasp_mcp="MCP10",
    cwe="CWE-201",
    analyzer=ANALYZER,
    description="An input parameter asks the model for its conversation, its system prompt, other "
    "tools' output or its whole context: data the tool does not need and the server should not get.",
    remediation="Remove the parameter, or narrow it to the data the tool needs and say so in its "
    "description.",
    monitor_candidate=True,
)
SECRET_PARAMETER = check(
    "CND-EX-002",
    "Parameter asks the model for a credential",
    Severity.low,
    Category.security,
    owasp_llm="LLM02",
    owasp_mcp="MCP01",
    cwe="CWE-522",
    analyzer=ANALYZER,
    description="An input parameter expects a password, key or token from the model, so the secret "
    "passes through the model's context and the tool-call log.",
    remediation="Configure credentials on the server (environment, OAuth), never as tool arguments.",
)
SIDE_CHANNEL = check(
    "CND-EX-003",
    "Free-form side-channel parameter",
    Severity.low,
    Category.security,
    owasp_llm="LLM02",
    owasp_mcp="MCP03",
    cwe="CWE-201",
    analyzer=ANALYZER,
    description="A parameter named like a note, comment or debug field takes free text unrelated to "
    "what the tool does; poisoned tools use such fields to carry exfiltrated data.",
    remediation="Check what the server does with the field; remove it if the tool does not need it.",
)

OUT_OF_SCOPE = check(
    "CND-EX-004",
    "Parameter asks for personal or financial data the tool does not need",
    Severity.medium,
    Category.security,
    owasp_llm="LLM02",
    owasp_mcp="MCP10",
    cwe="CWE-359",
    analyzer=ANALYZER,
    description="An input parameter asks for a password, a card number, an identity number or similar "
    "personal data, while nothing in the tool's name or description has to do with payments, "
    "accounts, authentication or identity (MSB's out-of-scope parameter attack).",
    remediation="Remove the parameter; a tool that needs such data should say why in its description, "
    "and credentials belong in the server's configuration.",
    monitor_candidate=True,
)

_I = re.IGNORECASE
CONTEXT_NAMES = re.compile(
    r"^(?:conversation(?:_?history)?|chat_?history|history_?of_?(?:conversation|chat)|previous_?messages|"
    r"all_?messages|full_?context|entire_?context|system_?prompt|system_?instructions|user_?prompt_?history|"
    r"context_?window|memory_?dump|transcript)$",
    _I,
)
CONTEXT_WORDS = re.compile(
    r"(?:\b(?:full|entire|complete|whole|previous|prior|all)\s+(?:\w+\s+)?(?:conversation|chat|messages|"
    r"dialog(?:ue)?|transcript|context)|conversation\s+(?:history|so\s+far|context)|chat\s+history|"
    r"system\s+prompt|your\s+(?:instructions|prompt|context)|other\s+tools?'?\s+(?:output|results?|"
    r"responses?)|(?:contents?|text)\s+of\s+(?:any|all|the)\s+(?:files?|documents?)\s+(?:you|the\s+user)|"
    r"everything\s+(?:you|the\s+user)\s+(?:know|said|wrote|typed)|(?:user'?s?|all)\s+(?:private|personal)\s+"
    r"(?:data|information)|(?:all|every|your|the\s+user'?s?|the\s+host'?s?|the\s+system'?s?|current)\s+(?:\w+\s+)?"
    r"environment\s+variables|api\s+keys?\s+(?:you|from)|saved\s+passwords)",
    _I,
)
SECRET_NAMES = re.compile(
    r"^(?:password|passwd|pwd|passphrase|secret|client_?secret|api_?secret|secret_?key|private_?key|"
    r"ssh_?key|ssh_?private_?key|api_?key|apikey|access_?key(?:_?id)?|secret_?access_?key|auth_?token|"
    r"bearer_?token|access_?token|refresh_?token|session_?token|session_?cookie|cookies?|credentials?|"
    r"mnemonic|seed_?phrase|wallet_?key|private_?key_?hex|otp|totp_?code)$",
    _I,
)
SIDE_NAMES = re.compile(
    r"^(?:side_?note|notes?|remark|memo|debug(?:_?info)?|extra(?:_?info)?|metadata_?note|"
    r"internal_?note|feedback|annotation|comment_?for_?(?:ai|model)|ai_?notes?|context_?notes?|reasoning_?notes?|"
    r"hidden|telemetry|diagnostics?|trace_?data)$",
    _I,
)


# Personal and financial data, by parameter name (words of the name) or description.
PERSONAL_NAME = re.compile(
    r"(?:^|_)(?:ssn|social_?security(?:_?number)?|card_?number|credit_?card(?:_?number)?|cvv2?|cvc|"
    r"card_?(?:security_?code|pin|expiry|expiration)|pin_?code|bank_?account(?:_?number)?|routing_?number|"
    r"iban|date_?of_?birth|dob|birth_?date|passport(?:_?number)?|tax_?id|national_?id|mothers?_?maiden_?name|pin|"
    r"seed_?phrase|mnemonic|recovery_?phrase|\w*_password|password_\w+|email_?password|private_?key|"
    r"secret_?key|otp(?:_?code)?|(?:sms|mfa|2fa|verification)_?code)(?:$|_)",
    _I,
)
PERSONAL_WORDS = re.compile(
    r"\b(?:social\s+security|card\s+number|credit\s+card|security\s+code|cvv|cvc|bank\s+account|routing\s+number|"
    r"date\s+of\s+birth|passport|mother'?s\s+maiden|seed\s+phrase|recovery\s+phrase|mnemonic|"
    r"(?:user'?s?|your|their)\s+(?:\w+\s+){0,3}?(?:password|passcode|pin|private\s+key|one-time\s+code))\b",
    _I,
)
# What a tool must be about to need such data.
PERSONAL_PURPOSE = re.compile(
    r"(?:pay|card|bank|billing|checkout|invoice|charge|wallet|auth|login|log\s+in|sign|password|credential|"
    r"account|identity|kyc|verif|secret|key|token|vault|connect|database|\bdb\b|ssh|crypto|transfer|register|"
    r"signup|customer|profile|user|member|employee|patient|contact|person|people|finance|tax|payroll|"
    r"encrypt|decrypt|hash|cipher|security|otp|mfa|2fa|passport|travel|booking)",
    _I,
)


def _name_words(name: str) -> str:
    return re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").lower()


PHRASE_WORDS = r"\b(?:from|reading|read|contents?|of|dump|copy|verbatim|full|all|entire|user|my|your)\b"


def _asks_for_context_by_name(name: str) -> bool:
    """A parameter name that is itself a request (`content_from_reading_ssh_id_rsa`)."""
    words = _name_words(name)
    if len(words.split()) < 3:
        return False
    if re.search(lexicon.SECRET_PATH, name, _I) or re.search(lexicon.CONVERSATION, words, _I):
        return True
    # A secret named inside a phrase ("contents_of_user_password"), not a setting ("aws_secret_access_key").
    return bool(
        re.search(r"\b(?:ssh|id rsa|private key|api keys?|secrets?|passwords?|credentials?)\b", words)
        and re.search(PHRASE_WORDS, words)
    )


def _properties(schema: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str, dict[str, Any]]]:
    if not isinstance(schema, dict) or depth > 5:
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            if not isinstance(sub, dict):
                sub = {}
            location = f"{path}.properties.{name}"
            yield str(name), location, sub
            yield from _properties(sub, location, depth + 1)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _properties(items, f"{path}.items", depth + 1)


def _is_free_text(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind in (None, "string") or (isinstance(kind, list) and "string" in kind)


def tool_findings(tool: Tool, base: str, server: str) -> list[Finding]:
    findings = []
    purpose = PERSONAL_PURPOSE.search(f"{_name_words(tool.name)} {tool.title} {tool.description}")
    for name, location, schema in _properties(tool.input_schema, f"{base}.inputSchema"):
        description = schema.get("description") if isinstance(schema.get("description"), str) else ""
        words = CONTEXT_WORDS.search(description or "")
        if _asks_for_context_by_name(name):
            findings.append(
                EXFIL_PARAMETER.finding(
                    evidence=f"{name}: {description}" if description else name,
                    location=location,
                    severity=Severity.high,
                    confidence=Confidence.firm,
                    detail="The parameter's name reads as a request for data the tool does not need.",
                    server=server,
                )
            )
        elif not purpose and (PERSONAL_NAME.search(name) or PERSONAL_WORDS.search(description or "")):
            findings.append(
                OUT_OF_SCOPE.finding(
                    evidence=f"{name}: {description}" if description else name,
                    location=location,
                    severity=Severity.high if PERSONAL_WORDS.search(description or "") else Severity.medium,
                    confidence=Confidence.firm,
                    detail=f"Tool `{tool.name}` is not about payments, accounts, authentication or identity.",
                    server=server,
                )
            )
        elif CONTEXT_NAMES.match(name) or (words and _is_free_text(schema)):
            evidence = f"{name}: {description}" if description else name
            findings.append(
                EXFIL_PARAMETER.finding(
                    evidence=evidence,
                    location=location,
                    severity=Severity.high if words else Severity.medium,
                    confidence=Confidence.firm if words else Confidence.tentative,
                    server=server,
                )
            )
        elif SECRET_NAMES.match(name) and _is_free_text(schema):
            findings.append(
                SECRET_PARAMETER.finding(
                    evidence=f"{name}: {description}" if description else name,
                    location=location,
                    server=server,
                    confidence=Confidence.firm,
                )
            )
        elif SIDE_NAMES.match(name) and _is_free_text(schema):
            findings.append(
                SIDE_CHANNEL.finding(
                    evidence=f"{name}: {description}" if description else name,
                    location=location,
                    server=server,
                    confidence=Confidence.tentative,
                )
            )
    return findings


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    for server in context.inventory.servers:
        for i, tool in enumerate(server.tools):
            findings.extend(tool_findings(tool, context.tool_location(server, i), server.name))
    return findings
