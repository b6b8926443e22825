"""Which lines of a poem a critique quotes.

A critique quotes in double quotes (straight or curly) and cites "line N". The app
highlights the quoted passages in the poem pane; the quality gate (a later stage) checks
that every quote really occurs in the poem. Matching ignores case and runs of whitespace,
because a quote may span a line break; a " / " inside a quote marks that break.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

_QUOTE_MARK = re.compile(r"[\"“”]")
_LINE_REF = re.compile(r"\blines?\s+(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class QuotedSpan:
    """A quoted passage located in the poem: `row` is 0-based in the poem's text lines."""

    row: int
    start: int
    end: int
    quote: str


@lru_cache(maxsize=32)
def quoted_spans(critique: str) -> list[tuple[int, str]]:
    """(offset in the critique, text) of every quotation: text between quote marks taken in
    pairs (first with second, third with fourth…), so the words between two quotations are
    never mistaken for one; each paragraph pairs on its own so one unclosed quote cannot
    shift the rest."""
    out, offset = [], 0
    for paragraph in critique.split("\n"):
        if '"' in paragraph or "“" in paragraph or "”" in paragraph:
            marks = [m.start() for m in _QUOTE_MARK.finditer(paragraph)]
            for open_at, close_at in zip(marks[::2], marks[1::2]):
                text = paragraph[open_at + 1 : close_at].strip()
                if len(text) >= 3:
                    out.append((offset + open_at, text))
        offset += len(paragraph) + 1
    return out


def quoted_passages(critique: str) -> list[str]:
    return [text for _, text in quoted_spans(critique)]  # a new list: callers may change it


def cited_lines(critique: str) -> list[int]:
    return [int(n) for n in _LINE_REF.findall(critique)]


@lru_cache(maxsize=256)
def flatten(text: str) -> str:
    """Lower case with every run of whitespace one space: the form quotes are matched in."""
    return " ".join(text.lower().split())


_LINE_BREAK_MARK = re.compile(r"\s+/\s+")


@lru_cache(maxsize=256)
def _needles(quote: str) -> tuple[str, ...]:
    """The quote as matched: as written, and with its " / " line-break marks (the persona's
    way of quoting across a break) read as the break they stand for. Cached: the gate looks
    for a critique's quotes in its grounding rule and again in its revision rule."""
    if _LINE_BREAK_MARK.search(quote):
        return flatten(quote), flatten(_LINE_BREAK_MARK.sub(" ", quote))
    return (flatten(quote),)


def quote_occurs(quote: str, flat_poem: str) -> bool:
    """Whether `quote` occurs in a poem given as `flatten(poem)`; the same test as
    `locate_quotes`, without building a pattern per quote."""
    for needle in _needles(quote):
        if needle and needle in flat_poem:
            return True
    return False


_NON_SPACE = re.compile(r"\S+")


@lru_cache(maxsize=64)
def _flat_words(poem: str) -> tuple[str, list[int], list[tuple[int, int]]]:
    """The poem flattened as `flatten` does, where each word starts in it, and each word's
    span in the poem: enough to map a match in the flat text back to the poem. `str.split`
    and `\\S+` cut at the same whitespace, so the offsets are running sums (in C) of the
    words' lengths and the spaces between them."""
    spans = [m.span() for m in _NON_SPACE.finditer(poem)]
    words = poem.split()
    starts = list(accumulate(map((1).__add__, map(len, words)), initial=0))
    starts.pop()
    return " ".join(words).lower(), starts, spans


def _to_poem(at: int, starts: list[int], spans: list[tuple[int, int]]) -> int:
    k = bisect.bisect_right(starts, at) - 1
    begin, end = spans[k]
    return min(begin + at - starts[k], end)


def locate_quotes(poem: str, critique: str) -> tuple[list[QuotedSpan], list[str]]:
    """The spans of the poem each quote covers (split per line), and the quotes not found."""
    lines = poem.split("\n")
    flat, starts, words = _flat_words(poem)
    spans: list[QuotedSpan] = []
    missing: list[str] = []
    for quote in quoted_passages(critique):
        found = [(flat.find(n), n) for n in _needles(quote) if n]
        at, needle = next(((a, n) for a, n in found if a >= 0), (-1, ""))
        if at < 0:
            missing.append(quote)
            continue
        first, last = _to_poem(at, starts, words), _to_poem(at + len(needle) - 1, starts, words) + 1
        spans.extend(_split_by_line(lines, first, last, quote))
    return spans, missing


def _split_by_line(lines: list[str], start: int, end: int, quote: str) -> list[QuotedSpan]:
    out, offset = [], 0
    for row, line in enumerate(lines):
        line_start, line_end = offset, offset + len(line)
        lo, hi = max(start, line_start), min(end, line_end)
        if lo < hi:
            out.append(QuotedSpan(row, lo - line_start, hi - line_start, quote))
        offset = line_end + 1
    return out
