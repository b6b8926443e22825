"""Benchmark of the quality gate (a benchmark, not a test: it prints figures).

Generates `--records` records (default 20,000) of every task from a seeded mix of human
and machine-sounding lines, with critiques that quote them, stamped with each task's
current prompt version, and writes them to a JSONL file in a scratch data folder. Then it
times what a person waits on: `workshop data gate FILE` run as a command (start-up, read,
validate, prompt versions, check in worker processes, near-duplicates, write the kept
records and the reject log), `--runs` times (the machine may be shared: each run prints
the CPU it used and the load it ran under), and the same path once in this process
(`gate_file`) to show what start-up costs. The goal is >= 2,000 records/s for the command,
judged on the median run (the best is printed beside it).

Usage: .venv/bin/python -m bench.gate [--records N] [--seed N] [--runs N]
Ends with one `goal <name>: <measured> (target <target>) met|missed` line per goal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.names import TASK_NAMES
from poetry_workshop.pipeline.data.prompt_versions import current_versions
from poetry_workshop.pipeline.gate.run import default_workers, gate_file
from poetry_workshop.verse import poem_metrics as pm
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


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (and theirs: a command's pool workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runs", type=int, default=3, help="times the command is run (default 3)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    versions = current_versions(TASK_NAMES)
    records = [{**r, "prompt_version": versions[r["task"]]} for r in (record(rng, n) for n in range(args.records))]
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as scratch:
        data = Path(scratch) / "data"
        source = data / "annotated" / "mixed.jsonl"
        source.parent.mkdir(parents=True)
        source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        env = {**os.environ, locations.DATA_ENV: str(data)}
        workshop = [sys.executable, "-c", "import sys; from poetry_workshop.cli.main import main; sys.exit(main())"]
        runs = []  # (seconds, CPU seconds, load at the start)
        for _ in range(max(1, args.runs)):
            load = os.getloadavg()[0]
            cpu_before = _children_cpu()
            start = time.perf_counter()
            done = subprocess.run(workshop + ["data", "gate", str(source)],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(f"error: workshop data gate failed ({done.returncode}): {done.stderr.strip()[-500:]}",
                      file=sys.stderr)
                return 1
            runs.append((seconds, _children_cpu() - cpu_before, load))
        kept_lines = sum(1 for _ in (data / "gated" / "mixed.jsonl").open(encoding="utf-8"))

        settings = load_settings()
        pm.rhyme_key("warm")  # CMUdict loads once (about a second), before the clock starts
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with locations.using_data_dir(data):
            start = time.perf_counter()
            run = gate_file(settings, source, data / "gated" / "again.jsonl")
            seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = run.report
    cores = os.cpu_count() or 1
    # On a shared machine the wall clock says as much about the neighbours as about the gate:
    # the CPU the command and its workers used, and the load it ran under, say which.
    for k, (command_seconds, command_cpu, load) in enumerate(runs, start=1):
        print(f"workshop data gate on {args.records} records, run {k}: {command_seconds:.2f} s end to end, "
              f"{args.records / command_seconds:,.0f} records/s; CPU used by the command and its workers "
              f"{command_cpu:.2f} s ({args.records / command_cpu:,.0f} records per CPU-second, {cores} cores here); "
              f"1-minute load average at the start {load:.1f}")
    rates = sorted(args.records / seconds for seconds, _, _ in runs)
    command_rate = statistics.median(rates)
    print(f"kept {kept_lines}; over {len(runs)} run(s): best {rates[-1]:,.0f} records/s, median {command_rate:,.0f}")
    print(f"the same path in this process (gate_file, {default_workers()} worker process(es), no start-up): "
          f"{seconds:.2f} s, {report.seen / seconds:,.0f} records/s; kept {report.kept}, rejected {report.rejected}; "
          f"peak RSS {peak / 1024:.0f} MB ({(peak - before) / 1024:.0f} MB during the gate)")
    by_rule: dict[str, int] = {}
    for (rule, _task), (_seen, _kept, rej) in report.table.items():
        by_rule[rule] = by_rule.get(rule, 0) + rej
    print("rejections by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items(), key=lambda kv: -kv[1]) if v))
    print(f"goal gate_command_records_per_second: {command_rate:,.0f} (target >= 2000) "
          f"{'met' if command_rate >= 2000 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
