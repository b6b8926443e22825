"""Which lines of a poem a critique quotes.

A critique quotes in double quotes (straight or curly) and cites "line N". The app
highlights the quoted passages in the poem pane; the quality gate (a later stage) checks
that every quote really occurs in the poem. Matching ignores case and runs of whitespace,
because a quote may span a line break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTE_MARK = re.compile(r"[\"“”]")
_LINE_REF = re.compile(r"\blines?\s+(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class QuotedSpan:
    """A quoted passage located in the poem: `row` is 0-based in the poem's text lines."""

    row: int
    start: int
    end: int
    quote: str


def quoted_passages(critique: str) -> list[str]:
    """Text between quote marks taken in pairs (first with second, third with fourth…),
    so the words between two quotations are never mistaken for one; each paragraph pairs
    on its own so one unclosed quote cannot shift the rest."""
    out = []
    for paragraph in critique.split("\n"):
        marks = [m.start() for m in _QUOTE_MARK.finditer(paragraph)]
        for open_at, close_at in zip(marks[::2], marks[1::2]):
            text = paragraph[open_at + 1 : close_at].strip()
            if len(text) >= 3:
                out.append(text)
    return out


def cited_lines(critique: str) -> list[int]:
    return [int(n) for n in _LINE_REF.findall(critique)]


def locate_quotes(poem: str, critique: str) -> tuple[list[QuotedSpan], list[str]]:
    """The spans of the poem each quote covers (split per line), and the quotes not found."""
    lines = poem.split("\n")
    flat = "\n".join(lines)
    spans: list[QuotedSpan] = []
    missing: list[str] = []
    for quote in quoted_passages(critique):
        words = [re.escape(w) for w in quote.split()]
        pattern = re.compile(r"\s+".join(words), re.IGNORECASE)
        match = pattern.search(flat)
        if not match:
            missing.append(quote)
            continue
        spans.extend(_split_by_line(lines, match.start(), match.end(), quote))
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
