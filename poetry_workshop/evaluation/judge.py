"""The optional judge: Claude compares two configurations' outputs, item by item, in both orders.

A judge that reads position rather than content is the known failure of pairwise judging
(Sawicki et al., EMNLP 2025: forced choice in randomised order beats absolute scores). So every comparison is asked twice,
with the two outputs swapped, and only a verdict that survives the swap counts as a win.
`agreement` is the share of comparisons whose two verdicts name the same configuration (or
both a tie); `first_position_share` is the share of decisive verdicts that picked whatever
was shown first. A judge that always prefers the first position agrees with itself on
nothing and has a first-position share of 1: `position_bias` says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

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


async def _judge_all(client, items: list[Comparison], params: dict, policy, concurrency: int) -> list[tuple]:
    from poetry_workshop.pipeline.claude.calls import call_structured

    gate = asyncio.Semaphore(concurrency)

    async def one(c: Comparison, swapped: bool):
        first, second = (c.b, c.a) if swapped else (c.a, c.b)
        async with gate:
            result = await call_structured(
                client, params | {"messages": [{"role": "user", "content": _message(c, first, second)}]},
                Verdict, policy)
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
               b: ConfigOutputs, model: str | None = None) -> dict:
    """Both orders of every comparison between two configurations, summarised."""
    from anthropic import transform_schema

    from poetry_workshop.pipeline.claude.calls import RetryPolicy

    claude = settings.generation.claude
    params = {"model": model or claude.model, "max_tokens": claude.max_tokens, "system": SYSTEM,
              "output_config": {"format": {"type": "json_schema",
                                           "schema": transform_schema(Verdict.model_json_schema())}}}
    if claude.effort:
        params["output_config"]["effort"] = claude.effort
    items = comparisons(eval_set, a, b)
    pairs = asyncio.run(_judge_all(client, items, params, RetryPolicy.from_settings(claude), claude.concurrency))
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
