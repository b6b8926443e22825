"""Benchmark of the quality gate (a benchmark, not a test: it prints figures).

Generates `--records` records (default 20,000) of every task from a seeded mix of human
and machine-sounding lines, with critiques that quote them, then times the gate over all of
them in this process and reports records per second and peak memory. The gate must not be
the slow stage of the pipeline: the goal is >= 2,000 records/s on this machine.

Usage: .venv/bin/python -m bench.gate [--records N] [--seed N]
Ends with one `goal <name>: <measured> (target <target>) met|missed` line per goal.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.gate.rules import SLOP, QualityGate
from poetry_workshop.pipeline.gate.run import default_workers, run_gate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.workshop.persona import load_llm_isms
from tests.support.gate_corpus import GOOD_CRITIQUE, HUMAN, MACHINE

ROOT = Path(__file__).resolve().parent.parent

LINES = [line for poem in HUMAN + MACHINE for line in pm.poem_lines(poem)]
WORDS = sorted({w for line in LINES for w in pm.words(line)})


def poem(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(6, 14)):
        line = rng.choice(LINES).split()
        line[rng.randrange(len(line))] = rng.choice(WORDS)  # every poem a little different
        lines.append(" ".join(line))
    if rng.random() < 0.3:
        lines.insert(len(lines) // 2, "")
    return "\n".join(lines)


def critique(rng: random.Random, text: str) -> str:
    lines = pm.poem_lines(text)
    a, b = rng.sample(range(len(lines)), 2)
    return (f"The poem is after something plain and it gets there in places.\n\nWhat works: \"{lines[a]}\" "
            f"(line {a + 1}) is exact, and the turn after it earns its pause.\n\nWhat doesn't work yet: "
            f"\"{lines[b]}\" (line {b + 1}) explains what the image already said. "
            + rng.choice(WORDS).capitalize() + " is the word doing the least.\n\nWhat would the speaker notice "
            "first?\n\nTry cutting the last line and ending on the image before it.")


def record(rng: random.Random, n: int) -> dict:
    task = rng.choice(["critiques", "critiques", "poet-pairs", "poet-pairs", "dialogues", "briefs", "lessons",
                       "autopsies", "comparisons"])
    p = poem(rng)
    if task == "critiques":
        output, inputs = {"critique": critique(rng, p), "quotes": ["x"], "question": "What did it do?",
                          "next_step": "Cut the last line."}, {"poem": p}
    elif task == "poet-pairs":
        revision = "\n".join(pm.poem_lines(p)[:-1] + [rng.choice(LINES)])
        output = {"poem": p, "critique": critique(rng, p), "revision": revision}
        inputs = {"brief": "Form: free verse\nLength: 6-14 lines\nSpeaker: I\nAvoid: rhyme", "brief_id": f"b{n}"}
    elif task == "dialogues":
        r1 = "\n".join(pm.poem_lines(p)[:-1] + [rng.choice(LINES)])
        r2 = "\n".join(pm.poem_lines(r1)[1:])
        output = {"turns": [{"revision": r1, "response": critique(rng, r1)}, {"revision": r2, "response": critique(rng, r2)}]}
        inputs = {"poem": p, "critique": critique(rng, p), "critique_id": f"c{n}"}
    elif task == "briefs":
        output = {"request": f"a poem about {rng.choice(WORDS)} and {rng.choice(WORDS)}",
                  "brief": {"form": "free verse", "length": "10-14 lines", "speaker": "a baker, first person",
                            "anchor": " ".join(rng.sample(WORDS, 6)), "register": "plain",
                            "constraint": "no adjectives", "avoid": "rhyme, we/us/our"}}
        inputs = {"attributes": {"form": "free verse"}}
    elif task == "lessons":
        output = {"lesson": (GOOD_CRITIQUE + " ") * 2 + " ".join(rng.sample(WORDS, 20)), "example": p, "exercise": "x" * 30}
        inputs = {"question": f"What is {rng.choice(WORDS)}?"}
    elif task == "autopsies":
        lines = pm.poem_lines(p)
        output = {"autopsy": critique(rng, p), "pattern": "the clichés cluster at the feeling",
                  "phrases": [{"phrase": lines[0], "line": 1, "why_dead": "worn smooth", "live_phrase_job": "be particular"}]}
        inputs = {"poem": p}
    else:
        q = poem(rng)
        output = {"comparison": critique(rng, p) + "\n\n" + critique(rng, q), "quotes": ["a", "b"]}
        inputs = {"poem_a": p, "poem_b": q}
    return {"id": f"{task}-{n}", "task": task, "inputs": inputs, "output": output}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    records = [record(rng, n) for n in range(args.records)]
    settings = load_settings()
    matcher = pm.LlmIsmMatcher(load_llm_isms())
    gate = QualityGate(settings.gate, matcher, pm.human_baseline(matcher, HUMAN, SLOP) or 7.0,
                       [(f"human:{i}", p) for i, p in enumerate(HUMAN)])
    pm.rhyme_key("warm")  # CMUdict loads once (about a second), before the clock starts
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kept, rejected = [], []
    start = time.perf_counter()
    workers = default_workers()
    report = run_gate(gate, records, kept.append, rejected.append, workers=workers)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rate = report.seen / seconds
    print(f"{report.seen} records in {seconds:.2f} s with {workers} worker process(es), pool start included: "
          f"{rate:,.0f} records/s; kept {report.kept}, rejected "
          f"{report.rejected}; peak RSS {peak / 1024:.0f} MB ({(peak - before) / 1024:.0f} MB during the gate)")
    by_rule: dict[str, int] = {}
    for (rule, _task), (_seen, _kept, rej) in report.table.items():
        by_rule[rule] = by_rule.get(rule, 0) + rej
    print("rejections by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items(), key=lambda kv: -kv[1]) if v))
    print(f"goal gate_records_per_second: {rate:,.0f} (target >= 2,000) {'met' if rate >= 2000 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
