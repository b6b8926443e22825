"""What the teaching data costs: usage per call, priced from the dated table in config.

Every call that ended (accepted, rejected or failed) gets one ledger line with its token
counts (input, output, cache write, cache read), its dollars and its request id, written
*before* its record, so a crash can leave a paid call without a record (it is made again)
but never a record without its cost. The summary at the end of a run is computed from the
same entries.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from poetry_workshop.config.schema import Price, PriceTable
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
    """Dollars for a model's usage; the batch discount applies to every token kind."""

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

    def cost(self, model: str, usage: Usage, batch: bool = False) -> float:
        p = self.price(model)
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
        p = self.price(model)
        top_input = max(p.input_per_mtok, p.cache_write_per_mtok)
        return (input_tokens * top_input + max_tokens * p.output_per_mtok) / 1_000_000 * (
            self.table.batch_discount if batch else 1.0
        )


def ledger_entry(*, run: str, task: str, record_id: str, model: str, outcome: str, usage: Usage,
                 cost: float, request_id: str | None, batch: bool, attempts: int = 1,
                 reason: str | None = None) -> dict[str, Any]:
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
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
    if reason:
        entry["reason"] = reason
    return entry


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
    for e in entries:
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
