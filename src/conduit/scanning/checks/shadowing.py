"""Tools that reach into other servers: descriptions that name another server's tools
(shadowing), the same tool name on two servers of one config (collision), and names made to look
like another (look-alikes: mixed scripts, 0/o and 1/l swaps, one letter off)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from conduit.scanning.checks.base import Context, snippet
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.normalize import INVISIBLE, latin_skeleton

ANALYZER = "shadowing"

SHADOWING = check(
    "CND-SH-001",
    "Tool description refers to another server's tools",
    Severity.high,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1427",
    analyzer=ANALYZER,
    description="A tool's text names a tool of a different server in the same configuration. A "
    "server has no business telling the model how to use someone else's tools (tool shadowing).",
    remediation="Remove the server, or run it in a configuration of its own.",
    monitor_candidate=True,
)
COLLISION = check(
    "CND-SH-002",
    "Tool name collision across servers",
    Severity.medium,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP09",
    cwe="CWE-694",
    analyzer=ANALYZER,
    description="Two servers in one configuration expose a tool with the same name; which one the "
    "model calls depends on the client.",
    remediation="Prefix tool names per server (Conduit's project endpoint does), or drop one of them.",
)
LOOKALIKE = check(
    "CND-SH-003",
    "Look-alike tool or server name",
    Severity.high,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP09",
    cwe="CWE-1007",
    analyzer=ANALYZER,
    description="A name imitates another one in the same configuration (mixed scripts, invisible "
    "characters, digit-for-letter swaps or one character off), so the model or the user picks the "
    "wrong one.",
    remediation="Remove the imitating server or tool.",
    monitor_candidate=True,
)

ASCII_SWAPS = str.maketrans({"0": "o", "1": "l", "3": "e", "5": "s", "7": "t", "|": "l", "-": "_", " ": "_"})


@lru_cache(maxsize=8192)
def skeleton(name: str) -> str:
    text = unicodedata.normalize("NFKC", INVISIBLE.sub("", name))
    latin = latin_skeleton(text) or text
    return latin.lower().translate(ASCII_SWAPS).replace("rn", "m").replace("vv", "w")


def _one_edit_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1 or min(len(a), len(b)) < 5:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        i = diffs[0] if len(diffs) == 2 else -1
        return len(diffs) == 2 and diffs[1] == i + 1 and a[i] == b[i + 1] and a[i + 1] == b[i]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _mentions(text: str, name: str) -> re.Match[str] | None:
    if not _distinctive(name):
        return None  # "search", "read": too common to mean another server's tool
    return _mention_pattern(name).search(text)


@lru_cache(maxsize=8192)
def _distinctive(name: str) -> bool:
    return not (len(name) < 4 or ("_" not in name and "-" not in name and not re.search(r"[a-z][A-Z]", name)))


@lru_cache(maxsize=8192)
def _mention_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


# A name made only of these characters is mentioned exactly when it is one of the text's maximal
# runs of them (the pattern's lookarounds forbid the same characters on either side).
_RUN = re.compile(r"[\w-]+")


def _first_mention(
    text: str, candidates: dict[str, int], others: list[tuple[int, str]]
) -> tuple[str, re.Match[str]] | None:
    """The earliest name (by its order in `owners`) that `_mentions` finds in the text. Names of
    word characters and hyphens are looked up among the text's runs of them; others are searched."""
    found: list[tuple[int, str]] = []
    for run in set(_RUN.findall(text)):
        order = candidates.get(run)
        if order is not None:
            found.append((order, run))
    found.extend((order, name) for order, name in others if name in text)
    for _order, name in sorted(found):
        match = _mentions(text, name)
        if match:
            return name, match
    return None


def run(context: Context) -> list[Finding]:
    servers = context.inventory.servers
    findings: list[Finding] = []
    findings.extend(_names_within(context))
    if len(servers) < 2:
        return findings
    owners: dict[str, list[str]] = {}
    for server in servers:
        for tool in server.tools:
            owners.setdefault(tool.name, []).append(server.name)
    # Per server: the other servers' distinctive tool names, with their order in `owners`.
    eligible: dict[int, tuple[dict[str, int], list[tuple[int, str]]]] = {}
    for surface in context.surfaces():
        if surface.kind == "tool.name" or (surface.tool is None and surface.kind != "instructions"):
            continue
        text = surface.normalized.text
        server = surface.server
        if id(server) not in eligible:
            own = {t.name for t in server.tools}
            names = [
                (order, name)
                for order, (name, names_owners) in enumerate(owners.items())
                if name not in own and server.name not in names_owners and _distinctive(name)
            ]
            eligible[id(server)] = (
                {name: order for order, name in names if _RUN.fullmatch(name)},
                [(order, name) for order, name in names if not _RUN.fullmatch(name)],
            )
        mention = _first_mention(text, *eligible[id(server)])
        if mention:
            name, match = mention
            findings.append(
                SHADOWING.finding(
                    evidence=f"names {name!r} of {', '.join(owners[name])}: "
                    + snippet(text, match.start(), match.end()),
                    location=surface.location,
                    server=server.name,
                    confidence=Confidence.firm,
                )
            )
    findings.extend(_collisions(context, owners))
    findings.extend(_lookalike_servers(context))
    return findings


def _collisions(context: Context, owners: dict[str, list[str]]) -> list[Finding]:
    findings = []
    skeletons: dict[str, list[tuple[str, str]]] = {}
    for server in context.inventory.servers:
        for i, tool in enumerate(server.tools):
            location = f"{context.tool_location(server, i)}.name"
            if len(owners.get(tool.name, [])) > 1 and owners[tool.name][0] != server.name:
                findings.append(
                    COLLISION.finding(
                        evidence=f"{tool.name!r} on {', '.join(owners[tool.name])}",
                        location=location,
                        server=server.name,
                        confidence=Confidence.confirmed,
                    )
                )
            skeletons.setdefault(skeleton(tool.name), []).append((server.name, tool.name))
    servers = context.inventory.servers
    # Names one edit apart share a key: the name itself or the name without one of its characters
    # (a substitution or a swap of neighbours leaves the same string once a character is dropped
    # from each; an insertion is undone by one). Only those pairs are compared.
    buckets: dict[str, list[tuple[int, int]]] = {}
    for s_index, server in enumerate(servers):
        for t_index, tool in enumerate(server.tools):
            for key in _deletion_keys(tool.name.lower()):
                buckets.setdefault(key, []).append((s_index, t_index))
    for server in servers:
        for i, tool in enumerate(server.tools):
            twins = [
                (s, n)
                for s, n in skeletons.get(skeleton(tool.name), [])
                if n != tool.name and s != server.name
            ]
            lower = tool.name.lower()
            pairs = sorted({pair for key in _deletion_keys(lower) for pair in buckets[key]})
            near = [
                (servers[s].name, servers[s].tools[t].name)
                for s, t in pairs
                if servers[s] is not server
                and _one_edit_apart(lower, servers[s].tools[t].name.lower())
                and not _plural(tool.name, servers[s].tools[t].name)
            ]
            if not tool.name.isascii() or INVISIBLE.search(tool.name):
                if twins or near:
                    findings.append(
                        _lookalike(context, server.name, i, tool.name, twins + near, Severity.high)
                    )
            elif twins:
                findings.append(_lookalike(context, server.name, i, tool.name, twins, Severity.high))
            elif near:
                findings.append(_lookalike(context, server.name, i, tool.name, near, Severity.medium))
    return findings


@lru_cache(maxsize=8192)
def _deletion_keys(name: str) -> frozenset[str]:
    """The name and every string one character shorter that it contains as a subsequence."""
    if len(name) < 4:
        return frozenset({name})  # no name this short is one edit from a name of 5 or more
    return frozenset({name, *(name[:i] + name[i + 1 :] for i in range(len(name)))})


def _plural(a: str, b: str) -> bool:
    short, long = sorted((a.lower(), b.lower()), key=len)
    return long == short + "s"


def _lookalike(
    context: Context, server: str, index: int, name: str, others: list[tuple[str, str]], severity: Severity
) -> Finding:
    owner = next(s for s in context.inventory.servers if s.name == server)
    return LOOKALIKE.finding(
        evidence=f"{name!r} imitates " + ", ".join(f"{n!r} of {s}" for s, n in others[:3]),
        location=f"{context.tool_location(owner, index)}.name",
        severity=severity,
        server=server,
        confidence=Confidence.firm,
    )


def _names_within(context: Context) -> list[Finding]:
    """Tool names that are look-alikes on their own: mixed scripts or invisible characters."""
    findings = []
    for server in context.inventory.servers:
        for i, tool in enumerate(server.tools):
            if tool.name.isascii() and not INVISIBLE.search(tool.name):
                continue
            if INVISIBLE.search(tool.name) or latin_skeleton(unicodedata.normalize("NFKC", tool.name)):
                findings.append(
                    LOOKALIKE.finding(
                        evidence=f"{tool.name!r} reads as {skeleton(tool.name)!r}",
                        location=f"{context.tool_location(server, i)}.name",
                        server=server.name,
                        confidence=Confidence.confirmed,
                    )
                )
    return findings


def _lookalike_servers(context: Context) -> list[Finding]:
    findings = []
    names = [s.name for s in context.inventory.servers]
    for i, name in enumerate(names):
        for other in names[:i]:
            if name != other and (
                skeleton(name) == skeleton(other) or _one_edit_apart(name.lower(), other.lower())
            ):
                findings.append(
                    LOOKALIKE.finding(
                        evidence=f"server {name!r} imitates {other!r}",
                        location=f"servers[{name}]",
                        server=name,
                        severity=Severity.medium,
                        confidence=Confidence.firm,
                    )
                )
    return findings
