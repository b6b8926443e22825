"""The gate over a records file: read and validate the records, keep those of each task's
current prompt version (older ones on request, and always counted), check them (in worker
processes when there are many), drop near-duplicates, write the kept records and every
rejection, and the table by rule and task that shows what each rule costs."""

from __future__ import annotations

import gc
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.gate.near_duplicates import Fingerprint, main_text
from poetry_workshop.pipeline.gate.rules import SLOP, Failure, QualityGate
from poetry_workshop.verse import poem_metrics as pm


@dataclass
class GateReport:
    seen: int = 0
    kept: int = 0
    rejected: int = 0
    # (rule, task) -> [seen, kept, rejected]
    table: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))


RULES = ("llm-isms", "cliches", "machine-shape", "form", "grounded-quotes", "cited-lines",
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
    "dialogues": {"llm-isms", "cliches", "machine-shape", "grounded-quotes", "cited-lines",
                  "revision-focus", "revision-scope", "length", "template-tokens"},
    "poet-pairs": {"llm-isms", "cliches", "machine-shape", "form", "grounded-quotes",
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


def _verdict(gate: QualityGate, record: dict) -> tuple[list[Failure], Fingerprint | None]:
    """A record's failures and, when it has none, its near-duplicate fingerprint: the costly
    parts that need no other record, so they can run in worker processes."""
    failures = gate.check(record)
    return failures, None if failures else gate.dedupe.fingerprint(main_text(record))


def _check_in_worker(index: int) -> tuple[list[Failure], Fingerprint | None]:
    return _verdict(_worker_gate, _worker_records[index])


@contextmanager
def _verdicts_started(gate: QualityGate, records: list[dict], workers: int):
    """Checks of every record started now in `workers` processes, when there are enough to be
    worth them: yields an iterator of (record, failures, fingerprint) in input order, or None
    (the checks then run here, as they are asked for). Workers are sent indexes, not records:
    a forked worker already holds the list. Leaving the block stops the workers."""
    global _worker_gate, _worker_records
    if workers <= 1 or len(records) < PARALLEL_FROM:
        yield None
        return
    import multiprocessing

    forked = multiprocessing.get_start_method() == "fork"
    pm.rhyme_key("warm")  # CMUdict loaded once here, inherited by forked workers, not loaded in each
    gc.freeze()  # the records are not walked by a worker's collector, so their pages stay shared
    _worker_gate, _worker_records = gate, records
    try:
        initargs = (None, None) if forked else (gate, records)
        with multiprocessing.Pool(workers, initializer=_start_worker, initargs=initargs) as pool:
            results = pool.imap(_check_in_worker, range(len(records)), chunksize=256)
            yield ((record, failures, print_) for record, (failures, print_) in zip(records, results))
    finally:
        _worker_gate, _worker_records = None, []
        gc.unfreeze()


def _checked(gate: QualityGate, records: list[dict], workers: int):
    """(record, failures, fingerprint) in input order; the checks run in `workers` processes
    when there are many."""
    with _verdicts_started(gate, records, workers) as started:
        if started is not None:
            yield from started
            return
        for record in records:
            yield record, *_verdict(gate, record)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def run_gate(gate: QualityGate, records: Iterable[dict], keep, reject, workers: int = 1,
             verdicts: Iterable[tuple] | None = None) -> GateReport:
    """Check every record; `keep(record)` and `reject(entry)` receive the results in order.
    Near-duplicates are decided here, in order, so the first of a set is the one kept.
    `verdicts`, when given, are the records' checks already under way (`_verdicts_started`)."""
    report = GateReport()
    per_task: Counter[str] = Counter()  # records seen of each task
    failed: Counter[tuple[str, str]] = Counter()  # (rule, task) -> records that failed it
    for record, failures, print_ in verdicts if verdicts is not None else _checked(gate, list(records), workers):
        task = record["task"]
        per_task[task] += 1
        if not failures:
            twin = gate.dedupe.add_fingerprint(record["id"], print_)
            if twin is not None:
                failures = [Failure("near-duplicate", f"nearly the same text as {twin}, which is kept")]
        if failures:
            report.rejected += 1
            failed.update({(f.rule, task) for f in failures})
            for f in failures:
                reject({"id": record["id"], "task": task, "rule": f.rule, "evidence": f.evidence})
        else:
            report.kept += 1
            keep(record)
    report.seen = report.kept + report.rejected
    # Every record of a task is seen by the rules that apply to it; a rule that failed a
    # record it does not apply to (none should) is counted where it failed.
    for task, seen in per_task.items():
        for rule in APPLIES.get(task, set()) | {"near-duplicate"}:
            report.table[(rule, task)] = [seen, seen - failed[(rule, task)], failed[(rule, task)]]
    for (rule, task), count in failed.items():
        if (rule, task) not in report.table:
            report.table[(rule, task)] = [count, 0, count]
    return report


# ---------------------------------------------------------------------- the command


@dataclass
class GateRun:
    output: Path
    reject_log: Path
    report: GateReport
    baseline: float
    baseline_source: str
    older: int = 0  # records of an earlier prompt version: left out, or kept on request
    older_kept: bool = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cycle collector off for a run: the records read stay alive until it ends and the
    checks make no cycles worth collecting, yet with it on, a quarter of a 20,000-record run went
    to walking the records again and again."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def read_records(path: Path) -> tuple[list[dict], list[str]]:
    """Generated records with the fields the gate needs; each bad line named with its number."""
    from poetry_workshop.pipeline.data.tasks import TASKS

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
              warn: Callable[[str], None] = lambda line: None, include_older_versions: bool = False) -> GateRun:
    """Gate one records file; bad lines go to `warn` before anything else happens. Only records
    of their task's current prompt version are gated unless `include_older_versions`; how
    many were left out (or kept) goes to `warn` too."""
    with _collector_paused():
        return _gate_file(settings, input_path, output, reject_log, warn, include_older_versions)


def _gate_file(settings, input_path: Path, output: Path | None, reject_log: Path | None,
               warn: Callable[[str], None], include_older_versions: bool) -> GateRun:
    from poetry_workshop.files import write_jsonl_atomic
    from poetry_workshop.pipeline.data.prompt_versions import split_by_version
    from poetry_workshop.pipeline.data.raw_poems import RawPoemReader
    from poetry_workshop.workshop.persona import load_llm_isms

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
    with _verdicts_started(gate, records, default_workers()) as started:
        # Each task's prompt version hashes the SDK's output format: remembered in the user
        # folder (`output_formats`), but a first run imports the SDK (a second or more), so it
        # is done while the workers check. Records of an older version are checked for nothing
        # when left out, a rare case (one regenerates them).
        split = split_by_version(records)
        note = split.describe_older(str(input_path), include_older_versions)
        if note:
            warn(note)
        if not include_older_versions:
            if not split.current:
                raise ConfigError(f"{input_path}: all {len(split.older)} records were made with an earlier prompt "
                                  "version; regenerate them, or add --include-older-versions to gate them; nothing "
                                  "was written")
            if started is not None and split.older:
                current = {id(r) for r in split.current}
                started = (v for v in started if id(v[0]) in current)
            records = split.current
        report = run_gate(gate, records, kept.append, rejects.append, workers=default_workers(), verdicts=started)
    write_jsonl_atomic(output, kept)
    write_jsonl_atomic(reject_log, rejects)
    return GateRun(output, reject_log, report, baseline, source, len(split.older), include_older_versions)


def format_table(report: GateReport) -> str:
    rows = [f"{'rule':<16} {'task':<12} {'seen':>6} {'kept':>6} {'rejected':>9}"]
    order = {rule: i for i, rule in enumerate(RULES)}
    for (rule, task), (seen, kept, rejected) in sorted(report.table.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        rows.append(f"{rule:<16} {task:<12} {seen:>6} {kept:>6} {rejected:>9}")
    rows.append(f"{'all rules':<16} {'':<12} {report.seen:>6} {report.kept:>6} {report.rejected:>9}")
    return "\n".join(rows)
