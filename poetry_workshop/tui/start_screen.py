"""The start screen: a new request for the Poet, a poem to workshop, or a saved session."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from poetry_workshop.workshop.store import SessionRecord


def session_label(r: SessionRecord) -> str:
    status = "accepted" if r.status == "accepted" else "open"
    return f"{r.title[:40]:<40}  {r.updated_at[:10]}  {r.draft_count:>2} draft(s)  {status}"


class StartScreen(Screen):
    BINDINGS = [Binding("ctrl+s", "workshop_poem", "Workshop my poem", id="start.workshop_poem")]

    def __init__(self, sessions: list[SessionRecord], notice: str | None, max_chars: int, hint: str | None = None):
        super().__init__()
        self.sessions = sessions
        self.notice = notice
        self.max_chars = max_chars
        self.hint = hint

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="start"):
            yield Static(self._title(), id="start-title")
            yield Static(self.hint or "", id="starter-hint", classes="" if self.hint else "hidden")
            resumable = next((s for s in self.sessions if s.status == "open"), None)
            if resumable is not None:
                yield Static(f"Resume where you stopped: [b]{resumable.title}[/b] — select it below",
                             id="resume-banner")
            yield Label("Write with the Poet — what should the poem be? (Enter)")
            yield Input(placeholder="a poem about…", id="request")
            yield Static("", id="request-error", classes="error")
            yield Label("Workshop my poem — paste it here, then Ctrl+S")
            yield TextArea("", id="paste", soft_wrap=True)
            yield Static("", id="paste-error", classes="error")
            yield Label(f"Saved sessions ({len(self.sessions)})")
            options = [Option(session_label(s), id=s.id) for s in self.sessions]
            yield OptionList(*options, id="sessions")
        yield Footer()

    def _title(self) -> str:
        return "[b]Poetry Workshop[/b]" + (f" · {self.notice}" if self.notice else "")

    def on_mount(self) -> None:
        self.query_one("#request", Input).focus()

    def set_hint(self, notice: str | None, hint: str | None) -> None:
        """The models changed (the Models screen): the title and the starter hint follow."""
        self.notice, self.hint = notice, hint
        self.query_one("#start-title", Static).update(self._title())
        shown = self.query_one("#starter-hint", Static)
        shown.update(hint or "")
        shown.set_class(not hint, "hidden")

    def _accept(self, text: str, error_id: str, what: str) -> str | None:
        error = self.query_one(error_id, Static)
        if not text.strip():
            error.update(f"Write the {what} first.")
            return None
        error.update("")
        if len(text) > self.max_chars:
            self.notify(f"The {what} was {len(text):,} characters; kept the first {self.max_chars:,}.",
                        title="Truncated", severity="warning")
            text = text[: self.max_chars]
        return text

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = self._accept(event.value, "#request-error", "request")
        if text is not None:
            self.app.start_session("write", text)

    def action_workshop_poem(self) -> None:
        text = self._accept(self.query_one("#paste", TextArea).text, "#paste-error", "poem")
        if text is not None:
            self.app.start_session("workshop", text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.app.resume_session(event.option.id)
