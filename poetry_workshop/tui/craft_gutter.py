"""The craft gutter: beside the poem pane, each line's syllables, rhyme letter and stress.

One row per text line of the poem, so row i sits beside the poem's line i; a stanza break
is a blank row. A row reads `▌ 8~ A  x/x/x/x/`: the quoted mark (a passage the critique
quoted covers the line), the syllable count (`~` after it: an estimate, the line has a
word CMUdict lacks), the rhyme letter (bold where another line shares the sound, dim where
none does) and the stress, one mark a syllable (`/` stressed, `x` not, `?` unknown). The
poem's lines, words and stanzas are the border's title, which sits on the poem pane's top
border row and so takes no row from the alignment; the words CMUdict lacks are named in the
border's subtitle. The measures are `verse.line_craft`'s, cached by line text, and a row
is drawn once per (line, mark), so a redraw on each key press costs the changed line.

`follow(poem_area)` keeps the rows beside the poem's lines as it scrolls and soft-wraps
(a wrapped line's continuation rows are blank).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from rich.markup import escape
from rich.text import Text
from textual.widgets import Static, TextArea

from poetry_workshop.verse.line_craft import LineCraft, PoemCraft, poem_craft, quoted_rows

QUOTED_MARK = "▌"
_EMPTY = Text("")

EXPLAINED = ("Each line: syllables (~ an estimate: a word CMUdict lacks), rhyme letter "
             "(dim: rhymes with no other line), stress (/ stressed, x unstressed, ? unknown); "
             "▌ a line the critique quotes.")


@lru_cache(maxsize=4096)
def _row(craft: LineCraft, quoted: bool) -> Text:
    """One gutter row; cached, since most rows are unchanged from one redraw to the next."""
    if craft.blank:
        return _EMPTY
    row = Text(QUOTED_MARK if quoted else " ", style="bold yellow")
    row.append(f"{craft.syllables:>2}")
    row.append("~" if craft.estimated else " ", style="bold red")
    if craft.rhyme:
        row.append(f" {craft.rhyme:<2} ", style="bold cyan" if craft.rhymed else "dim")
    else:
        row.append("    ")
    row.append(craft.stress.replace(" ", ""), style="italic")
    return row


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
    """The craft gutter widget; `show_poem` redraws it for a poem and its quoted passages."""

    DEFAULT_CSS = """
    CraftGutter {
        width: 20;
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        border-subtitle-color: $error;
        padding: 0;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, poem: str = "", **kwargs):
        super().__init__("", **kwargs)
        self.poem = poem
        self.craft: PoemCraft = poem_craft(poem)
        self.quoted: frozenset[int] = frozenset()
        self._area: TextArea | None = None
        self._top = 0
        self._shown: tuple | None = None
        self.tooltip = EXPLAINED

    def on_mount(self) -> None:
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
        self._shown = None  # the title's form depends on the width
        self._redraw()

    def _redraw(self) -> None:
        heights = self._heights()
        key = (self.craft, self.quoted, heights, self._top, self.size.width)
        if key == self._shown:
            return  # a key that changed nothing here (a cursor move) costs no repaint
        self._shown = key
        rows: list[Text] = []
        for i, craft in enumerate(self.craft.rows):
            rows.append(_row(craft, i in self.quoted))
            if heights is not None and heights[i] > 1:
                rows.extend([_EMPTY] * (heights[i] - 1))
        self.update(Text("\n").join(rows[self._top:]))
        title_width = max(0, self.size.width - 4)  # the border's corners and a space each side
        self.border_title = escape(counts_title(self.craft, title_width))
        unknown = self.craft.unknown
        self.border_subtitle = escape(f"~ not in CMUdict: {', '.join(unknown)}") if unknown else ""
        tip = f"{counts_title(self.craft, 80)}\n{EXPLAINED}"
        self.tooltip = f"{tip}\nNot in CMUdict (counted by spelling): {', '.join(unknown)}" if unknown else tip
