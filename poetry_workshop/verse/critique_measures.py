"""Measures of a critique and of a revision, read from the text alone: which sentences suggest,
praise or name a problem, which quoted passages it flags, whether its quotations occur in the
poem, and what a revision changed of the lines a critique flagged.

The quality gate's critique and revision rules and the eval's Educator and revision metrics
read the same numbers from here.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache

from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.quotes import flatten, locate_quotes, quote_occurs, quoted_passages, quoted_spans

# A sentence runs to . ! or ?, except inside a quotation (quoted lines often end in a period).
# Runs of plain characters are taken whole, not a character per repetition: the same sentences,
# several times faster.
_SENTENCE = re.compile(r'(?:[^.!?"“]+|"[^"\n]*"|“[^”\n]*”)+[.!?]?')
_WORD_AT = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")


def _markers(*phrases: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Marker words and two-word phrases, for `_marked_sentences`."""
    singles = frozenset(p for p in phrases if " " not in p)
    pairs = frozenset(tuple(p.split()) for p in phrases if " " in p)
    return singles, pairs


# A suggestion, praise, a problem named: the words that mark each kind of sentence.
_SUGGESTION = _markers(
    "try", "consider", "what if", "what would", "could", "might", "cut", "move", "replace", "let the", "let it",
    "ask yourself", "revise", "rewrite", "trust", "drop", "keep", "give", "find", "push", "go back", "read it",
    "next", "one direction", "exercise", "take from")
_PRAISE = _markers(
    "work", "works", "working", "strong", "strongest", "beautiful", "lovely", "powerful", "vivid", "striking",
    "effective", "wonderful", "great", "excellent", "succeed", "succeeds", "earn", "earns", "alive", "moving",
    "gorgeous", "brilliant", "masterful")
_PROBLEM = _markers(
    "doesn't", "does not", "don't", "isn't", "not yet", "weak", "problem", "explain", "explains", "tell", "tells",
    "telling", "vague", "flat", "generic", "cliche", "cliché", "cliches", "clichés", "dead", "tired", "abstract",
    "lose", "loses", "stall", "stalls", "cut", "drop", "replace", "blur", "blurs", "sentimental", "stock",
    "borrowed", "announce", "announces", "summary", "summarises", "summarizes")


_MARKERS = {"suggestion": _SUGGESTION, "praise": _PRAISE, "problem": _PROBLEM}
_ANY_MARKER = frozenset().union(*(singles | {p[0] for p in pairs} for singles, pairs in _MARKERS.values()))


def _marker_pattern(marker: str) -> re.Pattern[str]:
    """The marker as whole words: no letter or apostrophe just before or after it. The check
    before is a lookbehind after the first word, so the pattern opens with literal text, which
    `re` searches for directly instead of trying the lookbehind at every character."""
    first, *rest = map(re.escape, marker.split())
    return re.compile(first + f"(?<![a-z'’]{first})" + "".join(r"\s+" + w for w in rest) + r"(?![a-z'’])")


# first word -> (pattern, kinds) for each marker that starts with it, compiled once.
_MARKER_PATTERNS: dict[str, list[tuple[re.Pattern[str], tuple[str, ...]]]] = {}
for _marker in sorted({m for singles, pairs in _MARKERS.values() for m in singles | {" ".join(p) for p in pairs}}):
    _MARKER_PATTERNS.setdefault(_marker.split()[0], []).append(
        (_marker_pattern(_marker), tuple(kind for kind, (singles, pairs) in _MARKERS.items()
                                         if _marker in singles or tuple(_marker.split()) in pairs)))


@lru_cache(maxsize=32)
def quote_free(text: str) -> str:
    """Prose without its quotations: a critique that quotes a poem's clichés has not used them.
    Cached: the gate's LLM-ism and critique-shape rules both read a critique without its quotes."""
    for passage in quoted_passages(text):
        text = text.replace(passage, " ")
    return text


def _sentence_bounds(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _SENTENCE.finditer(text)]


def _in_sentence(bounds: list[tuple[int, int]], starts: list[int], at: int) -> int | None:
    k = bisect.bisect_right(starts, at) - 1
    return k if k >= 0 and at < bounds[k][1] else None


def flagged_passages(critique: str) -> list[str]:
    """The passages a critique quotes as problems: quotes in sentences that name a problem,
    or, when none does, every quote outside a sentence of praise (praise is to be kept)."""
    bounds, marks = _sentence_marks(critique.replace("\n", " "))
    starts = [b[0] for b in bounds]
    quotes = [(_in_sentence(bounds, starts, at), q) for at, q in quoted_spans(critique)]
    flagged = [q for k, q in quotes if k in marks["problem"]]
    if flagged:
        return flagged
    return [q for k, q in quotes if k not in marks["praise"]]


@lru_cache(maxsize=32)
def _sentence_marks(text: str) -> tuple[list[tuple[int, int]], dict[str, set[int]]]:
    """The text's sentences, and for each kind of marker (suggestion, praise, problem) the
    indexes of the sentences holding one. The words are read once (in C) to see which
    markers occur at all; only those are then located."""
    bounds = _sentence_bounds(text)
    starts = [b[0] for b in bounds]
    marks: dict[str, set[int]] = {kind: set() for kind in _MARKERS}
    lowered = text.lower()
    tokens = _WORD_AT.findall(lowered)
    for word in set(tokens) & _ANY_MARKER:
        for pattern, kinds in _MARKER_PATTERNS[word]:
            for m in pattern.finditer(lowered):
                k = _in_sentence(bounds, starts, m.start())
                if k is not None:
                    for kind in kinds:
                        marks[kind].add(k)
    return bounds, marks


@lru_cache(maxsize=4096)
def normalise_line(line: str) -> str:
    # Cached: the gate normalises a poem's lines for its critique rule and again for its revision rule.
    return " ".join(line.lower().split())


@dataclass(frozen=True)
class CritiqueShape:
    """How a critique's own sentences divide (quotations removed, fragments under three words
    not counted): the gate's actionable and praise-share rules and the eval read the same numbers."""

    sentences: int
    suggestions: int  # sentences that propose something to do
    praise: int  # sentences of praise

    @property
    def praise_share(self) -> float:
        return self.praise / self.sentences if self.sentences else 0.0


def critique_shape(text: str) -> CritiqueShape:
    prose = quote_free(text)
    bounds, marks = _sentence_marks(prose)
    real = {k for k, (b, e) in enumerate(bounds) if len(prose[b:e].split()) >= 3}  # not fragments
    return CritiqueShape(len(real), len(marks["suggestion"] & real), len(marks["praise"] & real))


def ungrounded_quotes(text: str, poems: list[str]) -> list[str]:
    """The passages a critique quotes that occur in none of the poems."""
    flat = [flatten(p) for p in poems]
    return [q for q in quoted_passages(text) if not any(quote_occurs(q, f) for f in flat)]


@dataclass(frozen=True)
class RevisionDelta:
    """What a revision did to the draft a critique discussed."""

    flagged: int  # lines of the draft the critique quoted as problems
    unchanged_flagged: list[str]  # of those, the ones the revision kept word for word
    others: int  # lines the critique did not flag
    flagged_changed: float | None  # share of flagged lines changed; None when nothing was flagged
    unflagged_change: float | None  # 0 (kept) to 1 (rewritten) over the other lines; None without any


def revision_delta(before: str, critique: str, after: str) -> RevisionDelta:
    raw_rows = before.split("\n")
    row_to_line = {}
    for row, line in enumerate(raw_rows):
        if line.strip():
            row_to_line[row] = len(row_to_line)
    flagged: set[int] = set()
    for passage in flagged_passages(critique):
        spans, _ = locate_quotes(before, f'"{passage}"')
        flagged |= {row_to_line[s.row] for s in spans if s.row in row_to_line}
    old = pm.poem_lines(before)
    new = pm.poem_lines(after)
    new_norm = {normalise_line(line) for line in new}
    unchanged = [old[i] for i in sorted(flagged) if normalise_line(old[i]) in new_norm]
    changed = 1 - len(unchanged) / len(flagged) if flagged else None
    others = [(i, line) for i, line in enumerate(old) if i not in flagged]
    change = None
    if others and new:
        scores = []
        for i, line in others:
            if normalise_line(line) in new_norm:
                scores.append(1.0)
                continue
            # A line may have moved a little; it counts as kept by its closest neighbour.
            window = new[max(0, i - 3): i + 4] or new
            scores.append(max(pm.line_similarity(line, candidate) for candidate in window))
        change = 1 - sum(scores) / len(scores)
    return RevisionDelta(len(flagged), unchanged, len(others), changed, change)
