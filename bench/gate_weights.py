"""Derive the gate's lexicon weights, corpus markers and length-aware bound from a corpus of
real poems, and write them to poetry_workshop/pipeline/gate/corpus_weights.py.

Reads a folder shaped like ../shared/corpus/ (human.jsonl, llm.jsonl); writes figures only,
never a poem (the machine side is licensed for non-commercial use). Each step is simple on
purpose, since half the corpus is held back to test that the figures generalise:

1. Weights. For every entry of persona/anti_llm_isms.txt (less the "we" voice and assistant
   leakage) and every corpus marker: the number of human poems and of machine poems it
   occurs in (inflected forms included, as the gate matches), and its smoothed log-odds,
   log((m + a) / (M - m + a)) - log((h + a) / (H - h + a)) with a = 0.5, clipped to
   [0, MAX_WEIGHT]. An entry no poem uses keeps lexicon.UNSEEN_WEIGHT.
2. Markers. Words and two- or three-word phrases in at least MIN_POEMS machine poems, from
   at least MIN_GENERATORS generators and MIN_PROMPTS prompts, in no human poem, holding a
   word that is not a function word, not a word of any prompt (a topic is not a style),
   with no apostrophe (contractions mark modern English, not machines), and not already
   covered by an entry. The most frequent MAX_MARKERS are kept.
3. Bound. A poem's score is the sum of its hits' weights. per_word is RATE_MULTIPLE times
   the human poems' pooled score per word; the allowance is the smallest that passes
   HUMAN_PASS of the human poems under that rate, and never below the heaviest single
   weight plus one, so that no one word rejects a poem alone.
4. Signals. For each machine-shape signal of the gate (all quatrains, heavy end rhyme, a we-voice,
   every line end-stopped, no line punctuated), read under an open brief: the log of the ratio
   of its rate in machine poems to its rate in human ones, smoothed and clipped as in 1. The
   gate adds them, over rules.SIGNAL_SCALE, to the poem's share of its vocabulary allowance.

The closing formulas (lexicon.CLOSING_FORMULAS) are weighed as entries, like the markers.

Usage: .venv/bin/python -m bench.gate_weights [CORPUS] [--check]
--check compares with the committed figures instead of writing them (exit 1 if they differ).
"""

from __future__ import annotations

import argparse
import math
import pprint
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from poetry_workshop.errors import ConfigError
from poetry_workshop.files import write_atomic
from poetry_workshop.pipeline.gate import lexicon
from poetry_workshop.pipeline.gate.corpus import CorpusPoem, read_corpus
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.workshop.persona import load_llm_isms

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET = ROOT / "poetry_workshop" / "pipeline" / "gate" / "corpus_weights.py"

SMOOTHING = 0.5
MAX_WEIGHT = 4.0
MIN_POEMS, MIN_GENERATORS, MIN_PROMPTS, MAX_MARKERS = 6, 4, 4, 40
RATE_MULTIPLE = 2.0
HUMAN_PASS = 0.98
SIGNALS = ("quatrains", "end-rhyme", "we-voice", "end-stopped", "unpunctuated")  # rules.QualityGate.shape_signals

FUNCTION_WORDS = frozenset("""a an the and or but nor so yet for of in on at to from by with within without into onto
upon over under above below through across along among between beyond around about against toward towards as
than then that this these those there here where when while what which who whom whose why how i me my mine you
your yours he him his she her hers it its we us our ours they them their theirs is are was were be been being am
do does did have has had will would shall should can could may might must not no all each every some any one
let just still ever never too very more most such own same other only also like up down out off again""".split())


def log_odds(machine: int, human: int, n_machine: int, n_human: int) -> float:
    a = SMOOTHING
    return math.log((machine + a) / (n_machine - machine + a)) - math.log((human + a) / (n_human - human + a))


def weight(machine: int, human: int, n_machine: int, n_human: int) -> float:
    if machine + human == 0:
        return lexicon.UNSEEN_WEIGHT
    return round(min(MAX_WEIGHT, max(0.0, log_odds(machine, human, n_machine, n_human))), 2)


def presence(entries, poems: list[CorpusPoem]) -> dict[str, list[CorpusPoem]]:
    """entry source -> the poems it occurs in, matched as the gate matches (inflections, once)."""
    one_each = [e.__class__(category=e.source, weight=1.0, source=e.source, pattern=e.pattern) for e in entries]
    matcher = pm.LlmIsmMatcher(one_each, inflections=True)
    found: dict[str, list[CorpusPoem]] = defaultdict(list)
    for poem in poems:
        for source in {h.category for h in matcher.hits(poem.text)}:
            found[source].append(poem)
    return found


def candidate_markers(poems: list[CorpusPoem], covered: set[str]) -> list[str]:
    human = [p for p in poems if p.human]
    machine = [p for p in poems if not p.human]
    prompt_words = {pm.inflection_key(w) for p in machine for w in pm.words(p.prompt)}
    human_grams: set[tuple[str, ...]] = set()
    for p in human:
        keys = [pm.inflection_key(w) for w in pm.words(p.text)]
        for n in (1, 2, 3):
            human_grams.update(zip(*(keys[i:] for i in range(n))))
    # Markers are read within a line: a pair across a line break ("night / A") is layout, not wording.
    support: dict[tuple[str, ...], list[CorpusPoem]] = defaultdict(list)
    surface: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for p in machine:
        seen = set()
        for line in pm.poem_lines(p.text):
            ws = pm.words(line)
            keys = [pm.inflection_key(w) for w in ws]
            for n in (1, 2, 3):
                for i in range(len(keys) - n + 1):
                    gram = tuple(keys[i:i + n])
                    surface[gram][" ".join(ws[i:i + n])] += 1
                    if gram not in seen:
                        seen.add(gram)
                        support[gram].append(p)
    out = []
    for gram, found in support.items():
        if len(found) < MIN_POEMS or gram in human_grams:
            continue
        if len({p.generator for p in found}) < MIN_GENERATORS or len({p.prompt for p in found}) < MIN_PROMPTS:
            continue
        content = [w for w in gram if w not in FUNCTION_WORDS]
        if not content or any("'" in w for w in gram) or any(w in prompt_words for w in content):
            continue
        if any(w in covered for w in content) or " ".join(gram) in covered:
            continue
        out.append((len(found), surface[gram].most_common(1)[0][0], gram))
    out.sort(key=lambda row: (-row[0], row[1]))
    kept, taken = [], set()
    for _, phrase, gram in out:
        # A phrase whose words are already a marker adds nothing: "a symphony of" under "symphony".
        if any(w in taken for w in gram):
            continue
        kept.append(phrase)
        taken.update(w for w in gram if w not in FUNCTION_WORDS)
        if len(kept) == MAX_MARKERS:
            break
    return sorted(kept)


def signal_weights(human: list[CorpusPoem], machine: list[CorpusPoem]) -> dict[str, tuple]:
    """Each machine-shape signal -> (weight, human poems with it, machine poems with it): the
    log of how much likelier it is in a machine poem than a human one (rates smoothed by
    a = SMOOTHING), clipped to [0, MAX_WEIGHT]. Read under an open brief, as the gate reads
    a poem whose brief names no form."""
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.gate.rules import QualityGate
    from poetry_workshop.verse.brief_spec import BriefSpec

    gate = QualityGate(load_settings().gate, pm.LlmIsmMatcher([]), 7.0)
    found = {id(p): {name for name, _ in gate.shape_signals(p.text, BriefSpec())} for p in human + machine}
    a, out = SMOOTHING, {}
    for name in SIGNALS:
        h = sum(name in found[id(p)] for p in human)
        m = sum(name in found[id(p)] for p in machine)
        ratio = math.log((m + a) / (len(machine) + 2 * a)) - math.log((h + a) / (len(human) + 2 * a))
        out[name] = (round(min(MAX_WEIGHT, max(0.0, ratio)), 2), h, m)
    return out


def derive(poems: list[CorpusPoem]) -> dict:
    human = [p for p in poems if p.human]
    machine = [p for p in poems if not p.human]
    isms = [i for i in load_llm_isms() if i.category in lexicon.DERIVED]
    covered = {" ".join(pm.inflection_key(w) for w in re.findall(r"[a-z']+", i.source.lower()))
               for i in isms if not i.source.startswith("re:")}
    markers = candidate_markers(poems, covered)
    entries = isms + lexicon.marker_entries(markers) + lexicon.formula_entries()
    found = presence(entries, poems)
    weights = {}
    for entry in entries:
        where = found.get(entry.source, [])
        h = sum(p.human for p in where)
        m = len(where) - h
        weights[entry.source] = (weight(m, h, len(machine), len(human)), h, m, len({p.generator for p in where if not p.human}))
    matcher = pm.LlmIsmMatcher(lexicon.weighted(entries, weights), inflections=True)
    signals = signal_weights(human, machine)
    scored = [(lexicon.score(matcher, p.text)[0], len(pm.words(p.text))) for p in human]
    per_word = RATE_MULTIPLE * sum(s for s, _ in scored) / sum(n for _, n in scored)
    over = sorted(s - per_word * n for s, n in scored)
    fitted = over[min(len(over) - 1, math.ceil(HUMAN_PASS * len(over)) - 1)]
    heaviest = max(w for w, *_ in weights.values())
    allowance = round(max(fitted, heaviest + 1.0), 2)
    return {"corpus": {"human": len(human), "machine": len(machine),
                       "generators": len({p.generator for p in machine})},
            "weights": weights, "markers": tuple(markers), "signals": signals,
            "bound": {"allowance": allowance, "per_word": round(per_word, 4)}}


def render(figures: dict, corpus: Path) -> str:
    return f'''"""Figures derived from a corpus of real poems by bench/gate_weights.py; do not edit by hand.

Derived from {figures["corpus"]["human"]} human poems and {figures["corpus"]["machine"]} machine poems ({figures["corpus"]["generators"]} generators), the
development half of ../shared/corpus/ (see its README). Only figures are kept here, no poem.
Rerun `.venv/bin/python -m bench.gate_weights` after changing the persona's list or the corpus.

WEIGHTS: entry -> (weight, human poems with it, machine poems with it, generators using it);
the weight is the smoothed log-odds (a = {SMOOTHING}) of machine against human, clipped to
[0, {MAX_WEIGHT}]; an entry no poem uses weighs lexicon.UNSEEN_WEIGHT.
MARKERS: words and phrases in >= {MIN_POEMS} machine poems from >= {MIN_GENERATORS} generators and >= {MIN_PROMPTS} prompts,
in no human poem (bench/gate_weights.py says which are left out and why).
BOUND: a poem fails when its score exceeds allowance + per_word * words; per_word is
{RATE_MULTIPLE:g}x the human poems' pooled score per word, the allowance passes {HUMAN_PASS:.0%} of them and
is at least the heaviest weight plus one.
SIGNALS: machine-shape signal -> (weight, human poems with it, machine poems with it); the
weight is the log of the ratio of its machine and human rates (smoothed, a = {SMOOTHING}), read under
an open brief, clipped to [0, {MAX_WEIGHT}].
"""

CORPUS = {figures["corpus"]!r}
SMOOTHING = {SMOOTHING}

WEIGHTS = {pprint.pformat(figures["weights"], width=110, sort_dicts=True)}

MARKERS = {pprint.pformat(figures["markers"], width=110)}

BOUND = {figures["bound"]!r}

SIGNALS = {pprint.pformat(figures["signals"], width=110, sort_dicts=True)}
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--check", action="store_true", help="compare with the committed figures; write nothing")
    args = parser.parse_args()
    try:
        poems = read_corpus(args.corpus)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures = derive(poems)
    text = render(figures, args.corpus)
    if args.check:
        same = TARGET.read_text(encoding="utf-8") == text
        print(f"{TARGET.relative_to(ROOT)} {'matches' if same else 'differs from'} what {args.corpus} gives")
        return 0 if same else 1
    write_atomic(TARGET, text)
    w = figures["weights"]
    print(f"wrote {TARGET.relative_to(ROOT)}: {len(w)} weighted entries ({sum(1 for v in w.values() if v[0] == 0)} at 0), "
          f"{len(figures['markers'])} markers, bound {figures['bound']}")
    print("markers: " + ", ".join(figures["markers"]))
    print("signals: " + ", ".join(f"{name} {w:g} ({h} human, {m} machine)" for name, (w, h, m) in figures["signals"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
