"""The quality gate: which generated records are good enough to teach from, and why not.

Each rule looks at one thing (LLM-isms against the human baseline, clichés and the
machine-poem signature, form against the brief, grounded critique, focused revision,
hygiene, copying, near-duplicates) and returns `Failure(rule, evidence)`: the phrase, the
line, the number that broke it. A record is kept only when no rule fails; every failure is
logged, so the table by rule and task shows what each rule costs. Thresholds live in
config/quality_gate.toml.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from poetry_workshop import locations
from poetry_workshop import poem_metrics as pm
from poetry_workshop.brief_spec import BriefSpec, parse_brief
from poetry_workshop.config_schema import QualityGateConfig
from poetry_workshop.errors import ConfigError
from poetry_workshop.quotes import cited_lines, flatten, locate_quotes, quote_occurs, quoted_passages, quoted_spans

# Categories of anti_llm_isms.txt measured against the baseline, and the ones that make up
# the cliché rule for verse; plural-voice is judged by the we-voice share instead.
SLOP = ("slop-words", "slop-phrases", "contrast-pattern", "closing-epiphany", "assistant-leakage")
CLICHE = ("dead-metaphors", "poetic-defaults")

_TEMPLATE = re.compile(r"<\|[a-z_]{2,30}\|>|</?s>|\[/?INST\]|<<SYS>>|^\s*(?:assistant|user|system)\s*:|^\s*```",
                       re.IGNORECASE | re.MULTILINE)
# A sentence runs to . ! or ?, except inside a quotation (quoted lines often end in a period).
# _TEMPLATE cannot match a text that holds none of these.
_TEMPLATE_HINTS = ("<|", "<s>", "</s>", "inst]", "<<sys>>", "assistant", "user", "system", "```")
_SENTENCE = re.compile(r'(?:"[^"\n]*"|“[^”\n]*”|[^.!?"“])+[.!?]?')
_WORD_AT = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")


def _markers(*phrases: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Marker words and two-word phrases, for `_marked_sentences`."""
    singles = frozenset(p for p in phrases if " " not in p)
    pairs = frozenset(tuple(p.split()) for p in phrases if " " in p)
    return singles, pairs


# A suggestion, praise, a problem named: the words that mark each kind of sentence.
_SUGGESTION = _markers(
    "try", "consider", "what if", "what would", "could", "might", "cut", "move", "replace", "let the", "let it",
    "ask yourself", "revise", "rewrite", "trust", "drop", "keep", "give", "find", "push", "go back", "read it",
    "next", "one direction", "exercise", "take from")
_PRAISE = _markers(
    "work", "works", "working", "strong", "strongest", "beautiful", "lovely", "powerful", "vivid", "striking",
    "effective", "wonderful", "great", "excellent", "succeed", "succeeds", "earn", "earns", "alive", "moving",
    "gorgeous", "brilliant", "masterful")
_PROBLEM = _markers(
    "doesn't", "does not", "don't", "isn't", "not yet", "weak", "problem", "explain", "explains", "tell", "tells",
    "telling", "vague", "flat", "generic", "cliche", "cliché", "cliches", "clichés", "dead", "tired", "abstract",
    "lose", "loses", "stall", "stalls", "cut", "drop", "replace", "blur", "blurs", "sentimental", "stock",
    "borrowed", "announce", "announces", "summary", "summarises", "summarizes")


_MARKERS = {"suggestion": _SUGGESTION, "praise": _PRAISE, "problem": _PROBLEM}
_ANY_MARKER = frozenset().union(*(singles | {p[0] for p in pairs} for singles, pairs in _MARKERS.values()))
# kind -> (first word, pattern) for each marker, compiled once.
_MARKER_PATTERNS = {
    kind: [(m.split()[0], re.compile(r"(?<![a-z'’])" + r"\s+".join(map(re.escape, m.split())) + r"(?![a-z'’])"))
           for m in sorted(singles | {" ".join(p) for p in pairs})]
    for kind, (singles, pairs) in _MARKERS.items()
}


@dataclass(frozen=True)
class Failure:
    rule: str
    evidence: str


def _quote_free(text: str) -> str:
    """Prose without its quotations: a critique that quotes a poem's clichés has not used them."""
    for passage in quoted_passages(text):
        text = text.replace(passage, " ")
    return text


def _sentence_bounds(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text)]


def _in_sentence(bounds: list[tuple[int, int]], starts: list[int], at: int) -> int | None:
    k = bisect.bisect_right(starts, at) - 1
    return k if k >= 0 and at < bounds[k][1] else None


def flagged_passages(critique: str) -> list[str]:
    """The passages a critique quotes as problems: quotes in sentences that name a problem,
    or, when none does, every quote outside a sentence of praise (praise is to be kept)."""
    bounds, marks = _sentence_marks(critique.replace("\n", " "))
    starts = [b[0] for b in bounds]
    quotes = [(_in_sentence(bounds, starts, at), q) for at, q in quoted_spans(critique)]
    flagged = [q for k, q in quotes if k in marks["problem"]]
    if flagged:
        return flagged
    return [q for k, q in quotes if k not in marks["praise"]]


@lru_cache(maxsize=32)
def _sentence_marks(text: str) -> tuple[list[tuple[int, int]], dict[str, set[int]]]:
    """The text's sentences, and for each kind of marker (suggestion, praise, problem) the
    indexes of the sentences holding one. The words are read once (in C) to see which
    markers occur at all; only those are then located."""
    bounds = _sentence_bounds(text)
    starts = [b[0] for b in bounds]
    marks: dict[str, set[int]] = {kind: set() for kind in _MARKERS}
    lowered = text.lower()
    tokens = _WORD_AT.findall(lowered)
    present = set(tokens) & _ANY_MARKER
    if present:
        for kind, (singles, pairs) in _MARKERS.items():
            for marker, pattern in _MARKER_PATTERNS[kind]:
                if marker in present:
                    for m in pattern.finditer(lowered):
                        k = _in_sentence(bounds, starts, m.start())
                        if k is not None:
                            marks[kind].add(k)
    return bounds, marks


def _norm(line: str) -> str:
    return " ".join(line.lower().split())


@dataclass(frozen=True)
class CritiqueShape:
    """How a critique's own sentences divide (quotations removed, fragments under three words
    not counted): the gate's actionable and praise-share rules and the eval read the same numbers."""

    sentences: int
    suggestions: int  # sentences that propose something to do
    praise: int  # sentences of praise

    @property
    def praise_share(self) -> float:
        return self.praise / self.sentences if self.sentences else 0.0


def critique_shape(text: str) -> CritiqueShape:
    prose = _quote_free(text)
    bounds, marks = _sentence_marks(prose)
    real = {k for k, (b, e) in enumerate(bounds) if len(prose[b:e].split()) >= 3}  # not fragments
    return CritiqueShape(len(real), len(marks["suggestion"] & real), len(marks["praise"] & real))


def ungrounded_quotes(text: str, poems: list[str]) -> list[str]:
    """The passages a critique quotes that occur in none of the poems."""
    flat = [flatten(p) for p in poems]
    return [q for q in quoted_passages(text) if not any(quote_occurs(q, f) for f in flat)]


@dataclass(frozen=True)
class RevisionDelta:
    """What a revision did to the draft a critique discussed."""

    flagged: int  # lines of the draft the critique quoted as problems
    unchanged_flagged: list[str]  # of those, the ones the revision kept word for word
    others: int  # lines the critique did not flag
    flagged_changed: float | None  # share of flagged lines changed; None when nothing was flagged
    unflagged_change: float | None  # 0 (kept) to 1 (rewritten) over the other lines; None without any


def revision_delta(before: str, critique: str, after: str) -> RevisionDelta:
    raw_rows = before.split("\n")
    row_to_line = {}
    for row, line in enumerate(raw_rows):
        if line.strip():
            row_to_line[row] = len(row_to_line)
    flagged: set[int] = set()
    for passage in flagged_passages(critique):
        spans, _ = locate_quotes(before, f'"{passage}"')
        flagged |= {row_to_line[s.row] for s in spans if s.row in row_to_line}
    old = pm.poem_lines(before)
    new = pm.poem_lines(after)
    new_norm = {_norm(line) for line in new}
    unchanged = [old[i] for i in sorted(flagged) if _norm(old[i]) in new_norm]
    changed = 1 - len(unchanged) / len(flagged) if flagged else None
    others = [(i, line) for i, line in enumerate(old) if i not in flagged]
    change = None
    if others and new:
        scores = []
        for i, line in others:
            if _norm(line) in new_norm:
                scores.append(1.0)
                continue
            # A line may have moved a little; it counts as kept by its closest neighbour.
            window = new[max(0, i - 3): i + 4] or new
            scores.append(max(pm.line_similarity(line, candidate) for candidate in window))
        change = 1 - sum(scores) / len(scores)
    return RevisionDelta(len(flagged), unchanged, len(others), changed, change)


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

    # ------------------------------------------------------------------- text rules

    def llm_isms(self, text: str, label: str) -> list[Failure]:
        hits = sorted(self.matcher.hits(text, SLOP), key=lambda h: h.line)
        weight = sum(h.weight for h in hits)
        n = len(pm.words(text))
        rate = 1000.0 * weight / n if n else 0.0
        limit = self.cfg.llm_isms.max_ratio_to_baseline * self.baseline
        if weight > self.cfg.llm_isms.min_weighted_hits and rate > limit:
            shown = ", ".join(f'"{h.phrase}" (line {h.line})' for h in hits[:6])
            return [Failure("llm-isms", f"{label}: {rate:.1f} weighted hits per 1,000 words, over "
                                        f"{limit:.1f} ({self.cfg.llm_isms.max_ratio_to_baseline:g}x the human "
                                        f"{self.baseline:.1f}): {shown}")]
        return []

    def poetic_defaults(self, poem: str, spec: BriefSpec, label: str) -> list[Failure]:
        rules = self.cfg.poetic_defaults
        out = []
        hits = sorted(self.matcher.hits(poem, CLICHE), key=lambda h: h.line)
        weight = sum(h.weight for h in hits)
        if weight > rules.max_cliche_weight:
            shown = ", ".join(f'"{h.phrase}" (line {h.line})' for h in hits[:6])
            out.append(Failure("cliches", f"{label}: weight {weight:g} over {rules.max_cliche_weight:g}: {shown}"))
        if not spec.rhyme_ok:
            share, pairs = pm.end_rhyme_share(poem)
            if share > rules.max_end_rhyme_share:
                shown = ", ".join(f"{a}/{b}" for a, b in pairs[:5])
                out.append(Failure("end-rhyme", f"{label}: {share:.0%} of line ends rhyme ({shown}) and the "
                                                "brief did not ask for rhyme"))
        if not spec.quatrains_ok and pm.default_quatrains(poem):
            out.append(Failure("quatrains", f"{label}: every stanza is four lines ({len(pm.stanzas(poem))} "
                                            "stanzas) and the brief did not ask for quatrains"))
        if not spec.we_ok:
            share, count = pm.plural_voice_share(poem)
            if count >= rules.min_we_count and share > rules.max_we_share:
                out.append(Failure("we-voice", f"{label}: {count} we/us/our, {share:.0%} of its pronouns, and the "
                                               "brief did not ask for a plural speaker"))
        return out

    def form(self, poem: str, spec: BriefSpec, label: str) -> list[Failure]:
        slack = self.cfg.form.line_slack
        lines = pm.poem_lines(poem)
        out = []
        if spec.min_lines is not None and len(lines) < spec.min_lines - slack:
            out.append(Failure("form", f"{label}: {len(lines)} lines; the brief asks for at least {spec.min_lines}"))
        if spec.max_lines is not None and len(lines) > spec.max_lines + slack:
            out.append(Failure("form", f"{label}: {len(lines)} lines; the brief asks for at most {spec.max_lines}"))
        if spec.stanza_lines:
            odd = [n for n in pm.stanzas(poem) if n != spec.stanza_lines]
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
        known = {_norm(line) for p in poems for line in pm.poem_lines(p)}
        run, longest_run = [], []
        for line in text.splitlines():
            verse_like = 0 < len(line.split()) <= 12 and not line.rstrip().endswith((".", "?", ":")) \
                and _norm(line) not in known
            run = run + [line] if verse_like else []
            longest_run = max(longest_run, run, key=len)
        if len(longest_run) > rules.max_new_verse_lines:
            out.append(Failure("rewrite", f"{label}: {len(longest_run)} lines of new verse, e.g. "
                                          f"\"{longest_run[0].strip()[:60]}\"; the Educator never rewrites the poem"))
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
        m = _TEMPLATE.search(text) if any(t in lowered for t in _TEMPLATE_HINTS) else None
        if m:
            out.append(Failure("template-tokens", f"{label}: contains {m.group(0).strip()!r}"))
        return out

    def copying(self, text: str, label: str, source: str | None = None) -> list[Failure]:
        """Verbatim runs from the person's poems (or the record's own source poem)."""
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
        return (self.hygiene(poem, label) + self.llm_isms(poem, label) + self.poetic_defaults(poem, spec, label)
                + self.form(poem, spec, label) + self.copying(poem, label))

    def check(self, record: dict) -> list[Failure]:
        task, inputs, out = record["task"], record.get("inputs") or {}, record["output"]
        f: list[Failure] = []
        if task == "critiques":
            text = out["critique"]
            f += self.hygiene(text, "critique") + self.llm_isms(_quote_free(text), "critique")
            f += self.critique(text, [inputs["poem"]], "critique")
        elif task == "briefs":
            brief = "\n".join(f"{k.capitalize()}: {v}" for k, v in out["brief"].items())
            f += self.hygiene(brief, "brief") + self.llm_isms(out["request"] + "\n" + brief, "brief")
            if inputs.get("source_poem"):
                f += self.copying(brief, "brief", inputs["source_poem"])
        elif task == "lessons":
            f += self.hygiene(out["lesson"], "lesson") + self.llm_isms(_quote_free(out["lesson"]), "lesson")
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
            f += self.hygiene(text, "comparison") + self.llm_isms(_quote_free(text), "comparison")
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
        spec = BriefSpec(rhyme=True if pm.end_rhyme_share(original)[0] > self.cfg.poetic_defaults.max_end_rhyme_share else None,
                         quatrains_ok=pm.default_quatrains(original),
                         we_ok=pm.plural_voice_share(original)[1] >= self.cfg.poetic_defaults.min_we_count)
        f: list[Failure] = []
        before, direction = original, inputs["critique"]
        for k, turn in enumerate(turns, start=1):
            poem, response = turn["revision"], turn["response"]
            f += self.hygiene(poem, f"revision {k}") + self.llm_isms(poem, f"revision {k}")
            f += self.poetic_defaults(poem, spec, f"revision {k}")
            f += self.revision(before, direction, poem, f"revision {k}")
            f += self.hygiene(response, f"response {k}") + self.llm_isms(_quote_free(response), f"response {k}")
            f += self.critique(response, [poem, before], f"response {k}", whole=False)
            before, direction = poem, response
        return f


def main_text(record: dict) -> str:
    """What two records must not share to be distinct examples."""
    out = record["output"]
    return {
        "critiques": lambda: out["critique"], "lessons": lambda: out["lesson"],
        "autopsies": lambda: out["autopsy"], "comparisons": lambda: out["comparison"],
        "briefs": lambda: out["request"] + " " + " ".join(out["brief"].values()),
        "dialogues": lambda: " ".join(t["revision"] + " " + t["response"] for t in out["turns"]),
        "poet-pairs": lambda: out["poem"],
    }[record["task"]]()


class NearDuplicates:
    """MinHash over word 4-gram shingles with LSH banding: candidates share a band, and are
    confirmed by their exact shingle Jaccard, so the first of each near-duplicate set is kept."""

    # 16 bands of 8 rows: pairs at Jaccard 0.8 share a band 95% of the time, pairs at 0.5
    # about 6%, so few candidates need the exact check.
    PERMUTATIONS, BANDS = 128, 16
    CHECKED, BUCKET_CAP = 5, 64  # exact checks per record; members remembered per band bucket

    def __init__(self, threshold: float, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.threshold = threshold
        self.a = rng.integers(1, 2**63 - 1, self.PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63 - 1, self.PERMUTATIONS, dtype=np.uint64)
        self.buckets: dict[tuple, list[str]] = defaultdict(list)
        self.shingles: dict[str, set[int]] = {}

    def add(self, key: str, text: str) -> str | None:
        """Remember `text` under `key` unless it nearly duplicates one already kept; returns that one."""
        sh = pm.shingles(text)
        if not sh:
            return None
        values = np.array(list(sh), dtype=np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            sig = (values[:, None] * self.a + self.b).min(axis=0)
        rows = self.PERMUTATIONS // self.BANDS
        bands = [(i, sig[i * rows:(i + 1) * rows].tobytes()) for i in range(self.BANDS)]
        buckets = self.buckets
        shared = Counter(chain.from_iterable(buckets[band] for band in bands if band in buckets))
        # The records sharing the most bands are the likeliest twins; a handful is checked
        # exactly, so a set of many similar records cannot make this quadratic.
        for other, _ in shared.most_common(self.CHECKED):
            if pm.jaccard(sh, self.shingles[other]) >= self.threshold:
                return other
        for band in bands:
            bucket = self.buckets[band]
            if len(bucket) < self.BUCKET_CAP:
                bucket.append(key)
        self.shingles[key] = sh
        return None


@dataclass
class GateReport:
    seen: int = 0
    kept: int = 0
    rejected: int = 0
    # (rule, task) -> [seen, kept, rejected]
    table: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))


RULES = ("llm-isms", "cliches", "end-rhyme", "quatrains", "we-voice", "form", "grounded-quotes", "cited-lines",
         "actionable", "praise-share", "rewrite", "revision-focus", "revision-scope", "length", "template-tokens",
         "copying", "near-duplicate")
# Which rules look at which task's records (for the "seen" column).
APPLIES = {
    "critiques": {"llm-isms", "grounded-quotes", "cited-lines", "actionable", "praise-share", "rewrite", "length",
                  "template-tokens"},
    "briefs": {"llm-isms", "length", "template-tokens", "copying"},
    "lessons": {"llm-isms", "length", "template-tokens"},
    "autopsies": {"grounded-quotes", "cited-lines", "length", "template-tokens"},
    "comparisons": {"llm-isms", "grounded-quotes", "cited-lines", "actionable", "praise-share", "rewrite", "length",
                    "template-tokens"},
    "dialogues": {"llm-isms", "cliches", "end-rhyme", "quatrains", "we-voice", "grounded-quotes", "cited-lines",
                  "revision-focus", "revision-scope", "length", "template-tokens"},
    "poet-pairs": {"llm-isms", "cliches", "end-rhyme", "quatrains", "we-voice", "form", "grounded-quotes",
                   "cited-lines", "actionable", "praise-share", "rewrite", "revision-focus", "revision-scope",
                   "length", "template-tokens", "copying"},
}


PARALLEL_FROM = 2000  # records; below this, starting worker processes costs more than it saves

_worker_gate: QualityGate | None = None
_worker_records: list[dict] = []


def _start_worker(gate: QualityGate | None, records: list[dict] | None) -> None:
    global _worker_gate, _worker_records
    if gate is not None:  # spawned workers get them pickled; forked ones already have them
        _worker_gate, _worker_records = gate, records


def _check_in_worker(index: int) -> list[Failure]:
    return _worker_gate.check(_worker_records[index])


def _checked(gate: QualityGate, records: list[dict], workers: int):
    """(record, failures) in input order; the checks run in `workers` processes when many.
    Workers are sent indexes, not records: a forked worker already holds the list."""
    global _worker_gate, _worker_records
    if workers <= 1 or len(records) < PARALLEL_FROM:
        for record in records:
            yield record, gate.check(record)
        return
    import multiprocessing

    forked = multiprocessing.get_start_method() == "fork"
    _worker_gate, _worker_records = gate, records
    try:
        initargs = (None, None) if forked else (gate, records)
        with multiprocessing.Pool(workers, initializer=_start_worker, initargs=initargs) as pool:
            yield from zip(records, pool.imap(_check_in_worker, range(len(records)), chunksize=256))
    finally:
        _worker_gate, _worker_records = None, []


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def run_gate(gate: QualityGate, records: Iterable[dict], keep, reject, workers: int = 1) -> GateReport:
    """Check every record; `keep(record)` and `reject(entry)` receive the results in order.
    Near-duplicates are decided here, in order, so the first of a set is the one kept."""
    report = GateReport()
    for record, failures in _checked(gate, list(records), workers):
        task = record["task"]
        report.seen += 1
        if not failures:
            twin = gate.dedupe.add(record["id"], main_text(record))
            if twin is not None:
                failures = [Failure("near-duplicate", f"nearly the same text as {twin}, which is kept")]
        failed_rules = {f.rule for f in failures}
        for rule in APPLIES.get(task, set()) | {"near-duplicate"} | failed_rules:
            row = report.table[(rule, task)]
            row[0] += 1
            row[1 if rule not in failed_rules else 2] += 1
        if failures:
            report.rejected += 1
            for f in failures:
                reject({"id": record["id"], "task": task, "rule": f.rule, "evidence": f.evidence})
        else:
            report.kept += 1
            keep(record)
    return report


# ---------------------------------------------------------------------- the command


@dataclass
class GateRun:
    output: Path
    reject_log: Path
    report: GateReport
    baseline: float
    baseline_source: str


def read_records(path: Path) -> tuple[list[dict], list[str]]:
    """Generated records with the fields the gate needs; each bad line named with its number."""
    from poetry_workshop.pipeline.teaching_tasks import TASKS

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; give a records file such as data/annotated/critiques.jsonl")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); give a JSONL file of generated records")
    records, warnings, seen = [], [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            warnings.append(f"{where}: not valid JSON ({exc.msg}); line skipped")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or record.get("task") not in TASKS:
            warnings.append(f"{where}: not a generated record (needs 'id' and a 'task' of {', '.join(TASKS)}); skipped")
            continue
        try:
            record["output"] = TASKS[record["task"]].schema.model_validate(record.get("output")).model_dump(by_alias=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            warnings.append(f"{where}: output does not fit the {record['task']} schema "
                            f"({'.'.join(map(str, first['loc']))}: {first['msg']}); skipped")
            continue
        if record["id"] in seen:
            warnings.append(f"{where}: id {record['id']} appears again; the first is kept")
            continue
        seen.add(record["id"])
        records.append(record)
    return records, warnings


def human_rate(settings, matcher: pm.LlmIsmMatcher, good_poems: list[str]) -> tuple[float, str]:
    """The LLM-ism rate of the person's own good poems (the bar machine text is held to),
    or the configured default when there are none; with a phrase saying which."""
    measured = pm.human_baseline(matcher, good_poems, SLOP)
    if measured is None:
        baseline = settings.gate.llm_isms.default_baseline_per_1k
        return baseline, f"default {baseline:g} per 1,000 words (no poems in data/raw/good/)"
    return measured, f"{len(good_poems)} poems in data/raw/good/"


def gate_file(settings, input_path: Path, output: Path | None = None, reject_log: Path | None = None,
              warn: Callable[[str], None] = lambda line: None) -> GateRun:
    """Gate one records file; bad lines go to `warn` before anything else happens."""
    from poetry_workshop.persona import load_llm_isms
    from poetry_workshop.pipeline.jsonl_log import write_jsonl_atomic
    from poetry_workshop.pipeline.raw_poems import RawPoemReader

    records, warnings = read_records(input_path)
    for line in warnings:
        warn(line)
    if not records:
        raise ConfigError(f"{input_path}: no usable records in it (see the warnings); nothing was written")
    output = output or locations.data_dir() / "gated" / f"{input_path.stem}.jsonl"
    reject_log = reject_log or output.with_name(f"{output.stem}.rejects.jsonl")
    if output.resolve() == input_path.resolve():
        raise ConfigError(f"--output {output} is the input file; choose another path")

    matcher = pm.LlmIsmMatcher(load_llm_isms())
    raw = RawPoemReader(settings.generation.raw).read_raw(locations.data_dir() / "raw")
    baseline, source = human_rate(settings, matcher, [p.text for p in raw["good"]])
    training = [(p.source, p.text) for quality in ("good", "bad") for p in raw[quality]]
    gate = QualityGate(settings.gate, matcher, baseline, training)

    kept: list[dict] = []
    rejects: list[dict] = []
    report = run_gate(gate, records, kept.append, rejects.append, workers=default_workers())
    write_jsonl_atomic(output, kept)
    write_jsonl_atomic(reject_log, rejects)
    return GateRun(output, reject_log, report, baseline, source)


def format_table(report: GateReport) -> str:
    rows = [f"{'rule':<16} {'task':<12} {'seen':>6} {'kept':>6} {'rejected':>9}"]
    order = {rule: i for i, rule in enumerate(RULES)}
    for (rule, task), (seen, kept, rejected) in sorted(report.table.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        rows.append(f"{rule:<16} {task:<12} {seen:>6} {kept:>6} {rejected:>9}")
    rows.append(f"{'all rules':<16} {'':<12} {report.seen:>6} {report.kept:>6} {report.rejected:>9}")
    return "\n".join(rows)
