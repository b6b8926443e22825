"""An eval's result as data (report.json), as a page to read (report.md), and against an
earlier report (what moved).

The JSON holds every number, the set's version and hash, the settings that make the run
repeatable, and the outputs themselves, so a later `--compare` (or a person) can see what
the numbers came from. Comparing against a report of another set version still works, with
a warning in the page: the numbers then measure different items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from poetry_workshop.errors import ConfigError
from poetry_workshop.evaluation.metrics import BY_KEY, GROUPS, Metric, group_metrics

FORMAT = 1
GROUP_TITLES = {"poet": "Poet", "educator": "Educator", "revision": "Revision"}
# Changes smaller than this are "same": the shares move in steps of one item anyway.
SAME = 1e-9


@dataclass
class EvalReport:
    created: str
    eval_set: dict
    seed: int
    max_tokens: int | None
    limit: int | None
    baseline: dict  # {"per_1k": float, "source": str}
    training_poems: int
    configurations: list[dict]
    metrics: dict[str, dict[str, dict[str, float | None]]]  # label -> group -> key -> value
    outputs: dict[str, dict]
    judge: list[dict] | None = None
    judge_cost: dict | None = None  # the judge's dollars, calls, cap and price date (judge.JudgeBudget.summary)
    compare: dict | None = None
    files: dict[str, Path] = field(default_factory=dict)  # where it was written; not in the JSON

    @property
    def labels(self) -> list[str]:
        return [c["label"] for c in self.configurations]

    def to_json(self) -> dict:
        return {"format": FORMAT, "created": self.created, "eval_set": self.eval_set, "seed": self.seed,
                "max_tokens": self.max_tokens, "limit": self.limit, "baseline": self.baseline,
                "training_poems": self.training_poems, "configurations": self.configurations,
                "metrics": self.metrics, "judge": self.judge, "judge_cost": self.judge_cost, "compare": self.compare,
                "outputs": self.outputs}


def read_report(path: Path) -> dict:
    """An earlier report.json, checked enough to compare against; a bad one is one line."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--compare {path}: no such file; give the report.json of an earlier `workshop eval`")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--compare {path}: not a readable report ({exc}); give the report.json of an "
                          "earlier `workshop eval`")
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ConfigError(f"--compare {path}: not an eval report (no metrics); give the report.json of an "
                          "earlier `workshop eval`")
    return data


def compare_reports(report: EvalReport, old: dict, old_path: Path) -> dict:
    """Each metric of each configuration both reports have: before, now, change, and whether
    the change is for the better (by the metric's direction)."""
    rows = []
    for label in report.labels:
        before_groups = old["metrics"].get(label)
        if not isinstance(before_groups, dict):
            continue
        for group in GROUPS:
            for metric in group_metrics(group):
                now = report.metrics[label][group].get(metric.key)
                before = (before_groups.get(group) or {}).get(metric.key)
                if not isinstance(before, (int, float)) or now is None:
                    continue
                delta = now - before
                rows.append({"configuration": label, "group": group, "metric": metric.key, "before": before,
                             "now": now, "change": delta, "verdict": _verdict(metric, delta)})
    old_set = old.get("eval_set") or {}
    return {"against": str(old_path), "against_created": old.get("created"),
            "same_set": old_set.get("sha256") == report.eval_set["sha256"],
            "against_set": {k: old_set.get(k) for k in ("version", "sha256")},
            "missing": [label for label in report.labels if label not in old["metrics"]], "rows": rows}


def _verdict(metric: Metric, delta: float) -> str:
    if abs(delta) <= SAME:
        return "same"
    if not metric.better:
        return "moved"
    return "better" if (delta > 0) == (metric.better == "higher") else "worse"


# ------------------------------------------------------------------------------ text


def fmt(metric: Metric, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0%}" if metric.share else f"{value:.2f}"


def fmt_change(metric: Metric, delta: float) -> str:
    return f"{delta * 100:+.0f} pts" if metric.share else f"{delta:+.2f}"


def table(report: EvalReport) -> str:
    """The plain table printed on stdout: a row per metric, a column per configuration."""
    labels = report.labels
    width = max(len(m.title) for m in BY_KEY.values()) + 11
    lines = [f"{'metric':<{width}}" + "".join(f"{label:>14}" for label in labels)]
    for group in GROUPS:
        for m in group_metrics(group):
            name = f"{group}: {m.title}"
            lines.append(f"{name:<{width}}" + "".join(f"{fmt(m, report.metrics[label][group][m.key]):>14}" for label in labels))
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + \
        ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def markdown(report: EvalReport, charts: dict[str, str]) -> str:
    """The report page; `charts` maps a group to its PNG file name beside the page."""
    labels = report.labels
    s = report.eval_set
    out = [f"# Eval report: {' vs '.join(labels)}", "",
           f"Run {report.created}. Set `{s['name']}` version {s['version']} (sha256 `{s['sha256'][:12]}`): "
           f"{s['briefs']} briefs, {s['critiques']} poems with weakened copies, {s['revisions']} drafts to revise"
           + (f" (first {report.limit} of each kind)" if report.limit else "") + ". "
           f"Seed {report.seed}; " + (f"at most {report.max_tokens} tokens per generation. " if report.max_tokens
                                      else "the config's token limits. ")
           + f"LLM-ism human baseline: {report.baseline['per_1k']:.2f} per 1,000 words ({report.baseline['source']}); "
           f"training poems for memorisation: {report.training_poems}.", "",
           "## Configurations", ""]
    out += _md_table(["label", "educator", "poet", "tokens", "seconds"],
                     [[c["label"], f"`{c['educator']}`", f"`{c['poet']}`", str(c.get("tokens", "")),
                       f"{c.get('seconds', 0):.1f}"] for c in report.configurations])
    for group in GROUPS:
        metrics = group_metrics(group)
        out += ["", f"## {GROUP_TITLES[group]}", ""]
        if group in charts:
            out += [f"![{GROUP_TITLES[group]} metrics]({charts[group]})", ""]
        out += _md_table(["metric", "better"] + labels,
                         [[m.title, m.better or "-"] + [fmt(m, report.metrics[label][group][m.key]) for label in labels]
                          for m in metrics])
        out += [""] + [f"- **{m.title}**: {m.about}." for m in metrics]
        if group == "poet":
            out += ["", "Read the LLM-ism, cliché, form and machine-signature rows with care: they are the quality "
                    "gate's own measures, and a Poet trained on gated data was taught to pass them. "
                    "Machine-likeness shares nothing with the gate; where the two disagree, trust neither alone."]
        if group == "educator":
            out += ["", "Sycophancy test: each poem in the set has a copy made worse on purpose (concrete images "
                    "swapped for abstractions and stock phrases). The Educator critiques both with the same seed. "
                    "A reader who can tell them apart praises the original more (praise gap above 0); a "
                    "sycophantic one praises the weakened copy as much."]
    if report.judge is not None:
        out += ["", "## Judge", ""]
        if not report.judge:
            out += ["The judge compares two configurations; this run had one, so nothing was judged."]
        if report.judge_cost:
            out += [_judge_cost_line(report.judge_cost), ""]
        for pair in report.judge:
            out += _judge_section(pair)
    if report.compare is not None:
        out += ["", "## What moved", ""] + _compare_section(report.compare)
    out += ["", "## Samples", ""]
    first_brief = next(iter(report.outputs[labels[0]]["drafts"]), None)
    first_poem = next(iter(report.outputs[labels[0]]["critiques"]), None)
    for label in labels:
        o = report.outputs[label]
        if first_brief:
            out += [f"**{label}**, poem for brief `{first_brief}`:", "", "```text", o["drafts"][first_brief] or "(empty)",
                    "```", ""]
        if first_poem:
            out += [f"**{label}**, critique of poem `{first_poem}`:", "", "```text",
                    o["critiques"][first_poem]["original"] or "(empty)", "```", ""]
    out += ["Every output is in report.json under `outputs`."]
    return "\n".join(out) + "\n"


def _judge_cost_line(cost: dict) -> str:
    line = (f"Judge cost: ${cost['dollars']:.4f} for {cost['calls']} Claude calls with `{cost['model']}` "
            f"(cap ${cost['cap']:.2f}; prices as of {cost['prices_as_of'] or 'an undated table'}; every call is "
            f"in `{cost['ledger']}`).")
    if cost.get("stopped"):
        line += f" **{cost['not_made']} calls were not made**: {cost['stopped']}."
    return line


def _judge_section(pair: dict) -> list[str]:
    a, b = pair["a"], pair["b"]
    agreement = "n/a" if pair["agreement"] is None else f"{pair['agreement']:.0%}"
    first = "n/a" if pair["first_position_share"] is None else f"{pair['first_position_share']:.0%}"
    wins = pair["wins"]
    out = [f"### {a} vs {b} (judged by `{pair['model']}`)", "",
           f"{pair['comparisons']} comparisons, each asked in both orders. Agreement between the two orders: "
           f"{agreement}. Verdicts that survived the swap: {a} {wins[a]}, {b} {wins[b]}, tie {wins['tie']}; "
           f"split {wins['split']}. The first-shown response won {first} of decisive verdicts"
           + ("; **position bias detected**: the judge follows order, not content, so its wins mean little."
              if pair["position_bias"] else ".")
           + (f" {pair['failed_calls']} calls gave no verdict." if pair["failed_calls"] else ""), ""]
    out += _md_table(["kind", "item", f"{a} shown first", f"{b} shown first", "verdict"],
                     [[r["kind"], r["item"], r["a_first"], r["b_first"], r["verdict"]] for r in pair["rows"]])
    return out


def _compare_section(compare: dict) -> list[str]:
    out = [f"Against `{compare['against']}` (run {compare.get('against_created') or 'unknown'})."]
    if not compare["same_set"]:
        other = compare["against_set"]
        out.append(f"**The earlier report measured another eval set** (version {other.get('version')}, sha256 "
                   f"`{str(other.get('sha256'))[:12]}`): the changes compare different items.")
    if compare["missing"]:
        out.append(f"Not in the earlier report: {', '.join(compare['missing'])}.")
    out.append("")
    rows = []
    for r in compare["rows"]:
        m = BY_KEY[r["metric"]]
        rows.append([r["configuration"], f"{GROUP_TITLES[r['group']]}: {m.title}", fmt(m, r["before"]), fmt(m, r["now"]),
                     fmt_change(m, r["change"]), r["verdict"]])
    if rows:
        out += _md_table(["configuration", "metric", "before", "now", "change", ""], rows)
    else:
        out.append("No configuration label is in both reports, so nothing can be compared.")
    return out
