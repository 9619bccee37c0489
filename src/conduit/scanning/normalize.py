"""Text as the model will read it, and what was hidden in it from a human reviewer.

`normalize` strips ANSI escapes, zero-width and bidi controls, decodes Unicode tag characters,
variation-selector runs (bytes smuggled after an emoji or any character), base64, hex and
percent-encoded (URL-encoded) text, surfaces HTML comments and Markdown comments
(`[//]: # (...)`), applies NFKC and maps mixed-script look-alike words to Latin. Checks match
their patterns on `Normalized.text` (visible text plus everything decoded) and report each
`Hidden` piece as evidence of its own.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

from confusable_homoglyphs import confusables

TAG_START, TAG_END = 0xE0000, 0xE007F
# Zero-width, joiners, word joiner and invisible operators, BOM, Mongolian vowel separator,
# soft hyphen, and the bidi embeddings, overrides and isolates.
INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
HTML_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)
# A Markdown link definition that nothing links to, the usual way to write a comment in Markdown:
# `[//]: # (text)`, `[comment]: <> (text)`. Rendered, it shows nothing.
MARKDOWN_COMMENT = re.compile(
    r"^[ \t]*\[(?://|#|comment|_|\s*)\]:[ \t]*(?:#|<>)[ \t]*[(\"'](.*?)[)\"']?[ \t]*$", re.M | re.I
)
# Text written as %XX escapes (URL-encoded), several of them in one run.
PERCENT_RUN = re.compile(r"\S*(?:%[0-9A-Fa-f]{2}\S*?){4,}\S*")
# A variation selector after an emoji is normal; a run of them spells bytes (VS1-16 are 0-15,
# VS17-256 are 16-255), the "smuggling data through an emoji" technique.
VARIATION_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")
VARIATION = re.compile("[\ufe00-\ufe0e\U000e0100-\U000e01ef]")
HEX_BLOB = re.compile(r"(?<![0-9A-Fa-fx])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])")
BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])")
# Runs of whitespace long enough to push text out of a reviewer's view.
PADDING = re.compile(r"(?:[ \t\u00a0\u3000]{40,}|(?:\s*\n){12,})")
WORD = re.compile(r"\w+", re.UNICODE)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Hidden:
    kind: str  # unicode_tags | variation_selectors | invisible | bidi | ansi | html_comment | base64 | hex
    # | percent | homoglyph | padding
    text: str  # what was hidden (decoded where it was encoded)
    count: int = 1


@dataclass
class Normalized:
    original: str
    visible: str  # what a reviewer sees, cleaned
    text: str  # visible + every decoded hidden piece: what patterns run on
    hidden: list[Hidden] = field(default_factory=list)

    def hidden_of(self, kind: str) -> list[Hidden]:
        return [h for h in self.hidden if h.kind == kind]


def _decode_tags(text: str) -> tuple[str, str]:
    """Text without Unicode tag characters, and the ASCII those characters spell."""
    kept, decoded = [], []
    for char in text:
        point = ord(char)
        if TAG_START <= point <= TAG_END:
            if 0x20 <= point - TAG_START < 0x7F or point - TAG_START in (0x0A, 0x09):
                decoded.append(chr(point - TAG_START))
        else:
            kept.append(char)
    return "".join(kept), "".join(decoded)


def _decode_variation_selectors(text: str) -> tuple[str, str]:
    """Text without variation-selector runs, and the UTF-8 text those runs spell."""
    decoded: list[str] = []

    def byte(char: str) -> int:
        point = ord(char)
        return point - 0xFE00 if point < 0x10000 else point - 0xE0100 + 16

    def take(match: re.Match[str]) -> str:
        raw = bytes(byte(c) for c in match.group(0))
        decoded.append(raw.decode("utf-8", errors="replace"))
        return ""

    kept = VARIATION_RUN.sub(take, text)
    return VARIATION.sub("", kept), " ".join(decoded)


def decode_hex(blob: str) -> str | None:
    """Readable text behind a hex blob (not a hash or an id), else None."""
    try:
        text = bytes.fromhex(blob).decode("utf-8")
    except ValueError:
        return None
    letters = sum(c.isalpha() or c.isspace() for c in text)
    if _printable_ratio(text) > 0.95 and letters / max(1, len(text)) > 0.7 and " " in text.strip():
        return text
    return None


def decode_percent(run: str) -> str | None:
    """Readable words behind a run of %XX escapes (not one encoded search term in a URL), else None."""
    text = unquote(run)
    letters = sum(c.isalpha() or c.isspace() for c in text)
    if text.count(" ") >= 3 and _printable_ratio(text) > 0.95 and letters / max(1, len(text)) > 0.7:
        return text
    return None


def _printable_ratio(text: str) -> float:
    if not text:
        return 0.0
    good = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    return good / len(text)


def decode_base64(blob: str) -> str | None:
    """Readable text behind a base64 (or URL-safe base64) blob, else None."""
    padded = blob + "=" * (-len(blob) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(padded)
        except (binascii.Error, ValueError):
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        letters = sum(c.isalpha() or c.isspace() for c in text)
        # Words, not another identifier or binary: mostly letters and spaces, with a space in it.
        if _printable_ratio(text) > 0.95 and letters / max(1, len(text)) > 0.7 and " " in text.strip():
            return text
    return None


@lru_cache(maxsize=4096)
def latin_skeleton(word: str) -> str | None:
    """The Latin look-alike of a word that mixes scripts (`paypal` spelt with a Cyrillic a), else None."""
    if word.isascii() or not confusables.is_mixed_script(word):
        return None
    found = confusables.is_confusable(word, preferred_aliases=["latin"], greedy=True) or []
    mapping: dict[str, str] = {}
    for item in found:
        for glyph in item.get("homoglyphs", []):
            candidate = glyph.get("c", "")
            if candidate.isascii() and candidate:
                mapping[item["character"]] = candidate
                break
    if not mapping:
        return None
    return "".join(mapping.get(c, c) for c in word)


def normalize(original: str) -> Normalized:
    hidden: list[Hidden] = []
    decoded_parts: list[str] = []
    text, tags = _decode_tags(original)
    if tags.strip():
        hidden.append(Hidden("unicode_tags", tags))
        decoded_parts.append(tags)
    text, smuggled = _decode_variation_selectors(text)
    if smuggled.strip():
        hidden.append(Hidden("variation_selectors", smuggled))
        decoded_parts.append(smuggled)
    ansi = ANSI.findall(text)
    if ansi:
        hidden.append(Hidden("ansi", " ".join(repr(a) for a in ansi[:5]), len(ansi)))
        text = ANSI.sub("", text)
    bidi = BIDI.findall(text)
    if bidi:
        hidden.append(Hidden("bidi", " ".join(f"U+{ord(c):04X}" for c in bidi[:8]), len(bidi)))
    invisible = [c for c in INVISIBLE.findall(text) if not BIDI.match(c)]
    # A lone BOM or soft hyphen is common in copied text; several invisible characters are not.
    if len(invisible) >= 2 or any(c in "\u200b\u200c\u200d\u2060\u2062\u2063\u2064" for c in invisible):
        hidden.append(Hidden("invisible", " ".join(f"U+{ord(c):04X}" for c in invisible[:8]), len(invisible)))
    text = INVISIBLE.sub("", text)
    text = CONTROL.sub(" ", text)
    for comment in HTML_COMMENT.findall(text):
        if comment.strip():
            hidden.append(Hidden("html_comment", comment.strip()))
    if "]:" in text:
        for comment in MARKDOWN_COMMENT.findall(text):
            if comment.strip():
                hidden.append(Hidden("html_comment", comment.strip()))
    if PADDING.search(text):
        hidden.append(Hidden("padding", PADDING.sub(" ", text)[-200:].strip()))
    text = unicodedata.normalize("NFKC", text)
    for blob in BASE64_BLOB.findall(text):
        decoded = decode_base64(blob)
        if decoded is not None:
            hidden.append(Hidden("base64", decoded))
            decoded_parts.append(decoded)
    for blob in HEX_BLOB.findall(text):
        decoded = decode_hex(blob)
        if decoded is not None:
            hidden.append(Hidden("hex", decoded))
            decoded_parts.append(decoded)
    if "%" in text:
        for run in PERCENT_RUN.findall(text):
            decoded = decode_percent(run)
            if decoded is not None:
                hidden.append(Hidden("percent", decoded))
                decoded_parts.append(decoded)
    mixed: dict[str, str] = {}
    for word in WORD.findall(text):
        if word not in mixed:
            skeleton = latin_skeleton(word)
            if skeleton is not None:
                mixed[word] = skeleton
    if mixed:
        shown = ", ".join(f"{w} → {s}" for w, s in sorted(mixed.items())[:8])
        hidden.append(Hidden("homoglyph", shown, len(mixed)))
        # Whole words only, in one pass: replacing a look-alike word inside a longer one (a
        # mixed-script "safe" inside "safekeeping") made the result depend on the order in which
        # the words were taken, which changed with the process's hash seed.
        text = WORD.sub(lambda match: mixed.get(match.group(0), match.group(0)), text)
    visible = HTML_COMMENT.sub(" ", text)
    if "]:" in visible:
        visible = MARKDOWN_COMMENT.sub(" ", visible)
    analysed = "\n".join([text, *decoded_parts]) if decoded_parts else text
    return Normalized(original=original, visible=visible, text=analysed, hidden=hidden)
