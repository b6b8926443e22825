"""The help screen: every key, as currently mapped, grouped by the screen it works on."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from poetry_workshop.tui.keys import ALL_KEYS, KEY_GROUPS


def shown_key(keys: str) -> str:
    """A binding's keys as a person reads them: "f1,question_mark" → "F1 or ?"."""
    names = {"question_mark": "?", "escape": "Esc", "delete": "Del"}
    out = []
    for key in keys.split(","):
        key = names.get(key, key)
        if key.startswith("ctrl+"):
            key = "Ctrl+" + key[5:].upper() if len(key) == 6 else "Ctrl+" + key[5:]
        elif len(key) <= 3 and key[0] == "f" and key[1:].isdigit():
            key = key.upper()
        out.append(key)
    return " or ".join(out)


def help_text(keymap: dict[str, str]) -> Group:
    """The whole help, a table per screen; built from Text, so nothing in it is read as
    markup (`[keys]` stays as written)."""
    parts: list = [Text("Poetry Workshop — keys", style="bold")]
    for heading, actions in KEY_GROUPS:
        parts.append(Text(f"\n{heading}", style="bold underline"))
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column(width=12, no_wrap=True, style="bold")
        table.add_column(ratio=1)
        for action in actions:
            table.add_row(Text(shown_key(keymap.get(action.id, action.key))), Text(action.help))
        parts.append(table)
    parts.append(Text("\nEvery workshop key is also in the command palette (Ctrl+P).\n"
                      "Remap keys in config/app.toml under [keys], by id, for example revise = \"ctrl+r\". The ids: "
                      + ", ".join(a.id for a in ALL_KEYS) + ".\n\nEsc closes this screen."))
    return Group(*parts)


def plain_help(keymap: dict[str, str], width: int = 100) -> str:
    """The help as plain text (for tests and anyone reading it outside the app)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(help_text(keymap))
    return console.export_text()


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def __init__(self, keymap: dict[str, str]):
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(help_text(self.keymap), id="help-text")

    def action_dismiss(self) -> None:
        self.app.pop_screen()
