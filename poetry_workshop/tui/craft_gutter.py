"""The craft gutter: beside the poem pane, each line's syllables, rhyme letter and stress.

One row per text line of the poem, so row i sits beside the poem's line i; a stanza break
is a blank row. A row reads `▌ 8~ A  x/x/x/x/`: the quoted mark (a passage the critique
quoted covers the line), the syllable count (`~` after it: an estimate, the line has a
word CMUdict lacks), the rhyme letter (bold where another line shares the sound, dim where
none does) and the stress, one mark a syllable (`/` stressed, `x` not, `?` unknown). The
poem's lines, words and stanzas are the border's title, which sits on the poem pane's top
border row and so takes no row from the alignment; the words CMUdict lacks are named in the
border's subtitle. The measures are `verse.line_craft`'s, cached by line text, and a row
is drawn once per (line, mark, width), so a redraw on each key press costs the changed
line.

`follow(poem_area)` keeps the rows beside the poem's lines as it scrolls and soft-wraps
(a wrapped line's continuation rows are blank); a gutter mounted in the same container as
a `TextArea` follows it without being asked. For the wrapping to line up, `show_poem` is
given the pane's own text (`area.text`), line for line.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import Static, TextArea

from poetry_workshop.verse.line_craft import LineCraft, PoemCraft, poem_craft, quoted_rows

QUOTED_MARK = "▌"

EXPLAINED = ("Each line: syllables (~ an estimate: a word CMUdict lacks), rhyme letter "
             "(dim: rhymes with no other line), stress (/ stressed, x unstressed, ? unknown); "
             "▌ a line the critique quotes.")

# The parts of a row, styled from the theme (DEFAULT_CSS) as component classes.
PARTS = ("quoted", "estimate", "rhymed", "unrhymed", "stress")


def row_text(craft: LineCraft, quoted: bool) -> list[tuple[str, str]]:
    """One gutter row as (text, part) pieces: `▌ 8~ A  x/x/x/x/`; none for a blank line.
    A part of "" takes the widget's own style."""
    if craft.blank:
        return []
    letter = f" {craft.rhyme:<2} " if craft.rhyme else "    "
    return [(QUOTED_MARK if quoted else " ", "quoted"), (f"{craft.syllables:>2}", ""),
            ("~" if craft.estimated else " ", "estimate"),
            (letter, "rhymed" if craft.rhymed else "unrhymed"), (craft.stress.replace(" ", ""), "stress")]


@lru_cache(maxsize=4096)
def _strip(craft: LineCraft, quoted: bool, base: Style, palette: tuple[Style, ...], width: int) -> Strip:
    """One row drawn at `width` (`palette`: the style of each of `PARTS`), cut with "…"
    if longer; cached, since most rows are the same from one key press to the next."""
    styles = dict(zip(PARTS, palette, strict=True))
    segments = [Segment(text, base + styles[part] if part else base) for text, part in row_text(craft, quoted)]
    strip = Strip(segments)
    if strip.cell_length > width > 0:
        strip = Strip.join([strip.crop(0, width - 1), Strip([Segment("…", base)])])
    return strip.extend_cell_length(width, base)


def counts_title(craft: PoemCraft, width: int) -> str:
    """The poem's lines, words and stanzas, in the longest form that fits `width`."""
    lines, words, stanzas = craft.lines, craft.words, craft.stanzas

    def n(count: int, noun: str) -> str:
        return f"{count} {noun}{'' if count == 1 else 's'}"

    forms = (f"{n(lines, 'line')} · {n(words, 'word')} · {n(stanzas, 'stanza')}",
             f"{lines} ln · {words} wd · {stanzas} st",
             f"{lines}L {words}W {stanzas}S")
    return next((form for form in forms if len(form) <= width), forms[-1])


class CraftGutter(Static):
    """The craft gutter widget; `show_poem` redraws it for a poem and its quoted passages.

    A `Static` drawn line by line (Textual's line API, `render_line`): each row is a
    cached strip, so a repaint costs a list lookup per row, not a layout of the text."""

    COMPONENT_CLASSES = {f"craft-gutter--{part}" for part in PARTS}

    DEFAULT_CSS = """
    CraftGutter {
        width: 20;
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        border-subtitle-color: $error;
        padding: 0;
    }
    CraftGutter > .craft-gutter--quoted { color: $text-warning; text-style: bold; }
    CraftGutter > .craft-gutter--estimate { color: $text-error; text-style: bold; }
    CraftGutter > .craft-gutter--rhymed { color: $text-primary; text-style: bold; }
    CraftGutter > .craft-gutter--unrhymed { color: $text-muted; }
    CraftGutter > .craft-gutter--stress { color: $text; }
    """

    def __init__(self, poem: str = "", **kwargs):
        super().__init__("", **kwargs)
        self.poem = poem
        self.craft: PoemCraft = poem_craft(poem)
        self.quoted: frozenset[int] = frozenset()
        self._area: TextArea | None = None
        self._top = 0
        self._screen_rows: list[tuple[LineCraft, bool] | None] = []  # None: a continuation row
        self._shown: tuple | None = None
        self._base, self._width, self._palette = Style(), 0, tuple(Style() for _ in PARTS)
        self.tooltip = EXPLAINED

    def on_mount(self) -> None:
        if self._area is None and self.parent is not None:
            # Beside a poem pane in the same container, the gutter follows it unasked.
            area = next((w for w in self.parent.children if isinstance(w, TextArea)), None)
            if area is not None:
                self.follow(area)
        self._redraw()

    def show_poem(self, poem: str, quoted: Iterable[str] = ()) -> None:
        """Redraws the gutter for `poem`; the lines a passage in `quoted` covers are marked."""
        self.poem = poem
        self.craft = poem_craft(poem)
        self.quoted = quoted_rows(poem, quoted)
        self._redraw()

    def follow(self, area: TextArea) -> None:
        """Keeps the rows beside `area`'s lines: its scrolling, and its soft wrapping (a
        wrapped line takes as many rows here as there)."""
        self._area = area
        self.watch(area, "scroll_y", self._scrolled, init=False)
        self.watch(area, "virtual_size", lambda _size: self._redraw(), init=False)

    def _scrolled(self, scroll_y: float) -> None:
        self._top = round(scroll_y)
        self._redraw()

    def _heights(self) -> tuple[int, ...] | None:
        """Screen rows per text line in the followed area, or None (one each)."""
        area = self._area
        if area is None or not area.soft_wrap:
            return None
        document = area.wrapped_document
        if area.document.line_count != len(self.craft.rows) or document.height == len(self.craft.rows):
            return None  # showing another text than this poem's, or no line wraps
        try:
            return tuple(len(document.get_offsets(i)) + 1 for i in range(len(self.craft.rows)))
        except ValueError:  # the wrapping is behind the document; virtual_size will call again
            return None

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        heights = self._heights()
        key = (self.craft, self.quoted, heights, self._top, self.size.width)
        if key == self._shown:
            return  # a key that changed nothing here (a cursor move) costs no repaint
        self._shown = key
        screen_rows: list[tuple[LineCraft, bool] | None] = []
        for i, craft in enumerate(self.craft.rows):
            screen_rows.append((craft, i in self.quoted))
            if heights is not None and heights[i] > 1:
                screen_rows.extend([None] * (heights[i] - 1))
        before, after = self._screen_rows, screen_rows[self._top:]
        self._screen_rows = after
        if len(before) != len(after):
            self.refresh()
        else:
            # Only the rows that changed are drawn again: typing changes one.
            width = self.size.width
            self.refresh(*(Region(0, y, width, 1) for y, (old, new) in enumerate(zip(before, after))
                           if old != new))
        title = escape(counts_title(self.craft, max(0, self.size.width - 4)))
        unknown = self.craft.unknown
        subtitle = escape(f"~ not in CMUdict: {', '.join(unknown)}") if unknown else ""
        if (title, subtitle) != (self.border_title, self.border_subtitle):
            self.border_title, self.border_subtitle = title, subtitle
            tip = f"{counts_title(self.craft, 80)}\n{EXPLAINED}"
            self.tooltip = f"{tip}\nNot in CMUdict (counted by spelling): {', '.join(unknown)}" if unknown else tip

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's styles and width are read once a repaint, not once a row.
        self._base, self._width = self.rich_style, self.size.width
        self._palette = tuple(self.get_component_rich_style(f"craft-gutter--{part}", partial=True)
                              for part in PARTS)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        base, width = self._base, self._width
        row = self._screen_rows[y] if y < len(self._screen_rows) else None
        if row is None:
            return Strip.blank(width, base)
        return _strip(row[0], row[1], base, self._palette, width)
