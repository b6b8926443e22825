"""The help screen: every key, as currently mapped, grouped by the screen it works on."""

from __future__ import annotations

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


def help_text(keymap: dict[str, str]) -> Text:
    """The whole help as plain styled text: nothing in it is read as markup (`[keys]` stays)."""
    text = Text()
    text.append("Poetry Workshop — keys\n", style="bold")
    for heading, actions in KEY_GROUPS:
        text.append(f"\n{heading}\n", style="bold underline")
        for action in actions:
            text.append(f"  {shown_key(keymap.get(action.id, action.key)):<16}", style="bold")
            text.append(f" {action.help}\n")
    text.append("\nEvery workshop key is also in the command palette (Ctrl+P).\n")
    text.append("Remap keys in config/app.toml under [keys], by id, for example revise = \"ctrl+r\". The ids: ")
    text.append(", ".join(a.id for a in ALL_KEYS) + ".\n")
    text.append("\nEsc closes this screen.")
    return text


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
