"""Literal prefilters for the checks' regular expressions: a cheap test that says for certain when
a pattern cannot match, so that its regex is not run at all.

From a compiled pattern's syntax tree, `needles` derives a set of strings at least one of which
every match contains (`\\b(?:read|cat)\\s+(?:~/\\.ssh|id_rsa)` needs "~/.ssh" or "id_rsa"). They are
case-folded the way the regex engine compares characters under IGNORECASE (its simple lowercase
plus the few extra equivalences such as i / dotless i and s / long s), and the text is folded the
same way (`fold`), so "no needle in the folded text" proves "no match": the prefilter never changes
a result, it only skips work. A pattern from which no useful needle can be derived is always run.
"""

from __future__ import annotations

import _sre
import re
from collections.abc import Iterator
from re import _parser as sre_parse  # type: ignore[attr-defined]
from re._casefix import _EXTRA_CASES  # type: ignore[import-not-found]
from typing import Any

# Largest set of exact strings kept while multiplying out a literal run or an alternation.
_CAP = 256
_MAXREPEAT = sre_parse.MAXREPEAT


def _canon_code(code: int) -> int:
    lower: int = _sre.unicode_tolower(code)
    return min((lower, *_EXTRA_CASES.get(lower, ())))


class _Folding(dict[int, int]):
    """`str.translate` table mapping each character to its representative under IGNORECASE."""

    def __missing__(self, code: int) -> int:
        self[code] = folded = _canon_code(code)
        return folded


_FOLD = _Folding()


def fold(text: str) -> str:
    """The text with every character replaced by its IGNORECASE representative: a regex with
    IGNORECASE matches a literal at some place exactly when the folded literal is there in the
    folded text. For ASCII that is `lower()`."""
    if text.isascii():
        return text.lower()
    return text.translate(_FOLD)


def _fold_char(code: int) -> str:
    return chr(_canon_code(code))


Strings = frozenset[str] | None


def _product(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > _CAP:
        return None
    return frozenset(a + b for a in left for b in right)


def _weight(needle: str) -> int:
    """How rare a needle is likely to be: its length, a CJK or other non-ASCII character
    counting as several letters."""
    return sum(1 if c.isascii() else 3 for c in needle)


def _best(candidates: list[frozenset[str]]) -> Strings:
    """The most selective needle set: the heaviest lightest needle, then the fewest needles."""
    useful = [c for c in candidates if c and "" not in c]
    if not useful:
        return None
    return max(useful, key=lambda c: (min(_weight(s) for s in c), -len(c)))


def _sequence(items: Any) -> tuple[Strings, Strings]:
    """(exact, needles) of a sequence of nodes: every string it can match when that set is small
    and known, and a set of strings one of which any match contains."""
    exact, candidates = _candidates(items)
    return exact, _best(candidates)


def _candidates(items: Any) -> tuple[Strings, list[frozenset[str]]]:
    """(exact, candidates) of a sequence: each candidate is a set of strings one of which any
    match contains (so every candidate holds at once)."""
    candidates: list[frozenset[str]] = []
    run: frozenset[str] = frozenset({""})
    exact = True
    for op, av in items:
        node_exact, node_needles = _node(op, av)
        if node_exact is not None:
            if node_needles is not None:
                candidates.append(node_needles)  # a lookaround's own needles
            joined = _product(run, node_exact)
            if joined is not None:
                run = joined
                continue
            candidates.append(run)
            run = node_exact
            exact = False
            continue
        exact = False
        candidates.append(run)
        if node_needles is not None:
            candidates.append(node_needles)
        run = frozenset({""})
    candidates.append(run)
    return (run if exact else None), candidates


def _node(op: Any, av: Any) -> tuple[Strings, Strings]:
    name = str(op)
    if name == "LITERAL":
        return frozenset({_fold_char(av)}), None
    if name == "IN":
        chars: set[str] = set()
        for item_op, item_av in av:
            if str(item_op) != "LITERAL":
                return None, None  # ranges, categories, negation: not a small exact set
            chars.add(_fold_char(item_av))
        return (frozenset(chars), None) if chars and len(chars) <= 16 else (None, None)
    if name in ("AT", "ASSERT_NOT"):
        return frozenset({""}), None  # zero width; ignoring a negative lookaround only weakens the test
    if name == "ASSERT":
        # Zero width, but what it looks at is in the text (needles test the text, not the match).
        return frozenset({""}), _sequence(av[1])[1]
    if name == "SUBPATTERN":
        return _sequence(av[3])
    if name == "ATOMIC_GROUP":
        return _sequence(av)
    if name == "BRANCH":
        exacts: set[str] = set()
        needles: set[str] = set()
        all_exact = all_needles = True
        for branch in av[1]:
            branch_exact, branch_needles = _sequence(branch)
            if branch_exact is None:
                all_exact = False
            else:
                exacts |= branch_exact
            usable = branch_exact if branch_exact is not None and "" not in branch_exact else branch_needles
            if usable is None:
                all_needles = False
            else:
                needles |= usable
        exact = frozenset(exacts) if all_exact and len(exacts) <= _CAP else None
        return exact, (frozenset(needles) if all_needles and "" not in needles else None)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, high, sub = av
        sub_exact, sub_needles = _sequence(sub)
        if low == 0:
            if high == 1 and sub_exact is not None:
                return sub_exact | {""}, None
            return None, None
        needles_of_sub = sub_exact if sub_exact is not None and "" not in sub_exact else sub_needles
        if low == high and high != _MAXREPEAT and sub_exact is not None:
            repeated: frozenset[str] | None = frozenset({""})
            for _ in range(low):
                repeated = _product(repeated, sub_exact) if repeated is not None else None
            if repeated is not None:
                return repeated, None
        return None, needles_of_sub
    return None, None  # ANY, NOT_LITERAL, CATEGORY, GROUPREF...


def needles(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Strings (folded) at least one of which every match of the pattern contains; None when no
    such set could be derived."""
    sets = needle_sets(pattern)
    return _best(list(sets)) if sets else None


def needle_sets(pattern: re.Pattern[str]) -> tuple[frozenset[str], ...]:
    """Sets of strings (folded) such that every match of the pattern contains a string of each
    set; empty when none could be derived."""
    items: Any = sre_parse.parse(pattern.pattern, pattern.flags)
    while len(items) == 1 and str(items[0][0]) == "SUBPATTERN":
        items = items[0][1][3]  # a pattern wrapped in one group: its sequence is the same
    exact, candidates = _candidates(items)
    if exact is not None and "" not in exact:
        return (exact,)
    useful = {c for c in candidates if c and "" not in c}
    return tuple(sorted(useful, key=lambda c: (-min(_weight(s) for s in c), len(c), sorted(c))))


class Prefiltered:
    """A compiled pattern with its needles: `search(text, folded)` answers as `pattern.search(text)`,
    without running the regex when no needle is in `folded` (= `fold(text)`)."""

    __slots__ = ("needle_sets", "needles", "pattern")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        # Every set must be met; the first is the most selective.
        self.needle_sets = needle_sets(pattern)
        self.needles: tuple[str, ...] | None = (
            tuple(sorted(self.needle_sets[0], key=lambda s: (-len(s), s))) if self.needle_sets else None
        )

    def possible(self, folded: str) -> bool:
        return self.needles is None or any(n in folded for n in self.needles)

    def search(self, text: str, folded: str) -> re.Match[str] | None:
        if self.needles is not None and not any(n in folded for n in self.needles):
            return None
        return self.pattern.search(text)

    def finditer(self, text: str, folded: str) -> Iterator[re.Match[str]]:
        if self.needles is not None and not any(n in folded for n in self.needles):
            return iter(())
        return self.pattern.finditer(text)

    def possible_in(self, present: frozenset[str]) -> bool:
        """Whether the pattern can match a text holding (only) these needles (`NeedleIndex`)."""
        return all(not present.isdisjoint(needles) for needles in self.needle_sets)


def _trie_regex(words: list[str]) -> str:
    """A regex matching, at a position, the longest of `words` that starts there."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        children = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not children:
            return ""
        body = children[0] if len(children) == 1 else "(?:" + "|".join(children) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


class NeedleIndex:
    """The needles of a list of prefiltered patterns, found in one pass over a folded text: a trie
    regex gives the longest needle starting at each position, and the needles that are prefixes
    of it start there too. `possible` answers which patterns of the list can match the text."""

    def __init__(self, patterns: list[Prefiltered]) -> None:
        words = sorted({n for p in patterns for needles in p.needle_sets for n in needles})
        known = set(words)
        self.prefixes = {w: tuple(w[:k] for k in range(1, len(w) + 1) if w[:k] in known) for w in words}
        self.regex = re.compile("(?=(" + _trie_regex(words) + "))", re.DOTALL) if words else None
        owners: dict[str, list[tuple[int, int]]] = {}
        for index, pattern in enumerate(patterns):
            for bit, needles in enumerate(pattern.needle_sets):
                for needle in needles:
                    owners.setdefault(needle, []).append((index, 1 << bit))
        self.owners = {needle: tuple(found) for needle, found in owners.items()}
        self.full = [(1 << len(p.needle_sets)) - 1 for p in patterns]
        self.always = frozenset(i for i, p in enumerate(patterns) if not p.needle_sets)

    def present(self, folded: str) -> set[str]:
        """The needles in a folded text."""
        found: set[str] = set()
        if self.regex is not None:
            prefixes = self.prefixes
            for match in self.regex.finditer(folded):
                found.update(prefixes[match.group(1)])
        return found

    def possible(self, folded: str) -> list[int]:
        """Indexes, in order, of the patterns that can match the text `folded` is the fold of."""
        masks: dict[int, int] = {}
        owners = self.owners
        for needle in self.present(folded):
            for index, bit in owners[needle]:
                masks[index] = masks.get(index, 0) | bit
        full = self.full
        return sorted(self.always.union(i for i, mask in masks.items() if mask == full[i]))
