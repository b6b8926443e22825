"""How well the gate's poem checks tell real human poems from machine ones (a measure, not a test).

Reads a corpus folder shaped like ../shared/corpus/ (human.jsonl with form tags, llm.jsonl
with generators) and runs `QualityGate.check_poem` on every poem, as the gate judges a
Poet's poem: with an open brief (the brief names no form, so the machine-shape rules
apply), and the human poems once more under a brief naming their own form ("Form:
sonnet"). The LLM-ism baseline is the configured default (no person's poems here).

Prints the human pass rate, the machine reject rate, the reject rate on the machine poems
without the all-quatrain / heavy-rhyme shape (what a trained Poet learns to avoid, so the
rate that matters), then the same by rule, by human form and by machine source.

The shape is fixed here, apart from the gate's own rhyme measure, so that figures before
and after a change to the gate count the same poems: every stanza four lines (two stanzas
or more), or at least half the line ends rhyming with one of the two lines before.

Usage: .venv/bin/python -m bench.gate_score [CORPUS] [--show human|machine|all]
Prints no poem text except the gate's own evidence (a phrase, a line) with --show.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.gate.corpus import CorpusPoem, read_corpus
from poetry_workshop.pipeline.gate.rules import QualityGate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import BriefSpec, parse_brief
from poetry_workshop.workshop.persona import load_llm_isms

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
OPEN = BriefSpec()


def machine_shape(text: str) -> bool:
    """All-quatrain stanzas or heavy end rhyme: the signature the LLM poems were not asked to avoid."""
    ends = pm.end_words(text)
    rhymed = sum(1 for i in range(1, len(ends)) if any(pm.rhymes(ends[i], ends[j]) for j in (i - 1, i - 2) if j >= 0))
    heavy = len(ends) > 1 and rhymed / (len(ends) - 1) >= 0.5
    return pm.default_quatrains(text) or heavy


def rate(part: int, whole: int) -> str:
    return f"{part / whole:.3f} ({part}/{whole})" if whole else "n/a (0/0)"


def score(gate: QualityGate, poems: list[CorpusPoem], show: str) -> dict[str, float]:
    human = [p for p in poems if p.human]
    machine = [p for p in poems if not p.human]
    verdicts = {p.id: gate.check_poem(p.text, OPEN) for p in poems}
    named = {p.id: gate.check_poem(p.text, parse_brief(p.brief())) for p in human}
    shaped = {p.id: machine_shape(p.text) for p in machine}
    plain = [p for p in machine if not shaped[p.id]]

    passed = sum(not verdicts[p.id] for p in human)
    rejected = sum(bool(verdicts[p.id]) for p in machine)
    plain_rejected = sum(bool(verdicts[p.id]) for p in plain)
    named_passed = sum(not named[p.id] for p in human)
    print(f"human poems passed (open brief)            {rate(passed, len(human))}")
    print(f"human poems passed (brief names its form)  {rate(named_passed, len(human))}")
    print(f"machine poems rejected                     {rate(rejected, len(machine))}")
    print(f"machine poems without the quatrain/rhyme shape rejected  {rate(plain_rejected, len(plain))}")

    print("\nby rule (poems failing it; a poem may fail several)")
    print(f"  {'rule':<16} {'human open':>11} {'human form':>11} {'machine':>9} {'machine no shape':>17}")
    rules = sorted({f.rule for v in list(verdicts.values()) + list(named.values()) for f in v})
    def count(rule, ids, table):
        return sum(any(f.rule == rule for f in table[i]) for i in ids)

    for rule in rules:
        print(f"  {rule:<16} {count(rule, [p.id for p in human], verdicts):>11} {count(rule, [p.id for p in human], named):>11} "
              f"{count(rule, [p.id for p in machine], verdicts):>9} {count(rule, [p.id for p in plain], verdicts):>17}")

    print("\nby human form (passed, open brief / brief naming the form; rules that rejected)")
    forms: dict[str, list[CorpusPoem]] = defaultdict(list)
    for p in human:
        forms[p.form or "?"].append(p)
    for form, group in sorted(forms.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        open_ok = sum(not verdicts[p.id] for p in group)
        named_ok = sum(not named[p.id] for p in group)
        why = Counter(f.rule for p in group for f in {f.rule: f for f in verdicts[p.id] + named[p.id]}.values())
        print(f"  {form:<28} {len(group):>3}  open {open_ok:>3}  named {named_ok:>3}  "
              + ", ".join(f"{r} {n}" for r, n in why.most_common()))

    print("\nby machine source (rejected / poems; without the shape: rejected / poems)")
    sources: dict[str, list[CorpusPoem]] = defaultdict(list)
    for p in machine:
        sources[p.generator or p.origin].append(p)
    for source, group in sorted(sources.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        bad = sum(bool(verdicts[p.id]) for p in group)
        free = [p for p in group if not shaped[p.id]]
        free_bad = sum(bool(verdicts[p.id]) for p in free)
        print(f"  {source[:44]:<44} {bad:>3}/{len(group):<3}  no shape {free_bad:>2}/{len(free):<2}")

    if show in ("human", "all"):
        print("\nhuman poems rejected (open brief; * also under the brief naming their form)")
        for p in human:
            if verdicts[p.id]:
                mark = "*" if named[p.id] else " "
                print(f" {mark}{p.id} [{p.form}] " + " | ".join(f"{f.rule}: {f.evidence[:150]}" for f in verdicts[p.id]))
    if show in ("machine", "all"):
        print("\nmachine poems passed (- without the shape)")
        for p in machine:
            if not verdicts[p.id]:
                print(f"  {'-' if not shaped[p.id] else ' '}{p.id} [{p.generator}]")
    return {"human_pass": passed / len(human), "machine_reject": rejected / len(machine),
            "machine_plain_reject": plain_rejected / len(plain) if plain else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS,
                        help="folder holding human.jsonl and llm.jsonl (default ../shared/corpus)")
    parser.add_argument("--show", choices=("human", "machine", "all"),
                        help="also list the human poems rejected and/or the machine poems passed, with evidence")
    args = parser.parse_args()
    try:
        poems = read_corpus(args.corpus)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    baseline = settings.gate.llm_isms.default_baseline_per_1k
    gate = QualityGate(settings.gate, pm.LlmIsmMatcher(load_llm_isms()), baseline)
    n_human = sum(p.human for p in poems)
    print(f"corpus {args.corpus}: {n_human} human poems, {len(poems) - n_human} machine poems; "
          f"LLM-ism baseline {baseline:g} per 1,000 words")
    score(gate, poems, args.show or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
