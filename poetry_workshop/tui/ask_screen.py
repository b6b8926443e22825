"""Small dialogs: one line of input (a craft question, a session's new title) and yes or no."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class AskScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str, placeholder: str = "", value: str = "", empty: str = "Write the question first"):
        super().__init__()
        self.prompt, self.placeholder, self.value, self.empty = prompt, placeholder, value, empty

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box"):
            yield Label(self.prompt)
            yield Input(self.value, placeholder=self.placeholder, id="ask-input")
            yield Static("", id="ask-error", classes="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#ask-error", Static).update(f"{self.empty} (Esc cancels).")
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class YesNoScreen(ModalScreen[bool]):
    """A question answered with y or n (Esc is no): before a step that is easy to regret."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="yes-no-box"):
            yield Static(self.question, id="yes-no-text", markup=False)
            yield Static("y: yes · n or Esc: no", id="yes-no-keys")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
