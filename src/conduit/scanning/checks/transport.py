"""Transport and auth, from what probing the URL showed (`TransportFacts`) and from the URLs a
client config points at: plain HTTP, TLS version and certificate, access without credentials,
OAuth protected-resource metadata, Origin validation, CORS, and errors that leak internals."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.inventory import TransportFacts

ANALYZER = "transport"

PLAIN_HTTP = check(
    "CND-TR-001",
    "MCP endpoint over plain HTTP",
    Severity.high,
    Category.auth,
    owasp_llm="LLM02",
    owasp_mcp="MCP07",
    cwe="CWE-319",
    analyzer=ANALYZER,
    description="Requests, tool results and credentials travel unencrypted to a host that is not "
    "this machine.",
    remediation="Serve the endpoint over HTTPS only.",
)
OLD_TLS = check(
    "CND-TR-002",
    "Outdated TLS version",
    Severity.high,
    Category.auth,
    owasp_llm="LLM02",
    owasp_mcp="MCP07",
    cwe="CWE-327",
    analyzer=ANALYZER,
    description="The server negotiated a TLS version older than 1.2.",
    remediation="Allow TLS 1.2 and 1.3 only.",
)
BAD_CERTIFICATE = check(
    "CND-TR-003",
    "TLS certificate not trusted or about to expire",
    Severity.high,
    Category.auth,
    owasp_llm="LLM02",
    owasp_mcp="MCP07",
    cwe="CWE-295",
    analyzer=ANALYZER,
    description="The certificate failed verification (expired, self-signed, wrong name), or expires "
    "within 14 days.",
    remediation="Install a certificate from a trusted CA for this host name and renew it automatically.",
)
UNAUTHENTICATED = check(
    "CND-TR-004",
    "MCP server accepts connections without credentials",
    Severity.high,
    Category.auth,
    owasp_llm="LLM06",
    owasp_mcp="MCP07",
    cwe="CWE-306",
    analyzer=ANALYZER,
    description="The server completed `initialize` and listed its tools for a client that sent no "
    "credentials; anyone who can reach it can call its tools.",
    remediation="Require authentication (OAuth 2.1 per the MCP authorization spec, or at least a "
    "bearer token), or put the server behind Conduit's gateway.",
    monitor_candidate=True,
)
NO_RESOURCE_METADATA = check(
    "CND-TR-005",
    "No OAuth protected-resource metadata",
    Severity.low,
    Category.auth,
    owasp_llm="LLM06",
    owasp_mcp="MCP07",
    cwe="CWE-287",
    analyzer=ANALYZER,
    description="The server refuses anonymous clients but neither its `WWW-Authenticate` header nor "
    "`/.well-known/oauth-protected-resource` tells a client where to get a token (RFC 9728), as the "
    "MCP authorization spec requires.",
    remediation="Publish protected-resource metadata naming the authorization server.",
)
NO_ORIGIN_CHECK = check(
    "CND-TR-006",
    "Origin header not validated",
    Severity.medium,
    Category.auth,
    owasp_llm="LLM06",
    owasp_mcp="MCP07",
    cwe="CWE-346",
    analyzer=ANALYZER,
    description="The server accepted `initialize` from a foreign `Origin`. The MCP transport spec "
    "requires servers to validate Origin: without it a web page can reach a local server through "
    "DNS rebinding.",
    remediation="Answer 403 to requests whose Origin is not an allowed one.",
)
PERMISSIVE_CORS = check(
    "CND-TR-007",
    "Permissive CORS policy",
    Severity.medium,
    Category.auth,
    owasp_llm="LLM06",
    owasp_mcp="MCP07",
    cwe="CWE-942",
    analyzer=ANALYZER,
    description="The server lets any web origin read its answers (`Access-Control-Allow-Origin` is "
    "`*` or echoes a foreign origin).",
    remediation="Allow only the origins of the clients you run, never with credentials and `*`.",
)
LEAKY_ERRORS = check(
    "CND-TR-008",
    "Error responses leak internals",
    Severity.low,
    Category.auth,
    owasp_llm="LLM02",
    owasp_mcp="MCP01",
    cwe="CWE-209",
    analyzer=ANALYZER,
    description="Answers to malformed requests contain stack traces, file paths or library versions.",
    remediation="Answer errors with a JSON-RPC error and a short message; log the details instead.",
)
LEGACY_SSE = check(
    "CND-TR-009",
    "Deprecated HTTP+SSE transport",
    Severity.info,
    Category.compliance,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe=None,
    analyzer=ANALYZER,
    description="The server speaks the HTTP+SSE transport that MCP replaced with streamable HTTP in "
    "2025-03-26.",
    remediation="Serve streamable HTTP.",
)

LEAK_PATTERNS = re.compile(
    r"Traceback \(most recent call last\)|File \"/[^\"]+\.py\", line \d+|"
    r"\bat [\w.<>]+ \((?:/|file:)[^)]+:\d+:\d+\)|"
    r"node_modules/|/usr/(?:src|lib)/|/home/\w+/|/var/www/|[A-Z]:\\\\|\b(?:Error|Exception): .+\n\s+at |"
    r"\bsqlalchemy\.|\bpsycopg|\bSQLSTATE\b|ORA-\d{5}|\bjava\.lang\.",
)
FOREIGN_ORIGIN = "http://evil.example"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost")


def _facts(facts: TransportFacts) -> list[Finding]:
    findings = []
    location = "transport"
    if facts.scheme == "http" and not facts.loopback:
        findings.append(
            PLAIN_HTTP.finding(
                evidence=facts.url, location=f"{location}.url", confidence=Confidence.confirmed
            )
        )
    if facts.tls_version and facts.tls_version in ("TLSv1", "TLSv1.1", "SSLv3"):
        findings.append(
            OLD_TLS.finding(
                evidence=facts.tls_version, location=f"{location}.tls", confidence=Confidence.confirmed
            )
        )
    if facts.cert_error:
        findings.append(
            BAD_CERTIFICATE.finding(
                evidence=facts.cert_error, location=f"{location}.tls", confidence=Confidence.confirmed
            )
        )
    elif facts.cert_expires_days is not None and facts.cert_expires_days < 14:
        findings.append(
            BAD_CERTIFICATE.finding(
                evidence=f"expires in {facts.cert_expires_days:.0f} days",
                location=f"{location}.tls",
                severity=Severity.medium,
                confidence=Confidence.confirmed,
            )
        )
    if facts.unauthenticated_status is not None and facts.unauthenticated_status < 300:
        severity = Severity.info if facts.loopback else UNAUTHENTICATED.severity
        findings.append(
            UNAUTHENTICATED.finding(
                evidence=f"initialize without credentials answered HTTP {facts.unauthenticated_status}",
                location=f"{location}.auth",
                severity=severity,
                confidence=Confidence.confirmed,
                detail="On a loopback address this only matters to other local users and processes."
                if facts.loopback
                else None,
            )
        )
    if facts.unauthenticated_status in (401, 403) and facts.protected_resource_metadata is None:
        findings.append(
            NO_RESOURCE_METADATA.finding(
                evidence=f"HTTP {facts.unauthenticated_status}; "
                f"WWW-Authenticate: {facts.www_authenticate or '(none)'}",
                location=f"{location}.auth",
                confidence=Confidence.confirmed,
            )
        )
    if facts.foreign_origin_status is not None and facts.foreign_origin_status < 300:
        findings.append(
            NO_ORIGIN_CHECK.finding(
                evidence=f"initialize with Origin {FOREIGN_ORIGIN}: HTTP {facts.foreign_origin_status}",
                location=f"{location}.origin",
                confidence=Confidence.confirmed,
            )
        )
    if facts.cors_allow_origin in ("*", FOREIGN_ORIGIN, "null"):
        credentialed = facts.cors_allow_credentials and facts.cors_allow_origin != "*"
        findings.append(
            PERMISSIVE_CORS.finding(
                evidence=f"Access-Control-Allow-Origin: {facts.cors_allow_origin}"
                + ("; Access-Control-Allow-Credentials: true" if facts.cors_allow_credentials else ""),
                location=f"{location}.cors",
                severity=Severity.high if credentialed else Severity.medium,
                confidence=Confidence.confirmed,
            )
        )
    for body in facts.error_bodies:
        match = LEAK_PATTERNS.search(body)
        if match:
            findings.append(
                LEAKY_ERRORS.finding(
                    evidence=body[max(0, match.start() - 80) : match.end() + 120],
                    location=f"{location}.errors",
                    confidence=Confidence.confirmed,
                )
            )
            break
    if facts.transport == "sse":
        findings.append(
            LEGACY_SSE.finding(
                evidence=facts.url, location=f"{location}.url", confidence=Confidence.confirmed
            )
        )
    return findings


def _configured(context: Context) -> list[Finding]:
    findings = []
    for endpoint in context.inventory.remote_endpoints:
        parts = urlsplit(endpoint.url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            findings.append(
                PLAIN_HTTP.finding(
                    evidence=endpoint.url,
                    location=f"{endpoint.location}.url",
                    file=endpoint.file,
                    server=endpoint.server,
                    confidence=Confidence.confirmed,
                )
            )
    return findings


def run(context: Context) -> list[Finding]:
    findings = _configured(context)
    if context.inventory.transport is not None:
        findings.extend(_facts(context.inventory.transport))
    return findings
