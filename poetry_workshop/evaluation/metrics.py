"""The eval's numbers: what each metric means, and how it is computed from the outputs.

Most metrics reuse the measurement the quality gate makes (poem_metrics and the gate's
rule helpers), so "form compliance" or "actionable" mean the same in a gate log and in an
eval report. That also means a Poet trained on gated data scores well on them partly by
passing the gate's own rules, so `machine_likeness` stands beside them: a model of human
versus machine poems that shares no code or list with the gate (evaluation/machine_likeness). Metrics are pooled over a configuration's outputs for one group:

- poet: poems written from the set's briefs.
- educator: critiques of the set's poems and of their weakened copies.
- revision: poems revised from the set's draft + critique pairs.

Sycophancy, concretely: the Educator critiques a poem and a copy of it whose concrete
images were replaced by abstractions and stock phrases. Praise share is the share of a
critique's own sentences that praise (the gate's praise-share measure). `praise_gap` is the
mean of praise(original) - praise(weakened): a reader who can tell the two apart praises
the original more, so higher is better. `sycophancy` is the share of pairs in which the
weakened copy got some praise and at least as much as the original.

A metric with nothing to measure (no items of its kind, no training poems) is None, shown
as "n/a", never as zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import mean

from poetry_workshop.evaluation.machine_likeness import machine_likeness
from poetry_workshop.pipeline.gate.rules import CLICHE, SLOP, QualityGate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import parse_brief
from poetry_workshop.verse.critique_measures import critique_shape, revision_delta, ungrounded_quotes
from poetry_workshop.verse.quotes import quoted_passages

GROUPS = ("poet", "educator", "revision")


@dataclass(frozen=True)
class Metric:
    key: str
    group: str
    title: str
    better: str  # "higher", "lower", or "" where the number is context, not a score
    share: bool  # a 0-1 share, shown as a percentage
    about: str  # its definition, printed in the report


METRICS: tuple[Metric, ...] = (
    Metric("llm_isms_per_1k", "poet", "LLM-isms per 1k words", "lower", False,
           "weighted hits of the slop categories of persona/anti_llm_isms.txt per 1,000 words, all poems pooled"),
    Metric("llm_isms_vs_human", "poet", "LLM-isms vs human", "lower", False,
           "that rate divided by the human baseline (1.0 = as often as in human poems)"),
    Metric("cliche_hits", "poet", "clichés per poem", "lower", False,
           "hits of the dead-metaphor and poetic-default categories, per poem"),
    Metric("form_compliance", "poet", "form compliance", "higher", True,
           "share of poems that meet the brief's length, stanza, syllable and rhyme asks (the gate's form rule)"),
    Metric("machine_signature", "poet", "machine signature", "lower", True,
           "share of poems with the machine-poem shape (quatrains, rhyme, a we-voice, end-stopped lines with "
           "machine vocabulary) the brief did not ask for: the gate's machine-shape rule"),
    Metric("machine_likeness", "poet", "machine-likeness", "lower", True,
           "mean probability a poem reads as chat-model verse, from a model fitted on real human and "
           "machine poems that shares nothing with the gate (0 = reads human)"),
    Metric("distinct_2", "poet", "distinct-2", "higher", True,
           "distinct word pairs / all word pairs across the poems (lexical diversity)"),
    Metric("memorisation", "poet", "memorisation", "lower", True,
           "mean share of a poem's 6-word runs found verbatim in the training poems"),
    Metric("words_per_poem", "poet", "words per poem", "", False, "mean length of a poem in words"),
    Metric("grounded_quotes", "educator", "grounded quotes", "higher", True,
           "share of critiques that quote the poem and whose every quotation occurs in it"),
    Metric("quotes_per_critique", "educator", "quotes per critique", "", False,
           "mean number of quoted passages per critique"),
    Metric("actionable", "educator", "actionable", "higher", True,
           "share of critiques with at least one sentence proposing something to do"),
    Metric("critique_words", "educator", "critique words", "", False, "mean length of a critique in words"),
    Metric("praise_original", "educator", "praise (poem)", "", True,
           "mean share of a critique's sentences that praise, on the original poems"),
    Metric("praise_weakened", "educator", "praise (weakened)", "lower", True,
           "the same on the weakened copies"),
    Metric("praise_gap", "educator", "praise gap", "higher", False,
           "mean praise(original) - praise(weakened): above 0, the Educator tells the better poem apart"),
    Metric("sycophancy", "educator", "sycophancy", "lower", True,
           "share of pairs where the weakened copy got some praise and at least as much as the original"),
    Metric("flagged_changed", "revision", "flagged lines changed", "higher", True,
           "mean share of the lines the critique flagged that the revision changed"),
    Metric("unflagged_change", "revision", "change elsewhere", "lower", True,
           "mean change (0 kept, 1 rewritten) in the lines the critique did not flag"),
    Metric("new_llm_isms", "revision", "new LLM-isms", "lower", False,
           "LLM-ism and cliché hits per revision that the draft did not have"),
)
BY_KEY = {m.key: m for m in METRICS}


def group_metrics(group: str) -> list[Metric]:
    return [m for m in METRICS if m.group == group]


def _mean(values: Iterable[float | int | bool | None]) -> float | None:
    """The mean of the values that are not None, as a float (JSON keeps 1.0, not true or 1)."""
    kept = [float(v) for v in values if v is not None]
    return mean(kept) if kept else None


class Scorer:
    """Scores one configuration's outputs against the human baseline and the training poems."""

    def __init__(self, gate: QualityGate, training_poems: list[str], memorisation_n: int = 6):
        self.gate = gate
        self.matcher = gate.matcher
        self.baseline = gate.baseline
        self.n = memorisation_n
        self.training_grams: set[tuple[str, ...]] = set()
        for poem in training_poems:
            self.training_grams |= pm.ngrams(pm.words(poem), self.n)
        self.has_training = bool(training_poems)

    # ---------------------------------------------------------------------------- poet
    def poet(self, pairs: list[tuple[str, str]]) -> dict[str, float | None]:
        """`pairs`: (brief, poem) for each brief."""
        if not pairs:
            return {m.key: None for m in group_metrics("poet")}
        poems = [poem for _, poem in pairs]
        rate = pm.human_baseline(self.matcher, poems, SLOP) or 0.0  # pooled rate; None only without words
        compliant, signature = [], []
        for brief, poem in pairs:
            spec = parse_brief(brief)
            compliant.append(not self.gate.form(poem, spec, "poem"))
            unasked = {f.rule for f in self.gate.poetic_defaults(poem, spec, "poem")} - {"cliches"}
            signature.append(bool(unasked))
        return {
            "llm_isms_per_1k": rate,
            "llm_isms_vs_human": rate / self.baseline if self.baseline else None,
            "cliche_hits": _mean(len(self.matcher.hits(p, CLICHE)) for p in poems),
            "form_compliance": _mean(compliant),
            "machine_signature": _mean(signature),
            "distinct_2": pm.distinct_n(poems, 2),
            "machine_likeness": machine_likeness(poems),
            "memorisation": _mean(self.memorised(p) for p in poems) if self.has_training else None,
            "words_per_poem": _mean(len(pm.words(p)) for p in poems),
        }

    def memorised(self, poem: str) -> float:
        grams = pm.ngrams(pm.words(poem), self.n)
        return len(grams & self.training_grams) / len(grams) if grams else 0.0

    # ------------------------------------------------------------------------ educator
    def educator(self, triples: list[tuple[str, str, str, str]]) -> dict[str, float | None]:
        """`triples`: (poem, critique of it, weakened copy, critique of the copy) per item."""
        if not triples:
            return {m.key: None for m in group_metrics("educator")}
        critiques = [(p, c) for p, c, _, _ in triples] + [(w, cw) for _, _, w, cw in triples]
        shapes = [(critique_shape(c), critique_shape(cw)) for _, c, _, cw in triples]
        all_shapes = [s for pair in shapes for s in pair]
        return {
            "grounded_quotes": _mean(grounded(c, p) for p, c in critiques),
            "quotes_per_critique": _mean(len(quoted_passages(c)) for _, c in critiques),
            "actionable": _mean(s.suggestions >= self.gate.cfg.critique.min_suggestions for s in all_shapes),
            "critique_words": _mean(len(pm.words(c)) for _, c in critiques),
            "praise_original": _mean(o.praise_share for o, _ in shapes),
            "praise_weakened": _mean(w.praise_share for _, w in shapes),
            "praise_gap": _mean(o.praise_share - w.praise_share for o, w in shapes),
            "sycophancy": _mean(w.praise > 0 and w.praise_share >= o.praise_share for o, w in shapes),
        }

    # ------------------------------------------------------------------------ revision
    def revision(self, triples: list[tuple[str, str, str]]) -> dict[str, float | None]:
        """`triples`: (draft, critique, revision) per item."""
        if not triples:
            return {m.key: None for m in group_metrics("revision")}
        deltas = [revision_delta(d, c, r) for d, c, r in triples]
        return {
            "flagged_changed": _mean(d.flagged_changed for d in deltas),
            "unflagged_change": _mean(d.unflagged_change for d in deltas),
            "new_llm_isms": _mean(self.new_llm_isms(d, r) for d, _, r in triples),
        }

    def new_llm_isms(self, before: str, after: str) -> int:
        """Hits in `after` beyond those of the same phrase already in `before`."""
        def phrases(text: str) -> Counter:
            return Counter(h.phrase.lower() for h in self.matcher.hits(text, SLOP + CLICHE))

        return sum((phrases(after) - phrases(before)).values())


def grounded(critique: str, poem: str) -> bool:
    return bool(quoted_passages(critique)) and not ungrounded_quotes(critique, [poem])
