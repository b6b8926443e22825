"""The machine-shape signals and closing formulas added from ../shared/corpus: capitalised lines
with no punctuation at their ends, a closing toast or moral, each weighed by the corpus
figures; written here for the tests, never copied from the corpus."""

from __future__ import annotations

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.gate import corpus_weights, lexicon
from poetry_workshop.pipeline.gate.rules import SIGNAL_SCALE, QualityGate, signal_weight
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import BriefSpec
from poetry_workshop.workshop.persona import load_llm_isms

LIST_VERSE = """Morning light upon the hill
Birds awake and all is still
Dew is shining on the grass
Quiet hours softly pass

Children running down the lane
Laughing in the summer rain
Every moment bright and new
Skies of gold and skies of blue"""

RUN_ON = """the kettle ticks on the back ring
and my mother counts the spoons
out loud the way she counts
the stairs she no longer climbs
each number a small door
she closes behind her"""

PUNCTUATED = """My father kept his tools in coffee cans,
the nails sorted by a logic only he knew.
When he died we found the cans
labelled in pencil: short, long, bent, good.
I have the bent ones. They still hold
a board to a post, if you drive them slant."""


@pytest.fixture(scope="module")
def gate():
    return QualityGate(load_settings().gate, pm.LlmIsmMatcher(load_llm_isms()), 7.0)


def test_capitalised_unpunctuated_lines_are_a_signal_and_lower_case_or_punctuated_verse_is_not():
    assert pm.unpunctuated(LIST_VERSE)
    assert not pm.unpunctuated(RUN_ON)  # modern unpunctuated verse, in lower case
    assert not pm.unpunctuated(PUNCTUATED)
    assert not pm.unpunctuated("\n".join(LIST_VERSE.splitlines()[:4]))  # too short to say


def test_signals_weigh_their_corpus_figures_and_together_reject(gate):
    names = [name for name, _ in gate.shape_signals(LIST_VERSE, BriefSpec())]
    assert names == ["quatrains", "end-rhyme", "unpunctuated"]
    assert signal_weight("unpunctuated") == corpus_weights.SIGNALS["unpunctuated"][0] > signal_weight("end-rhyme")
    shape = sum(map(signal_weight, names)) / SIGNAL_SCALE
    failures = [f for f in gate.poetic_defaults(LIST_VERSE, BriefSpec(), "poem") if f.rule == "machine-shape"]
    assert failures and "no punctuation at their ends" in failures[0].evidence and f"shape {shape:.2f}" in failures[0].evidence
    # A dialogue's poem is not held to its own habit: the revision of list-verse may stay list-verse.
    assert not gate.shape_signals(LIST_VERSE, BriefSpec(rhyme=True, quatrains_ok=True, unpunctuated_ok=True))


def test_a_closing_toast_or_moral_counts_in_the_lexicon_curly_apostrophe_or_not(gate):
    for text, entry in (("Here\u2019s to the ones who stayed,\nthe lamp still on.", "here's to"),
                        ("Here's to the ones who stayed.", "here's to"),
                        ("So let us carry the light together.", "so let")):
        score, _limit, hits = gate.poem_lexicon(text)
        assert [h.category for h in hits] == [lexicon.FORMULAS], text
        assert score == corpus_weights.WEIGHTS[entry][0] > 3, text
