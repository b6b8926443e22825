"""The eval's machine-likeness measure: its own features (no gate code), a committed model
that tells the developers' machine-signature poems from the human ones, and, on the real
corpus when it is present, a clear gap between the two sides."""

from __future__ import annotations

import ast
from pathlib import Path

from poetry_workshop.evaluation import machine_likeness as ml
from poetry_workshop.pipeline.gate.corpus import read_corpus
from tests.support.gate_corpus import HUMAN, MACHINE, require_corpus


def test_features_are_one_number_each_and_survive_odd_text():
    for text in ("", "\n\n", "one", "A line, and one more;\n\nAnother — here!"):
        values = ml.features(text)
        assert len(values) == len(ml.FEATURES) and all(isinstance(v, float | int) for v in values)


def test_features_count_what_they_say():
    by_name = dict(zip(ml.FEATURES, ml.features("We sing, we go,\nour way;\n\nWe sing, we go,\nour day;")))
    assert by_name["uniform_stanzas"] == 1.0 and by_name["spelled_end_rhyme"] > 0
    assert by_name["plural_person"] > 0 and by_name["semicolons_per_line"] == 0.5 and by_name["first_person"] == 0


def test_the_committed_model_reads_the_machine_signature_as_machine():
    model = ml.model()
    assert len(model.weights) == len(ml.FEATURES) == len(model.means) == len(model.scales)
    human = ml.machine_likeness(HUMAN)
    machine = ml.machine_likeness(MACHINE)
    assert machine > 0.5 > human, (human, machine)
    assert ml.machine_likeness([]) is None and ml.machine_likeness(["  "]) is None
    why = model.contributions(MACHINE[0])
    assert [name for name, _ in why] and set(name for name, _ in why) == set(ml.FEATURES)


def test_on_the_real_corpus_machine_poems_score_well_above_human_ones():
    poems = read_corpus(require_corpus())
    human = ml.machine_likeness(p.text for p in poems if p.human)
    machine = ml.machine_likeness(p.text for p in poems if not p.human)
    assert machine - human > 0.4, (human, machine)


def test_the_measure_shares_no_code_with_the_gate():
    tree = ast.parse(Path(ml.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | \
               {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name and ("gate" in name or "poem_metrics" in name or "persona" in name) for name in imported)
