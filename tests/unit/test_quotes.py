"""Locating a critique's quotes in the poem."""

from poetry_workshop.verse.quotes import cited_lines, flatten, locate_quotes, quote_occurs, quoted_passages

POEM = "The kettle ticks as it cools.\nMy father's boots by the door,\nlaces knotted twice."


def test_quotes_are_found_across_case_and_line_breaks():
    critique = ('"the kettle ticks" (line 1) is exact; “boots by the door, laces knotted” runs on. '
                'But "a tapestry of grief" is not in the poem.')
    assert quoted_passages(critique)[0] == "the kettle ticks"
    spans, missing = locate_quotes(POEM, critique)
    assert missing == ["a tapestry of grief"]
    assert [(s.row, s.start, s.end) for s in spans] == [(0, 0, 16), (1, 12, 30), (2, 0, 13)]
    assert cited_lines(critique) == [1]


def test_short_or_absent_quotes_are_ignored():
    assert quoted_passages('he said "no" and "" then') == []
    assert locate_quotes(POEM, "no quotes here") == ([], [])


def test_a_slash_marks_a_line_break_inside_a_quote():
    poem = "the nurse said I could go\nhome, and I didn't ask which one she meant"
    critique = 'The break in "I could go / home, and" holds the word back.'
    spans, missing = locate_quotes(poem, critique)
    assert missing == [] and [(s.row, s.start, s.end) for s in spans] == [(0, 15, 25), (1, 0, 9)]
    assert quote_occurs("I could go / home", flatten(poem))
    assert not quote_occurs("I could stay / home", flatten(poem))
    # A slash the poem itself holds is still matched as written.
    assert quote_occurs("either / or", flatten("it was either / or, never both"))
