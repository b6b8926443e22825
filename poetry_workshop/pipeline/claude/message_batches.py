"""`--batch-api`: the same run through the Message Batches API, at the batch price, submitted
exactly once.

The API takes no idempotency key and no metadata on a batch, so a batch is known by its
requests: each `custom_id` is the record id followed by a tag drawn fresh for the batch.
Before `create`, the intent (tag, custom ids, the items, each request's worst case) is
written durably to `<output>.batch.json` and each request's worst case is reserved in the
ledger. `create` is never retried blindly: after a timeout, a connection fault, a 5xx or a
restart that finds an intent without a batch id, the batches created since the intent are
listed (`batches.list`, newest first) and one with as many requests as the intent is taken
as ours; its results confirm it (every `custom_id` carries the tag), and a batch that turns
out to be someone else's is set aside and the search goes on. Only when no batch can be
ours is `create` sent again. The batch id is saved the moment it is known, before polling,
so a restart resumes polling that batch instead of paying for it twice.

Results come back unordered and are matched by `custom_id`. Requests that errored for a
transient reason, expired or were canceled go into the next batch (their reservation is
released: they cost nothing); invalid ones are recorded as failed and not retried; a
billing, permission or authentication error stops the run. Ledger lines carry the batch id,
so results read again after a crash are not counted twice.

Cancelling the run (`cancel`, as the build screen's `c` does) sends `batches.cancel`, then
collects what had already succeeded: the requests the API had not run cost nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import anthropic

from poetry_workshop.errors import ConfigError, ExitCode, WorkshopError
from poetry_workshop.files import write_atomic
from poetry_workshop.pipeline.claude import calls as claude_calls
from poetry_workshop.pipeline.jsonl_log import read_jsonl


class BatchedRun(Protocol):
    """What a batch needs of the generation run it serves (`data.generation.TeachingDataRun`):
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
    cancel: Any  # threading.Event

    @property
    def need(self) -> int: ...
    def pending_items(self) -> Iterator[Any]: ...
    def worst_case(self, item: Any, batch: bool = False) -> float: ...
    def request_params(self, item: Any) -> dict: ...
    def room_for(self, worst: float, reserved: float = 0.0) -> bool: ...
    def cap_stop(self, worst: float) -> str: ...
    def reserve(self, item: Any, worst: float, call: str | None = None) -> str: ...
    def release(self, item: Any, call: str, reason: str) -> None: ...
    def settle(self, item: Any, verdict: claude_calls.CallResult, batch_id: str | None = None,
               call: str | None = None) -> None: ...
    def progress(self, note: str = "") -> None: ...


# Batch request errors that another batch would not cure.
NOT_RETRIED = ("invalid_request_error", "authentication_error", "permission_error", "billing_error",
               "not_found_error", "request_too_large")
# How far before the intent a batch's created_at may be and still be ours: the server's
# clock and this machine's need not agree.
CLOCK_SLACK = timedelta(minutes=15)
LIST_PAGE = 100
CANCELLED = "cancelled: the batch was canceled; what had succeeded is kept, the rest cost nothing"


class BatchRefused(WorkshopError):
    """The API refused to create the batch (a bad request): nothing was submitted."""

    exit_code = ExitCode.FAILED


def new_tag() -> str:
    return uuid.uuid4().hex[:12]


def custom_id(record_id: str, tag: str) -> str:
    # Record ids are "<task>-<20 hex>": with the tag, well inside the API's 64 [A-Za-z0-9_-].
    return f"{record_id}-{tag}"


def _save(run: BatchedRun, state: dict) -> None:
    write_atomic(run.batch_state_path, json.dumps(state, ensure_ascii=False))


def _load_state(run: BatchedRun) -> dict | None:
    path = run.batch_state_path
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state["items"]
        if "requests" not in state:  # written before tags: the record id was the custom_id
            state["batch_id"]
            state["requests"] = {item_id: item_id for item_id in state["items"]}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: the saved batch state is unreadable; if no batch is pending, delete it")
    state.setdefault("batch_id", None)
    state.setdefault("tag", None)
    state.setdefault("not_ours", [])
    state.setdefault("create_sent", True)
    if state.get("prompt_version") != run.version or state.get("model") != run.model:
        pending = state.get("batch_id") or f"with tag {state.get('tag')} (maybe submitted)"
        raise ConfigError(
            f"{path}: batch {pending} is pending with prompt version {state.get('prompt_version')} "
            f"and model {state.get('model')}; finish it with the same prompts and --model, or delete the file "
            "to abandon it"
        )
    return state


def _choose(run: BatchedRun, retry: list, fresh) -> list:
    """Up to the remaining need, retries first, within the spending cap."""
    chosen: list = []
    reserved = 0.0
    while len(chosen) < run.need:
        item = retry.pop(0) if retry else next(fresh, None)
        if item is None:
            break
        worst = run.worst_case(item, batch=True)
        if not run.room_for(worst, reserved):
            run.report.stopped = run.cap_stop(worst)
            break
        chosen.append(item)
        reserved += worst
    return chosen


def _intent(run: BatchedRun, chosen: list) -> dict:
    """The batch about to be created, on disk and reserved in the ledger before `create`."""
    tag = new_tag()
    state = {"tag": tag, "batch_id": None, "task": run.task.name, "model": run.model,
             "prompt_version": run.version, "intent_at": datetime.now(UTC).isoformat(),
             "requests": {custom_id(item.id, tag): item.id for item in chosen},
             "items": {item.id: item.inputs for item in chosen}, "create_sent": False, "not_ours": []}
    _save(run, state)
    for item in chosen:
        run.reserve(item, run.worst_case(item, batch=True), call=custom_id(item.id, tag))
    return state


def _items(run: BatchedRun, state: dict) -> dict[str, Any]:
    """custom_id → work item."""
    return {cid: run.task.item(state["items"][item_id], run.version) for cid, item_id in state["requests"].items()}


def _uncertain(error: Exception) -> bool:
    """A `create` that failed this way may have reached the server and made the batch."""
    if isinstance(error, anthropic.APIConnectionError):  # timeouts and resets too
        return True
    return isinstance(error, anthropic.APIStatusError) and (error.status_code in (408, 409)
                                                            or error.status_code >= 500)


async def _find(run: BatchedRun, client, state: dict, policy) -> str | None:
    """The id of a batch created since the intent that can be ours, or None: newest first,
    as many requests as the intent, not already found to be someone else's."""
    since = datetime.fromisoformat(state["intent_at"]) - CLOCK_SLACK
    size = len(state["requests"])
    page = await claude_calls.with_retries(lambda: client.messages.batches.list(limit=LIST_PAGE), policy)
    candidates = []
    while True:
        for batch in page.data:
            if batch.created_at < since:
                return candidates[-1] if candidates else None  # the oldest since the intent: ours first
            c = batch.request_counts
            total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
            if total == size and batch.id not in state["not_ours"]:
                candidates.append(batch.id)
        if not page.has_next_page():
            return candidates[-1] if candidates else None
        page = await claude_calls.with_retries(page.get_next_page, policy)


async def _submit_once(run: BatchedRun, client, state: dict, policy) -> None:
    """Find the intent's batch or create it, never both; saves its id in the state."""
    attempt = 0
    while True:
        if state["create_sent"]:  # a create may have reached the server: look before sending another
            found = await _find(run, client, state, policy)
            if found is not None:
                state["batch_id"] = found
                _save(run, state)
                run.progress(f"batch {found} was submitted before (tag {state['tag']}); polling it, "
                             "not submitting again")
                return
        state["create_sent"] = True
        _save(run, state)
        items = _items(run, state)
        requests = [{"custom_id": cid, "params": run.request_params(item)} for cid, item in items.items()]
        attempt += 1
        try:
            batch = await client.messages.batches.create(requests=requests)
        except (TimeoutError, anthropic.APIError) as exc:
            if claude_calls.stops_the_run(exc):
                _abandon(run, state, items, f"refused: {claude_calls.describe_error(exc)}")
                raise claude_calls.access_error(exc) from None
            uncertain = isinstance(exc, TimeoutError) or _uncertain(exc)
            if not (uncertain or claude_calls.is_retryable(exc)) or attempt > policy.max_retries:
                if uncertain:  # it may exist: keep the intent, so the next run looks for it
                    raise WorkshopError(f"creating the batch failed ({claude_calls.describe_error(exc)}) and it "
                                        "may have been made; run again to look for it before anything is resent",
                                        ExitCode.FAILED) from None
                _abandon(run, state, items, f"not created: {claude_calls.describe_error(exc)}")
                raise BatchRefused(f"the batch was not created ({claude_calls.describe_error(exc)}); "
                                   "nothing was submitted") from None
            if not uncertain:
                state["create_sent"] = False  # refused outright (429): nothing to look for
                _save(run, state)
            run.progress(f"creating the batch failed ({claude_calls.describe_error(exc)})"
                         + ("; looking for it before trying again" if uncertain else "; trying again"))
            await asyncio.sleep(policy.delay(attempt, exc))
            continue
        state["batch_id"] = batch.id
        state["submitted"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _save(run, state)
        run.progress(f"batch {batch.id} submitted with {len(requests)} requests")
        return


def _abandon(run: BatchedRun, state: dict, items: dict, reason: str) -> None:
    """A batch that certainly does not exist: its reservations end and its intent goes."""
    for cid, item in items.items():
        run.release(item, cid, reason)
    run.batch_state_path.unlink(missing_ok=True)


async def run_batches(run: BatchedRun, client) -> None:
    policy = claude_calls.RetryPolicy.from_settings(run.gen.claude)
    fresh = run.pending_items()
    retry: list = []
    rounds = 0
    async with client:
        while True:
            state = _load_state(run)
            if state is None:
                if run.cancel.is_set() and run.report.stopped is None:
                    run.report.stopped = CANCELLED
                if rounds >= run.gen.batch.max_rounds or run.need == 0 or run.report.stopped:
                    break
                chosen = _choose(run, retry, fresh)
                if not chosen:
                    break
                state = _intent(run, chosen)
            elif state.get("batch_id"):
                run.progress(f"resuming batch {state['batch_id']} submitted {state.get('submitted', '')}")
            else:
                state["create_sent"] = True  # the last run died around `create`: it may have been made
            if not state.get("batch_id"):
                await _submit_once(run, client, state, policy)
            rounds += 1
            again = await _finish_batch(run, client, state, policy)
            if again is None:  # the batch found was someone else's: look again, or create ours
                rounds -= 1
                continue
            retry += again
            run.batch_state_path.unlink(missing_ok=True)
    if run.need > 0 and run.report.stopped is None:
        left = f"; {len(retry)} requests errored or expired and will be retried by the next run" if retry else ""
        run.report.stopped = f"{len(run.accepted_ids)} of {run.target} records exist after {rounds} batch(es){left}"


async def _finish_batch(run: BatchedRun, client, state: dict, policy) -> list | None:
    """Poll until the batch ends, settle every result once; returns the items to retry, or
    None when the results show the batch is not ours (its id is then set aside)."""
    batch_id = state["batch_id"]
    while True:
        batch = await claude_calls.with_retries(lambda: client.messages.batches.retrieve(batch_id), policy)
        if batch.processing_status == "ended":
            break
        if run.cancel.is_set() and not state.get("cancel_sent"):
            await claude_calls.with_retries(lambda: client.messages.batches.cancel(batch_id), policy)
            state["cancel_sent"] = True
            _save(run, state)
            run.report.stopped = CANCELLED
            run.progress(f"batch {batch_id}: cancel sent; collecting what already succeeded")
            continue
        c = batch.request_counts
        run.progress(f"batch {batch_id}: {batch.processing_status}, {c.processing} processing, "
                     f"{c.succeeded} succeeded")
        await asyncio.sleep(run.gen.batch.poll_s)

    ledger, _ = read_jsonl(run.ledger_path)
    already = {e["id"] for e in ledger if e.get("batch_id") == batch_id and e.get("outcome") != "started"}
    items = _items(run, state)
    results = await claude_calls.with_retries(lambda: client.messages.batches.results(batch_id), policy)
    entries = [entry async for entry in results]
    if entries and not any(entry.custom_id in items for entry in entries):
        state["not_ours"].append(batch_id)
        state["batch_id"] = None
        _save(run, state)
        run.progress(f"batch {batch_id} holds none of this run's requests (tag {state['tag']}): not ours; "
                     "looking again")
        return None
    retry, seen = [], set()
    for entry in entries:
        item = items.get(entry.custom_id)
        if item is None or entry.custom_id in seen:
            continue
        seen.add(entry.custom_id)
        if item.id in already or item.id in run.settled_ids:
            continue
        result = entry.result
        if result.type == "succeeded":
            # A batch result has no HTTP request of its own; the message id identifies it.
            verdict = claude_calls.judge_message(result.message, run.task.schema, getattr(result.message, "id", None))
            run.settle(item, verdict, batch_id=batch_id, call=entry.custom_id)
        elif result.type == "errored":
            error = getattr(result.error, "error", None)
            kind = getattr(error, "type", "api_error")
            if kind in NOT_RETRIED:
                message = getattr(error, "message", "")
                run.settle(item, claude_calls.CallResult("failed", reason=f"batch request {kind}: {message}"),
                           batch_id=batch_id, call=entry.custom_id)
                if kind in claude_calls.STOP_TYPES and run.report.stopped is None:
                    run.report.stopped = (f"the batch's requests were refused ({kind}: {message}); no further "
                                          "batch is submitted. Fix the account, then run again")
            else:
                run.release(item, entry.custom_id, f"batch request {kind}: goes into the next batch")
                retry.append(item)
        else:  # expired or canceled: never ran, costs nothing, goes into the next batch
            run.release(item, entry.custom_id, f"batch request {result.type}: goes into the next batch")
            retry.append(item)
    for cid, item in items.items():
        if cid not in seen and item.id not in already and item.id not in run.settled_ids:
            run.release(item, cid, "no result in the batch: goes into the next batch")
            retry.append(item)
    if retry:
        run.progress(f"batch {batch_id}: {len(retry)} requests errored or expired; they go into the next batch")
    return retry
