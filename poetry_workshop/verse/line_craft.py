"""A poem's craft, line by line: syllables, stress pattern and rhyme letter, and its counts.

What the workshop's craft gutter shows beside the poem. Everything comes from CMUdict,
read through `poem_metrics` (its table, its syllable estimate, its rhyme key), so the
gutter and the quality gate hear a poem the same way.

Stress, one mark a syllable: `/` stressed, `x` unstressed, `?` not known. CMUdict marks
each vowel 1 (primary), 2 (secondary) or 0 (none), and a reader hears less than that:

- in a word of two or more syllables, primary is `/` and none is `x`; a secondary stress
  is `/` unless a syllable next to it in the word has the primary, which takes the beat
  from it ("understand" AH2 .. ER0 .. AE1 is `/ x /`, "daydream" EY1 .. IY2 is `/ x`);
- a one-syllable word is `/`, except a function word (article, pronoun, preposition,
  conjunction, auxiliary; `FUNCTION_WORDS`), which is `x`: CMUdict gives "to", "of",
  "his" a primary stress because it transcribes each word said alone;
- promotion, as a reader scans (Attridge, "The Rhythms of English Poetry"): an
  unstressed syllable with an unstressed syllable on each side takes the beat
  (`x x x` -> `x / x`), which is how "these ARE i THINK" and "PROMisES to KEEP" are read
  in Frost; so does a one-syllable function word that ends the line after an unstressed
  syllable (the line's end carries a beat: "the VILlage THOUGH");
- demotion, the converse: a stressed one-syllable word between two stressed syllables
  gives up its beat (`/ / /` -> `/ x /`: "his WOODS fill UP with SNOW").
Both rules read the marks as they were before either ran, and never change two
neighbouring syllables.

A word CMUdict lacks is never guessed silently: its syllables are estimated from the
spelling (`estimate_syllables`), its stresses are `?`, and the line names the word
(`LineCraft.unknown`) and says its count is an estimate (`LineCraft.estimated`).

Rhyme letters: the first line with a new end sound gets the next letter (A, B, ... Z,
then AA, AB, ...); a later line with the same sound gets that letter, across stanza
breaks, and a repeated end word rhymes with itself, as Frost's "sleep"/"sleep" (DDDD).
The sound (`end_sound`) is `poem_metrics.rhyme_key`, from the last stressed vowel on,
with the vowels CMUdict tells apart before R merged as the ear merges them ("here" IY R
and "queer" IH R, "poor" UW R and "tour" UH R). A line that rhymes with
no other line still gets its own letter, as rhyme schemes are written (Frost's AABA: B
rhymes nowhere in its stanza, only later), and `LineCraft.rhymed` says whether it has a
partner anywhere in the poem, so a display can set the unrhymed apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from poetry_workshop.verse.poem_metrics import _cmudict, rhyme_key, syllables
from poetry_workshop.verse.quotes import flatten

STRESSED, UNSTRESSED, UNKNOWN = "/", "x", "?"

# One-syllable words a reader does not stress in running speech, whatever CMUdict says of
# the word alone: articles, personal and relative pronouns, prepositions, conjunctions,
# auxiliaries and the copula, and their contractions ("it's", "we'll"). Content words
# (nouns, verbs, adjectives, most adverbs), "not" and the negative contractions ("don't":
# they carry the meaning) and "up", "out", "off", "down" (more often a verb's stressed
# particle, "fill UP", than a preposition) are left stressed.
FUNCTION_WORDS = frozenset("""
a an the
i me my mine you your yours he him his she her hers it its we us our ours they them their
thee thou thy thine ye who whom whose which what that this these those
at by for from in into of on onto to with as than o'er
and but or nor so yet if though while
am is are was were be been being do does did has have had shall should will would
can could may might must
there
i'm i'd i'll i've you're you'd you'll you've he's he'd he'll she's she'd she'll
it's it'd it'll we're we'd we'll we've they're they'd they'll they've
that's there's who's what's
""".split())


@dataclass(frozen=True)
class WordSound:
    """One word as CMUdict says it: its stress marks, or None where CMUdict lacks it."""

    word: str
    stresses: tuple[str, ...] | None  # CMUdict digits per vowel, "0", "1", "2"
    estimate: int  # syllables by spelling, for an unknown word


@dataclass(frozen=True)
class LineCraft:
    """One line of a poem: its syllables, stress pattern and (set by `poem_craft`) rhyme."""

    text: str
    syllables: int
    stress: str  # one mark per syllable, space-separated: "x / x / x / x /"
    unknown: tuple[str, ...] = ()  # words CMUdict lacks, lower-cased as `line_words` gives them
    end_sound: str = ""  # `rhyme_key` of the end word; "" for a line without words
    rhyme: str = ""  # the rhyme letter; "" for a blank line or one without words
    rhymed: bool = False  # whether another line of the poem shares its end sound
    blank: bool = False  # a stanza break
    words: int = 0

    @property
    def estimated(self) -> bool:
        """Whether the syllable count rests on a guess from spelling."""
        return bool(self.unknown)


@dataclass(frozen=True)
class PoemCraft:
    """The whole poem: one `LineCraft` per text line (blank lines included, so row i is the
    poem's line i as an editor shows it) and its counts."""

    rows: tuple[LineCraft, ...]
    lines: int  # lines with text
    words: int
    stanzas: int

    @property
    def scheme(self) -> str:
        """The rhyme letters, a stanza a group: "AABA BBCB CCDC DDDD"."""
        groups, current = [], ""
        for row in self.rows:
            if row.blank:
                if current:
                    groups.append(current)
                current = ""
            elif row.rhyme:
                current += row.rhyme
        if current:
            groups.append(current)
        return " ".join(groups)

    @property
    def unknown(self) -> tuple[str, ...]:
        """Every word CMUdict lacks, once each, in order of appearance."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row.unknown))
        return tuple(seen)


# Words as `poem_metrics.words` reads them (letters and apostrophes), and numbers, which a
# poet counts as words and a reader says aloud.
_WORD = re.compile(r"[a-z']*[a-z][a-z']*|\d+")


def line_words(text: str) -> list[str]:
    """The words of a line, lower-cased, curly apostrophes made straight, quotes stripped."""
    return [w.strip("'") for w in _WORD.findall(text.lower().replace("’", "'"))]


@lru_cache(maxsize=65536)
def word_sound(word: str) -> WordSound:
    """How CMUdict says `word` (lower case, as `line_words` gives it), or an estimate."""
    phones = _cmudict().get(word)
    if phones:
        return WordSound(word, tuple(p[-1] for p in phones.split() if p[-1].isdigit()), 0)
    return WordSound(word, None, estimate_syllables(word))


_SOUNDED_ES = ("ses", "zes", "ces", "ges", "ches", "shes", "xes")


def estimate_syllables(word: str) -> int:
    """Syllables of a word CMUdict lacks, by spelling: `poem_metrics.syllables` (vowel
    groups, a silent final e), after an ending that adds no syllable is cut ("toves" is
    read as "tove", "jumped" as "jumpe") and an apostrophe inside the word is read as the
    elided vowel it stands for ("o'er", "heav'n", "ev'ry": one, one, two); a number, one
    a digit (a rough reading, flagged like any estimate)."""
    if word.isdigit():
        return len(word)
    word = word.replace("'", "")
    if word.endswith("es") and len(word) > 3 and not word.endswith(_SOUNDED_ES):
        word = word[:-1]
    elif word.endswith("ed") and len(word) > 3 and not word.endswith(("ted", "ded")):
        word = word[:-1]
    return syllables(word)


def _word_marks(sound: WordSound) -> list[str]:
    if sound.stresses is None:
        return [UNKNOWN] * sound.estimate
    digits = sound.stresses
    if len(digits) == 1:
        return [UNSTRESSED if sound.word in FUNCTION_WORDS else STRESSED]
    marks = []
    for i, digit in enumerate(digits):
        if digit == "1":
            marks.append(STRESSED)
        elif digit == "2":
            beside_primary = (i > 0 and digits[i - 1] == "1") or (i + 1 < len(digits) and digits[i + 1] == "1")
            marks.append(UNSTRESSED if beside_primary else STRESSED)
        else:
            marks.append(UNSTRESSED)
    return marks


@lru_cache(maxsize=4096)
def line_craft(text: str) -> LineCraft:
    """Syllables, stress and unknown words of one line (no rhyme: that needs the poem).
    Cached by the line's text, so a poem redrawn on each key press measures only the line
    being typed."""
    if not text.strip():
        return LineCraft(text, 0, "", blank=True)
    found = line_words(text)
    marks: list[str] = []
    monosyllable: list[bool] = []  # per syllable: whether it is a whole (known) word
    unknown: list[str] = []
    for word in found:
        sound = word_sound(word)
        if sound.stresses is None:
            unknown.append(word)
        word_marks = _word_marks(sound)
        marks.extend(word_marks)
        monosyllable.extend([len(word_marks) == 1 and sound.stresses is not None] * len(word_marks))
    _scan(marks, monosyllable)
    end = end_sound(found[-1]) if found else ""
    return LineCraft(text, len(marks), " ".join(marks), tuple(unknown), end, words=len(found))


def _scan(marks: list[str], monosyllable: list[bool]) -> None:
    """Promotion and demotion of one-syllable words (see the module docstring)."""
    original = list(marks)
    changed = -2
    last = len(marks) - 1
    for i in range(1, len(marks)):
        if changed == i - 1:
            continue
        before, here = original[i - 1], original[i]
        after = original[i + 1] if i < last else None
        if here == UNSTRESSED and before == UNSTRESSED and (
                after == UNSTRESSED or (after is None and monosyllable[i])):
            marks[i], changed = STRESSED, i
        elif monosyllable[i] and here == STRESSED and before == STRESSED and after == STRESSED:
            marks[i], changed = UNSTRESSED, i


# CMUdict keeps vowels apart before R that rhyme to the ear ("here" IY R, "queer" IH R).
_BEFORE_R = {"IY R": "IH R", "EY R": "EH R", "UW R": "UH R"}


@lru_cache(maxsize=65536)
def end_sound(word: str) -> str:
    """The sound a line's end word rhymes on: `poem_metrics.rhyme_key`, with the vowels
    before R that CMUdict tells apart and a reader does not merged."""
    key = rhyme_key(word)
    for spelled, heard in _BEFORE_R.items():
        if key == spelled or key.startswith(spelled + " "):
            return heard + key[len(spelled):]
    return key


def _letter(n: int) -> str:
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("A") + r) + out
    return out


def poem_craft(poem: str) -> PoemCraft:
    """Every line of `poem` measured, with rhyme letters over the whole poem."""
    measured = [line_craft(text) for text in poem.split("\n")]
    letters: dict[str, str] = {}
    counts: dict[str, int] = {}
    for row in measured:
        if row.end_sound:
            counts[row.end_sound] = counts.get(row.end_sound, 0) + 1
    rows = []
    for row in measured:
        if row.end_sound:
            letter = letters.setdefault(row.end_sound, _letter(len(letters)))
            row = replace(row, rhyme=letter, rhymed=counts[row.end_sound] > 1)
        rows.append(row)
    stanzas, inside = 0, False
    for row in rows:
        if not row.blank and not inside:
            stanzas += 1
        inside = not row.blank
    return PoemCraft(tuple(rows), sum(1 for r in rows if not r.blank),
                     sum(r.words for r in rows), stanzas)


_LINE_BREAK_MARK = re.compile(r"\s+/\s+")  # as `verse.quotes` reads a quote across a break


def quoted_rows(poem: str, quoted: Iterable[str]) -> frozenset[int]:
    """The rows (0-based text lines of `poem`) that a quoted passage covers, in whole or in
    part; matched as `verse.quotes` matches, ignoring case and runs of whitespace, with a
    quote's " / " read as a line break."""
    flat_words: list[str] = []
    word_rows: list[int] = []
    for row, text in enumerate(poem.split("\n")):
        for word in text.split():
            flat_words.append(word.lower())
            word_rows.append(row)
    flat = " ".join(flat_words)
    starts, at = [], 0
    for word in flat_words:
        starts.append(at)
        at += len(word) + 1
    rows: set[int] = set()
    for quote in quoted:
        for needle in (flatten(quote), flatten(_LINE_BREAK_MARK.sub(" ", quote))):
            found = flat.find(needle) if needle else -1
            if found < 0:
                continue
            end = found + len(needle)
            rows.update(word_rows[i] for i, s in enumerate(starts) if s < end and s + len(flat_words[i]) > found)
            break
    return frozenset(rows)
