"""What Claude calls cost: usage per call, priced from the dated table in config, and the
ledger that records it and is read back to know what a build or a target has spent.

Every call that ended (accepted, rejected or failed) gets one ledger line with its token
counts (input, output, cache write, cache read), its dollars and its request id, written
*before* its record, so a crash can leave a paid call without a record (it is made again)
but never a record without its cost. The summary at the end of a run is computed from the
same entries.

Before a call starts, a `started` line reserves its worst case under a call id; the call's
own line (same id) settles it, and a `released` line ends a reservation that cost nothing
(a batch request that expired). A `kill -9` leaves the calls in flight reserved and never
settled: `spent` counts them at their worst case, since they may have been paid, so a cap
read back from the ledger can never be passed by what a dead run left behind.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from poetry_workshop.config.schema import Price, PriceTable, PriceTier
from poetry_workshop.errors import ConfigError


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        if usage is None:
            return cls()
        return cls(
            input_tokens=getattr(usage, "input_tokens", 0) or 0,
            output_tokens=getattr(usage, "output_tokens", 0) or 0,
            cache_write_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
            cache_read_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
        )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))


class PriceBook:
    """Dollars for a model's usage; the batch discount applies to every token kind, and a
    call whose prompt reaches a tier is priced whole at that tier."""

    def __init__(self, table: PriceTable):
        self.table = table

    def price(self, model: str) -> Price:
        try:
            return self.table.models[model]
        except KeyError:
            known = ", ".join(sorted(self.table.models)) or "none"
            raise ConfigError(
                f"no price for model '{model}' in config/generation.toml [prices.models] "
                f"(known: {known}); add its prices so spending can be counted"
            )

    def rates(self, model: str, prompt_tokens: float) -> Price | PriceTier:
        """The prices one call pays: the highest tier its prompt length passes, else the base."""
        base = self.price(model)
        reached = [t for t in base.tiers if prompt_tokens > t.above_prompt_tokens]
        return max(reached, key=lambda t: t.above_prompt_tokens) if reached else base

    def cost(self, model: str, usage: Usage, batch: bool = False, calls: int = 1) -> float:
        """Dollars for `usage`, spread evenly over `calls` calls (an estimate's many calls
        each pay the tier of the mean prompt; a ledger line is one call)."""
        prompt = (usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens) / max(1, calls)
        p = self.rates(model, prompt)
        dollars = (
            usage.input_tokens * p.input_per_mtok
            + usage.output_tokens * p.output_per_mtok
            + usage.cache_write_tokens * p.cache_write_per_mtok
            + usage.cache_read_tokens * p.cache_read_per_mtok
        ) / 1_000_000
        return dollars * (self.table.batch_discount if batch else 1.0)

    def input_cost(self, model: str, usage: Usage, batch: bool = False) -> float:
        """The input side only (plain, cache write, cache read): what caching changes."""
        return self.cost(model, Usage(usage.input_tokens, 0, usage.cache_write_tokens, usage.cache_read_tokens), batch)

    def worst_case(self, model: str, input_tokens: int, max_tokens: int, batch: bool = False) -> float:
        """The most one call can cost: its whole input written to the cache, every output token used."""
        p = self.rates(model, input_tokens)
        top_input = max(p.input_per_mtok, p.cache_write_per_mtok)
        return (input_tokens * top_input + max_tokens * p.output_per_mtok) / 1_000_000 * (
            self.table.batch_discount if batch else 1.0
        )

    def describe(self, model: str) -> str:
        """The prices an estimate used, with their date, in one line."""
        def row(p) -> str:
            return (f"${p.input_per_mtok:g} input, ${p.output_per_mtok:g} output, ${p.cache_write_per_mtok:g} cache "
                    f"write, ${p.cache_read_per_mtok:g} cache read per million tokens")

        base = self.price(model)
        tiers = "".join(f"; above {t.above_prompt_tokens:,} prompt tokens {row(t)}" for t in base.tiers)
        as_of = self.table.as_of or "an undated table"
        return (f"{model} prices as of {as_of} (config/generation.toml [prices]): {row(base)}{tiers}; "
                f"the Message Batches API charges {self.table.batch_discount:g} of these")


def new_call_id() -> str:
    return uuid.uuid4().hex[:16]


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def ledger_entry(*, run: str, task: str, record_id: str, model: str, outcome: str, usage: Usage,
                 cost: float, request_id: str | None, batch: bool, attempts: int = 1,
                 reason: str | None = None, call: str | None = None,
                 scope: dict[str, str] | None = None) -> dict[str, Any]:
    """The line of one call that ended. `scope` names what the call's cost counts toward
    (`target`: the records file; `build`: the build it ran for; `eval`: a judged eval)."""
    entry = {
        "time": _stamp(),
        "run": run,
        "task": task,
        "id": record_id,
        "model": model,
        "outcome": outcome,
        "usage": asdict(usage),
        "cost_usd": round(cost, 8),
        "request_id": request_id,
        "batch": batch,
        "attempts": attempts,
    }
    if call:
        entry["call"] = call
    entry.update(scope or {})
    if reason:
        entry["reason"] = reason
    return entry


def reservation_entry(*, run: str, task: str, record_id: str, model: str, call: str, worst: float,
                      scope: dict[str, str] | None = None) -> dict[str, Any]:
    """The line written before a call starts: the most it can cost, until its own line comes."""
    return {"time": _stamp(), "run": run, "task": task, "id": record_id, "model": model, "outcome": "started",
            "call": call, "reserved_usd": round(worst, 8), **(scope or {})}


def release_entry(*, run: str, task: str, record_id: str, call: str, reason: str,
                  scope: dict[str, str] | None = None) -> dict[str, Any]:
    """A reservation that ended without a cost (a batch request that expired or was canceled)."""
    return {"time": _stamp(), "run": run, "task": task, "id": record_id, "outcome": "released", "call": call,
            "reason": reason, **(scope or {})}


def is_call(entry: dict[str, Any]) -> bool:
    """A line for a call that ended (not a reservation or a release)."""
    return entry.get("outcome") not in ("started", "released")


class SpendTally:
    """What ledger lines add up to, kept as lines are added: settled dollars, plus the worst
    case of every reservation not yet settled or released (calls in flight now, or left in
    flight by a run that died)."""

    def __init__(self, entries: Iterable[dict[str, Any]] = ()):
        self.dollars = 0.0
        self.unsettled = 0.0
        self._open: dict[str, float] = {}
        self._closed: set[str] = set()
        for entry in entries:
            self.add(entry)

    def add(self, entry: dict[str, Any]) -> None:
        outcome, call = entry.get("outcome"), entry.get("call")
        if outcome == "started":
            if call not in self._closed and call not in self._open:
                worst = float(entry.get("reserved_usd", 0.0))
                self._open[call] = worst
                self.unsettled += worst
            return
        if outcome != "released":
            self.dollars += float(entry.get("cost_usd", 0.0))
        if call:
            self._closed.add(call)
            worst = self._open.pop(call, None)
            if worst is not None:
                self.unsettled = max(0.0, self.unsettled - worst)

    @property
    def total(self) -> float:
        return self.dollars + self.unsettled

    @property
    def unsettled_calls(self) -> int:
        return len(self._open)

    def describe(self) -> str:
        if not self._open:
            return f"${self.total:.4f}"
        return (f"${self.total:.4f} (${self.unsettled:.4f} of it the worst case of {len(self._open)} call(s) "
                "not settled: in flight now, or left in flight by a run that stopped, whose cost is unknown)")


def spent(entries: Iterable[dict[str, Any]], match: Callable[[dict[str, Any]], bool] = lambda e: True) -> SpendTally:
    """The tally of the lines `match` keeps."""
    return SpendTally(e for e in entries if match(e))


@dataclass
class TaskTotals:
    calls: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    dollars: float = 0.0

    @property
    def per_accepted(self) -> float | None:
        return self.dollars / self.accepted if self.accepted else None


def summarise(entries: list[dict[str, Any]]) -> dict[str, TaskTotals]:
    totals: dict[str, TaskTotals] = defaultdict(TaskTotals)
    for e in filter(is_call, entries):
        t = totals[e["task"]]
        t.calls += 1
        if e["outcome"] in ("accepted", "rejected", "failed"):
            setattr(t, e["outcome"], getattr(t, e["outcome"]) + 1)
        t.usage = t.usage + Usage(**e.get("usage", {}))
        t.dollars += e.get("cost_usd", 0.0)
    return dict(totals)


def format_summary(totals: dict[str, TaskTotals]) -> str:
    head = f"{'task':<12} {'calls':>6} {'accepted':>9} {'rejected':>9} {'failed':>7} {'tokens':>10} {'dollars':>9} {'$/accepted':>11}"
    rows = [head]
    for task, t in totals.items():
        per = f"{t.per_accepted:.4f}" if t.per_accepted is not None else "-"
        rows.append(f"{task:<12} {t.calls:>6} {t.accepted:>9} {t.rejected:>9} {t.failed:>7} "
                    f"{t.usage.total:>10} {t.dollars:>9.4f} {per:>11}")
    return "\n".join(rows)
