"""The gate on real poems nobody here wrote (../shared/corpus/, read in place, never copied):
no human poem is rejected for a form its brief names, the rates bench/gate_score.py prints
hold, and the committed lexicon figures are what bench/gate_weights.py derives from it."""

from __future__ import annotations

import pytest

from bench.gate_score import machine_shape
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.gate.corpus import read_corpus
from poetry_workshop.pipeline.gate.rules import QualityGate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import BriefSpec, parse_brief
from poetry_workshop.workshop.persona import load_llm_isms
from tests.support.gate_corpus import require_corpus


@pytest.fixture(scope="module")
def poems():
    return read_corpus(require_corpus())


@pytest.fixture(scope="module")
def gate():
    settings = load_settings()
    return QualityGate(settings.gate, pm.LlmIsmMatcher(load_llm_isms()), settings.gate.llm_isms.default_baseline_per_1k)


@pytest.mark.parametrize("tag, brief", [("sonnet", "Form: sonnet"), ("ballad", "Form: ballad"),
                                        ("common measure", "Form: common measure"), ("couplet", "Form: couplets"),
                                        ("blank verse", "Form: blank verse")])
def test_no_human_poem_is_rejected_for_the_form_its_brief_names(poems, gate, tag, brief):
    spec = parse_brief(brief)
    group = [p for p in poems if p.human and p.form == tag]
    assert group, f"no human {tag} in the corpus"
    for_form = {p.id: [f.evidence for f in gate.check_poem(p.text, spec) if f.rule in ("form", "machine-shape")]
                for p in group}
    assert {k: v for k, v in for_form.items() if v} == {}


def test_rates_on_the_corpus_hold(poems, gate):
    """The figures bench/gate_score.py prints, as floors: a change that loses them shows here."""
    human = [p for p in poems if p.human]
    machine = [p for p in poems if not p.human]
    plain = [p for p in machine if not machine_shape(p.text)]
    human_pass = sum(not gate.check_poem(p.text, BriefSpec()) for p in human) / len(human)
    machine_reject = sum(bool(gate.check_poem(p.text, BriefSpec())) for p in machine) / len(machine)
    plain_reject = sum(bool(gate.check_poem(p.text, BriefSpec())) for p in plain) / len(plain)
    assert human_pass >= 0.95, human_pass
    assert machine_reject >= 0.95, machine_reject
    assert plain_reject >= 0.9, plain_reject


def test_the_committed_lexicon_figures_are_what_the_corpus_gives(poems):
    from bench import gate_weights

    derived = gate_weights.render(gate_weights.derive(poems), require_corpus())
    assert derived == gate_weights.TARGET.read_text(encoding="utf-8"), \
        "rerun `.venv/bin/python -m bench.gate_weights` and commit poetry_workshop/pipeline/gate/corpus_weights.py"
