"""The gate's poem lexicon: which words and phrases make a poem read as machine-written, and
how much each one says.

The entries are persona/anti_llm_isms.txt's (less the "we" voice, judged as a share
elsewhere), a few closing formulas (`CLOSING_FORMULAS`) and the corpus markers that
bench/gate_weights.py found: words and phrases
frequent in machine poems of several generators and prompts and absent from the human
ones. Each entry's weight is its smoothed log-odds, machine against human, on the corpus
(`corpus_weights`, derived by that script and committed; the poems are not): "symphony"
(no human poem, 35 machine ones) weighs about 4, "heart" (a quarter of the human poems, a
third of the machine ones) almost nothing. Assistant leakage keeps the file's weight: the
corpus had its chat wrappers removed, so it says nothing about them.

A poem's lexicon score is the sum of the weights of the entries it holds, inflected forms
included, each entry once and each stretch of text once; it is judged against a length-aware bound, an allowance
plus a rate per word (`LexiconBound`), both fitted on the human poems by the same script.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from poetry_workshop.pipeline.gate import corpus_weights as figures
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.workshop.persona import LlmIsm, parse_llm_isms

# Categories whose weights come from the corpus; assistant-leakage keeps the file's.
DERIVED = ("slop-words", "slop-phrases", "contrast-pattern", "closing-epiphany", "poetic-defaults",
           "dead-metaphors", "corpus-markers", "closing-formulas")
KEPT = ("assistant-leakage",)
MARKERS = "corpus-markers"
FORMULAS = "closing-formulas"
# A poem that ends by raising a glass ("Here's to …") or drawing the lesson for everyone ("So
# let us …"): made of function words, so the corpus markers (content words only) cannot find
# them. On ../shared/corpus "here's to" is in 22 machine poems from 18 generators and 4
# prompts, "so let" in 13 from 10 generators and 6 prompts, neither in a human poem. They are
# not in persona/anti_llm_isms.txt because that file is part of every teaching prompt (and
# of its version): these are for the gate to weigh, like the markers.
CLOSING_FORMULAS = ("here's to", "so let")
UNSEEN_WEIGHT = 1.0  # an entry in no poem of the corpus: listed for a reason, so a mild signal


@dataclass(frozen=True)
class LexiconBound:
    """A poem fails when its score exceeds `allowance + per_word * words`: short poems get
    the allowance (no single word rejects a poem), long ones the human rate's multiple."""

    allowance: float
    per_word: float

    def limit(self, words: int, scale: float = 1.0) -> float:
        return self.allowance + scale * self.per_word * words


BOUND = LexiconBound(figures.BOUND["allowance"], figures.BOUND["per_word"])


def marker_entries(markers=None) -> list[LlmIsm]:
    """The corpus markers as entries of their own category."""
    markers = figures.MARKERS if markers is None else markers
    if not markers:
        return []
    return parse_llm_isms(f"[{MARKERS} weight=1.0]\n" + "\n".join(markers), "corpus_weights.MARKERS")


def formula_entries() -> list[LlmIsm]:
    """The closing formulas as entries of their own category."""
    return parse_llm_isms(f"[{FORMULAS} weight=1.0]\n" + "\n".join(CLOSING_FORMULAS), "lexicon.CLOSING_FORMULAS")


def weighted(isms: list[LlmIsm], weights: dict[str, tuple] | None = None) -> list[LlmIsm]:
    """The entries of the derived categories with their corpus weights, and the kept ones as they are."""
    weights = figures.WEIGHTS if weights is None else weights
    out = []
    for ism in isms:
        if ism.category in KEPT:
            out.append(ism)
        elif ism.category in DERIVED:
            figure = weights.get(ism.source)
            out.append(replace(ism, weight=figure[0] if figure else UNSEEN_WEIGHT))
    return out


def poem_lexicon(isms: list[LlmIsm]) -> pm.LlmIsmMatcher:
    """A matcher over the persona file's entries and the corpus markers, with corpus weights."""
    return pm.LlmIsmMatcher(weighted(isms + marker_entries() + formula_entries()), inflections=True)


def score(lexicon: pm.LlmIsmMatcher, poem: str) -> tuple[float, list[pm.Hit]]:
    """The poem's lexicon score and the hits behind it: each stretch of text once, and each
    entry once (the weights are log-odds of a poem holding the entry at all, and a refrain
    that repeats a line should not count its words again)."""
    hits, seen = [], set()
    for hit in pm.once(lexicon.hits(poem)):
        entry = (hit.category, _entry(hit.phrase))
        if hit.weight > 0 and entry not in seen:
            seen.add(entry)
            hits.append(hit)
    return sum(h.weight for h in hits), hits


@lru_cache(maxsize=4096)
def _entry(phrase: str) -> str:
    """The entry a hit's text stands for: its words' inflection keys."""
    return " ".join(map(pm.inflection_key, pm.words(phrase)))
