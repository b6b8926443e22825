"""The critique measures' reading of sentences and marker words: what the gate's actionable,
praise-share and revision-focus rules count, at the edges the patterns are written for."""

from __future__ import annotations

from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.critique_measures import _sentence_bounds, _sentence_marks, critique_shape, flagged_passages
from poetry_workshop.verse.quotes import _flat_words, flatten


def test_markers_count_only_as_whole_words():
    text = "Try the verb. Poetry is not a try. The rework is done. Don't explain it. Let  the line go. A 'cut line."
    bounds, marks = _sentence_marks(text.lower())
    assert len(bounds) == 6
    assert marks["suggestion"] == {0, 1, 4}  # "try" twice, "let the" across two spaces; not "poetry", "'cut"
    assert marks["praise"] == set()  # "rework" is not "work"
    assert marks["problem"] == {3}  # "don't", "explain"


def test_a_sentence_runs_past_periods_inside_quotes_and_stops_at_an_unclosed_one():
    text = 'The line "ends here. And here." works. Then "an open quote. More'
    sentences = [text[b:e] for b, e in _sentence_bounds(text)]
    assert sentences == ['The line "ends here. And here." works.', " Then ", "an open quote.", " More"]


def test_a_critique_shape_counts_suggestions_and_praise_without_quotes_or_fragments():
    critique = ('"The hose kicks" works, and the image is strong. Ok. Cut the last line and try '
                'ending on "a green snake" instead.')
    shape = critique_shape(critique)
    assert (shape.sentences, shape.suggestions, shape.praise) == (2, 1, 1)
    assert flagged_passages(critique) == ["a green snake"]


def test_flat_words_map_back_to_the_poem_through_any_whitespace():
    poem = "The  HOSE\tkicks\n\n  in the yard\u2003at dusk"
    flat, starts, spans = _flat_words(poem)
    assert flat == flatten(poem) == "the hose kicks in the yard at dusk"
    assert [flat[s:s + 4] for s in starts[:3]] == ["the ", "hose", "kick"]
    assert [poem[b:e] for b, e in spans] == poem.split()


def test_end_words_and_line_similarity_read_words_as_words_does():
    assert pm.end_words("One line ends on Night,\n\n  the next on Light’s\n\u2014") == ["night", "light's"]
    assert pm.line_similarity("the cat the hat", "The hat, the bat") == 0.75
    assert pm.line_similarity("", "") == 1.0
