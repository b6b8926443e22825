"""The optional judge: Claude compares two configurations' outputs, item by item, in both orders.

A judge that reads position rather than content is the known failure of pairwise judging
(Sawicki et al., EMNLP 2025: forced choice in randomised order beats absolute scores). So every comparison is asked twice,
with the two outputs swapped, and only a verdict that survives the swap counts as a win.
`agreement` is the share of comparisons whose two verdicts name the same configuration (or
both a tie); `first_position_share` is the share of decisive verdicts that picked whatever
was shown first. A judge that always prefers the first position agrees with itself on
nothing and has a first-position share of 1: `position_bias` says so.

The judge pays like the teaching data does (`JudgeBudget`): an estimate before the first
call, a cap (`[judge] max_cost` in config/generation.toml, `--judge-max-cost`) kept by
reserving each call's worst case before it starts, and a line per call in
`data/eval/ledger.jsonl`. A call that could pass the cap is not made; its comparison counts
as failed and the report says why.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from poetry_workshop.evaluation.eval_set import EvalSet
from poetry_workshop.evaluation.outputs import ConfigOutputs

# A first-position share this far from a half, over at least MIN_DECISIVE verdicts, is bias.
BIAS_MARGIN = 0.25
MIN_DECISIVE = 4

SYSTEM = (
    "You judge a poetry workshop's models. You are shown a task and two responses to it, "
    "labelled first and second. Judge the responses only on their content: a poem on how alive and "
    "exact its language is and whether it does what the brief asks; a critique on whether it quotes "
    "the poem, names what works and what does not with craft terms, and proposes one clear revision "
    "direction without rewriting the poem; a revision on whether it changes what the critique "
    "flagged and keeps what it praised. Order and length are not merits. Say \"tie\" only when "
    "neither is better."
)


class Verdict(BaseModel):
    reason: str = Field(description="one or two sentences on the deciding difference")
    better: Literal["first", "second", "tie"]


@dataclass(frozen=True)
class Comparison:
    kind: str  # "draft", "critique", "revision"
    item: str
    task: str  # what both responses answer
    a: str  # configuration A's output
    b: str


def comparisons(eval_set: EvalSet, a: ConfigOutputs, b: ConfigOutputs) -> list[Comparison]:
    out = []
    for item in eval_set.briefs:
        if item.id in a.drafts and item.id in b.drafts:
            out.append(Comparison("draft", item.id, f"Write a poem from this brief.\n\n{item.brief}",
                                  a.drafts[item.id], b.drafts[item.id]))
    for item in eval_set.critiques:
        if item.id in a.critiques and item.id in b.critiques:
            out.append(Comparison("critique", item.id, f"Workshop this poem.\n\n{item.poem}",
                                  a.critiques[item.id]["original"], b.critiques[item.id]["original"]))
    for item in eval_set.revisions:
        if item.id in a.revisions and item.id in b.revisions:
            out.append(Comparison("revision", item.id, f"Revise this draft from the critique.\n\nDraft:\n{item.draft}"
                                  f"\n\nCritique:\n{item.critique}", a.revisions[item.id], b.revisions[item.id]))
    return out


def _message(c: Comparison, first: str, second: str) -> str:
    return (f"<task>\n{c.task}\n</task>\n\n<first>\n{first or '(empty)'}\n</first>\n\n"
            f"<second>\n{second or '(empty)'}\n</second>\n\nWhich response is better?")


def _tokens_guess(text: str) -> int:
    # Deliberately high (English runs near 4 characters a token): it feeds the cap.
    return math.ceil(len(text) / 3)


# What one response in a comparison is assumed to hold before the outputs exist (characters).
EXPECTED_RESPONSE_CHARS = 1500


@dataclass(frozen=True)
class JudgeEstimate:
    calls: int
    model: str
    dollars: float  # expected
    worst: float  # every call at its whole max_tokens
    cap: float
    prices: str

    def describe(self) -> str:
        return (f"judge: {self.calls} Claude calls with {self.model}, about ${self.dollars:.2f} (at most "
                f"${self.worst:.2f} if every verdict used its whole max_tokens), capped at ${self.cap:.2f}. "
                f"{self.prices}")


def estimate(settings, eval_set: EvalSet, pairs: int, model: str | None = None,
             cap: float | None = None) -> JudgeEstimate:
    """What judging `pairs` pairs of configurations on `eval_set` would cost; spends nothing.
    The outputs do not exist yet, so each is taken as EXPECTED_RESPONSE_CHARS long."""
    from poetry_workshop.pipeline.claude.ledger import PriceBook, Usage

    judge = settings.generation.judge
    model = model or settings.generation.claude.model
    prices = PriceBook(settings.generation.prices)
    tasks = ([f"Write a poem from this brief.\n\n{i.brief}" for i in eval_set.briefs]
             + [f"Workshop this poem.\n\n{i.poem}" for i in eval_set.critiques]
             + [f"Revise this draft.\n\n{i.draft}\n\n{i.critique}" for i in eval_set.revisions])
    calls = 2 * len(tasks) * pairs
    prompt = sum(_tokens_guess(SYSTEM + t) + 2 * _tokens_guess("x" * EXPECTED_RESPONSE_CHARS) for t in tasks)
    prompt *= 2 * pairs
    expected = prices.cost(model, Usage(input_tokens=prompt, output_tokens=judge.expected_output_tokens * calls),
                           calls=max(1, calls))
    worst = prices.cost(model, Usage(input_tokens=prompt, output_tokens=judge.max_tokens * calls), calls=max(1, calls))
    return JudgeEstimate(calls, model, expected, worst, judge.max_cost if cap is None else cap,
                         prices.describe(model))


def ledger_path() -> Path:
    from poetry_workshop import locations

    return locations.data_dir() / "eval" / "ledger.jsonl"


@dataclass
class JudgeBudget:
    """The judge's spending in one eval: its cap, its ledger lines, what it has spent."""

    prices: Any  # PriceBook
    model: str
    cap: float
    ledger: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    calls: int = 0
    not_made: int = 0
    stopped: str | None = None

    def __post_init__(self):
        from poetry_workshop.pipeline.claude.ledger import SpendTally
        from poetry_workshop.pipeline.jsonl_log import AppendLog

        self.tally = SpendTally()
        self._log = AppendLog(self.ledger)

    @classmethod
    def from_settings(cls, settings, model: str | None = None, cap: float | None = None,
                      ledger: Path | None = None) -> JudgeBudget:
        from poetry_workshop.errors import ConfigError
        from poetry_workshop.pipeline.claude.ledger import PriceBook

        prices = PriceBook(settings.generation.prices)
        model = model or settings.generation.claude.model
        prices.price(model)  # an unknown model fails here, before the models run
        cap = settings.generation.judge.max_cost if cap is None else cap
        if cap <= 0:
            raise ConfigError(f"--judge-max-cost must be a positive number of dollars, got {cap}")
        return cls(prices, model, cap, ledger or ledger_path())

    @property
    def dollars(self) -> float:
        return self.tally.dollars

    def _write(self, entry: dict) -> None:
        self._log.append(entry)
        self.tally.add(entry)

    async def call(self, record_id: str, params: dict, policy, client):
        """One judged call within the cap, with its reservation and its ledger line."""
        from poetry_workshop.pipeline.claude.calls import CallResult, call_structured
        from poetry_workshop.pipeline.claude.ledger import ledger_entry, new_call_id, reservation_entry

        prompt = _tokens_guess(SYSTEM) + sum(_tokens_guess(m["content"]) for m in params["messages"]) + \
            _tokens_guess(str(params.get("output_config", "")))
        worst = self.prices.worst_case(self.model, prompt, params["max_tokens"])
        if self.tally.total + worst > self.cap:
            self.not_made += 1
            self.stopped = (f"the judge stopped at its cap ${self.cap:.2f}: ${self.tally.total:.4f} spent or "
                            f"reserved, and the next call could cost up to ${worst:.4f}; raise --judge-max-cost "
                            "to judge every comparison")
            return CallResult("failed", reason="not made: it could have passed the judge's spend cap")
        scope = {"eval": self.run}
        call = new_call_id()
        self._write(reservation_entry(run=self.run, task="judge", record_id=record_id, model=self.model,
                                      call=call, worst=worst, scope=scope))
        result = await call_structured(client, params, Verdict, policy)
        self.calls += 1
        self._write(ledger_entry(run=self.run, task="judge", record_id=record_id, model=self.model,
                                 outcome=result.outcome, usage=result.usage,
                                 cost=self.prices.cost(self.model, result.usage), request_id=result.request_id,
                                 batch=False, attempts=result.attempts, reason=result.reason, call=call, scope=scope))
        return result

    def summary(self) -> dict:
        """What the report shows of the judge's spending."""
        return {"model": self.model, "dollars": round(self.tally.dollars, 6), "calls": self.calls,
                "not_made": self.not_made, "cap": self.cap, "prices_as_of": self.prices.table.as_of,
                "ledger": str(self.ledger), "stopped": self.stopped}

    def close(self) -> None:
        self._log.close()


async def _judge_all(client, items: list[Comparison], params: dict, policy, concurrency: int,
                     budget: JudgeBudget) -> list[tuple]:
    gate = asyncio.Semaphore(concurrency)

    async def one(c: Comparison, swapped: bool):
        first, second = (c.b, c.a) if swapped else (c.a, c.b)
        async with gate:
            result = await budget.call(
                f"{c.kind}:{c.item}:{'b-first' if swapped else 'a-first'}",
                params | {"messages": [{"role": "user", "content": _message(c, first, second)}]}, policy, client)
        return result

    async with client:
        calls = [one(c, swapped) for c in items for swapped in (False, True)]
        results = await asyncio.gather(*calls)
    return [(results[2 * i], results[2 * i + 1]) for i in range(len(items))]


def _winner(result, swapped: bool) -> str | None:
    """"a", "b", "tie", or None when the call gave no usable verdict."""
    if result.outcome != "accepted":
        return None
    better = result.output["better"]
    if better == "tie":
        return "tie"
    return {"first": "b" if swapped else "a", "second": "a" if swapped else "b"}[better]


def judge_pair(client, settings, eval_set: EvalSet, label_a: str, a: ConfigOutputs, label_b: str,
               b: ConfigOutputs, budget: JudgeBudget | None = None, model: str | None = None) -> dict:
    """Both orders of every comparison between two configurations, summarised; every call
    within `budget`'s cap and in its ledger (without one, a budget of the config's cap for
    this pair alone)."""
    if budget is None:
        budget = JudgeBudget.from_settings(settings, model)
        try:
            return judge_pair(client, settings, eval_set, label_a, a, label_b, b, budget)
        finally:
            budget.close()
    from anthropic import transform_schema

    from poetry_workshop.pipeline.claude.calls import RetryPolicy

    claude = settings.generation.claude
    params = {"model": budget.model, "max_tokens": settings.generation.judge.max_tokens, "system": SYSTEM,
              "output_config": {"format": {"type": "json_schema",
                                           "schema": transform_schema(Verdict.model_json_schema())}}}
    if claude.effort:
        params["output_config"]["effort"] = claude.effort
    items = comparisons(eval_set, a, b)
    pairs = asyncio.run(_judge_all(client, items, params, RetryPolicy.from_settings(claude), claude.concurrency,
                                   budget))
    return summarise(label_a, label_b, items, pairs, params["model"])


def summarise(label_a: str, label_b: str, items: list[Comparison], pairs: list[tuple], model: str) -> dict:
    names = {"a": label_a, "b": label_b, "tie": "tie"}
    rows, failed = [], 0
    decisive = first = 0
    for c, (straight, swapped) in zip(items, pairs):
        w1, w2 = _winner(straight, False), _winner(swapped, True)
        failed += (w1 is None) + (w2 is None)
        for w, was_swapped in ((w1, False), (w2, True)):
            if w in ("a", "b"):
                decisive += 1
                first += (w == "a") != was_swapped  # shown first: A unswapped, B swapped
        both = w1 is not None and w2 is not None
        verdict = names[w1] if both and w1 == w2 else ("split" if both else "failed")
        rows.append({"kind": c.kind, "item": c.item, "a_first": names.get(w1, "failed") if w1 else "failed",
                     "b_first": names.get(w2, "failed") if w2 else "failed", "verdict": verdict,
                     "reasons": [r.output["reason"] if r.outcome == "accepted" else r.reason
                                 for r in (straight, swapped)]})
    judged = [r for r in rows if r["verdict"] != "failed"]
    agreed = [r for r in judged if r["verdict"] != "split"]
    share = first / decisive if decisive else None
    return {
        "model": model,
        "a": label_a,
        "b": label_b,
        "comparisons": len(rows),
        "failed_calls": failed,
        "agreement": len(agreed) / len(judged) if judged else None,
        "wins": {label_a: sum(r["verdict"] == label_a for r in rows), label_b: sum(r["verdict"] == label_b for r in rows),
                 "tie": sum(r["verdict"] == "tie" for r in rows), "split": sum(r["verdict"] == "split" for r in rows)},
        "first_position_share": share,
        "position_bias": share is not None and decisive >= MIN_DECISIVE and abs(share - 0.5) >= BIAS_MARGIN,
        "rows": rows,
    }
