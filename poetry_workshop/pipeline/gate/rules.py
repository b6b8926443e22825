"""The quality gate: which generated records are good enough to teach from, and why not.

Each rule looks at one thing (LLM-isms against the human baseline, clichés and the
machine-poem signature, form against the brief, grounded critique, focused revision,
hygiene, copying, near-duplicates) and returns `Failure(rule, evidence)`: the phrase, the
line, the number that broke it. A record is kept only when no rule fails; every failure is
logged, so the table by rule and task shows what each rule costs. Thresholds live in
config/quality_gate.toml. The critique and revision measures the rules read are in
`verse.critique_measures` (the eval reads them too); running the gate over a file is `run`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from poetry_workshop.config.schema import QualityGateConfig
from poetry_workshop.pipeline.gate import corpus_weights, lexicon
from poetry_workshop.pipeline.gate.near_duplicates import NearDuplicates
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import BriefSpec, parse_brief
from poetry_workshop.verse.critique_measures import (
    critique_shape,
    normalise_line,
    quote_free,
    revision_delta,
    ungrounded_quotes,
)
from poetry_workshop.verse.quotes import cited_lines, flatten, quote_occurs

# Categories of anti_llm_isms.txt measured against the baseline in prose (critiques, lessons),
# and the ones the eval counts as clichés; plural-voice is judged by the we-voice share instead.
# Poems are judged by the corpus-weighted lexicon (gate.lexicon), and the cliché rule for
# verse counts dead metaphors only: "heart" and "soul" are as common in human poems.
SLOP = ("slop-words", "slop-phrases", "contrast-pattern", "closing-epiphany", "assistant-leakage")
CLICHE = ("dead-metaphors", "poetic-defaults")
DEAD_METAPHORS = ("dead-metaphors",)
# Each machine-shape signal a brief did not ask for (all quatrains, heavy end rhyme, a we-voice,
# every line end-stopped, no line punctuated) weighs how much likelier it is in machine poems
# than in human ones on ../shared/corpus (corpus_weights.SIGNALS, the log of the ratio of the
# two rates: every line end-stopped is about 9x likelier, so 2.2; heavy rhyme barely, 0.3). A
# poem fails when score / allowance + sum(signal weights) / SIGNAL_SCALE > 1: all quatrains with
# every line end-stopped need a tenth of the vocabulary allowance, all quatrains alone more
# than half. Chosen on ../shared/corpus with bench/gate_score.py (3.5 rejects one more machine
# poem there but two more human ones, and no more machine poems on held-out folds), checked
# with bench/gate_crossval.py.
SIGNAL_SCALE = 4.0

_TEMPLATE = re.compile(r"<\|[a-z_]{2,30}\|>|</?s>|\[/?INST\]|<<SYS>>|^\s*(?:assistant|user|system)\s*:|^\s*```",
                       re.IGNORECASE | re.MULTILINE)
# _TEMPLATE cannot match a text that holds none of these.
_TEMPLATE_HINTS = ("<|", "<s>", "</s>", "inst]", "<<sys>>", "assistant", "user", "system", "```")


@dataclass(frozen=True)
class Failure:
    rule: str
    evidence: str


class QualityGate:
    def __init__(self, config: QualityGateConfig, matcher: pm.LlmIsmMatcher, baseline: float,
                 training_poems: Iterable[tuple[str, str]] = ()):
        self.cfg = config
        self.matcher = matcher
        self.baseline = baseline
        n = config.hygiene.copy_ngram
        # n-gram text -> where it came from; text, not hash(), so worker processes started
        # fresh (spawn, as on macOS) agree with this one
        self._sources: dict[str, str] = {}
        for where, poem in training_poems:
            for gram in pm.ngrams(pm.words(poem), n):
                self._sources.setdefault(" ".join(gram), where)
        self.dedupe = NearDuplicates(config.hygiene.near_duplicate_jaccard)
        self.lexicon = lexicon.poem_lexicon(matcher.isms)
        self._last_lexicon: tuple[str, tuple] | None = None
        # The persona file weighs a category, not an entry: one weight for every dead metaphor.
        dead = {ism.weight for ism in matcher.isms if ism.category in DEAD_METAPHORS}
        self._dead_weight = dead.pop() if len(dead) == 1 and matcher.inflections else None
        # A person whose own poems use more of these words than the default baseline moves the
        # poem bound's rate with them (never below the corpus-fitted rate).
        self.rate_scale = max(1.0, baseline / config.llm_isms.default_baseline_per_1k) \
            if config.llm_isms.default_baseline_per_1k else 1.0

    # ------------------------------------------------------------------- text rules

    def llm_isms(self, text: str, label: str) -> list[Failure]:
        """LLM-isms in prose (critiques, lessons, briefs) against the person's baseline."""
        hits = pm.once(self.matcher.hits(text, SLOP))
        weight = sum(h.weight for h in hits)
        if weight <= self.cfg.llm_isms.min_weighted_hits:
            return []  # too few to judge, whatever the rate: the words need not be counted
        n = pm.word_count(text)
        rate = 1000.0 * weight / n if n else 0.0
        limit = self.cfg.llm_isms.max_ratio_to_baseline * self.baseline
        if rate > limit:
            shown = ", ".join(f'"{h.phrase}" (line {h.line})' for h in hits[:6])
            return [Failure("llm-isms", f"{label}: {rate:.1f} weighted hits per 1,000 words, over "
                                        f"{limit:.1f} ({self.cfg.llm_isms.max_ratio_to_baseline:g}x the human "
                                        f"{self.baseline:.1f}): {shown}")]
        return []

    def poem_lexicon(self, poem: str) -> tuple[float, float, tuple[pm.Hit, ...]]:
        """The poem's machine-vocabulary score, its length-aware limit, and the hits behind it."""
        last = self._last_lexicon
        if last is not None and last[0] == poem:  # llm-isms, then machine-shape, ask about one poem
            return last[1]
        score, hits = lexicon.score(self.lexicon, poem)
        result = score, lexicon.BOUND.limit(pm.word_count(poem), self.rate_scale), tuple(hits)
        self._last_lexicon = (poem, result)
        return result

    def poem_llm_isms(self, poem: str, label: str) -> list[Failure]:
        """Machine vocabulary in a poem, weighted by the corpus, against a length-aware bound."""
        score, limit, hits = self.poem_lexicon(poem)
        if score > limit:
            n = pm.word_count(poem)
            return [Failure("llm-isms", f"{label}: machine-vocabulary score {score:.1f} over {limit:.1f} "
                                        f"(allowance {lexicon.BOUND.allowance:g} + {1000 * lexicon.BOUND.per_word * self.rate_scale:.1f} "
                                        f"per 1,000 words x {n} words): {_shown(hits)}")]
        return []

    def dead_metaphors(self, poem: str) -> list[pm.Hit]:
        """The persona's dead metaphors in a poem, at the persona's weight. The poem lexicon holds
        the same entries (at corpus weights) and has just read the poem, so its hits are
        reweighted rather than the poem matched again."""
        if self._dead_weight is None:
            return pm.once(self.matcher.hits(poem, DEAD_METAPHORS))
        return pm.once([replace(h, weight=self._dead_weight) for h in self.lexicon.hits(poem, DEAD_METAPHORS)])

    def shape_signals(self, poem: str, spec: BriefSpec) -> list[tuple[str, str]]:
        """The machine-poem signature the brief did not ask for: (signal, evidence) pairs."""
        rules = self.cfg.poetic_defaults
        out = []
        if not spec.quatrains_ok and pm.default_quatrains(poem):
            out.append(("quatrains", f"every stanza is four lines ({len(pm.stanzas(poem))} stanzas)"))
        if not spec.rhyme_ok:
            share, pairs = pm.end_rhyme_share(poem)
            if share >= rules.max_end_rhyme_share:
                out.append(("end-rhyme", f"{share:.0%} of line ends rhyme ({', '.join(f'{a}/{b}' for a, b in pairs[:4])})"))
        if not spec.we_ok:
            share, count = pm.plural_voice_share(poem)
            if count >= rules.min_we_count and share > rules.max_we_share:
                out.append(("we-voice", f"{count} we/us/our, {share:.0%} of its pronouns"))
        if not spec.end_stopped_ok and pm.end_stopped(poem):
            out.append(("end-stopped", "every line ends on punctuation"))
        elif not spec.unpunctuated_ok and pm.unpunctuated(poem):
            out.append(("unpunctuated", "capitalised lines with no punctuation at their ends"))
        return out

    def poetic_defaults(self, poem: str, spec: BriefSpec, label: str) -> list[Failure]:
        """Dead metaphors, and the machine-poem shape judged as a whole when the brief leaves
        the form open: quatrains, rhyme, a we-voice, end-stopped lines and machine vocabulary
        together, so that a rhymed human ballad is not rejected for its rhyme alone."""
        rules = self.cfg.poetic_defaults
        out = []
        hits = self.dead_metaphors(poem)
        weight = sum(h.weight for h in hits)
        if weight > rules.max_cliche_weight:
            out.append(Failure("cliches", f"{label}: dead metaphors weigh {weight:g}, over {rules.max_cliche_weight:g}: "
                                          + _shown(hits)))
        if not spec.open_form:
            return out
        signals = self.shape_signals(poem, spec)
        if not signals:
            return out
        score, limit, vocab = self.poem_lexicon(poem)
        shape = sum(signal_weight(name) for name, _ in signals) / SIGNAL_SCALE
        joint = score / limit + shape
        if joint > 1 and score <= limit:  # over the limit alone, llm-isms has said so
            words = f"machine vocabulary at {score / limit:.0%} of its allowance" + (f" ({_shown(vocab, 4)})" if vocab else "")
            out.append(Failure("machine-shape", f"{label}: " + "; ".join(why for _, why in signals)
                                                + f" (shape {shape:.2f}); {words}: together {joint:.2f}, over 1, "
                                                "and the brief did not ask for them"))
        return out

    def form(self, poem: str, spec: BriefSpec, label: str) -> list[Failure]:
        slack = self.cfg.form.line_slack
        lines = pm.poem_lines(poem)
        shape = pm.stanzas(poem)
        verse = lines
        if spec.lines_per or spec.metre:
            # A stanza of one short line is a heading ("II.", a title), not a line of the form.
            blocks = [block.split("\n") for block in re.split(r"\n\s*\n", poem.strip())]
            verse = [line.strip() for block in blocks if not (len(block) == 1 and len(block[0].split()) <= 3)
                     for line in block if line.strip()]
        count = len(verse)
        lo, hi = spec.min_lines, spec.max_lines
        if spec.lines_per and lo == hi == spec.lines_per:
            # A sequence of sonnets is sonnets: 28 lines are two.
            lo = hi = spec.lines_per * max(1, round(count / spec.lines_per))
        out = []
        if lo is not None and count < lo - slack:
            out.append(Failure("form", f"{label}: {count} lines; the brief asks for at least {lo}"))
        if hi is not None and count > hi + slack:
            out.append(Failure("form", f"{label}: {count} lines; the brief asks for at most {hi}"))
        if spec.metre and verse:
            mean = sum(pm.line_syllables(line) for line in verse) / len(verse)
            if not any(low <= mean <= high for low, high in spec.metre):
                ranges = " or ".join(f"{low:g}-{high:g}" for low, high in spec.metre)
                out.append(Failure("form", f"{label}: lines average {mean:.1f} syllables; a {spec.form} runs {ranges}"))
        if spec.stanza_lines and len(shape) > 1:
            odd = [n for n in shape if n != spec.stanza_lines]
            if odd:
                out.append(Failure("form", f"{label}: stanzas of {odd} lines in a {spec.form} "
                                           f"(stanzas of {spec.stanza_lines})"))
        if spec.syllables:
            pattern = spec.syllables
            for number, line in enumerate(lines, start=1):
                want = pattern[(number - 1) % len(pattern)]
                got = pm.line_syllables(line)
                if abs(got - want) > self.cfg.form.syllable_slack:
                    out.append(Failure("form", f"{label}: line {number} \"{line}\" has {got} syllables; "
                                               f"a {spec.form} wants {want}"))
                    break
        if spec.rhyme is True and pm.end_rhyme_share(poem)[0] == 0 and len(lines) > 2:
            out.append(Failure("form", f"{label}: no line ends rhyme; the brief asks for rhyme"))
        return out

    def critique(self, text: str, poems: list[str], label: str, whole: bool = True) -> list[Failure]:
        """Grounded (quotes occur, cited lines exist), actionable, not mostly praise, not a rewrite."""
        rules = self.cfg.critique
        out = []
        missing = ungrounded_quotes(text, poems)
        if missing:
            out.append(Failure("grounded-quotes", f"{label}: quotes words that are not in the poem: "
                                                  + "; ".join(f'"{q[:60]}"' for q in missing[:3])))
        longest = max(len(pm.poem_lines(p)) for p in poems)
        bad_lines = sorted({n for n in cited_lines(text) if n < 1 or n > longest})
        if bad_lines:
            out.append(Failure("cited-lines", f"{label}: cites line {bad_lines[0]}; the poem has {longest} lines"))
        if not whole:
            return out
        shape = critique_shape(text)
        if shape.suggestions < rules.min_suggestions:
            out.append(Failure("actionable", f"{label}: no actionable suggestion in {shape.sentences} sentences"))
        if shape.sentences and shape.praise_share > rules.max_praise_share:
            out.append(Failure("praise-share", f"{label}: {shape.praise} of {shape.sentences} sentences are praise"))
        known = {normalise_line(line) for p in poems for line in pm.poem_lines(p)}
        # The longest run of verse-like lines the poem does not hold (the first, of equal runs).
        run = longest = 0
        first = example = ""
        for line in text.splitlines():
            if 0 < len(line.split()) <= 12 and not line.rstrip().endswith((".", "?", ":")) \
                    and normalise_line(line) not in known:
                first = first if run else line
                run += 1
                if run > longest:
                    longest, example = run, first
            else:
                run = 0
        if longest > rules.max_new_verse_lines:
            out.append(Failure("rewrite", f"{label}: {longest} lines of new verse, e.g. "
                                          f"\"{example.strip()[:60]}\"; the Educator never rewrites the poem"))
        return out

    def revision(self, before: str, critique: str, after: str, label: str) -> list[Failure]:
        """The revision changes the lines the critique quoted, and not much else."""
        rules = self.cfg.revision
        delta = revision_delta(before, critique, after)
        out = []
        if delta.flagged_changed is not None and delta.flagged_changed < rules.min_flagged_changed:
            out.append(Failure("revision-focus", f"{label}: changed {delta.flagged_changed:.0%} of the {delta.flagged} "
                                                 f"lines the critique quoted; \"{delta.unchanged_flagged[0][:60]}\" "
                                                 "is untouched"))
        if delta.unflagged_change is not None and delta.unflagged_change > rules.max_unflagged_change:
            out.append(Failure("revision-scope", f"{label}: {delta.unflagged_change:.0%} change in the {delta.others} "
                                                 "lines the critique did not quote; a revision should change what "
                                                 "was flagged"))
        return out

    def hygiene(self, text: str, label: str) -> list[Failure]:
        h = self.cfg.hygiene
        out = []
        if not h.min_chars <= len(text) <= h.max_chars:
            out.append(Failure("length", f"{label}: {len(text)} characters, outside {h.min_chars}-{h.max_chars}"))
        lowered = text.lower()
        m = _TEMPLATE.search(text) if any(map(lowered.__contains__, _TEMPLATE_HINTS)) else None
        if m:
            out.append(Failure("template-tokens", f"{label}: contains {m.group(0).strip()!r}"))
        return out

    def copying(self, text: str, label: str, source: str | None = None) -> list[Failure]:
        """Verbatim runs from the person's poems (or the record's own source poem)."""
        if source is None and not self._sources:  # no poems of the person's to copy from
            return []
        n = self.cfg.hygiene.copy_ngram
        grams = pm.ngrams(pm.words(text), n)
        if not grams:
            return []
        if source is not None:
            shared = len(grams & pm.ngrams(pm.words(source), n)) / len(grams)
            where = "its source poem"
        else:
            hits = Counter(self._sources[g] for g in map(" ".join, grams) if g in self._sources)
            if not hits:
                return []
            where, count = hits.most_common(1)[0]
            shared = count / len(grams)
        if shared > self.cfg.hygiene.max_copy_share:
            return [Failure("copying", f"{label}: {shared:.0%} of its {n}-word runs come from {where}")]
        return []

    # -------------------------------------------------------------------- per task

    def check_poem(self, poem: str, spec: BriefSpec, label: str = "poem") -> list[Failure]:
        """Every rule a poem answers to on its own (the eval scores poems with it too)."""
        return (self.hygiene(poem, label) + self.poem_llm_isms(poem, label) + self.poetic_defaults(poem, spec, label)
                + self.form(poem, spec, label) + self.copying(poem, label))

    def check(self, record: dict) -> list[Failure]:
        task, inputs, out = record["task"], record.get("inputs") or {}, record["output"]
        f: list[Failure] = []
        if task == "critiques":
            text = out["critique"]
            f += self.hygiene(text, "critique") + self.llm_isms(quote_free(text), "critique")
            f += self.critique(text, [inputs["poem"]], "critique")
        elif task == "briefs":
            brief = "\n".join(f"{k.capitalize()}: {v}" for k, v in out["brief"].items())
            f += self.hygiene(brief, "brief") + self.llm_isms(out["request"] + "\n" + brief, "brief")
            if inputs.get("source_poem"):
                f += self.copying(brief, "brief", inputs["source_poem"])
        elif task == "lessons":
            f += self.hygiene(out["lesson"], "lesson") + self.llm_isms(quote_free(out["lesson"]), "lesson")
        elif task == "autopsies":
            text, poem = out["autopsy"], inputs["poem"]
            f += self.hygiene(text, "autopsy") + self.critique(text, [poem], "autopsy", whole=False)
            n_lines = len(pm.poem_lines(poem))
            flat = flatten(poem)
            for p in out["phrases"]:
                if not quote_occurs(p["phrase"], flat):
                    f.append(Failure("grounded-quotes", f'autopsy: "{p["phrase"][:60]}" is not in the poem'))
                if not 1 <= p["line"] <= n_lines:
                    f.append(Failure("cited-lines", f"autopsy: line {p['line']} cited; the poem has {n_lines} lines"))
        elif task == "comparisons":
            text = out["comparison"]
            f += self.hygiene(text, "comparison") + self.llm_isms(quote_free(text), "comparison")
            f += self.critique(text, [inputs["poem_a"], inputs["poem_b"]], "comparison")
        elif task == "dialogues":
            f += self._dialogue(inputs, out["turns"])
        elif task == "poet-pairs":
            spec = parse_brief(inputs.get("brief", ""))
            for label in ("poem", "revision"):
                f += self.check_poem(out[label], spec, label)
            f += self.hygiene(out["critique"], "critique") + self.critique(out["critique"], [out["poem"]], "critique")
            f += self.revision(out["poem"], out["critique"], out["revision"], "revision")
        return f

    def _dialogue(self, inputs: dict, turns: list[dict]) -> list[Failure]:
        original = inputs["poem"]
        # The poem's own habits are not held against its revisions: a rhymed poem stays rhymed.
        spec = BriefSpec(rhyme=True if pm.end_rhyme_share(original)[0] >= self.cfg.poetic_defaults.max_end_rhyme_share else None,
                         quatrains_ok=pm.default_quatrains(original),
                         we_ok=pm.plural_voice_share(original)[1] >= self.cfg.poetic_defaults.min_we_count,
                         end_stopped_ok=pm.end_stopped(original), unpunctuated_ok=pm.unpunctuated(original))
        f: list[Failure] = []
        before, direction = original, inputs["critique"]
        for k, turn in enumerate(turns, start=1):
            poem, response = turn["revision"], turn["response"]
            f += self.hygiene(poem, f"revision {k}") + self.poem_llm_isms(poem, f"revision {k}")
            f += self.poetic_defaults(poem, spec, f"revision {k}")
            f += self.revision(before, direction, poem, f"revision {k}")
            f += self.hygiene(response, f"response {k}") + self.llm_isms(quote_free(response), f"response {k}")
            f += self.critique(response, [poem, before], f"response {k}", whole=False)
            before, direction = poem, response
        return f


def signal_weight(name: str) -> float:
    """A shape signal's corpus weight (corpus_weights.SIGNALS); read at call time, so that
    bench/gate_crossval.py can swap in figures derived on other folds."""
    return corpus_weights.SIGNALS[name][0]


def _shown(hits: list[pm.Hit], most: int = 6) -> str:
    return ", ".join(f'"{h.phrase}" (line {h.line})' for h in sorted(hits, key=lambda h: h.line)[:most])

