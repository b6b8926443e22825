"""`run_eval`: the whole eval, from configurations to the files on disk.

Everything that can be wrong with the input (a model file, the eval set, the report to
compare against, the judge's API key) is checked before the first model loads, so a
mistake costs seconds, not a run. The files are written under a temporary name in the
output folder's parent and moved in one by one, so a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.evaluation.configurations import Configuration, check_configurations
from poetry_workshop.evaluation.eval_set import load_eval_set
from poetry_workshop.evaluation.outputs import ConfigOutputs, Step, generate_outputs
from poetry_workshop.evaluation.report import EvalReport, compare_reports, markdown, read_report


@dataclass(frozen=True)
class EvalProgress:
    """What the eval is doing now, for a progress line or bar."""

    stage: str  # "generate", "judge", "write"
    text: str
    step: Step | None = None  # during "generate": the generation just finished


def default_out_dir() -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return locations.data_dir() / "eval" / stamp


def reference_poems(settings) -> tuple[list[str], list[str]]:
    """(the person's good poems, every poem the Poet was trained on or could have copied):
    data/raw/ and the assistant turns of the Poet's training set, when there is one."""
    from poetry_workshop.pipeline.data.raw_poems import RawPoemReader
    from poetry_workshop.pipeline.jsonl_log import read_jsonl

    raw = RawPoemReader(settings.generation.raw).read_raw(locations.data_dir() / "raw")
    good = [p.text for p in raw["good"]]
    training = good + [p.text for p in raw["bad"]]
    if settings.poet_training.data.train:
        path = locations.resolve_data_path(settings.poet_training.data.train)
        if path.is_file():
            records, _ = read_jsonl(path)
            training += [m["content"] for r in records for m in r.get("messages", [])
                         if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str)]
    return good, training


def run_eval(settings, configurations: list[Configuration], *, limit: int | None = None, judge: bool = False,
             out_dir: Path | None = None, compare: Path | None = None,
             on_progress: Callable[[EvalProgress], None] | None = None, seed: int | None = None,
             max_tokens: int | None = None, judge_model: str | None = None,
             eval_set_path: Path | None = None, judge_max_cost: float | None = None) -> EvalReport:
    """Run the set through each configuration, measure, judge, write; returns the report
    with `files` naming what was written. The judge's estimate is reported (as progress)
    before the first model loads; its spending is capped at `judge_max_cost` (default: the
    config's) and reported with the verdicts."""
    from poetry_workshop.evaluation.metrics import Scorer
    from poetry_workshop.pipeline.gate.rules import QualityGate
    from poetry_workshop.pipeline.gate.run import human_rate
    from poetry_workshop.verse import poem_metrics as pm
    from poetry_workshop.workshop.persona import load_llm_isms, load_persona

    progress = on_progress or (lambda event: None)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if max_tokens is not None and max_tokens < 16:
        raise ConfigError(f"--max-tokens must be at least 16, got {max_tokens}")
    check_configurations(configurations)
    eval_set = load_eval_set(eval_set_path).limited(limit)
    old = read_report(compare) if compare is not None else None
    clients = []
    budget = None
    if judge and len(configurations) > 1:
        from poetry_workshop.evaluation.judge import JudgeBudget
        from poetry_workshop.evaluation.judge import estimate as judge_estimate
        from poetry_workshop.pipeline.claude.calls import make_client

        clients.append(make_client(settings.generation.claude))  # no API key: fails now, not after the models ran
        budget = JudgeBudget.from_settings(settings, judge_model, judge_max_cost)
        progress(EvalProgress("judge", judge_estimate(settings, eval_set, len(configurations) - 1, budget.model,
                                                      budget.cap).describe()))

    def judge_client():
        # A client is closed with the event loop that used it: each judged pair needs its own.
        return clients.pop() if clients else make_client(settings.generation.claude)

    persona = load_persona()
    seed = settings.inference.runtime.seed if seed is None else seed

    matcher = pm.LlmIsmMatcher(load_llm_isms())
    good, training = reference_poems(settings)
    baseline, source = human_rate(settings, matcher, good)
    scorer = Scorer(QualityGate(settings.gate, matcher, baseline), training, settings.gate.hygiene.copy_ngram)

    outputs: dict[str, ConfigOutputs] = {}
    metrics: dict[str, dict] = {}
    described = []
    for config in configurations:
        progress(EvalProgress("generate", f"{config.label}: {eval_set.generations} generations"))
        started = time.perf_counter()
        out = generate_outputs(config, eval_set, settings, persona, seed=seed, max_tokens=max_tokens,
                               on_step=lambda step: progress(EvalProgress(
                                   "generate", f"{step.configuration}: {step.done}/{step.total} {step.kind} "
                                   f"{step.item} ({step.tokens} tokens, {step.seconds:.1f}s)", step)))
        outputs[config.label] = out
        described.append(config.describe() | {"tokens": out.tokens, "seconds": round(time.perf_counter() - started, 2)})
        metrics[config.label] = {
            "poet": scorer.poet([(i.brief, out.drafts[i.id]) for i in eval_set.briefs]),
            "educator": scorer.educator([(i.poem, out.critiques[i.id]["original"], i.weakened,
                                          out.critiques[i.id]["weakened"]) for i in eval_set.critiques]),
            "revision": scorer.revision([(i.draft, i.critique, out.revisions[i.id]) for i in eval_set.revisions]),
        }

    verdicts = None
    if judge:
        verdicts = []  # with one configuration there is nothing to judge; the report says so
        if len(configurations) > 1:
            from poetry_workshop.evaluation.judge import judge_pair

            first = configurations[0]
            try:
                for other in configurations[1:]:
                    progress(EvalProgress("judge", f"judge: {first.label} vs {other.label}, both orders"))
                    verdicts.append(judge_pair(judge_client(), settings, eval_set, first.label, outputs[first.label],
                                               other.label, outputs[other.label], budget))
            finally:
                budget.close()
            progress(EvalProgress("judge", f"judge: ${budget.dollars:.4f} for {budget.calls} calls"
                                  + (f"; {budget.stopped}" if budget.stopped else "")))

    report = EvalReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"), eval_set=eval_set.describe(), seed=seed,
        max_tokens=max_tokens, limit=limit, baseline={"per_1k": baseline, "source": source},
        training_poems=len(training), configurations=described, metrics=metrics,
        outputs={label: o.to_json() for label, o in outputs.items()}, judge=verdicts,
        judge_cost=budget.summary() if budget is not None else None)
    if old is not None:
        report.compare = compare_reports(report, old, compare)
    progress(EvalProgress("write", "writing the report"))
    report.files = write_report(report, out_dir or default_out_dir())
    return report


def write_report(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and a PNG per metric group into `out_dir`, each file whole or absent."""
    from poetry_workshop.evaluation.charts import render_charts

    pngs = render_charts(report.metrics, report.labels)
    charts = {group: f"{group}.png" for group in pngs}
    files: dict[str, bytes] = {name: data for group, data in pngs.items() for name in [charts[group]]}
    files["report.json"] = (json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    files["report.md"] = markdown(report, charts).encode("utf-8")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot write there ({exc.strerror}); choose a writable folder")
    written = {}
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        # report.json last: its presence means the rest of the report is there too
        for name in sorted(files, key=lambda n: n == "report.json"):
            os.replace(staging / name, out_dir / name)
            written[name] = out_dir / name
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
