"""A poem's craft line by line: syllables, stress, rhyme letters and counts, on Frost."""

import pytest

from poetry_workshop.verse.line_craft import (
    estimate_syllables,
    line_craft,
    line_words,
    poem_craft,
    quoted_rows,
    word_sound,
)

# Robert Frost, "Stopping by Woods on a Snowy Evening" (1923), public domain.
FROST = """\
Whose woods these are I think I know.
His house is in the village though;
He will not see me stopping here
To watch his woods fill up with snow.

My little horse must think it queer
To stop without a farmhouse near
Between the woods and frozen lake
The darkest evening of the year.

He gives his harness bells a shake
To ask if there is some mistake.
The only other sound’s the sweep
Of easy wind and downy flake.

The woods are lovely, dark and deep,
But I have promises to keep,
And miles to go before I sleep,
And miles to go before I sleep.
"""

IAMB = "x / x / x / x /"


@pytest.fixture(scope="module")
def frost():
    return poem_craft(FROST)


def test_frost_has_eight_syllables_a_line_and_its_rhyme_scheme(frost):
    lines = [row for row in frost.rows if not row.blank]
    assert [row.syllables for row in lines] == [8] * 16
    assert frost.scheme == "AABA BBCB CCDC DDDD"
    # "here" (IY R) and "queer", "near", "year" (IH R) are apart in CMUdict and rhyme to
    # the ear: the B of the first stanza is the rhyme the second is built on.
    assert lines[2].rhyme == lines[4].rhyme == "B"
    assert (frost.lines, frost.words, frost.stanzas) == (16, 108, 4)
    assert frost.unknown == () and not any(row.estimated for row in frost.rows)


def test_rows_follow_the_text_lines_stanza_breaks_included(frost):
    assert len(frost.rows) == len(FROST.split("\n"))  # the final newline's empty line too
    assert [i for i, row in enumerate(frost.rows) if row.blank] == [4, 9, 14, 19]
    assert all(row.rhyme == "" and row.stress == "" for row in frost.rows if row.blank)


def test_frost_scans_iambic_but_where_the_dictionary_hears_otherwise(frost):
    stresses = [row.stress for row in frost.rows if not row.blank]
    # Line 3 is the one exception CMUdict's words give: "will" is an auxiliary (x) and
    # "not" and "see" both carry a primary stress, so the words say "he will NOT SEE"
    # where the meter would have "he WILL not SEE". The reader's rules only move a beat
    # between unstressed neighbours or off a stressed word between two stresses; neither
    # applies, and the gutter shows the line as its words sound.
    assert stresses[2] == "x x / / x / x /"
    assert stresses[:2] + stresses[3:] == [IAMB] * 15


def test_the_readers_rules_each_change_what_cmudict_gives():
    # Promotion: "these are I" is x x x in the words; "are" takes the beat.
    assert line_craft("Whose woods these are I think I know.").stress == IAMB
    # Promotion inside a word: "promises to" is / x x x; the middle "-es" takes the beat.
    assert line_craft("But I have promises to keep,").stress == IAMB
    # A function word ending the line after an unstressed syllable: "the VILlage THOUGH".
    assert line_craft("His house is in the village though;").stress == IAMB
    # Demotion: "woods fill up" is / / / (a particle stays stressed); "fill" gives way.
    assert line_craft("To watch his woods fill up with snow.").stress == IAMB
    # Function words are x though CMUdict stresses "to", "of", "his" said alone.
    assert word_sound("his").stresses == ("1",)
    assert line_craft("of his house").stress == "x x /"
    # So are their contractions; a negative one keeps its stress.
    assert line_craft("it’s time").stress == "x /" and line_craft("don’t go").stress == "/ /"


def test_secondary_stress_is_heard_unless_it_leans_on_the_primary():
    # understand: AH2 N D ER0 S T AE1 N D; daydream: D EY1 D R IY2 M.
    assert word_sound("understand").stresses == ("2", "0", "1")
    assert line_craft("understand").stress == "/ x /"
    assert word_sound("daydream").stresses == ("1", "2")
    assert line_craft("daydream").stress == "/ x"


def test_a_word_cmudict_lacks_is_named_and_its_count_marked_an_estimate():
    row = line_craft("The zorgle sang of brillig toves")
    assert row.unknown == ("zorgle", "brillig", "toves")
    assert row.estimated
    # "zorgle" 2 and "brillig" 2 by vowel groups; "toves" read as "tove", 1.
    assert [estimate_syllables(w) for w in row.unknown] == [2, 2, 1]
    assert row.syllables == 1 + 2 + 1 + 1 + 2 + 1
    assert row.stress.split() == ["x", "?", "?", "/", "x", "?", "?", "?"]
    craft = poem_craft("The zorgle sang\n\nof brillig zorgle")
    assert craft.unknown == ("zorgle", "brillig")


def test_an_elided_vowel_is_counted_as_the_poet_elides_it():
    # Poetic contractions are not in CMUdict: flagged, and counted as the apostrophe says.
    row = line_craft("O’er the heav’n of ev’ry hill")
    assert row.unknown == ("o'er", "heav'n", "ev'ry")
    assert row.syllables == 1 + 1 + 1 + 1 + 2 + 1


def test_numbers_are_words_and_flagged():
    row = line_craft("At 3 the light went out")
    assert row.unknown == ("3",) and row.estimated and row.words == 6


def test_apostrophes_and_quotes_do_not_make_words_unknown():
    assert line_words("“’Tis the sound’s own ‘echo’”") == ["tis", "the", "sound's", "own", "echo"]
    assert line_craft("the sound’s own 'echo'").unknown == ()


def test_rhyme_letters_run_on_past_z_and_lines_without_rhyme_say_so():
    # 28 lines ending on 28 different sounds.
    ends = ("cat dog fish bird tree stone rain wind sun moon star road "
            "ship book lamp door hill lake field bread milk salt rope bell coat drum glove nest").split()
    craft = poem_craft("\n".join(f"a {w}" for w in ends))
    letters = [row.rhyme for row in craft.rows]
    assert letters[:2] == ["A", "B"] and letters[25:] == ["Z", "AA", "AB"]
    assert not any(row.rhymed for row in craft.rows)


def test_a_line_of_no_words_has_no_letter():
    craft = poem_craft("the cat\n— — —\nthe hat")
    assert [row.rhyme for row in craft.rows] == ["A", "", "A"]
    assert craft.rows[1].syllables == 0 and not craft.rows[1].blank
    assert craft.lines == 3 and craft.stanzas == 1


def test_quoted_rows_cover_a_quote_across_a_line_break(frost):
    assert quoted_rows(FROST, ["The woods are lovely"]) == {15}
    assert quoted_rows(FROST, ["watch his woods / fill up with snow.", "nothing of the kind"]) == {3}
    assert quoted_rows(FROST, ["stopping here to watch"]) == {2, 3}
    assert quoted_rows(FROST, []) == frozenset()


def test_a_line_is_measured_once_whatever_the_poem_around_it():
    line_craft.cache_clear()
    poem_craft(FROST)
    poem_craft(FROST.replace("queer", "strange"))
    info = line_craft.cache_info()
    assert info.misses == len(set(FROST.split("\n"))) + 1  # only the changed line again
