"""`--batch-api`: the same run through the Message Batches API, at the batch price.

The batch id and the requests it holds are saved (`<output>.batch.json`, written
atomically) as soon as the batch exists and before any polling, so a restart resumes
polling that batch instead of paying for it twice. Results come back unordered and are
matched by `custom_id` (the record id). Requests that errored for a transient reason,
expired or were canceled go into the next batch; invalid ones are recorded as failed
and not retried. Ledger lines carry the batch id, so results read again after a crash
are not counted twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from poetry_workshop.errors import ConfigError
from poetry_workshop.files import write_atomic
from poetry_workshop.pipeline.claude import calls as claude_calls
from poetry_workshop.pipeline.jsonl_log import read_jsonl


class BatchedRun(Protocol):
    """What a batch needs of the generation run it serves (`data.generation.BatchedRun`):
    the work still to do, how to price and phrase a request, and where a result is settled.
    Declared here so this module depends on the shape, not on the generation engine."""

    batch_state_path: Path
    ledger_path: Path
    version: str
    model: str
    options: Any
    gen: Any
    task: Any
    report: Any
    target: int
    accepted_ids: set[str]
    settled_ids: set[str]

    @property
    def need(self) -> int: ...
    def pending_items(self) -> Iterator[Any]: ...
    def worst_case(self, item: Any, batch: bool = False) -> float: ...
    def request_params(self, item: Any) -> dict: ...
    def settle(self, item: Any, verdict: claude_calls.CallResult, batch_id: str | None = None) -> None: ...
    def progress(self, note: str = "") -> None: ...

NOT_RETRIED = ("invalid_request_error", "authentication_error", "permission_error", "not_found_error",
               "request_too_large")


def _load_state(run: BatchedRun) -> dict | None:
    path = run.batch_state_path
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state["batch_id"], state["items"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: the saved batch state is unreadable; if no batch is pending, delete it")
    if state.get("prompt_version") != run.version or state.get("model") != run.model:
        raise ConfigError(
            f"{path}: batch {state['batch_id']} is pending with prompt version {state.get('prompt_version')} "
            f"and model {state.get('model')}; finish it with the same prompts and --model, or delete the file "
            "to abandon it"
        )
    return state


def _choose(run: BatchedRun, retry: list, fresh) -> list:
    """Up to the remaining need, retries first, within the spending cap."""
    chosen: list = []
    reserved = 0.0
    cap = run.options.max_cost
    while len(chosen) < run.need:
        item = retry.pop(0) if retry else next(fresh, None)
        if item is None:
            break
        worst = run.worst_case(item, batch=True)
        if cap is not None and run.report.dollars + reserved + worst > cap:
            run.report.stopped = (f"stopped by --max-cost ${cap:.2f}: ${run.report.dollars:.4f} spent, and the next "
                                  f"request could cost up to ${worst:.4f}")
            break
        chosen.append(item)
        reserved += worst
    return chosen


async def run_batches(run: BatchedRun, client) -> None:
    policy = claude_calls.RetryPolicy.from_settings(run.gen.claude)
    fresh = run.pending_items()
    retry: list = []
    rounds = 0
    async with client:
        while True:
            state = _load_state(run)
            if state is None:
                if rounds >= run.gen.batch.max_rounds or run.need == 0 or run.report.stopped:
                    break
                chosen = _choose(run, retry, fresh)
                if not chosen:
                    break
                requests = [{"custom_id": item.id, "params": run.request_params(item)} for item in chosen]
                batch = await claude_calls.with_retries(
                    lambda requests=requests: client.messages.batches.create(requests=requests), policy)
                state = {"batch_id": batch.id, "task": run.task.name, "model": run.model,
                         "prompt_version": run.version, "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         "items": {item.id: item.inputs for item in chosen}}
                write_atomic(run.batch_state_path, json.dumps(state, ensure_ascii=False))
                run.progress(f"batch {batch.id} submitted with {len(chosen)} requests")
            else:
                run.progress(f"resuming batch {state['batch_id']} submitted {state.get('submitted', '')}")
            rounds += 1
            retry += await _finish_batch(run, client, state, policy)
            run.batch_state_path.unlink(missing_ok=True)
    if run.need > 0 and run.report.stopped is None:
        left = f"; {len(retry)} requests errored or expired and will be retried by the next run" if retry else ""
        run.report.stopped = f"{len(run.accepted_ids)} of {run.target} records exist after {rounds} batch(es){left}"


async def _finish_batch(run: BatchedRun, client, state: dict, policy) -> list:
    """Poll until the batch ends, settle every result once; returns the items to retry."""
    batch_id = state["batch_id"]
    while True:
        batch = await claude_calls.with_retries(lambda: client.messages.batches.retrieve(batch_id), policy)
        if batch.processing_status == "ended":
            break
        c = batch.request_counts
        run.progress(f"batch {batch_id}: {batch.processing_status}, {c.processing} processing, "
                     f"{c.succeeded} succeeded")
        await asyncio.sleep(run.gen.batch.poll_s)

    ledger, _ = read_jsonl(run.ledger_path)
    already = {e["id"] for e in ledger if e.get("batch_id") == batch_id}
    items = {cid: run.task.item(inputs, run.version) for cid, inputs in state["items"].items()}
    retry, seen = [], set()
    results = await claude_calls.with_retries(lambda: client.messages.batches.results(batch_id), policy)
    async for entry in results:
        item = items.get(entry.custom_id)
        if item is None or entry.custom_id in seen:
            continue
        seen.add(entry.custom_id)
        if entry.custom_id in already or item.id in run.settled_ids:
            continue
        result = entry.result
        if result.type == "succeeded":
            # A batch result has no HTTP request of its own; the message id identifies it.
            verdict = claude_calls.judge_message(result.message, run.task.schema, getattr(result.message, "id", None))
            run.settle(item, verdict, batch_id=batch_id)
        elif result.type == "errored":
            kind = getattr(getattr(result.error, "error", None), "type", "api_error")
            if kind in NOT_RETRIED:
                message = getattr(getattr(result.error, "error", None), "message", "")
                run.settle(item, claude_calls.CallResult("failed", reason=f"batch request {kind}: {message}"),
                           batch_id=batch_id)
            else:
                retry.append(item)
        else:  # expired or canceled: never ran, costs nothing, goes into the next batch
            retry.append(item)
    retry += [item for cid, item in items.items() if cid not in seen and cid not in already
              and item.id not in run.settled_ids]
    if retry:
        run.progress(f"batch {batch_id}: {len(retry)} requests errored or expired; they go into the next batch")
    return retry
