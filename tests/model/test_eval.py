"""`workshop eval`: the metrics on hand-written poems with numbers worked out by hand, the
shipped eval set against its own definitions, the Claude judge against the loopback server,
a real run of the starter model through the command line (with --compare), repeatability
with fixed seeds, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.evaluation import Configuration, run_eval
from poetry_workshop.evaluation.configurations import choose_configurations, parse_run
from poetry_workshop.evaluation.eval_set import load_eval_set
from poetry_workshop.evaluation.judge import judge_pair
from poetry_workshop.evaluation.machine_likeness import machine_likeness
from poetry_workshop.evaluation.metrics import METRICS, Scorer
from poetry_workshop.evaluation.outputs import ConfigOutputs
from poetry_workshop.evaluation.report import compare_reports
from poetry_workshop.pipeline.claude.calls import make_client
from poetry_workshop.pipeline.gate.rules import CLICHE, SLOP, QualityGate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.critique_measures import flagged_passages, ungrounded_quotes
from poetry_workshop.workshop.persona import load_llm_isms
from tests.fakes.claude_server import ClaudeServer
from tests.support.cli import STARTER, run_cli

PNG = b"\x89PNG\r\n\x1a\n"
KEY = "loopback-judge-credential"

# Ten words each. P1 holds one slop word ("whisper", weight 2); P2 one poetic default ("heart").
P1 = "The hose lies coiled on grass\nI whisper to dogs"
P2 = "My heart counts pills into a saucer by colour today"


@pytest.fixture(scope="module")
def matcher():
    return pm.LlmIsmMatcher(load_llm_isms())


@pytest.fixture
def scorer(matcher):
    return Scorer(QualityGate(load_settings().gate, matcher, baseline=50.0), training_poems=[P1])


# ------------------------------------------------------------------------ the metrics


def test_poet_metrics_on_poems_with_known_answers(scorer):
    m = scorer.poet([("Form: free verse\nLength: 2 lines", P1), ("Form: sonnet", P2)])
    assert m["llm_isms_per_1k"] == pytest.approx(100.0)  # weight 2 in 20 words
    assert m["llm_isms_vs_human"] == pytest.approx(2.0)  # against a human 50 per 1,000
    assert m["cliche_hits"] == pytest.approx(0.5)  # "heart" in one poem of two
    assert m["form_compliance"] == pytest.approx(0.5)  # 2 lines asked and given; 1 line is no sonnet
    assert m["machine_signature"] == 0.0
    assert m["distinct_2"] == pytest.approx(1.0)  # 18 word pairs, none repeated
    assert m["machine_likeness"] == pytest.approx(machine_likeness([P1, P2]))  # its own model, pooled by mean
    assert m["memorisation"] == pytest.approx(0.5)  # P1 is the training poem (5 of 5 runs), P2 shares none
    assert m["words_per_poem"] == pytest.approx(10.0)


def test_repeated_word_pairs_lower_distinct_2(scorer):
    # "the kettle" and "kettle clicks" come twice: 4 distinct pairs of 6.
    m = scorer.poet([("", "the kettle clicks off"), ("", "the kettle clicks on")])
    assert m["distinct_2"] == pytest.approx(4 / 6)


def test_memorisation_is_not_measured_without_training_poems(matcher):
    bare = Scorer(QualityGate(load_settings().gate, matcher, baseline=7.0), training_poems=[])
    assert bare.poet([("", P1)])["memorisation"] is None


def test_educator_metrics_and_sycophancy_on_critiques_with_known_answers(scorer):
    weakened = "The hose lies coiled in sorrow\nI whisper to dogs"
    # Three sentences: praise ("works"), a problem ("flat"), a suggestion ("Try").
    on_poem = 'The line "coiled on grass" works because it is exact. The ending is flat. Try cutting the last line.'
    # Three sentences of praise, no suggestion, and a quotation the copy does not hold.
    on_copy = 'This is a beautiful poem. The words are lovely and strong. The phrase "in deep sorrow" is striking.'
    m = scorer.educator([(P1, on_poem, weakened, on_copy)])
    assert m["grounded_quotes"] == pytest.approx(0.5)
    assert m["quotes_per_critique"] == pytest.approx(1.0)
    assert m["actionable"] == pytest.approx(0.5)
    assert m["critique_words"] == pytest.approx(18.5)  # 19 and 18 words
    assert m["praise_original"] == pytest.approx(1 / 3)
    assert m["praise_weakened"] == pytest.approx(1.0)
    assert m["praise_gap"] == pytest.approx(-2 / 3)
    assert m["sycophancy"] == pytest.approx(1.0)
    # The same critic, reading the copy for what it is, is not sycophantic.
    honest = 'The phrase "in sorrow" is vague. Try an object instead.'
    m = scorer.educator([(P1, on_poem, weakened, honest)])
    assert m["sycophancy"] == 0.0 and m["praise_gap"] == pytest.approx(1 / 3)


def test_revision_metrics_on_revisions_with_known_answers(scorer):
    draft = "The hose lies coiled on grass\nI whisper to dogs\nThe kettle clicks off"
    critique = 'Line 2, "I whisper to dogs", is vague.'
    focused = "The hose lies coiled on grass\nI call the dogs in\nThe kettle clicks off"
    # Keeps the flagged line, rewrites line 3 (2 of its 7 words shared) and adds three LLM-isms:
    # "whispers", "tapestry", "a tapestry of".
    stray = "The hose lies coiled on grass\nI whisper to dogs\nThe kettle whispers a tapestry of steam"
    assert scorer.revision([(draft, critique, focused)]) == {
        "flagged_changed": 1.0, "unflagged_change": 0.0, "new_llm_isms": 0.0}
    m = scorer.revision([(draft, critique, focused), (draft, critique, stray)])
    assert m["flagged_changed"] == pytest.approx(0.5)
    assert m["unflagged_change"] == pytest.approx((0 + (1 - (1 + 2 / 7) / 2)) / 2)
    assert m["new_llm_isms"] == pytest.approx(1.5)


def test_a_group_without_items_is_not_applicable_rather_than_zero(scorer):
    assert set(scorer.educator([]).values()) == {None}
    assert set(scorer.revision([]).values()) == {None}


def test_compare_says_which_way_each_metric_moved():
    report = _report({"llm_isms_per_1k": 10.0, "form_compliance": 0.5})
    old = {"eval_set": {"sha256": "other"}, "metrics": {"a": {"poet": {"llm_isms_per_1k": 20.0,
                                                                      "form_compliance": 0.5}}}}
    moved = compare_reports(report, old, Path("old.json"))
    rows = {r["metric"]: r for r in moved["rows"]}
    assert rows["llm_isms_per_1k"]["change"] == -10.0 and rows["llm_isms_per_1k"]["verdict"] == "better"
    assert rows["form_compliance"]["verdict"] == "same"
    assert moved["same_set"] is False


# ----------------------------------------------------------------------- the eval set


def test_the_shipped_set_is_versioned_and_meets_its_own_definitions(matcher):
    s = load_eval_set()
    assert s.version == "1" and re.fullmatch(r"[0-9a-f]{64}", s.sha256)
    assert len(s.briefs) + len(s.critiques) + len(s.revisions) >= 30
    for item in s.critiques:
        # The weakened copy is worse by the measure the eval uses.
        original = pm.human_baseline(matcher, [item.poem], SLOP + CLICHE)
        weaker = pm.human_baseline(matcher, [item.weakened], SLOP + CLICHE)
        assert weaker > original + 50, item.id
    for item in s.revisions:
        assert flagged_passages(item.critique), item.id
        assert not ungrounded_quotes(item.critique, [item.draft]), item.id
    assert s.limited(2).generations == 2 + 4 + 2


def test_a_malformed_set_is_one_error_naming_the_item(tmp_path):
    path = tmp_path / "set.toml"
    path.write_text('name = "x"\nversion = "1"\n[[critique]]\nid = "c"\npoem = "a b c"\nweakened = "a b c"\n'
                    'weakening = "none"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="critique item c: its weakened copy is the poem unchanged"):
        load_eval_set(path)


# ------------------------------------------------------------------------- the judge


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
    with ClaudeServer(api_key=KEY) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def _outputs(marker: str) -> ConfigOutputs:
    return ConfigOutputs(drafts={"b1": f"a {marker} poem", "b2": f"another {marker} poem"},
                         critiques={"c1": {"original": f"a {marker} critique", "weakened": "x"}})


def _shown(body: dict, slot: str) -> str:
    text = body["messages"][0]["content"]
    return re.search(rf"<{slot}>\n(.*?)\n</{slot}>", text, re.S).group(1)


def test_a_judge_that_always_prefers_the_first_position_agrees_with_itself_on_nothing(claude, tiny_set):
    claude.responder = lambda body: {"reason": "first is better", "better": "first"}
    verdict = judge_pair(make_client(load_settings().generation.claude), load_settings(), tiny_set,
                         "base", _outputs("plain"), "tuned", _outputs("kettle"))
    assert verdict["comparisons"] == 3
    assert verdict["agreement"] == 0.0
    assert verdict["first_position_share"] == 1.0 and verdict["position_bias"] is True
    assert verdict["wins"] == {"base": 0, "tuned": 0, "tie": 0, "split": 3}
    # Each comparison was asked in both orders.
    bodies = [r["body"] for r in claude.requests if r["path"].endswith("/v1/messages")]
    assert len(bodies) == 6
    pairs = {(_shown(b, "first"), _shown(b, "second")) for b in bodies}
    assert all((second, first) in pairs for first, second in pairs)
    assert bodies[0]["output_config"]["format"]["type"] == "json_schema"


def test_a_judge_that_reads_content_agrees_across_orders(claude, tiny_set):
    claude.responder = lambda body: {"reason": "the kettle",
                                     "better": "first" if "kettle" in _shown(body, "first") else "second"}
    verdict = judge_pair(make_client(load_settings().generation.claude), load_settings(), tiny_set,
                         "base", _outputs("plain"), "tuned", _outputs("kettle"))
    assert verdict["agreement"] == 1.0
    assert verdict["wins"] == {"base": 0, "tuned": 3, "tie": 0, "split": 0}
    assert verdict["first_position_share"] == 0.5 and verdict["position_bias"] is False


def test_failed_judge_calls_are_counted_not_guessed(claude, tiny_set):
    claude.responder = lambda body: "not json"
    verdict = judge_pair(make_client(load_settings().generation.claude), load_settings(), tiny_set,
                         "base", _outputs("plain"), "tuned", _outputs("kettle"))
    assert verdict["failed_calls"] == 6 and verdict["agreement"] is None
    assert {r["verdict"] for r in verdict["rows"]} == {"failed"}


# ------------------------------------------------------------- the starter model, for real


@pytest.mark.model
def test_the_command_runs_the_starter_model_and_writes_the_report(tmp_path, starter_gguf):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"created": "2026-01-01T00:00:00+00:00", "eval_set": {"version": "0", "sha256": "0"},
                               "metrics": {"starter": {"poet": {"words_per_poem": 1000.0},
                                                       "educator": {"actionable": 0.0}}}}), encoding="utf-8")
    out = tmp_path / "report"
    result = run_cli("eval", "--limit", "1", "--max-tokens", "32", "--out", str(out), "--compare", str(old))
    assert result.returncode == 0, result.stderr
    assert "starter" in result.stdout.splitlines()[0] and "poet: form compliance" in result.stdout
    assert "· starter: 4/4 revision draft-garage" in result.stderr
    assert f"wrote {out / 'report.json'}" in result.stderr

    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [c["label"] for c in data["configurations"]] == ["starter"]
    assert data["eval_set"]["version"] == "1" and data["eval_set"]["briefs"] == 1
    for group in ("poet", "educator", "revision"):
        assert set(data["metrics"]["starter"][group]) == {m.key for m in METRICS if m.group == group}
    outputs = data["outputs"]["starter"]
    assert set(outputs["drafts"]) == {"brief-tide"} and outputs["tokens"] > 0
    assert data["metrics"]["starter"]["poet"]["words_per_poem"] == len(pm.words(outputs["drafts"]["brief-tide"]))
    for name in ("poet.png", "educator.png", "revision.png"):
        assert (out / name).read_bytes()[:8] == PNG

    rows = {r["metric"]: r for r in data["compare"]["rows"]}
    assert set(rows) == {"words_per_poem", "actionable"}
    assert rows["words_per_poem"]["change"] == pytest.approx(rows["words_per_poem"]["now"] - 1000.0)
    page = (out / "report.md").read_text(encoding="utf-8")
    assert "# Eval report: starter" in page and "![Poet metrics](poet.png)" in page
    assert "## What moved" in page and "another eval set" in page and "Sycophancy test" in page
    assert not list(tmp_path.glob(".report.*")), "the staging folder is left behind"


@pytest.mark.model
def test_fixed_seeds_give_the_same_outputs_and_numbers(tmp_path, starter_gguf, tiny_set):
    # Two configurations with the same model are the same run twice: each gets fresh model objects.
    settings = load_settings()
    report = run_eval(settings, [Configuration("one", STARTER, STARTER), Configuration("two", STARTER, STARTER)],
                      limit=1, out_dir=tmp_path / "out", max_tokens=24, eval_set_path=tiny_set.path)
    assert report.outputs["one"]["drafts"] == report.outputs["two"]["drafts"]
    assert report.outputs["one"]["critiques"] == report.outputs["two"]["critiques"]
    assert report.metrics["one"] == report.metrics["two"]
    assert report.outputs["one"]["drafts"]["b1"].strip()  # the model really wrote something
    other = run_eval(settings, [Configuration("one", STARTER, STARTER)], limit=1, out_dir=tmp_path / "other",
                     max_tokens=24, eval_set_path=tiny_set.path, seed=7)
    assert other.outputs["one"]["drafts"] != report.outputs["one"]["drafts"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, message", [
    (["--run", "nolabel"], "--run 'nolabel': expected LABEL=educator:PATH,poet:PATH"),
    (["--run", "x=educator:/nowhere/a.gguf"], "/nowhere/a.gguf: x's educator model file not found"),
    (["--run", "x=teacher:a.gguf,poet:b.gguf"], "'teacher:a.gguf' is not educator:PATH or poet:PATH"),
    (["--run", "x=/nowhere/m.gguf"], "/nowhere/m.gguf: x's educator model file not found"),
    (["--run", "starter", "--run", "starter"], "the label 'starter' is used twice"),
    (["--compare", "/nowhere/report.json"], "--compare /nowhere/report.json: no such file"),
    (["--run", "starter", "--run", f"b={STARTER}", "--judge"], "ANTHROPIC_API_KEY is not set"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--run", "tie=m.gguf"], "'tie' names a judge verdict"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    # (A role left out of --run keeps the app's model for it; see test_a_role_left_out_keeps_the_apps_model.)
    result = run_cli("eval", *args)
    assert result.returncode == 2
    *before, last = result.stderr.strip().splitlines()
    assert message in last and "error:" in last
    assert all(line.startswith(("usage:", " ")) for line in before)  # only argparse's usage, no traceback


def test_a_compare_file_that_is_not_a_report_is_refused_before_any_model_loads(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2", encoding="utf-8")
    result = run_cli("eval", "--compare", str(junk))
    assert result.returncode == 2 and "not a readable report" in result.stderr
    assert result.stderr.count("\n") == 1 and "·" not in result.stderr


def test_run_specs_name_both_roles_or_one_file_for_both():
    settings = load_settings()
    both = parse_run(f"mine={STARTER}", settings)
    assert both.educator == both.poet == STARTER
    split = parse_run(f"mine=poet:{STARTER},educator:/e.gguf", settings)
    assert (split.educator, split.poet) == (Path("/e.gguf"), STARTER)
    # Without --run, the starter and the configured models are the same files here: one configuration.
    assert [c.label for c in choose_configurations(settings, None)] == ["starter"]


def _report(poet_metrics: dict):
    from poetry_workshop.evaluation.report import EvalReport

    return EvalReport(created="now", eval_set={"sha256": "this"}, seed=1, max_tokens=None, limit=None,
                      baseline={"per_1k": 7.0, "source": "default"}, training_poems=0,
                      configurations=[{"label": "a"}], metrics={"a": {"poet": poet_metrics, "educator": {},
                                                                       "revision": {}}}, outputs={})


def test_a_role_left_out_keeps_the_apps_model():
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.evaluation.configurations import current_configuration, parse_run

    settings = load_settings()
    config = parse_run("mine=educator:/models/mine.gguf", settings)
    assert config.educator == Path("/models/mine.gguf") and config.poet == current_configuration(settings).poet
