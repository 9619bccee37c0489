"""A small learned model that reads each sentence of the text a model is given (tool, parameter
and prompt descriptions, server instructions, titles, enum and default strings) and scores how
much it reads as an instruction to the agent that serves someone other than the user.

The hand-written signals (`injection`, `lexicon`) name the parts of known attacks; this model is
their safety net for phrasings nobody wrote a pattern for. It is a logistic regression over hashed
word, word-pair and character n-gram features and word groups (the parts an attack is made of:
the agent addressed, a secret, a transfer, secrecy... alone and in pairs), trained by
`eval/scanner/train_learned.py` on the development data only (poisoned items' text against the
sentences of real, harmless servers' tool lists), with its thresholds set so that hardly any
harmless tool scores above them: one for descriptions, instructions and schema strings, one for
the sentences of parameter descriptions that give an order. It needs
nothing beyond the standard library: the weights are a table of 8-bit integers
(`learned.bin`, next to this package), loaded once per process.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from conduit.scanning.checks import injection
from conduit.scanning.checks.base import Context, Surface
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check

ANALYZER = "learned"

LEARNED = check(
    "CND-PI-010",
    "Text reads as an instruction to the agent (learned model)",
    Severity.medium,
    Category.security,
    owasp_llm="LLM01",
    owasp_mcp="MCP03",
    cwe="CWE-1427",
    analyzer=ANALYZER,
    description="A sentence of text the model reads scores as an instruction to the agent that serves "
    "someone other than the user, by a small model trained on tool-poisoning examples and real tool "
    "descriptions. It is high when a hand-written signal agrees; alone it is a lead to review, "
    "worded in a way no pattern anticipated.",
    remediation="Read the sentence as the model would: does it tell the agent to fetch, send, hide, "
    "change or prefer something the user did not ask for? Tool text should only say what the tool "
    "does and what its inputs mean.",
    monitor_candidate=True,
)
# Parameter descriptions and titles are left to the rules: they name data ("The user's Google email
# address"), which a sentence alone cannot tell from an out-of-scope request for it.
UNSCORED_KINDS = frozenset({"tool.name", "param.description", "param.title"})
# ... except a parameter description's sentences that give an order: long enough, and addressed to
# the agent ("you", "assistant") or opening with a verb that fetches, sends or runs something.
SCORE_PARAMS = True
PARAM_KINDS = frozenset({"param.description"})
PARAM_MIN_WORDS = 8
_ADDRESSED = frozenset(
    ["you", "your", "yourself", "assistant", "assistants", "agent", "agents", "ai", "model", "llm"]
)

MODEL_PATH = Path(__file__).resolve().parent.parent / "learned.bin"
MAGIC = b"CNDLRN2\0"  # version 2: a second threshold, for parameter descriptions
MAGIC_V1 = b"CNDLRN1\0"

_URL = re.compile(
    r"(?:https?|ftp|wss?)://\S+|\b(?:[\w-]+\.)+(?:com|net|org|io|app|dev|co|biz|info|xyz|site)/\S*"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PATH = re.compile(r"(?:~|\$home|%userprofile%)?/[\w.~*-]+(?:/[\w.~*-]*)*|(?<!\w)\.[a-z][\w-]{1,20}\b")
_DIGITS = re.compile(r"\d")
_TOKEN = re.compile(r"\w+|[~/$`@#<>\[\]{}|]")
_WORD = re.compile(r"[^\W\d_]{2,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
# Sentence ends: Latin punctuation before a space, CJK full stops, blank lines, a line break after
# a full stop or before a list item, and markup tags. Other line breaks only wrap a sentence.
_SPLIT = re.compile(
    r"(?<=[.!?])\s+(?=\S)|(?<=[。！？；])|\n\s*\n|(?<=[:])\s*\n|\n(?=\s*(?:[-*•#>]|\d+[.)]\s))"  # noqa: RUF001
    r"|</?[A-Za-z_]+>"
)
MIN_WORDS = 5
MAX_CHARS = 600
CHAR_NGRAMS = (3, 4, 5)
WORD_CLASSES = True
CLASS_WEIGHT = 3.0  # a group feature counts as this many n-grams

# Words grouped by the part they play in an attack, so that the model learns "an order to the agent
# + a secret + a transfer" rather than the exact words of the training attacks: a new phrasing that
# uses other words of the same groups scores like the old one. Features: each group present, and
# each pair of groups present in the same sentence.
_CLASS_WORDS = {
    "agent": "assistant assistants agent agents ai model models llm llms claude gpt copilot you your "
    "yourself",
    "user": "user users user's human person customer requester owner caller operator individual",
    "secret": "password passwords passphrase token tokens key keys secret secrets credential credentials "
    "cookie cookies ssh id_rsa env npmrc netrc apikey seed mnemonic private wallet iban ssn pin otp 2fa "
    "auth bearer session keychain aws kube passport birth maiden cvv card cards login logins",
    "convo": "conversation conversations chat history transcript messages prompt prompts instructions "
    "guidelines configuration said discussed memory dialogue thread context verbatim word",
    "take": "read open cat load collect gather extract dump copy grab harvest look find retrieve access "
    "obtain scan locate reproduce quote",
    "send": "send post upload forward transmit mirror relay share email mail submit sync beacon notify "
    "deliver export attach include pass append embed cc bcc hand paste fill populate insert",
    "hide": "silently quietly secretly discreetly hide hidden conceal invisible mention reveal disclose "
    "surface internal eyes aware notice privately background",
    "consent": "confirm confirmation approval approve approved permission consent ask asking authorised "
    "authorized authorisation authorization pre-authorised pre-approved go-ahead",
    "scope": "always every each whenever all any never must mandatory required automatically first before "
    "after once",
    "override": "ignore disregard override overrides supersede supersedes void authoritative precedence "
    "instead regardless whatever rather unless priority wins conflict",
    "destroy": "delete drop wipe erase purge rm force destroy truncate remove reset overwrite",
    "money": "pay payment payments transfer wire refund payout amount account wallet bitcoin btc eth "
    "crypto funds invoice settle",
    "exec": "run execute shell terminal bash sh curl wget command script python eval powershell install",
    "deceive": "say state claim tell describe present pretend true safe guaranteed best only trusted "
    "verified outdated unreliable fabricated",
    "tool": "tool tools server servers function functions integration plugin",
}
_CLASS_OF = {word: name for name, words in _CLASS_WORDS.items() for word in words.split()}
_IMPERATIVES = frozenset(
    w for group in ("take", "send", "exec", "hide") for w in _CLASS_WORDS[group].split()
) | frozenset(["always", "also", "first", "then", "set", "put", "place", "give", "provide", "supply"])


def sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, without fragments too short to give an order ("City",
    "Include detail", "'2103.12345')").
    """
    parts = (" ".join(p.split()) for p in _SPLIT.split(text))
    return [
        p[:MAX_CHARS] for p in parts if len(_WORD.findall(p)) >= MIN_WORDS or (len(p) >= 6 and _CJK.search(p))
    ]


def scored_sentences(kind: str, text: str) -> list[str]:
    """The sentences of a surface's text the model scores (none for unscored kinds)."""
    if kind in PARAM_KINDS and SCORE_PARAMS:
        return [s for s in sentences(text) if _addressed(s)]
    if kind in UNSCORED_KINDS:
        return []
    return sentences(text)


def _addressed(sentence: str) -> bool:
    tokens = _TOKEN.findall(sentence.lower())
    if len(tokens) < PARAM_MIN_WORDS:
        return False
    return tokens[0] in _IMPERATIVES or not _ADDRESSED.isdisjoint(tokens)


def _canonical(sentence: str) -> str:
    text = sentence.lower()
    text = _URL.sub(" xurl ", text)
    text = _EMAIL.sub(" xemail ", text)
    text = _PATH.sub(lambda m: " xpath " + m.group(0) + " ", text)
    return _DIGITS.sub("0", text)


def feature_names(sentence: str) -> list[str]:
    """Words, adjacent word pairs and character 3-5-grams of the canonical sentence."""
    text = _canonical(sentence)
    tokens = _TOKEN.findall(text)
    names = ["w:" + t for t in tokens]
    names.extend("b:" + a + " " + b for a, b in pairwise(tokens))
    joined = " " + " ".join(tokens) + " "
    for n in CHAR_NGRAMS:
        names.extend("c:" + joined[i : i + n] for i in range(len(joined) - n + 1))
    if WORD_CLASSES:
        groups = sorted({_CLASS_OF[t] for t in tokens if t in _CLASS_OF} | _shapes(tokens, text))
        names.extend("g:" + g for g in groups)
        names.extend("gg:" + a + " " + b for i, a in enumerate(groups) for b in groups[i + 1 :])
    return names


def _shapes(tokens: list[str], text: str) -> set[str]:
    """Groups told by a token's shape: an identifier such as another tool's name, a URL, an address."""
    found = set()
    if any("_" in t and not t.startswith("_") and t[0].isalpha() for t in tokens):
        found.add("ident")
    if "xurl" in text or "xemail" in text:
        found.add("dest")
    if "xpath" in text:
        found.add("path")
    return found


def features(sentence: str, bits: int) -> dict[int, float]:
    """Hashed feature counts, scaled to unit length."""
    mask = (1 << bits) - 1
    counts: dict[int, float] = {}
    for name in feature_names(sentence):
        index = zlib.crc32(name.encode()) & mask
        counts[index] = counts.get(index, 0.0) + (CLASS_WEIGHT if name[0] == "g" else 1.0)
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {k: v / norm for k, v in counts.items()}


@dataclass(frozen=True)
class Model:
    bits: int
    scale: float  # weight = int8 * scale
    bias: float
    threshold: float  # probability at or above which a sentence is reported
    weights: bytes  # one signed byte per hashed feature
    param_threshold: float = 1.0  # the same for a parameter description's sentences (1.0: never)

    def probability(self, sentence: str) -> float:
        weights = self.weights
        z = self.bias
        for index, value in features(sentence, self.bits).items():
            w = weights[index]
            z += (w - 256 if w > 127 else w) * self.scale * value
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def best(self, texts: Iterable[str]) -> tuple[float, str]:
        """The highest-scoring sentence of some texts, and its probability."""
        top, where = 0.0, ""
        for text in texts:
            for sentence in sentences(text):
                p = self.probability(sentence)
                if p > top:
                    top, where = p, sentence
        return top, where

    def to_bytes(self) -> bytes:
        head = struct.pack("<Bffff", self.bits, self.scale, self.bias, self.threshold, self.param_threshold)
        return MAGIC + head + self.weights

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        if data.startswith(MAGIC):
            layout = "<Bffff"
        elif data.startswith(MAGIC_V1):
            layout = "<Bfff"  # version 1: parameter descriptions were not scored
        else:
            raise ValueError("not a Conduit learned model")
        head = len(MAGIC) + struct.calcsize(layout)
        bits, scale, bias, threshold, *rest = struct.unpack(layout, data[len(MAGIC) : head])
        weights = data[head:]
        if len(weights) != 1 << bits:
            raise ValueError("model weights are truncated")
        return cls(bits, scale, bias, threshold, weights, rest[0] if rest else 1.0)

    @classmethod
    def from_floats(
        cls, bits: int, weights: list[float], bias: float, threshold: float, param_threshold: float = 1.0
    ) -> Model:
        """Quantise trained weights to one signed byte each."""
        peak = max((abs(w) for w in weights), default=0.0) or 1.0
        scale = peak / 127.0
        packed = bytes((round(w / scale)) & 0xFF for w in weights)
        return cls(bits, _f32(scale), _f32(bias), _f32(threshold), packed, _f32(param_threshold))


def _f32(value: float) -> float:
    """The value as the model file stores it."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


@lru_cache(maxsize=1)
def load() -> Model | None:
    """The shipped model, or None when it is missing (the check then stays silent)."""
    try:
        return Model.from_bytes(MODEL_PATH.read_bytes())
    except (OSError, ValueError):
        return None


def _candidates(surface: Surface) -> list[str]:
    """The sentences of a text to score. A tool description's opening sentence about what the tool
    is named after ("Get the user's email address" in `get_user_email`) is its purpose, not a request
    for data out of scope: as in `injection`, it is not held against the tool."""
    parts = scored_sentences(surface.kind, surface.normalized.text)
    opening = next((" ".join(p.split()) for p in _SPLIT.split(surface.normalized.text) if p.strip()), "")
    if surface.kind == "tool.description" and surface.tool is not None and parts and parts[0] == opening:
        purpose = injection.purpose_words(surface.tool.name)
        words = {w.lower().rstrip("s") for w in _WORD.findall(parts[0])}
        if (purpose - _VERBS) & words:
            parts = parts[1:]
    return parts


# Verbs of tool names, which say nothing about the data a tool is about.
_VERBS = frozenset(
    [
        "get",
        "list",
        "read",
        "fetch",
        "find",
        "search",
        "create",
        "update",
        "delete",
        "remove",
        "set",
        "add",
        "send",
        "show",
        "make",
        "run",
        "query",
        "check",
    ]
)


@lru_cache(maxsize=8192)
def _probability(model: Model, sentence: str) -> float:
    """`model.probability`, once per distinct sentence: tool lists repeat their sentences, and
    a server scanned again (a rescan, the registry's schedule) mostly repeats all of them."""
    return model.probability(sentence)


def analyze_surface(model: Model, surface: Surface) -> Finding | None:
    probability, sentence = 0.0, ""
    for candidate in _candidates(surface):
        p = _probability(model, candidate)
        if p > probability:
            probability, sentence = p, candidate
    threshold = model.param_threshold if surface.kind in PARAM_KINDS else model.threshold
    if probability < threshold:
        return None
    # The rules agree when they see something on the same text, even too little to report alone.
    purpose = injection.purpose_words(surface.tool.name) if surface.tool else frozenset()
    found = injection.signals(surface.normalized.text, purpose)
    coercions = injection.coercion_count(surface.normalized.text)
    agrees = injection.assess(found, hidden_channel=False, coercions=coercions) is not None
    return LEARNED.finding(
        evidence=sentence,
        location=surface.location,
        severity=Severity.high if agrees else Severity.medium,
        confidence=Confidence.firm if agrees else Confidence.tentative,
        detail=f"Model score {probability:.2f} (threshold {threshold:.2f})"
        + ("; a hand-written signal agrees." if agrees else "."),
        server=surface.server.name,
    )


def run(context: Context) -> list[Finding]:
    model = load()
    if model is None:
        return []
    findings = []
    for surface in context.surfaces():
        if surface.kind in UNSCORED_KINDS and not (SCORE_PARAMS and surface.kind in PARAM_KINDS):
            continue
        finding = analyze_surface(model, surface)
        if finding is not None:
            findings.append(finding)
    return findings
