"""The eval's Claude judge pays like the teaching data: an estimate, a cap kept by reserving
each call's worst case, a ledger line per call, and its cost in the report. The real SDK
over real HTTP to the loopback server."""

from __future__ import annotations

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.evaluation.eval_set import load_eval_set
from poetry_workshop.evaluation.judge import JudgeBudget, estimate, judge_pair
from poetry_workshop.evaluation.metrics import GROUPS, group_metrics
from poetry_workshop.evaluation.outputs import ConfigOutputs
from poetry_workshop.evaluation.report import EvalReport, markdown
from poetry_workshop.pipeline.claude.calls import make_client
from poetry_workshop.pipeline.claude.ledger import PriceBook, is_call, spent
from poetry_workshop.pipeline.jsonl_log import read_jsonl
from tests.claude.test_spending import billed
from tests.fakes.claude_server import ClaudeServer

KEY = "loopback-judge-credential"
TINY_SET = '''name = "tiny"
version = "t1"
[[brief]]
id = "b1"
brief = "Form: free verse\\nLength: 3 lines"
[[brief]]
id = "b2"
brief = "Form: haiku"
[[critique]]
id = "c1"
poem = "The hose lies coiled on grass\\nI call the dogs in"
weakened = "The hose lies coiled in sorrow\\nmy heart calls out"
weakening = "images to abstractions"
'''


@pytest.fixture
def tiny_set(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SET, encoding="utf-8")
    return load_eval_set(path)


@pytest.fixture
def claude(monkeypatch):
    with ClaudeServer(api_key=KEY, latency=0.2) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        server.responder = lambda body: {"reason": "the kettle", "better": "first"}
        yield server


def _outputs(marker: str) -> ConfigOutputs:
    return ConfigOutputs(drafts={"b1": f"a {marker} poem", "b2": f"another {marker} poem"},
                         critiques={"c1": {"original": f"a {marker} critique", "weakened": "x"}})


def judged(claude) -> int:
    return sum(1 for r in claude.requests if r["path"].endswith("/v1/messages"))


def test_the_judge_stops_before_a_call_that_could_pass_its_cap(claude, tiny_set, tmp_path):
    settings = load_settings()
    ledger = tmp_path / "eval-ledger.jsonl"
    probe = JudgeBudget.from_settings(settings, ledger=tmp_path / "probe.jsonl")
    worst = probe.prices.worst_case(probe.model, 400, settings.generation.judge.max_tokens)  # about one call
    budget = JudgeBudget.from_settings(settings, cap=2.5 * worst, ledger=ledger)
    verdict = judge_pair(make_client(settings.generation.claude), settings, tiny_set, "base", _outputs("plain"),
                         "tuned", _outputs("kettle"), budget)
    budget.close()
    made = judged(claude)
    assert 1 <= made < 6 and budget.calls == made and budget.not_made == 6 - made
    assert verdict["failed_calls"] == 6 - made
    assert "judge stopped at its cap" in budget.stopped
    entries, _ = read_jsonl(ledger)
    calls = [e for e in entries if is_call(e)]
    assert len(calls) == made and all(e["task"] == "judge" and e["eval"] == budget.run for e in calls)
    assert spent(entries).total <= budget.cap and spent(entries).unsettled_calls == 0
    assert billed(claude, PriceBook(settings.generation.prices)) <= budget.cap
    assert budget.dollars == pytest.approx(sum(e["cost_usd"] for e in calls))


def test_within_its_cap_the_judge_makes_every_call_and_ledgers_each(claude, tiny_set, tmp_path):
    settings = load_settings()
    budget = JudgeBudget.from_settings(settings, cap=5.0, ledger=tmp_path / "ledger.jsonl")
    judge_pair(make_client(settings.generation.claude), settings, tiny_set, "base", _outputs("plain"),
               "tuned", _outputs("kettle"), budget)
    budget.close()
    assert judged(claude) == 6 and budget.calls == 6 and budget.stopped is None
    sent = [r["body"] for r in claude.requests if r["path"].endswith("/v1/messages")]
    assert all(body["max_tokens"] == settings.generation.judge.max_tokens for body in sent)
    summary = budget.summary()
    assert summary["dollars"] > 0 and summary["calls"] == 6 and summary["prices_as_of"]


def test_the_estimate_counts_both_orders_and_names_its_prices(tiny_set):
    settings = load_settings()
    e = estimate(settings, tiny_set, pairs=2)
    assert e.calls == 2 * 3 * 2 and 0 < e.dollars < e.worst
    assert "12 Claude calls" in e.describe() and f"as of {settings.generation.prices.as_of}" in e.describe()
    assert f"capped at ${settings.generation.judge.max_cost:.2f}" in e.describe()


def test_a_bad_judge_cap_or_model_is_one_line_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="--judge-max-cost must be a positive"):
        JudgeBudget.from_settings(load_settings(), cap=0, ledger=tmp_path / "l.jsonl")
    with pytest.raises(ConfigError, match="no price for model 'claude-unknown'"):
        JudgeBudget.from_settings(load_settings(), model="claude-unknown", ledger=tmp_path / "l.jsonl")


def test_the_report_shows_the_judges_cost():
    metrics = {group: {m.key: None for m in group_metrics(group)} for group in GROUPS}
    report = EvalReport(
        created="2026-01-01T00:00:00+00:00",
        eval_set={"name": "tiny", "version": "t1", "sha256": "0" * 64, "briefs": 0, "critiques": 0, "revisions": 0},
        seed=1, max_tokens=None, limit=None, baseline={"per_1k": 1.0, "source": "x"}, training_poems=0,
        configurations=[{"label": a, "educator": "e", "poet": "p"} for a in ("base", "tuned")],
        metrics={"base": metrics, "tuned": metrics},
        outputs={a: {"drafts": {}, "critiques": {}, "revisions": {}} for a in ("base", "tuned")}, judge=[],
        judge_cost={"model": "claude-sonnet-5-5", "dollars": 0.0123, "calls": 4, "not_made": 2, "cap": 0.05,
                    "prices_as_of": "2026-10-24", "ledger": "data/eval/ledger.jsonl",
                    "stopped": "the judge stopped at its cap $0.05"})
    page = markdown(report, {})
    assert "Judge cost: $0.0123 for 4 Claude calls" in page and "cap $0.05" in page and "2026-10-24" in page
    assert "2 calls were not made" in page
    assert report.to_json()["judge_cost"]["dollars"] == 0.0123
