"""Trust badges as SVG, in the flat two-part style READMEs use: a grey label and a message in the
grade's colour. Every text that enters the SVG is escaped, stripped of control and format
characters (bidi overrides, zero-width, tags: they could make a badge read as something else)
and bounded in length."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass

STYLES = ("standard", "compact", "detailed")
GRADE_COLOURS = {"A": "#44cc11", "B": "#97ca00", "C": "#dfb317", "D": "#fe7d37", "F": "#e05d44"}
UNSCANNED_COLOUR = "#9f9f9f"
LABEL_COLOUR = "#555555"
NOT_SCANNED = "not scanned"
MAX_NAME = 40
# Control, format (bidi, zero-width, tags), surrogate, private-use and unassigned characters.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
HEIGHT = 20
PADDING = 6
# Advance widths of Verdana 11px, near enough to size the boxes without a font at hand.
_NARROW = set("ijlI.,:;!|'`")
_SEMI = set("frt()[]{} -/")
_WIDE = set("mwMW@%")


@dataclass(frozen=True)
class BadgeFacts:
    """What a badge says: the server's name and, once scanned, its grade, score and findings."""

    name: str
    grade: str | None
    score: int | None
    findings: int | None


def _width(text: str) -> int:
    total = 0.0
    for char in text:
        if char in _NARROW:
            total += 3.5
        elif char in _SEMI:
            total += 4.6
        elif char in _WIDE:
            total += 11.0
        elif char.isupper() or char.isdigit():
            total += 7.5
        else:
            total += 6.8
    return round(total)


def clean(text: str, limit: int = MAX_NAME) -> str:
    """Visible characters only, whitespace collapsed, at most `limit` of them."""
    spaced = "".join(" " if char.isspace() else char for char in text)
    visible = "".join(char for char in spaced if unicodedata.category(char) not in HIDDEN_CATEGORIES)
    visible = re.sub(r" +", " ", visible).strip()
    return visible if len(visible) <= limit else visible[: limit - 1].rstrip() + "…"


def _findings(count: int | None) -> str:
    return f"{count} finding" if count == 1 else f"{count or 0} findings"


def texts(style: str, facts: BadgeFacts) -> tuple[str, str]:
    """The label and the message of a badge."""
    scanned = facts.grade is not None
    if style == "compact":
        return "trust", facts.grade if scanned and facts.grade else NOT_SCANNED
    if style == "detailed":
        label = clean(facts.name) or "server"
        if not scanned:
            return label, NOT_SCANNED
        return label, f"{facts.grade} · {facts.score}/100 · {_findings(facts.findings)}"
    return "trust score", f"{facts.grade} · {facts.score}/100" if scanned else NOT_SCANNED


def colour(facts: BadgeFacts) -> str:
    return GRADE_COLOURS.get(facts.grade or "", UNSCANNED_COLOUR)


def render(style: str, facts: BadgeFacts) -> str:
    label, message = texts(style, facts)
    left, right = _width(label) + 2 * PADDING, _width(message) + 2 * PADDING
    width = left + right
    label_x, message_x = left / 2, left + right / 2
    esc_label, esc_message = html.escape(label, quote=True), html.escape(message, quote=True)
    title = f"{esc_label}: {esc_message}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" role="img" '
        f'aria-label="{title}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="{HEIGHT}" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="{HEIGHT}" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT}" fill="{colour(facts)}"/>'
        f'<rect width="{width}" height="{HEIGHT}" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{label_x:g}" y="15" fill="#010101" fill-opacity=".3">{esc_label}</text>'
        f'<text x="{label_x:g}" y="14">{esc_label}</text>'
        f'<text x="{message_x:g}" y="15" fill="#010101" fill-opacity=".3">{esc_message}</text>'
        f'<text x="{message_x:g}" y="14">{esc_message}</text>'
        "</g></svg>"
    )


def etag(svg: str) -> str:
    """A strong validator: the same bytes, the same tag."""
    return '"' + hashlib.sha256(svg.encode()).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """`If-None-Match` compares weakly (RFC 9110 13.1.2): `W/"x"` matches `"x"`; `*` matches any."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False
