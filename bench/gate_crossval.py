"""How the gate's corpus-derived figures do on poems they were not derived from (a measure).

bench/gate_score.py scores the gate on the same poems bench/gate_weights.py derived its
weights, markers and bound from, so its rates flatter the gate; part of the corpus is held
back for exactly that reason. This script estimates the held-back rates from the corpus
folder alone: it shuffles the poems, splits them into folds, derives the figures on all
folds but one (as gate_weights does), scores that one with `QualityGate.check_poem` under
an open brief (as gate_score does), and pools the verdicts over folds and shuffles.

Usage: .venv/bin/python -m bench.gate_crossval [CORPUS] [--folds 4] [--shuffles 2]
"""

from __future__ import annotations

import argparse
import random
import sys
from contextlib import contextmanager
from pathlib import Path

from bench import gate_weights
from bench.gate_score import machine_shape
from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.gate import corpus_weights, lexicon
from poetry_workshop.pipeline.gate.corpus import CorpusPoem, read_corpus
from poetry_workshop.pipeline.gate.rules import QualityGate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import BriefSpec
from poetry_workshop.workshop.persona import load_llm_isms

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"


@contextmanager
def derived_from(poems: list[CorpusPoem]):
    """The gate's lexicon figures as gate_weights derives them from `poems`, for the duration
    (the gate reads them from `corpus_weights` and `lexicon.BOUND` when it is built, and the
    shape signals' weights from `corpus_weights.SIGNALS` as it judges)."""
    figures = gate_weights.derive(poems)
    saved = corpus_weights.WEIGHTS, corpus_weights.MARKERS, corpus_weights.SIGNALS, lexicon.BOUND
    corpus_weights.WEIGHTS, corpus_weights.MARKERS = figures["weights"], figures["markers"]
    corpus_weights.SIGNALS = figures["signals"]
    lexicon.BOUND = lexicon.LexiconBound(figures["bound"]["allowance"], figures["bound"]["per_word"])
    try:
        yield
    finally:
        corpus_weights.WEIGHTS, corpus_weights.MARKERS, corpus_weights.SIGNALS, lexicon.BOUND = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--shuffles", type=int, default=2)
    args = parser.parse_args()
    try:
        poems = read_corpus(args.corpus)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    baseline = settings.gate.llm_isms.default_baseline_per_1k
    counts = {"human": [0, 0], "machine": [0, 0], "plain": [0, 0]}  # [right, all]
    for seed in range(1, args.shuffles + 1):
        order = poems[:]
        random.Random(seed).shuffle(order)
        for k in range(args.folds):
            held = order[k::args.folds]
            with derived_from([p for i, p in enumerate(order) if i % args.folds != k]):
                gate = QualityGate(settings.gate, pm.LlmIsmMatcher(load_llm_isms()), baseline)
                for poem in held:
                    failed = bool(gate.check_poem(poem.text, BriefSpec()))
                    sides = ["human"] if poem.human else ["machine"] + (["plain"] if not machine_shape(poem.text) else [])
                    for side in sides:
                        counts[side][0] += failed != poem.human
                        counts[side][1] += 1
    share = {side: right / total if total else 0.0 for side, (right, total) in counts.items()}
    print(f"corpus {args.corpus}: {len(poems)} poems; {args.folds} folds x {args.shuffles} shuffles, "
          "each poem scored by figures derived without it")
    print(f"human poems passed                                       {share['human']:.3f}")
    print(f"machine poems rejected                                   {share['machine']:.3f}")
    print(f"machine poems without the quatrain/rhyme shape rejected  {share['plain']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
