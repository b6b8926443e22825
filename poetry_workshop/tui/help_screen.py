"""The help screen: every key, as currently mapped, with what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from poetry_workshop.tui.keys import APP_KEYS, BUILD_KEYS, MODELS_KEYS, WORKSHOP_KEYS


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def __init__(self, keymap: dict[str, str]):
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        lines = ["[b]Poetry Workshop — keys[/b]", ""]
        for action in WORKSHOP_KEYS + APP_KEYS + BUILD_KEYS + MODELS_KEYS:
            key = self.keymap.get(action.id, action.key).replace("question_mark", "?")
            lines.append(f"[b]{key:<16}[/b] {action.help}")
        lines += ["", "Every key is also in the command palette (Ctrl+P).",
                  "Remap keys in config/app.toml under [keys], by id: " + ", ".join(a.id for a in WORKSHOP_KEYS + APP_KEYS + BUILD_KEYS + MODELS_KEYS) + ".",
                  "", "Esc closes this screen."]
        with VerticalScroll(id="help-body"):
            yield Static("\n".join(lines), id="help-text")

    def action_dismiss(self) -> None:
        self.app.pop_screen()
