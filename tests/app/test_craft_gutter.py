"""The craft gutter under Pilot: Frost's poem measured beside its lines, a quoted line
marked, a word CMUdict lacks named, and the rows following the poem pane's wrapping and
scrolling."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.geometry import Region

from poetry_workshop.tui.craft_gutter import QUOTED_MARK, CraftGutter
from poetry_workshop.tui.widgets import PoemArea
from tests.unit.test_line_craft import FROST


class GutterApp(App):
    CSS = "#poem { width: 1fr; border: round $primary; }"

    def __init__(self, with_poem: bool = False):
        super().__init__()
        self.with_poem = with_poem

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield CraftGutter(id="gutter")
            if self.with_poem:
                yield PoemArea(id="poem")


def rows(gutter: CraftGutter) -> list[str]:
    """The gutter as drawn, border included, one string a screen row."""
    width, height = gutter.outer_size
    return [strip.text for strip in gutter.render_lines(Region(0, 0, width, height))]


def body(gutter: CraftGutter) -> list[str]:
    return [row[1:-1].rstrip() for row in rows(gutter)[1:-1]]


async def test_the_gutter_shows_frost_line_by_line_with_a_quoted_line_marked():
    app = GutterApp()
    async with app.run_test(size=(40, 24)) as pilot:
        gutter = app.query_one(CraftGutter)
        gutter.show_poem(FROST, ["the woods are LOVELY, dark"])
        await pilot.pause()
        drawn = body(gutter)
        lines = [row for row in drawn[:19] if row]
        assert [row.split()[-3:-1] if row.startswith(QUOTED_MARK) else row.split()[:2] for row in lines] == [
            ["8", letter] for letter in "AABABBCBCCDCDDDD"]
        assert [i for i, row in enumerate(drawn[:19]) if not row] == [4, 9, 14]  # stanza breaks
        assert drawn[0] == "  8  A  x/x/x/x/"
        assert drawn[2] == "  8  B  xx//x/x/"  # "He will not see": as CMUdict's words give it
        assert [i for i, row in enumerate(drawn) if row.startswith(QUOTED_MARK)] == [15]
        assert "16L 108W 4S" in rows(gutter)[0]
        assert gutter.border_subtitle == ""


async def test_show_poem_again_redraws_counts_marks_and_unknown_words():
    app = GutterApp()
    async with app.run_test(size=(60, 24)) as pilot:
        gutter = app.query_one(CraftGutter)
        gutter.show_poem(FROST, ["The woods are lovely"])
        await pilot.pause()
        gutter.show_poem("The zorgle sang\nof brillig night\n\nand sang", ["of brillig"])
        await pilot.pause()
        drawn = body(gutter)
        assert drawn[:4] == ["  4~ A  x??/", f"{QUOTED_MARK} 4~ B  x??/", "", "  2  A  x/"]
        assert "3L 8W 2S" in rows(gutter)[0]  # the short form, as the full one does not fit
        assert "3 lines · 8 words · 2 stanzas" in str(gutter.tooltip)
        assert gutter.border_subtitle == "~ not in CMUdict: zorgle, brillig"
        assert "zorgle, brillig" in str(gutter.tooltip)
        gutter.show_poem("")
        await pilot.pause()
        assert not any(body(gutter)) and "0L 0W 0S" in rows(gutter)[0] and gutter.border_subtitle == ""


def numbered_rows(area: PoemArea) -> list[int | None]:
    """Per screen row of the poem pane (inside its border), the line number shown there, or
    None for a wrapped line's continuation."""
    width, height = area.outer_size
    shown = [strip.text[1:].split() for strip in area.render_lines(Region(0, 1, width, height - 2))]
    return [int(words[0]) if words and words[0].isdigit() else None for words in shown]


def assert_aligned(gutter: CraftGutter, area: PoemArea) -> None:
    """Every gutter row is beside the poem row it measures: a numbered row shows that
    line's syllable count (blank for a stanza break), a continuation row is blank."""
    for drawn, number in zip(body(gutter), numbered_rows(area), strict=True):
        if number is None or gutter.craft.rows[number - 1].blank:
            assert drawn == ""
        else:
            assert drawn.split()[0].rstrip("~") == str(gutter.craft.rows[number - 1].syllables)


async def test_rows_follow_the_poem_pane_as_it_wraps_and_scrolls():
    long_line = "Between the woods and all the long and longer ways of frozen lake"
    poem = FROST.replace("Between the woods and frozen lake", long_line)
    app = GutterApp(with_poem=True)
    async with app.run_test(size=(80, 14)) as pilot:
        gutter, area = app.query_one(CraftGutter), app.query_one(PoemArea)
        # Mounted beside the pane, the gutter follows it without `follow` being called.
        area.show(poem)
        gutter.show_poem(area.text)
        await pilot.pause()
        wraps = len(area.wrapped_document.get_offsets(7)) + 1
        assert wraps > 1
        drawn = body(gutter)
        assert drawn[7].split()[:2] == ["16", "C"]
        assert drawn[8:7 + wraps] == [""] * (wraps - 1)
        assert drawn[7 + wraps].split()[:2] == ["8", "B"]  # "The darkest evening of the year."
        assert_aligned(gutter, area)
        area.scroll_to(y=7 + wraps, animate=False)
        await pilot.pause()
        assert area.scroll_y == 7 + wraps and numbered_rows(area)[:3] == [9, 10, 11]
        assert body(gutter)[0].split()[:2] == ["8", "B"]
        assert_aligned(gutter, area)
        app.screen.styles.width = 70  # a narrower pane wraps the long line once more
        await pilot.pause()
        assert_aligned(gutter, area)


async def test_marks_take_their_colours_from_the_theme():
    """The quoted mark, an estimate's `~`, a rhymed and an unrhymed letter each stand
    apart from the count, in the theme's colours (so a light theme keeps them legible)."""
    app = GutterApp()
    async with app.run_test(size=(40, 10)) as pilot:
        gutter = app.query_one(CraftGutter)
        gutter.show_poem("the zorgle cat\nthe hat\nthe dog", ["zorgle"])
        await pilot.pause()
        colours = {}
        for y in range(1, 4):
            for segment in gutter.render_lines(Region(0, y, 20, 1))[0]:
                colours.setdefault((y, segment.text.strip()), segment.style.color)
        mark, count, estimate = colours[(1, QUOTED_MARK)], colours[(1, "4")], colours[(1, "~")]
        rhymed, unrhymed = colours[(1, "A")], colours[(3, "B")]
        assert len({mark, count, estimate, rhymed, unrhymed}) == 5
        theme = app.get_css_variables()
        assert [c.triplet.hex.upper() for c in (mark, estimate, rhymed)] == [
            theme["text-warning"], theme["text-error"], theme["text-primary"]]
