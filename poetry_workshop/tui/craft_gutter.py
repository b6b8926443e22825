"""The craft gutter: beside the poem pane, each line's syllables, rhyme letter and stress.

One row per text line of the poem, so row i sits beside the poem's line i (a stanza break
is a blank row); the poem's lines, words and stanzas are in the border's title, which
sits on the poem pane's top border row and so takes no row from the alignment. A quoted
line is marked `▌`; a line with a word CMUdict lacks has `~` after its count (an
estimate) and the words are named in the border's subtitle. The measures are
`verse.line_craft`'s, cached by line text, so a redraw on each key press measures only
the line that changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from rich.text import Text
from textual.widgets import Static

from poetry_workshop.verse.line_craft import LineCraft, PoemCraft, poem_craft, quoted_rows

QUOTED_MARK = "▌"


@lru_cache(maxsize=4096)
def _row(craft: LineCraft, quoted: bool) -> Text:
    """One gutter row; cached, since most rows are unchanged from one redraw to the next."""
    if craft.blank:
        return Text("")
    row = Text(QUOTED_MARK if quoted else " ", style="bold yellow")
    count = f"{craft.syllables:>2}{'~' if craft.estimated else ' '}"
    row.append(count, style="bold red" if craft.estimated else "bold")
    letter_style = "bold cyan" if craft.rhymed else "dim"
    row.append(f"{craft.rhyme or '-':<2} ", style=letter_style if craft.rhyme else "dim")
    row.append(craft.stress, style="italic")
    return row


class CraftGutter(Static):
    """The craft gutter widget; `show_poem` redraws it for a poem and its quoted passages."""

    DEFAULT_CSS = """
    CraftGutter {
        width: 26;
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        border-subtitle-color: $error;
        overflow: hidden hidden;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def __init__(self, poem: str = "", **kwargs):
        super().__init__("", **kwargs)
        self.craft: PoemCraft | None = None
        self.quoted: frozenset[int] = frozenset()
        if poem:
            self.show_poem(poem)

    def show_poem(self, poem: str, quoted: Iterable[str] = ()) -> None:
        """Redraws the gutter for `poem`; the lines a passage in `quoted` covers are marked."""
        craft = poem_craft(poem)
        marked = quoted_rows(poem, quoted)
        if self.craft is not None and craft == self.craft and marked == self.quoted:
            return  # a key that changed nothing (a cursor move) costs no repaint
        self.craft, self.quoted = craft, marked
        body = Text("\n").join(_row(row, i in marked) for i, row in enumerate(craft.rows))
        self.update(body)
        self.border_title = _counts(craft)
        unknown = craft.unknown
        self.border_subtitle = f"~ not in CMUdict: {', '.join(unknown)}" if unknown else ""


def _counts(craft: PoemCraft) -> str:
    def n(count: int, noun: str) -> str:
        return f"{count} {noun}{'' if count == 1 else 's'}"
    return f"{n(craft.lines, 'line')} · {n(craft.words, 'word')} · {n(craft.stanzas, 'stanza')}"
