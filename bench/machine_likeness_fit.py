"""Fit the eval's machine-likeness model on a corpus of real poems and write its figures into
poetry_workshop/evaluation/machine_likeness.py (the block after its "derived figures" line).

Reads a folder shaped like ../shared/corpus/ (human.jsonl, llm.jsonl); writes figures only
(feature means, spreads, weights, bias), never a poem. Prints the cross-validated rates
first (4 folds, 3 shuffles, a poem scored only by a model that did not see it) so that the
committed model's figures come with an honest measure of how it does on unseen poems.

Usage: .venv/bin/python -m bench.machine_likeness_fit [CORPUS] [--check]
--check compares with the committed figures instead of writing them (exit 1 if they differ).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from poetry_workshop.errors import ConfigError
from poetry_workshop.evaluation import machine_likeness as ml
from poetry_workshop.files import write_atomic
from poetry_workshop.pipeline.gate.corpus import read_corpus

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET = ROOT / "poetry_workshop" / "evaluation" / "machine_likeness.py"
MARK = "# ---- derived figures: written by bench/machine_likeness_fit.py; do not edit by hand ----\n"
L2 = 1.0


def cross_validated(rows: list[list[float]], labels: list[int], folds: int = 4, shuffles: int = 3) -> tuple[float, float]:
    """(human poems scored under 0.5, machine poems scored 0.5 or over) on poems each fold held out."""
    human_ok = human = machine_ok = machine = 0
    for seed in range(1, shuffles + 1):
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        for k in range(folds):
            test = set(order[k::folds])
            fitted = ml.fit([rows[i] for i in order if i not in test], [labels[i] for i in order if i not in test], l2=L2)
            for i in test:
                z = sum(w * (x - m) / s for w, x, m, s in zip(fitted.weights, rows[i], fitted.means, fitted.scales))
                machine_says = fitted.bias + z >= 0
                if labels[i]:
                    machine, machine_ok = machine + 1, machine_ok + machine_says
                else:
                    human, human_ok = human + 1, human_ok + (not machine_says)
    return human_ok / human, machine_ok / machine


def render(model: ml.Model, n_human: int, n_machine: int) -> str:
    source = TARGET.read_text(encoding="utf-8")
    head = source[:source.index(MARK)]
    return (head + MARK + f"# Fitted on {n_human} human and {n_machine} machine poems (L2 {L2:g}).\n"
            f"MEANS: list[float] = {model.means!r}\nSCALES: list[float] = {model.scales!r}\n"
            f"WEIGHTS: list[float] = {model.weights!r}\nBIAS = {model.bias!r}\n")


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
    rows = [ml.features(p.text) for p in poems]
    labels = [0 if p.human else 1 for p in poems]
    human_ok, machine_ok = cross_validated(rows, labels)
    print(f"cross-validated (4 folds x 3): human poems read as human {human_ok:.3f}, "
          f"machine poems read as machine {machine_ok:.3f}")
    model = ml.fit(rows, labels, l2=L2)
    for name, weight in sorted(zip(ml.FEATURES, model.weights), key=lambda kv: -abs(kv[1])):
        print(f"  {name:<22} {weight:+.3f}")
    text = render(model, labels.count(0), labels.count(1))
    if args.check:
        same = text == TARGET.read_text(encoding="utf-8")
        print("committed figures match" if same else f"{TARGET} differs from what the corpus gives; rerun without --check")
        return 0 if same else 1
    write_atomic(TARGET, text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
