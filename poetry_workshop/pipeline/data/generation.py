"""The teaching-data engine: one run of one task, from work items to records on disk.

A run reads what exists (records, rejects), walks the task's work items in their fixed
order skipping every id already settled, and keeps `--concurrency` requests in flight
until the target number of accepted records exists. Each finished call is written to
the ledger, then to the records or the reject log, one flushed line at a time, so a
`kill -9` at any moment loses at most the calls in flight and a rerun finishes the target
with no duplicate. Failed calls (faults that outlived their retries) are only in the
ledger and are tried again by the next run.

`--max-cost` caps what the target (the records file) costs over every run that made it,
read back from the ledger beside it; in a build, the build's cap covers every run of the
build instead (`GenerateOptions.build`). Each call's worst case (its whole input written to
the cache, every `max_tokens` used) is reserved before it starts, with a `started` line in
the ledger: the run stops before the call that could pass the cap, and a call left in
flight by a `kill -9` counts at its worst case (see `claude.ledger`). 401, 402 and 403 stop
the run after the calls in flight have been recorded. Progress goes to a callback as
`GenerationProgress` events.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poetry_workshop import locations
from poetry_workshop.config.loader import Settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.claude import calls as claude_calls
from poetry_workshop.pipeline.claude.message_batches import run_batches
from poetry_workshop.pipeline.data.brief_attributes import coverage, describe_coverage
from poetry_workshop.pipeline.claude.ledger import (
    PriceBook,
    SpendTally,
    TaskTotals,
    Usage,
    ledger_entry,
    new_call_id,
    release_entry,
    reservation_entry,
    spent,
    summarise,
)
from poetry_workshop.pipeline.jsonl_log import AppendLog, read_jsonl
from poetry_workshop.pipeline.data.raw_poems import RawPoemReader, read_hf_poems
from poetry_workshop.pipeline.data.tasks import TASKS, TaskSources, TeachingTask, WorkItem, work_items

POEM_TASKS = ("critiques", "autopsies", "comparisons", "briefs")


@dataclass
class GenerateOptions:
    task: str
    limit: int | None = None
    output: Path | None = None
    model: str | None = None
    concurrency: int | None = None
    max_cost: float | None = None  # the target's (or, with `build`, the build's) cap over every run
    build: str | None = None  # the build this run belongs to: its cap covers the whole build
    batch_api: bool = False
    input: Path | None = None  # briefs: poems to derive briefs from
    questions: Path | None = None  # lessons
    critiques: Path | None = None  # dialogues
    briefs: Path | None = None  # poet-pairs
    from_hf: str | None = None
    hf_field: str = "text"
    hf_split: str = "train"


@dataclass(frozen=True)
class GenerationProgress:
    task: str
    done: int
    total: int
    accepted: int
    rejected: int
    failed: int
    dollars: float  # this run
    note: str = ""
    spent_before: float = 0.0  # earlier runs of the same target (or build), from the ledger


@dataclass(frozen=True)
class GenerationEstimate:
    """What a run would cost, before it spends anything."""

    task: str
    calls: int
    model: str
    prices_as_of: str
    counted_by: str  # the count-tokens endpoint, or text length when there is no key
    prefix_tokens: int
    mean_item_tokens: int
    input_tokens: int
    output_tokens: int
    dollars: float
    dollars_batch_api: float
    existing: int
    target: int
    prices: str = ""  # the date and the model's prices the dollars come from
    spent_before: float = 0.0
    cap: float | None = None


@dataclass
class GenerationReport:
    task: str
    output: Path
    rejects: Path
    ledger: Path
    target: int
    existing: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    dollars: float = 0.0  # this run
    spent_before: float = 0.0  # earlier runs of the same target (or build), from the ledger
    capped: bool = False  # the cap stopped the run
    stopped: str | None = None  # why the run ended short of the target
    warnings: list[str] = field(default_factory=list)
    totals: dict[str, TaskTotals] = field(default_factory=dict)


def _count_tokens_guess(text: str) -> int:
    # Deliberately high (English runs near 4 characters a token): it feeds the spending cap.
    return math.ceil(len(text) / 3)


CANCELLED = "cancelled: no new calls were started; the records already made are kept"


class TeachingDataRun:
    """Everything one `workshop data generate TASK` needs, resolved and checked up front."""

    def __init__(self, settings: Settings, options: GenerateOptions,
                 on_progress: Callable[[GenerationProgress], None] | None = None,
                 cancel: threading.Event | None = None):
        """`cancel`, once set, stops new calls; the calls in flight finish and are recorded
        (they are paid for), so a later run resumes with nothing lost."""
        if options.task not in TASKS:
            raise ConfigError(f"unknown task '{options.task}'; choose one of: {', '.join(TASKS)}")
        self.options = options
        self.gen = settings.generation
        self.task: TeachingTask = TASKS[options.task]
        self.model = options.model or self.gen.claude.model
        self.prices = PriceBook(self.gen.prices)
        self.prices.price(self.model)  # an unknown model fails here, before anything is spent
        self.concurrency = options.concurrency or self.gen.claude.concurrency
        self.max_tokens = self.gen.max_tokens.get(options.task, self.gen.claude.max_tokens)
        self.on_progress = on_progress or (lambda event: None)
        self.cancel = cancel or threading.Event()
        self.warnings: list[str] = []
        self.run_id = uuid.uuid4().hex[:12]
        self.version = self.task.version()
        self.prefix = self.task.shared_prefix()
        self.output_format = self.task.output_format()

        out = options.output or locations.annotated_dir() / f"{options.task}.jsonl"
        self.output = Path(out)
        self.rejects_path = self.output.with_name(f"{self.output.stem}.rejects.jsonl")
        self.ledger_path = self.output.parent / "ledger.jsonl"
        self.batch_state_path = self.output.with_name(f"{self.output.stem}.batch.json")

        self.target = options.limit if options.limit is not None else self.gen.limits.get(options.task, 100)
        if self.target < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.target}")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}")
        if options.max_cost is not None and options.max_cost <= 0:
            raise ConfigError(f"--max-cost must be a positive number of dollars, got {options.max_cost}")

        self.sources = self._sources()
        self._read_existing()
        # What this run's ledger lines count toward, and what earlier runs already spent on it.
        self.scope = {"target": self.output.name} | ({"build": options.build} if options.build else {})
        entries, _ = read_jsonl(self.ledger_path)
        self.tally: SpendTally = spent(entries, self._counts_toward_cap)  # grows with every line this run writes
        self.spent_before = spent(entries, self._counts_toward_cap)  # stays as it was at the start

    # ------------------------------------------------------------------ inputs and state

    def _sources(self) -> TaskSources:
        o, name = self.options, self.options.task
        for flag, value, owner in (("--input", o.input, "briefs"), ("--questions", o.questions, "lessons"),
                                   ("--critiques", o.critiques, "dialogues"), ("--briefs", o.briefs, "poet-pairs")):
            if value is not None and name != owner:
                raise ConfigError(f"{flag} is for the {owner} task, not {name}")
        if o.from_hf and name not in POEM_TASKS:
            raise ConfigError(f"--from-hf brings poems; the {name} task does not read poems")
        sources = TaskSources(seed=self.gen.seed)
        reader = RawPoemReader(self.gen.raw)
        if name in ("critiques", "autopsies", "comparisons"):
            sources.poems = reader.read_raw(locations.data_dir() / "raw")
            if o.from_hf:
                sources.poems["good"] += read_hf_poems(o.from_hf, o.hf_field, reader, "good", o.hf_split)
            good, bad = len(sources.poems["good"]), len(sources.poems["bad"])
            enough = {"critiques": good + bad > 0, "autopsies": bad > 0,
                      "comparisons": (good > 0 and bad > 0) or good > 1}[name]
            if not enough:
                wanted = {"critiques": "at least one poem", "autopsies": "at least one weak poem in bad/",
                          "comparisons": "a poem in good/ and one in bad/, or two in good/"}[name]
                raise ConfigError(f"no poems to work from for {name}: it needs {wanted} under "
                                  f"{locations.data_dir() / 'raw'} (.txt or .jsonl)"
                                  + ("" if name == "autopsies" else ", or --from-hf NAME"))
        elif name == "briefs" and (o.input or o.from_hf):
            if o.input:
                path = Path(o.input)
                if not path.exists():
                    raise ConfigError(f"--input {path}: no such file or folder of poems")
                sources.brief_poems = reader.read_folder(path, "good") if path.is_dir() else reader.read_file(path, "good")
            if o.from_hf:
                sources.brief_poems += read_hf_poems(o.from_hf, o.hf_field, reader, "good", o.hf_split)
            if not sources.brief_poems:
                raise ConfigError(f"--input {o.input or o.from_hf}: no usable poems in it")
        elif name == "lessons":
            sources.questions = self._questions(o.questions or locations.persona_dir() / "craft_questions.txt")
        elif name == "dialogues":
            sources.critiques = self._earlier(o.critiques, "critiques", ("inputs.poem", "output.critique"))
        elif name == "poet-pairs":
            sources.briefs = self._earlier(o.briefs, "briefs", ("output.request", "output.brief"))
        self.warnings += reader.report.warnings
        self.poem_report = reader.report
        return sources

    def _questions(self, path: Path) -> list[str]:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--questions {path}: no such file; give a text file with one question per line")
        if path.suffix == ".jsonl":
            records, warnings = read_jsonl(path)
            self.warnings += warnings
            questions = [r["question"] for r in records if isinstance(r.get("question"), str)]
        else:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise ConfigError(f"--questions {path}: not UTF-8 text; save it as UTF-8")
            questions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not questions:
            raise ConfigError(f"--questions {path}: holds no questions (one per line, '#' for comments)")
        return list(dict.fromkeys(questions))

    def _earlier(self, given: Path | None, task: str, needs: tuple[str, ...]) -> list[dict]:
        path = Path(given) if given else self.output.parent / f"{task}.jsonl"
        flag = "--critiques" if task == "critiques" else "--briefs"
        if not path.is_file():
            raise ConfigError(f"{path}: no {task} to build on; run `workshop data generate {task}` first "
                              f"or pass {flag} PATH")
        records, warnings = read_jsonl(path)
        self.warnings += warnings
        usable = []
        for index, record in enumerate(records, start=1):
            try:
                for dotted in needs:
                    value: Any = record
                    for key in dotted.split("."):
                        value = value[key]
                usable.append(record)
            except (KeyError, TypeError):
                self.warnings.append(f"{path}: record {index} has no {dotted}; skipped")
        if not usable:
            raise ConfigError(f"{path}: no usable {task} records in it")
        return usable

    def _read_existing(self) -> None:
        records, warnings = read_jsonl(self.output)
        self.warnings += warnings
        rejects, warnings = read_jsonl(self.rejects_path)
        self.warnings += warnings
        current = [r for r in records if r.get("prompt_version") == self.version]
        older = len(records) - len(current)
        if older:
            self.warnings.append(
                f"{self.output}: {older} records were made with an earlier prompt version; they stay, "
                f"marked with their version, and do not count toward this run's target (version {self.version})"
            )
        self.accepted_ids = {r["id"] for r in current if "id" in r}
        self.settled_ids = self.accepted_ids | {r["id"] for r in rejects if "id" in r}

    def _counts_toward_cap(self, entry: dict) -> bool:
        if self.options.build:
            return entry.get("build") == self.options.build
        # Lines written before targets were recorded belong to the task's default file.
        return entry.get("task") == self.task.name and \
            entry.get("target", f"{entry.get('task')}.jsonl") == self.output.name

    @property
    def spend_scope(self) -> str:
        return "this build" if self.options.build else self.output.name

    def room_for(self, worst: float, reserved: float = 0.0) -> bool:
        """Whether a call costing up to `worst` fits the cap beside everything spent or reserved
        (the calls in flight hold their reservation in the tally; `reserved` is what a batch
        being assembled will reserve)."""
        cap = self.options.max_cost
        return cap is None or self.tally.total + reserved + worst <= cap

    def cap_stop(self, worst: float) -> str:
        """Why the run stops at the cap: what was spent where, and what the next call could cost."""
        cap = self.options.max_cost
        flag = "the build's spend cap" if self.options.build else "--max-cost"
        total = self.tally.total
        self.report.capped = True
        return (f"stopped by {flag} ${cap:.2f} for {self.spend_scope}: ${total:.4f} spent or reserved "
                f"({self.spent_before.describe()} by earlier runs, ${self.report.dollars:.4f} settled in this one), "
                f"and the next call could cost up to ${worst:.4f}; ${max(0.0, cap - total):.4f} left")

    def _write_ledger(self, entry: dict) -> None:
        self.ledger_log.append(entry)
        self.tally.add(entry)

    def resume_note(self) -> str | None:
        """What earlier runs spent on this target (or build), and what the cap leaves."""
        if self.spent_before.total <= 0:
            return None
        note = f"earlier runs spent {self.spent_before.describe()} on {self.spend_scope}"
        cap = self.options.max_cost
        if cap is not None:
            note += f"; ${max(0.0, cap - self.spent_before.total):.4f} of the ${cap:.2f} cap is left"
        return note

    def pending_items(self) -> Iterator[WorkItem]:
        return (item for item in work_items(self.task, self.sources) if item.id not in self.settled_ids)

    @property
    def need(self) -> int:
        return max(0, self.target - len(self.accepted_ids))

    def brief_coverage(self) -> str | None:
        """For attribute-sampled briefs: how evenly the first `target` items cover each attribute."""
        if self.task.name != "briefs" or self.sources.brief_poems:
            return None
        from poetry_workshop.pipeline.data.brief_attributes import BriefAttributes

        items = work_items(self.task, self.sources)
        samples = [BriefAttributes(**next(items).inputs["attributes"]) for _ in range(self.target)]
        return describe_coverage(coverage(samples))

    # ------------------------------------------------------------------------- requests

    def request_params(self, item: WorkItem) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            # The shared prefix is marked for caching: the system text is identical for every
            # request of the task, so after the first call it is read at a fraction of the price.
            "system": [{"type": "text", "text": self.prefix}],
            "messages": [{"role": "user", "content": item.prompt}],
            "output_config": {"format": self.output_format},
        }
        if self.gen.claude.prompt_cache:
            params["system"][0]["cache_control"] = {"type": "ephemeral"}
        if self.gen.claude.effort:
            params["output_config"]["effort"] = self.gen.claude.effort
        if self.gen.claude.temperature is not None:
            params["temperature"] = self.gen.claude.temperature
        if self.gen.claude.top_p is not None:
            params["top_p"] = self.gen.claude.top_p
        return params

    def worst_case(self, item: WorkItem, batch: bool = False) -> float:
        tokens = (_count_tokens_guess(self.prefix) + _count_tokens_guess(item.prompt)
                  + _count_tokens_guess(str(self.output_format)))
        return self.prices.worst_case(self.model, tokens, self.max_tokens, batch)

    # ------------------------------------------------------------------- writing results

    def open_logs(self) -> None:
        self.records_log = AppendLog(self.output)
        self.rejects_log = AppendLog(self.rejects_path)
        self.ledger_log = AppendLog(self.ledger_path)
        for log in (self.records_log, self.rejects_log, self.ledger_log):
            if log.repair_warning:
                self.warnings.append(log.repair_warning)
        self.entries: list[dict[str, Any]] = []
        self.report = GenerationReport(self.task.name, self.output, self.rejects_path, self.ledger_path,
                                       self.target, existing=len(self.accepted_ids), warnings=self.warnings,
                                       spent_before=self.spent_before.total)

    def close_logs(self) -> None:
        for log in (self.records_log, self.rejects_log, self.ledger_log):
            log.close()
        self.report.totals = summarise(self.entries)

    def reserve(self, item: WorkItem, worst: float, call: str | None = None) -> str:
        """The `started` line before a call: its worst case, until the call's own line settles it."""
        call = call or new_call_id()
        self._write_ledger(reservation_entry(run=self.run_id, task=self.task.name, record_id=item.id,
                                             model=self.model, call=call, worst=worst, scope=self.scope))
        return call

    def release(self, item: WorkItem, call: str, reason: str) -> None:
        """A reserved call that cost nothing (refused, expired, canceled)."""
        self._write_ledger(release_entry(run=self.run_id, task=self.task.name, record_id=item.id, call=call,
                                         reason=reason, scope=self.scope))

    def settle(self, item: WorkItem, result: claude_calls.CallResult, batch_id: str | None = None,
               call: str | None = None) -> None:
        """Ledger first, then the record or the reject: see the module docstring."""
        batch = batch_id is not None
        cost = self.prices.cost(self.model, result.usage, batch)
        entry = ledger_entry(run=self.run_id, task=self.task.name, record_id=item.id, model=self.model,
                             outcome=result.outcome, usage=result.usage, cost=cost, request_id=result.request_id,
                             batch=batch, attempts=result.attempts, reason=result.reason, call=call,
                             scope=self.scope)
        if batch_id:
            entry["batch_id"] = batch_id
        self._write_ledger(entry)
        self.entries.append(entry)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if result.outcome == "accepted":
            self.records_log.append({
                "id": item.id, "task": self.task.name, "prompt_version": self.version, "inputs": item.inputs,
                "output": result.output, "model": self.model, "usage": entry["usage"],
                "request_id": result.request_id, "created": stamp,
            })
            self.accepted_ids.add(item.id)
            self.settled_ids.add(item.id)
            self.report.accepted += 1
        elif result.outcome == "rejected":
            self.rejects_log.append({
                "id": item.id, "task": self.task.name, "prompt_version": self.version, "reason": result.reason,
                "request_id": result.request_id, "model": self.model, "created": stamp, "inputs": item.inputs,
            })
            self.settled_ids.add(item.id)
            self.report.rejected += 1
        else:
            self.report.failed += 1
            self.warnings.append(f"{item.id}: failed after {result.attempts} attempt(s): {result.reason} "
                                 f"(request id {result.request_id or 'none'}); a rerun tries it again")
        self.report.dollars += cost
        self.progress()

    def progress(self, note: str = "") -> None:
        r = self.report
        self.on_progress(GenerationProgress(self.task.name, r.accepted + r.rejected + r.failed, self.need + r.accepted,
                                            r.accepted, r.rejected, r.failed, r.dollars, note,
                                            self.spent_before.total))

    # --------------------------------------------------------------------------- running

    def run(self) -> GenerationReport:
        """Generate until the target exists (or inputs, or the budget, run out)."""
        self.open_logs()
        try:
            if self.need == 0 and not (self.options.batch_api and self.batch_state_path.exists()):
                self.report.stopped = f"done already: {len(self.accepted_ids)} records exist (target {self.target})"
                return self.report
            cap = self.options.max_cost
            pending_batch = self.options.batch_api and self.batch_state_path.exists()
            if cap is not None and self.spent_before.total >= cap and not pending_batch:
                self.report.capped = True
                self.report.stopped = (f"the cap is reached: {self.spent_before.describe()} spent on {self.spend_scope} "
                                       f"of ${cap:.2f}; nothing was asked for. Raise the cap to go on")
                return self.report
            client = claude_calls.make_client(self.gen.claude)
            self.progress(self.resume_note() or "starting")
            body = run_batches(self, client) if self.options.batch_api else self._run_online(client)
            asyncio.run(body)
        finally:
            self.close_logs()
        return self.report

    async def _run_online(self, client) -> None:
        policy = claude_calls.RetryPolicy.from_settings(self.gen.claude)
        items = self.pending_items()
        inflight: dict[asyncio.Task, tuple[WorkItem, str]] = {}
        exhausted = False
        waiting: WorkItem | None = None  # an item held back until spending leaves room for it
        refused: claude_calls.ClaudeAccessError | None = None
        try:
            async with client:
                while True:
                    if self.cancel.is_set() and self.report.stopped is None:
                        self.report.stopped = CANCELLED
                    while (not exhausted and self.report.stopped is None and len(inflight) < self.concurrency
                           and len(inflight) < self.need):  # need shrinks as records land
                        item = waiting or next(items, None)
                        waiting = None
                        if item is None:
                            exhausted = True
                            break
                        worst = self.worst_case(item)
                        if not self.room_for(worst):
                            if inflight:  # their reservations may free enough room; wait for them
                                waiting = item
                                break
                            self.report.stopped = self.cap_stop(worst)
                            break
                        call = self.reserve(item, worst)
                        task = asyncio.create_task(claude_calls.call_structured(
                            client, self.request_params(item), self.task.schema, policy))
                        inflight[task] = (item, call)
                    if not inflight:
                        break
                    finished, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        item, call = inflight.pop(task)
                        try:
                            result = task.result()
                        except claude_calls.ClaudeAccessError as exc:
                            # No new call starts; the ones in flight finish and are recorded.
                            self.release(item, call, f"refused: {exc}")
                            refused = refused or exc
                            self.report.stopped = str(exc)
                            continue
                        self.settle(item, result, call=call)
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
        if refused is not None:
            raise refused
        if exhausted and self.need > 0 and self.report.stopped is None:
            self.report.stopped = (f"inputs ran out: {len(self.accepted_ids)} of {self.target} records exist; "
                                   "add inputs or lower --limit")

    # -------------------------------------------------------------------------- estimate

    def estimate(self, count_tokens: bool = True) -> GenerationEstimate:
        """Expected tokens and dollars for the calls this run would make; spends nothing.

        Token counts come from the count-tokens endpoint when a key is available (it is
        free) and `count_tokens` asks for it, otherwise from text length."""
        items = [item for _, item in zip(range(self.need), self.pending_items())]
        n = len(items)
        sample = items[:5]
        counted = "text length (about 4 characters a token)"
        prefix_tokens = math.ceil(len(self.prefix) / 4)
        per_item = [math.ceil(len(i.prompt) / 4) for i in sample]
        try:
            client = claude_calls.make_client(self.gen.claude) if count_tokens else None
        except ConfigError:
            client = None
        if client is not None and sample:
            try:
                prefix_tokens, per_item = asyncio.run(self._count_tokens(client, sample))
                counted = "the count-tokens endpoint"
            except claude_calls.anthropic.APIError as exc:  # refused credentials still stop the run
                counted += f"; the count-tokens endpoint failed ({claude_calls.describe_error(exc)})"
        mean_item = sum(per_item) / len(per_item) if per_item else 0
        expected_out = self.gen.expected_output_tokens.get(self.task.name, self.max_tokens // 2)
        if self.gen.claude.prompt_cache:
            writes = min(self.concurrency, n)  # calls that start before the first has cached the prefix
            cached = Usage(cache_write_tokens=prefix_tokens * writes, cache_read_tokens=prefix_tokens * (n - writes))
        else:
            cached = Usage(input_tokens=prefix_tokens * n)
        online = Usage(input_tokens=round(mean_item * n), output_tokens=expected_out * n) + cached
        # Batches cache only on a best-effort basis: priced here as if they never do.
        batch = Usage(input_tokens=round((mean_item + prefix_tokens) * n), output_tokens=expected_out * n)
        return GenerationEstimate(
            task=self.task.name, calls=n, model=self.model, prices_as_of=self.gen.prices.as_of,
            counted_by=counted, prefix_tokens=prefix_tokens, mean_item_tokens=round(mean_item),
            input_tokens=online.input_tokens + online.cache_write_tokens + online.cache_read_tokens,
            output_tokens=online.output_tokens,
            dollars=self.prices.cost(self.model, online, calls=max(1, n)),
            dollars_batch_api=self.prices.cost(self.model, batch, batch=True, calls=max(1, n)),
            existing=len(self.accepted_ids), target=self.target, prices=self.prices.describe(self.model),
            spent_before=self.spent_before.total, cap=self.options.max_cost,
        )

    async def _count_tokens(self, client, sample: list[WorkItem]) -> tuple[int, list[int]]:
        policy = claude_calls.RetryPolicy.from_settings(self.gen.claude)
        async with client:
            def counted(messages):
                return claude_calls.with_retries(lambda: client.messages.count_tokens(
                    model=self.model, system=self.prefix, messages=messages,
                    output_config={"format": self.output_format}), policy)
            prefix = await counted([{"role": "user", "content": "."}])
            full = await asyncio.gather(*(counted([{"role": "user", "content": i.prompt}]) for i in sample))
        base = prefix.input_tokens
        return base, [max(0, f.input_tokens - base + 1) for f in full]
