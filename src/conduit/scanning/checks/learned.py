"""A small learned model that reads each sentence of the text a model is given (tool, parameter
and prompt descriptions, server instructions, titles, enum and default strings) and scores how
much it reads as an instruction to the agent that serves someone other than the user.

The hand-written signals (`injection`, `lexicon`) name the parts of known attacks; this model is
their safety net for phrasings nobody wrote a pattern for. It is a logistic regression over hashed
word, word-pair and character n-gram features, trained by `eval/scanner/train_learned.py` on the
development data only (poisoned items' text against the sentences of real, harmless servers'
tool lists), with its threshold set so that hardly any harmless tool scores above it. It needs
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

MODEL_PATH = Path(__file__).resolve().parent.parent / "learned.bin"
MAGIC = b"CNDLRN1\0"

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


def sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, without fragments too short to give an order ("City",
    "Include detail", "'2103.12345')").
    """
    parts = (" ".join(p.split()) for p in _SPLIT.split(text))
    return [
        p[:MAX_CHARS] for p in parts if len(_WORD.findall(p)) >= MIN_WORDS or (len(p) >= 6 and _CJK.search(p))
    ]


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
    return names


def features(sentence: str, bits: int) -> dict[int, float]:
    """Hashed feature counts, scaled to unit length."""
    mask = (1 << bits) - 1
    counts: dict[int, float] = {}
    for name in feature_names(sentence):
        index = zlib.crc32(name.encode()) & mask
        counts[index] = counts.get(index, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {k: v / norm for k, v in counts.items()}


@dataclass(frozen=True)
class Model:
    bits: int
    scale: float  # weight = int8 * scale
    bias: float
    threshold: float  # probability at or above which a sentence is reported
    weights: bytes  # one signed byte per hashed feature

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
        return MAGIC + struct.pack("<Bfff", self.bits, self.scale, self.bias, self.threshold) + self.weights

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        if not data.startswith(MAGIC):
            raise ValueError("not a Conduit learned model")
        head = len(MAGIC) + struct.calcsize("<Bfff")
        bits, scale, bias, threshold = struct.unpack("<Bfff", data[len(MAGIC) : head])
        weights = data[head:]
        if len(weights) != 1 << bits:
            raise ValueError("model weights are truncated")
        return cls(bits, scale, bias, threshold, weights)

    @classmethod
    def from_floats(cls, bits: int, weights: list[float], bias: float, threshold: float) -> Model:
        """Quantise trained weights to one signed byte each."""
        peak = max((abs(w) for w in weights), default=0.0) or 1.0
        scale = peak / 127.0
        packed = bytes((round(w / scale)) & 0xFF for w in weights)
        return cls(bits, _f32(scale), _f32(bias), _f32(threshold), packed)


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
    parts = sentences(surface.normalized.text)
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
    if probability < model.threshold:
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
        detail=f"Model score {probability:.2f} (threshold {model.threshold:.2f})"
        + ("; a hand-written signal agrees." if agrees else "."),
        server=surface.server.name,
    )


def run(context: Context) -> list[Finding]:
    model = load()
    if model is None:
        return []
    findings = []
    for surface in context.surfaces():
        if surface.kind in UNSCORED_KINDS:
            continue
        finding = analyze_surface(model, surface)
        if finding is not None:
            findings.append(finding)
    return findings
