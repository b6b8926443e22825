"""Machine-likeness: how much a poem reads as written by a chat model, by a small logistic
regression on simple surface features, trained on a corpus of real human and machine poems.

This is the eval's one measure that shares no code with the quality gate: no LLM-ism list,
no gate lexicon, no CMUdict rhyme, no gate threshold. Its features are counted here, from
the text alone (`features`), and its weights (`WEIGHTS`, with the features' means and
spreads) are figures derived by `bench/machine_likeness_fit.py` from ../shared/corpus/ and
committed; the poems are not. A poem's score is the model's probability, 0 (reads human)
to 1 (reads machine), and the eval reports the mean over a configuration's poems.

Read it with its bias in mind: the human poems it learnt from are mostly pre-1930 verse, so
some of what it calls human is period (semicolons, unrhymed long lines), not craft. It is
a second opinion beside the gate's rules, not a verdict on any one poem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
_LINE_END = re.compile(r"[.,;:!?\u2014\u2013)\"'\u2019\u201d-]$")
_FUNCTION = frozenset("""a an the and or but nor so yet for of in on at to from by with into onto upon over under
through as than then that this these those there here where when while what which who whom whose how is are was
were be been am do does did have has had will would shall should can could may might must not no all""".split())
_FIRST = frozenset("i me my mine myself".split())
_PLURAL = frozenset("we us our ours ourselves".split())
_SECOND = frozenset("you your yours yourself".split())
_ABSTRACT = re.compile(r"(?:tion|sion|ness|ity|ment|ance|ence|dom|hood)s?$")

# The features, in the order of the weights: each a plain count or share.
FEATURES = (
    "mean_word_length",       # letters per word
    "distinct_words",         # distinct words / words in the first 120 (vocabulary range)
    "end_stopped_lines",      # share of lines (all but the last) ending on punctuation
    "capitalised_lines",      # share of lines starting with a capital
    "words_per_line",         # mean
    "line_length_spread",     # coefficient of variation of words per line
    "uniform_stanzas",        # 1 when there are two stanzas or more, all the same length
    "four_line_stanzas",      # share of stanzas of four lines
    "first_person",           # I/me/my per word
    "plural_person",          # we/us/our per word
    "second_person",          # you/your per word
    "ing_words",              # words ending in -ing, per word
    "ly_words",               # words ending in -ly, per word
    "abstract_nouns",         # -tion, -ness, -ity, -ment … per word
    "commas_per_line",
    "semicolons_per_line",    # ; and dashes
    "function_words",         # share of very common words
    "spelled_end_rhyme",      # share of line ends whose last two letters match one of the two before
)


def features(poem: str) -> list[float]:
    """The poem's feature values, in the order of FEATURES."""
    lines = [line.strip() for line in poem.splitlines() if line.strip()]
    words = [w.lower().replace("’", "'") for w in _WORD.findall(poem)]
    n_words = max(1, len(words))
    n_lines = max(1, len(lines))
    stanzas, current = [], 0
    for line in poem.splitlines():
        if line.strip():
            current += 1
        elif current:
            stanzas.append(current)
            current = 0
    if current:
        stanzas.append(current)
    per_line = [len(_WORD.findall(line)) for line in lines] or [0]
    mean_line = sum(per_line) / len(per_line)
    spread = (math.sqrt(sum((x - mean_line) ** 2 for x in per_line) / len(per_line)) / mean_line) if mean_line else 0.0
    ends = []
    for line in lines:
        found = _WORD.findall(line)
        if found:
            ends.append(found[-1].lower()[-2:])
    rhymed = sum(1 for i in range(1, len(ends)) if any(ends[i] == ends[j] for j in (i - 1, i - 2) if j >= 0))
    head = words[:120]
    return [
        sum(map(len, words)) / n_words,
        len(set(head)) / max(1, len(head)),
        sum(bool(_LINE_END.search(line)) for line in lines[:-1]) / max(1, len(lines) - 1),
        sum(line[0].isupper() for line in lines) / n_lines,
        mean_line,
        spread,
        1.0 if len(stanzas) >= 2 and len(set(stanzas)) == 1 else 0.0,
        sum(s == 4 for s in stanzas) / max(1, len(stanzas)),
        sum(w in _FIRST for w in words) / n_words,
        sum(w in _PLURAL for w in words) / n_words,
        sum(w in _SECOND for w in words) / n_words,
        sum(w.endswith("ing") and len(w) > 4 for w in words) / n_words,
        sum(w.endswith("ly") and len(w) > 3 for w in words) / n_words,
        sum(bool(_ABSTRACT.search(w)) and len(w) > 5 for w in words) / n_words,
        poem.count(",") / n_lines,
        (poem.count(";") + poem.count("—") + poem.count("--")) / n_lines,
        sum(w in _FUNCTION for w in words) / n_words,
        rhymed / max(1, len(ends) - 1),
    ]


class Model:
    """Standardised features, a weight each and a bias: p = 1 / (1 + e^-(b + w·z))."""

    def __init__(self, means: Iterable[float], scales: Iterable[float], weights: Iterable[float], bias: float):
        self.means, self.scales, self.weights, self.bias = list(means), list(scales), list(weights), bias

    def probability(self, poem: str) -> float:
        z = sum(w * (x - m) / s for w, x, m, s in zip(self.weights, features(poem), self.means, self.scales))
        return 1.0 / (1.0 + math.exp(-(self.bias + z)))

    def contributions(self, poem: str) -> list[tuple[str, float]]:
        """Each feature's push toward machine (+) or human (-), largest first: the why."""
        parts = [(name, w * (x - m) / s) for name, w, x, m, s
                 in zip(FEATURES, self.weights, features(poem), self.means, self.scales)]
        return sorted(parts, key=lambda kv: -abs(kv[1]))


def fit(rows: list[list[float]], labels: list[int], l2: float = 1.0, steps: int = 3000, rate: float = 0.1) -> Model:
    """Logistic regression by gradient descent with an L2 penalty (numpy, no other library)."""
    import numpy as np

    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales == 0] = 1.0
    z = (x - means) / scales
    w = np.zeros(z.shape[1])
    b = 0.0
    n = len(y)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        grad = p - y
        w -= rate * (z.T @ grad / n + l2 * w / n)
        b -= rate * grad.mean()
    return Model(means.round(6).tolist(), scales.round(6).tolist(), w.round(4).tolist(), round(float(b), 4))


def model() -> Model:
    """The committed model (figures from bench/machine_likeness_fit.py)."""
    return Model(MEANS, SCALES, WEIGHTS, BIAS)


def machine_likeness(poems: Iterable[str]) -> float | None:
    """Mean probability that the poems read as machine-written; None without poems."""
    scored = [model().probability(p) for p in poems if p.strip()]
    return sum(scored) / len(scored) if scored else None


# ---- derived figures: written by bench/machine_likeness_fit.py; do not edit by hand ----
# Fitted on 132 human and 146 machine poems (L2 1).
MEANS: list[float] = [4.35477, 0.728433, 0.777297, 0.968468, 7.351589, 0.180773, 0.442446, 0.446177, 0.02332, 0.011165, 0.011404, 0.022662, 0.007128, 0.014337, 0.939988, 0.076161, 0.33765, 0.290721]
SCALES: list[float] = [0.374773, 0.094714, 0.298426, 0.115279, 1.944874, 0.094816, 0.496676, 0.473578, 0.035589, 0.017654, 0.021159, 0.017743, 0.009429, 0.014082, 0.482926, 0.132805, 0.056907, 0.159895]
WEIGHTS: list[float] = [1.2471, -0.2119, -0.0638, -0.6367, -0.3387, -0.4553, 0.0474, 0.961, -0.4964, 0.5318, 0.8131, -0.0915, -0.2945, 0.0458, 1.3929, -2.637, -0.4554, 0.623]
BIAS = -0.3793
