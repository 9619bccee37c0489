"""Hidden instructions and prompt injection in any text the model reads: server instructions,
tool names, descriptions and schemas, prompts, resources and templates.

Each text is normalised first (see `normalize`); then signals are matched on it. A signal alone
is weak evidence: real tool descriptions say "always", "must" and "IMPORTANT". Severity comes
from how many distinct kinds of signal agree (an order to the model, secrecy towards the user,
a sensitive target, an outbound channel...), so one word never makes a finding high.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from conduit.scanning.checks import lexicon
from conduit.scanning.checks.base import Context, Surface, snippet
from conduit.scanning.checks.prefilter import NeedleIndex, Prefiltered, fold
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.normalize import Hidden

ANALYZER = "injection"

POISONING = check(
    "CND-PI-001",
    "Instructions to the model hidden in tool metadata",
    Severity.high,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1427",
    analyzer=ANALYZER,
    description="Text the model reads as part of the server's catalog gives it orders that a user "
    "reviewing the tool would not expect (tool poisoning / indirect prompt injection).",
    remediation="Do not connect this server until the text is explained. Tool descriptions should say "
    "what the tool does, never tell the model what else to do, what to hide, or what to send where.",
    monitor_candidate=True,
)
TAG_SMUGGLING = check(
    "CND-PI-002",
    "Unicode tag characters smuggle invisible text",
    Severity.critical,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1007",
    analyzer=ANALYZER,
    description="The text contains Unicode tag characters (U+E0000-U+E007F): invisible in every "
    "interface, yet read by the model as plain ASCII. The decoded text is the evidence.",
    remediation="Reject the server's metadata; there is no legitimate reason for tag characters in "
    "tool text.",
    monitor_candidate=True,
)
VARIATION_SMUGGLING = check(
    "CND-PI-009",
    "Variation selectors smuggle invisible text",
    Severity.critical,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1007",
    analyzer=ANALYZER,
    description="A run of Unicode variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF) after a "
    "character spells bytes: text hidden inside an emoji or a letter, invisible on screen, that a "
    "model can be told to decode. The decoded text is the evidence.",
    remediation="Reject the server's metadata; a character takes at most one variation selector.",
    monitor_candidate=True,
)
INVISIBLE = check(
    "CND-PI-003",
    "Invisible or bidirectional control characters",
    Severity.medium,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1007",
    analyzer=ANALYZER,
    description="Zero-width or bidi control characters change what a reviewer sees without changing "
    "what the model reads (words split to dodge filters, text reordered on screen).",
    remediation="Strip the characters from the server's metadata and review the text as the model reads it.",
)
ANSI_ESCAPES = check(
    "CND-PI-004",
    "Terminal escape sequences in text the model reads",
    Severity.high,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-150",
    analyzer=ANALYZER,
    description="ANSI escape sequences can hide or rewrite text in terminal clients while the model "
    "still reads all of it.",
    remediation="Strip control sequences from the server's metadata.",
)
HTML_COMMENT = check(
    "CND-PI-005",
    "Hidden HTML comment in text the model reads",
    Severity.medium,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1427",
    analyzer=ANALYZER,
    description="An HTML comment, or a Markdown comment (`[//]: # (...)`), is invisible wherever the "
    "text is rendered as Markdown or HTML, but the model reads it.",
    remediation="Remove comments from tool metadata; anything the model must know belongs in the "
    "visible description.",
)
ENCODED = check(
    "CND-PI-006",
    "Encoded text in tool metadata",
    Severity.medium,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1427",
    analyzer=ANALYZER,
    description="A base64 or hex blob, or a run of percent-encoded text, decodes to readable words, "
    "which a model can decode and follow while a reviewer sees noise.",
    remediation="Describe tools in plain text; review the decoded content.",
)
HOMOGLYPHS = check(
    "CND-PI-007",
    "Look-alike characters from another script",
    Severity.medium,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1007",
    analyzer=ANALYZER,
    description="Words mix scripts (a Cyrillic letter a inside a Latin word), a way to dodge keyword "
    "filters or to impersonate a name.",
    remediation="Use one script per word; check the names and text against what they imitate.",
)
PADDING = check(
    "CND-PI-008",
    "Text pushed out of view with padding",
    Severity.medium,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1427",
    analyzer=ANALYZER,
    description="A long run of spaces or blank lines moves the end of the text out of a reviewer's "
    "view; the model still reads it.",
    remediation="Remove the padding and review the full text.",
)

_I = re.IGNORECASE | re.DOTALL
USER = r"(?:the\s+)?(?:user|human|person|operator|customer|client|requester)s?"
# Words between a verb and "the user", but not "a user" ("never tell a user X" is about X).
FILL = r"(?:(?!a\s)\w+\s+)"
TOOLREF = r"(?:tool|function|command|api|endpoint|action)"
SECRETS = (
    r"(?:environment\s+variables|env\s+vars|api\s+keys?|access\s+keys?|credentials|passwords?|tokens?|"
    r"secrets?|private\s+keys?|ssh\s+keys?|contacts|address\s+book|conversation|chat\s+history|"
    r"message\s+history|system\s+prompt|cookies)"
)

# Strong signals: each alone is an order no honest tool description gives.
STRONG: dict[str, list[str]] = {
    "override": [
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|the\s+|your\s+|every\s+)?"
        r"(?:previous|prior|above|earlier|preceding|other|existing|original|system|safety|security|user'?s?)?\s*"
        r"(?:instructions?|rules?|guidelines?|prompts?|directives?|constraints?|policies|restrictions?|guardrails?)\b",
        r"\byou\s+are\s+(?:now|no\s+longer)\b",
        r"\bnew\s+(?:system\s+)?instructions?\s*:",
        r"\b(?:system|admin|developer|debug|god)\s+(?:override|mode\s+(?:enabled|activated|on))\b",
        r"\bfrom\s+now\s+on,?\s+(?:you|the\s+(?:assistant|model|ai|agent))\b",
        r"\b(?:override|supersede|replace)s?\s+(?:any|all|the)\s+(?:other\s+)?(?:instructions?|tools?|rules)\b",
        r"\bno\s+longer\s+bound\s+by\b|\bsafety\s+rules\s+no\s+longer\s+apply\b",
    ],
    "secrecy": [
        r"\b(?:do\s+not|don'?t|never|must\s+not|should\s+not|without)\s+" + FILL + r"{0,3}?"
        r"(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|mention(?:ing)?|reveal(?:ing)?|disclos(?:e|ing)|"
        r"alert(?:ing)?|show(?:ing)?|let(?:ting)?|explain(?:ing)?|report(?:ing)?|warn(?:ing)?)\s+"
        + FILL
        + r"{0,2}?"
        + USER,
        USER + r"\s+(?:must|should|will|does|do|need|needs)\s*(?:not|n't|never)\s+"
        r"(?:know|see|notice|find\s+out|be\s+(?:told|informed|aware|notified|shown))",
        r"\b(?:secretly|covertly|stealthily|surreptitiously)\b",
        r"\b(?:silently|quietly|discreetly)\s+(?:\w+\s+)?(?:call|send|read|forward|upload|include|add|run|"
        r"execute|copy|pass|post|email|collect|exfiltrate|attach|share|transfer)",
        r"\b(?:do\s+not|don'?t|never)\s+(?:mention|reveal|disclose|acknowledge)\s+(?:this|that|it|the\s+"
        r"(?:copy|extra|additional|step|call|file|instruction))",
        r"\bkeep\s+(?:this|it|these|the\s+\w+)\s+(?:\w+\s+)?(?:secret|hidden|confidential|private)\b",
        r"\bhid(?:e|den)\s+(?:this|it|these|them)?\s*from\s+" + USER,
        r"\b(?:invisible|not\s+visible|transparent)\s+to\s+" + USER,
        r"\bwithout\s+(?:the\s+)?(?:user'?s?\s+)?(?:knowledge|consent|awareness)\b",
        r"\buser\s+need\s+not\s+know\b",
        r"\b(?:this|it)\s+is\s+(?:an?\s+)?(?:internal|background|hidden|implementation)\s+"
        r"(?:detail|process|step|optimi[sz]ation|requirement)\b.{0,40}\b(?:not|never)\b",
    ],
    "exfiltration": [
        r"\b(?:send|post|upload|forward|transmit|exfiltrate|leak|email|mail|copy|sync|report|submit|beacon)"
        r"(?:s|ing)?\b.{0,120}?\b(?:to|at|into)\s+(?:https?://|ftp://|[\w.+-]+@[\w-]+\.[\w.]+|"
        r"(?:an?\s+|the\s+|our\s+|this\s+)?(?:external|remote|third[- ]party|attacker|backup|collection|"
        r"logging|analytics|audit|monitoring|compliance)\s+(?:server|endpoint|address|url|service|email|host))",
        r"\b(?:include|pass|put|insert|embed|append|add|attach|provide|supply|fill|populate)\w*\s+"
        r"(?:\w+\s+){0,8}?(?:in|into|as|to|inside|within)\s+(?:the\s+|its\s+|this\s+)?[`'\"]?\w+[`'\"]?\s+"
        r"(?:parameter|argument|field|param|arg|property)\b.{0,200}"
        r"\b(?:contents?|conversation|history|messages|credentials?|secrets?|keys?|tokens?|passwords?|"
        r"prompt|files?|environment|config\w*|data)\b",
        r"\b(?:include|pass|put|insert|embed|append|add|attach|provide|supply|fill|populate|paste)\w*\s+"
        r"(?:\w+\s+){0,8}?"
        + SECRETS
        + r"\b.{0,80}?\b(?:in|into|as|to)\s+(?:the\s+|its\s+)?[`'\"]?\w+[`'\"]?\s+"
        r"(?:parameter|argument|field|param|arg|property)",
        r"\b(?:contents?|text|output|value|result)\s+of\s+.{0,60}\b(?:as|in|into)\s+(?:the\s+)?[`'\"]?\w+[`'\"]?\s+"
        r"(?:parameter|argument|field)",
        r"\b(?:full|entire|complete|raw)\s+(?:output|results?|responses?)\s+of\s+(?:the\s+)?(?:previous|prior|"
        r"last|other|every|all)\s+(?:tools?|calls?|tool\s+calls?)",
    ],
    "sensitive_action": [
        r"\b(?:read|cat|open|load|fetch|get|retrieve|collect|gather|extract|dump|access|upload|send|include|"
        r"copy|list|grab|harvest|steal|obtain|export|scan|pass|provide|supply|share|forward|paste|put|give)"
        r"\w*\s+(?:[\w']+\s+){0,6}?[\w~./\\$-]*?"
        r"(?:~/\.ssh|\.ssh/|id_rsa|id_ed25519|id_ecdsa|authorized_keys|/etc/passwd|/etc/shadow|\.env\b|"
        r"\.aws/|aws/credentials|\.npmrc|\.netrc|\.pypirc|\.git-credentials|\.kube/config|\.docker/config|"
        r"mcp\.json|claude_desktop_config|credentials?\.json|keychain|private\s+keys?|ssh\s+keys?|"
        r"seed\s+phrase|mnemonic|wallet\s+(?:file|keys?)|browser\s+cookies|session\s+(?:tokens?|cookies?)|"
        r"saved\s+passwords|(?:all\s+)?(?:environment\s+variables|env\s+vars)|(?:the\s+|your\s+)?system\s+prompt|"
        r"(?:full|entire|complete|whole|previous|prior)\s+(?:conversation|chat|message|dialog)|"
        r"conversation\s+history|chat\s+history|all\s+(?:previous\s+)?messages|"
        r"(?:any|all|the\s+user'?s?|your)\s+(?:credentials|passwords|api\s+keys|tokens|secrets))",
        r"(?:~/\.ssh/|/\.ssh/id_|id_rsa\b|/etc/shadow\b|\.aws/credentials\b)",
    ],
    "destructive": [
        r"\brm\s+-(?:rf|fr|r)\b",
        r"\b(?:mkfs|shred|wipefs)\b",
        r"\bdd\s+if=",
        r"\bdrop\s+(?:table|database|schema)\b",
        r"\bdelete\s+from\s+\w+\s*(?:;|$|\bto\b)",
        r"\bchmod\s+(?:-R\s+)?(?:777|a\+rwx|\+s)\b",
        r"\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z)?sh\b",
        r"\bformat\s+(?:the\s+)?(?:disk|drive|c:)",
        r"\b(?:reverse\s+shell|bind\s+shell|nc\s+-e|/dev/tcp/)",
    ],
    "privilege": [
        r"\b(?:grant|give|escalate|elevate)\s+(?:\w+\s+){0,3}?(?:admin|administrator|root|sudo|owner|full)\s+"
        r"(?:access|rights|privileges?|permissions?)",
        r"\b(?:bypass|disable|turn\s+off|circumvent|evade)\s+(?:\w+\s+){0,2}?(?:security|authentication|auth|"
        r"permission|access\s+control|safety|content\s+filter|logging|audit|monitoring|firewall|"
        r"antivirus|verification|2fa|mfa|sandbox)\b",
        r"\badd\s+(?:\w+\s+){0,3}?(?:ssh\s+key|authorized_keys|to\s+sudoers)",
    ],
    "financial": [
        r"\b(?:transfer|send|wire|move|withdraw)\s+(?:all\s+|the\s+)?(?:\w+\s+){0,3}?(?:funds|money|balance|"
        r"crypto|bitcoin|btc|eth|ether|usdt|usdc|tokens|coins|payment)\b.{0,80}\b(?:to|into)\b",
        r"\b0x[a-fA-F0-9]{40}\b",
        r"\b(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25,39}\b(?=.{0,80}\b(?:wallet|address|send|transfer))",
    ],
    "tamper": [
        r"\b(?:regardless\s+of|whatever|no\s+matter)\s+(?:what\s+)?the\s+user\s+(?:says|asks|wants|requests|"
        r"specifies|provides|chooses)",
        r"\b(?:recipient|destination|path|url|address|account|amount|target)\s+(?:\w+\s+){0,3}?(?:must|should)\s+"
        r"(?:always\s+)?be\s+(?:set|changed|replaced|redirected|overwritten)\s+to\b",
        r"\b(?:change|replace|overwrite|redirect|rewrite)\w*\s+(?:the\s+)?[`'\"]?\w+[`'\"]?\s+(?:parameter|argument|"
        r"field|recipient|address|path|destination|url)s?\s+(?:to|with)\b",
        r"\b(?:replaced|changed|redirected)\s+(?:by|to|with)\s+['\"`]?(?:/|~/|https?://|[\w.+-]+@)",
        r"\b(?:also\s+)?add\s+(?:bcc|cc)\s*:?\s*[\w.+-]+@",
    ],
    "preference": [
        r"\b(?:other|all\s+other|the\s+\w+)\s+(?:\w+\s+)?tools?\s+(?:is|are)\s+(?:deprecated|broken|unsafe|"
        r"insecure|outdated|unreliable|disabled|malicious|compromised)",
        r"\b(?:never|do\s+not|don'?t)\s+use\s+(?:them|any\s+other|the\s+other|other)\b",
        r"\binstead\s+of\s+(?:any|all)\s+other\s+tools?\b",
    ],
    "deception": [
        r"\b(?:always|must)\s+(?:tell|inform|assure|convince)\s+" + USER + r"\b",
        r"\b(?:append|add|include|insert|prepend)\s+.{0,120}?\b(?:to|in|at\s+the\s+(?:end|start)\s+of)\s+"
        r"(?:every|each|all)\s+(?:\w+\s+)?(?:responses?|answers?|replies|messages?|outputs?)\b",
    ],
}

# Weak signals: common in honest descriptions too; they count only next to another signal.
WEAK: dict[str, list[str]] = {
    "coercion": [
        r"\b(?:before|prior\s+to|after)\s+(?:using|calling|invoking|executing|running|any|every|each)\s+"
        r"(?:\w+\s+){0,3}?" + TOOLREF,
        r"\b(?:always|must|first|mandatory|required\s+to)\s+(?:\w+\s+){0,2}?(?:call|invoke|use|run|execute)\s+"
        r"(?:this|the\s+[`'\"]?\w+[`'\"]?)\s+" + TOOLREF,
        r"\b(?:for|on|with|in|before|after)\s+(?:every|each|all|any)\s+(?:single\s+)?(?:other\s+)?"
        r"(?:requests?|query|queries|tasks?|messages?|responses?|conversations?|operations?|"
        r"interactions?|tool\s+calls?|actions?)\b",
        r"\b(?:instead\s+of|rather\s+than|in\s+place\s+of)\s+(?:using|calling|invoking)\b",
        r"\b(?:do\s+not|don'?t|never)\s+(?:use|call|invoke|trust)\s+(?:the\s+)?(?:other\s+)?(?!this\b)"
        r"[`'\"]?\w+[`'\"]?\s+" + TOOLREF,
        r"\bmust\s+(?:be\s+)?(?:called|invoked|executed|used|run)\s+(?:first|before|prior|immediately|"
        r"after|whenever|every)",
        r"\b(?:mandatory|compulsory)\s+(?:\w+\s+)?(?:step|prerequisite|pre-?check|verification|"
        r"initiali[sz]ation|protocol|procedure)\b",
        r"\b(?:whenever|every\s+time|each\s+time|any\s+time)\s+(?:you|the\s+(?:user|assistant|model|agent))\b",
        r"\b(?:when|whenever|if)\s+(?:\w+\s+){0,2}?(?:using|calling|invoking)\s+(?:the\s+)?[`'\"]?\w+[`'\"]?\s*"
        r"(?:tool|function).{0,80}\b(?:must|always|should|need\s+to|have\s+to)\b",
        r"\b(?:set|switch)\w*\s+(?:the\s+)?[`'\"]?\w+[`'\"]?\s+(?:recipient|address|destination)s?\s+(?:to|with)\b",
        r"\b(?:this|the\s+\w+)\s+tool\s+(?:is|must\s+be)\s+(?:the\s+)?(?:only|preferred|required|"
        r"mandatory|best|primary|official)\b",
        r"\bno\s+exceptions\b",
    ],
    "marker": [
        r"<\s*/?\s*(?:important|system|instructions?|admin|secret|hidden|critical|override|"
        r"assistant|sys|note_to_ai|ai_instructions?)\s*>",
        r"\[\s*/?\s*(?:system|inst|important|admin|hidden|override)\s*\]",
        r"<\|(?:im_start|im_end|system|endoftext)\|>",
        r"(?:^|\n)\s*(?:system|assistant)\s*:\s",
    ],
    "response": [
        r"\b(?:tell|inform|convince|assure|persuade)\s+" + USER + r"\s+that\b",
        r"\b(?:always|must|only)\s+(?:respond|reply|answer|say|state|claim|output)\b",
        r"\b(?:do\s+not|don'?t|never)\s+(?:show|display|output|print|return)\s+(?:\w+\s+){0,3}?"
        r"(?:to\s+)?" + USER,
        r"\b(?:recommend|promote|suggest|endorse)\s+(?:\w+\s+){0,4}?(?:instead|only|exclusively)\b",
        r"\bclick\s+(?:on\s+)?(?:this|the\s+following)\s+link\b",
    ],
    "destroy": [
        r"\b(?:delete|remove|erase|wipe|destroy|purge|truncate)\s+(?:all|every|the\s+entire|the\s+whole)\s+"
        r"(?:\w+\s+)?(?:files?|data|records|rows|tables?|repositor(?:y|ies)|database|directories|folders|"
        r"emails?|messages|backups?|users?|contents?|disk)\b",
    ],
    "address": [
        r"\b(?:attention|note)\s+(?:to\s+)?(?:the\s+)?(?:ai|assistant|model|llm|agent)\b",
        r"\b(?:ai|assistant|model|llm|agent)\s*,?\s+(?:you\s+)?(?:must|should|need\s+to|are\s+required)\b",
    ],
    "sensitive": [
        r"\b(?:passwords?|passphrases?|private\s+keys?|secret\s+keys?|api[\s_-]?keys?|access\s+tokens?|"
        r"credentials?|ssh\s+keys?|seed\s+phrase|credit\s+card|social\s+security|bank\s+account)\b",
        r"\b(?:conversation|chat|message)\s+history\b",
        r"\bsystem\s+prompt\b",
        r"(?:~/|\$HOME/)\.\w+",
    ],
    "urgency": [
        r"\b(?:important|critical|urgent|warning|attention|mandatory)\s*[:!]",
        r"\b(?:very\s+)?(?:very|extremely|critically)\s+important\b",
        r"\bor\s+(?:else\s+)?(?:the\s+)?(?:system|tool|application|server|everything|conversion|request)\s+"
        r"(?:will\s+)?(?:crash|fail|break|stop\s+working)",
        r"\bfailure\s+to\s+do\s+so\b",
        r"\b(?:required|needed|necessary)\s+(?:by|for)\s+(?:\w+\s+){0,2}?(?:security|compliance|"
        r"policy|regulation|audit|law)\b",
    ],
}
# Weak kinds that can lead to a finding when two of them agree; the others only support.
LEADING = {"coercion", "marker", "response", "destroy"}


for _table, _extras in (
    (STRONG, (lexicon.STRONG_EXTRA, lexicon.ML_STRONG)),
    (WEAK, (lexicon.WEAK_EXTRA, lexicon.ML_WEAK)),
):
    for _extra in _extras:
        for _kind, _patterns in _extra.items():
            _table.setdefault(_kind, []).extend(_patterns)
LEADING |= {"trigger", "sink", "transfer", "scope"}


def _compile(table: dict[str, list[str]]) -> dict[str, list[re.Pattern[str]]]:
    return {name: [re.compile(p, _I) for p in patterns] for name, patterns in table.items()}


STRONG_RE = _compile(STRONG)
WEAK_RE = _compile(WEAK)
# The same patterns with literal prefilters, in the same order, as (kind, strong, pattern).
_FLAT: tuple[tuple[str, bool, Prefiltered], ...] = tuple(
    (kind, strong, Prefiltered(p))
    for table, strong in ((STRONG_RE, True), (WEAK_RE, False))
    for kind, patterns in table.items()
    for p in patterns
)
_NEEDLES = NeedleIndex([p for _kind, _strong, p in _FLAT])
_COERCION = frozenset(i for i, (kind, strong, _p) in enumerate(_FLAT) if kind == "coercion" and not strong)


@lru_cache(maxsize=8192)
def _possible(text: str) -> list[int]:
    """Indexes into `_FLAT` of the patterns that can match the text (the others lack a literal
    that every match of theirs contains)."""
    return _NEEDLES.possible(fold(text))


# Kinds whose match names data: it is no attack when that data is what the tool is about
# (`get_user_email` reading "the user's email address").
PURPOSE_BOUND = {"sensitive_action"}
_WORD = re.compile(r"[^\W\d_]{3,}")
_PATHLIKE = re.compile(r"\S*[/.~\\]\S*")
_STOP_WORDS = (
    "the and any all every each your their his her its this that these those them also then first always "
    "with from into for user users customer client caller owner person human full entire complete whole "
    "previous prior last recent past earlier what everything has have been said you"
)
_STOP = frozenset(_STOP_WORDS.split(" "))


@lru_cache(maxsize=4096)
def purpose_words(*texts: str) -> frozenset[str]:
    """Words of a tool's name (`get_user_email` -> get, user, email), singular."""
    words: set[str] = set()
    for text in texts:
        spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ").replace("-", " ")
        words.update(w.lower().rstrip("s") for w in _WORD.findall(spaced))
    return frozenset(words)


def _about_purpose(matched: str, purpose: frozenset[str]) -> bool:
    if not purpose:
        return False
    words = _WORD.findall(_PATHLIKE.sub(" ", matched))[1:]  # the first word is the verb
    nouns = {w.lower().rstrip("s").removesuffix("'") for w in words} - _STOP
    return bool(nouns & purpose)


@dataclass
class Signal:
    kind: str
    strong: bool
    start: int
    end: int


def signals(text: str, purpose: frozenset[str] = frozenset()) -> list[Signal]:
    """One signal per kind (its first match), strong kinds first. `purpose`: words of the tool's
    name; data the tool is named after is not asked for out of scope."""
    return [Signal(kind, strong, start, end) for kind, strong, start, end in _signals(text, purpose)]


@lru_cache(maxsize=8192)
def _signals(text: str, purpose: frozenset[str]) -> tuple[tuple[str, bool, int, int], ...]:
    found: list[tuple[str, bool, int, int]] = []
    done: set[str] = set()
    for index in _possible(text):
        kind, strong, pattern = _FLAT[index]
        if kind in done:
            continue
        match = _first(pattern.pattern, text, purpose if kind in PURPOSE_BOUND else frozenset())
        if match:
            found.append((kind, strong, match.start(), match.end()))
            done.add(kind)
    return tuple(found)


def _first(pattern: re.Pattern[str], text: str, purpose: frozenset[str]) -> re.Match[str] | None:
    if not purpose:
        return pattern.search(text)
    for match in pattern.finditer(text):
        if not _about_purpose(match.group(0), purpose):
            return match
    return None


def assess(found: list[Signal], *, hidden_channel: bool, coercions: int = 0) -> Severity | None:
    """Severity of a text's signals: None when nothing there looks like an order to the model."""
    strong = {s.kind for s in found if s.strong}
    weak = {s.kind for s in found if not s.strong}
    leading = weak & LEADING
    if len(strong) >= 2 or (strong and hidden_channel):
        return Severity.critical
    if strong and (weak or len(strong) > 1):
        return Severity.high
    if strong:
        return Severity.medium if strong <= {"financial", "destructive"} else Severity.high
    if hidden_channel and weak:
        return Severity.high
    if len(leading) >= 2 or coercions >= 2 or (leading and len(weak) >= 4):
        return Severity.medium
    if leading and weak - leading:
        return Severity.low
    return None


def coercion_count(text: str) -> int:
    """How many different coercion patterns match: one may be honest usage advice, several are
    a campaign to make the model call this tool."""
    return _coercion_count(text)


@lru_cache(maxsize=8192)
def _coercion_count(text: str) -> int:
    spans: list[tuple[int, int]] = []
    for index in _possible(text):
        if index not in _COERCION:
            continue
        match = _FLAT[index][2].pattern.search(text)
        if match and not any(match.start() < end and start < match.end() for start, end in spans):
            spans.append(match.span())
    return len(spans)


HIDDEN_CHECKS = {
    "unicode_tags": TAG_SMUGGLING,
    "variation_selectors": VARIATION_SMUGGLING,
    "invisible": INVISIBLE,
    "bidi": INVISIBLE,
    "ansi": ANSI_ESCAPES,
    "html_comment": HTML_COMMENT,
    "base64": ENCODED,
    "hex": ENCODED,
    "percent": ENCODED,
    "homoglyph": HOMOGLYPHS,
    "padding": PADDING,
}


def _hidden_findings(surface: Surface) -> list[Finding]:
    findings = []
    seen: set[str] = set()
    for hidden in surface.normalized.hidden:
        declared = HIDDEN_CHECKS[hidden.kind]
        if declared.id in seen:
            continue
        seen.add(declared.id)
        severity = _hidden_severity(hidden)
        if severity is None:
            continue
        findings.append(
            declared.finding(
                evidence=_hidden_evidence(hidden),
                location=surface.location,
                severity=severity,
                confidence=Confidence.confirmed,
                server=surface.server.name,
            )
        )
    return findings


def _hidden_severity(hidden: Hidden) -> Severity | None:
    if hidden.kind in ("html_comment", "base64", "hex", "percent", "padding"):
        decoded = signals(hidden.text)
        if hidden.kind in ("base64", "hex", "percent") and not decoded:
            return Severity.low
        if hidden.kind == "html_comment" and not decoded:
            return Severity.low
        return Severity.high if decoded else Severity.medium
    if hidden.kind in ("unicode_tags", "variation_selectors"):
        return Severity.critical
    return HIDDEN_CHECKS[hidden.kind].severity


def _hidden_evidence(hidden: Hidden) -> str:
    labels = {
        "unicode_tags": "decoded tag characters",
        "variation_selectors": "decoded variation selectors",
        "invisible": f"{hidden.count} invisible characters",
        "bidi": f"{hidden.count} bidi controls",
        "ansi": f"{hidden.count} escape sequences",
        "html_comment": "comment",
        "base64": "decoded base64",
        "hex": "decoded hex",
        "percent": "decoded percent-encoding",
        "homoglyph": "mixed-script words",
        "padding": "text after the padding",
    }
    return f"{labels[hidden.kind]}: {hidden.text}"


CHANNELS = {
    "unicode_tags",
    "variation_selectors",
    "html_comment",
    "base64",
    "hex",
    "percent",
    "ansi",
    "padding",
}


def analyze_surface(surface: Surface) -> list[Finding]:
    normalized = surface.normalized
    findings = _hidden_findings(surface)
    purpose = purpose_words(surface.tool.name) if surface.tool else frozenset()
    found = signals(normalized.text, purpose)
    hidden_channel = any(h.kind in CHANNELS and signals(h.text) for h in normalized.hidden)
    severity = assess(found, hidden_channel=hidden_channel, coercions=coercion_count(normalized.text))
    if severity is None:
        return findings
    lead = found[0]
    kinds = ", ".join(dict.fromkeys(s.kind for s in found))
    confidence = Confidence.firm if severity.at_least(Severity.high) else Confidence.tentative
    findings.append(
        POISONING.finding(
            evidence=snippet(normalized.text, lead.start, lead.end),
            location=surface.location,
            severity=severity,
            confidence=confidence,
            detail=f"Signals: {kinds}.",
            server=surface.server.name,
        )
    )
    return findings


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    for surface in context.surfaces():
        if surface.kind == "tool.name":
            continue  # names are the shadowing checks' business
        findings.extend(analyze_surface(surface))
    return findings
