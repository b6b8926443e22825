"""The start screen: a new request for the Poet, a poem to workshop, or a saved session
(resumed, renamed or deleted)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from poetry_workshop.errors import WorkshopError
from poetry_workshop.tui.ask_screen import AskScreen, YesNoScreen
from poetry_workshop.tui.keys import START_KEYS, bindings
from poetry_workshop.workshop.store import SessionRecord


def _local_time(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp[:16]


def session_label(r: SessionRecord) -> Text:
    """Two rows: the title with its state; then the current draft's first line and when."""
    status = "accepted" if r.status == "accepted" else "open"
    label = Text(r.title[:48], style="bold")
    label.append(f"  {status} · {r.draft_count} draft{'' if r.draft_count == 1 else 's'}", style="dim")
    if r.headless:
        label.append(f"  [{r.origin}]", style="italic yellow")
    first = r.first_line or "no draft yet"
    label.append(f"\n  “{first[:44]}”" if r.first_line else f"\n  {first}", style="italic")
    label.append(f"  {_local_time(r.updated_at)}", style="dim")
    return label


def resumable(sessions: list[SessionRecord]) -> SessionRecord | None:
    """The session to offer first: the newest open one begun in the app (a batch or headless
    run is never offered; it is listed, tagged)."""
    return next((s for s in sessions if s.status == "open" and not s.headless), None)


class RequestInput(Input):
    """The one-line request field: a paste of several lines goes to the poem area instead
    of losing every line after the first."""

    class PoemPasted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def _on_paste(self, event: events.Paste) -> None:
        if "\n" in event.text.strip("\r\n"):
            event.stop()
            event.prevent_default()  # Input's own handler would keep the first line only
            self.post_message(self.PoemPasted(event.text))


class SessionList(OptionList):
    """Saved sessions; Enter resumes, r renames, d deletes (after asking)."""

    BINDINGS = bindings(START_KEYS[1:])

    def action_rename(self) -> None:
        self.screen.rename_selected()

    def action_delete(self) -> None:
        self.screen.delete_selected()


class StartScreen(Screen):
    BINDINGS = bindings(START_KEYS[:1])

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
            offered = resumable(self.sessions)
            if offered is not None:
                banner = Text("Resume where you stopped: ")
                banner.append(offered.title, style="bold")
                banner.append(" — select it below")
                yield Static(banner, id="resume-banner")
            yield Label("Write with the Poet — what should the poem be? (Enter)")
            yield RequestInput(placeholder="a poem about…", id="request")
            yield Static("", id="request-error", classes="error")
            yield Label("Workshop my poem — paste it here, then Ctrl+S")
            yield TextArea("", id="paste", soft_wrap=True)
            yield Static("", id="paste-error", classes="error")
            yield Label(self._sessions_heading(), id="sessions-heading")
            yield SessionList(*self._options(), id="sessions")
        yield Footer()

    def _sessions_heading(self) -> str:
        return f"Saved sessions ({len(self.sessions)}) — Enter resumes, r renames, d deletes"

    def _options(self) -> list[Option]:
        return [Option(session_label(s), id=s.id) for s in self.sessions]

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

    def on_request_input_poem_pasted(self, message: RequestInput.PoemPasted) -> None:
        paste = self.query_one("#paste", TextArea)
        lines = message.text.strip("\r\n").splitlines()
        if paste.text.strip():
            paste.insert("\n" + "\n".join(lines), paste.document.end)
        else:
            paste.load_text("\n".join(lines))
        paste.focus()
        paste.move_cursor(paste.document.end)
        self.notify(f"The paste had {len(lines)} lines, so it went to the poem area: Ctrl+S workshops it.",
                    title="Pasted as a poem")

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

    # ------------------------------------------------------------------ rename, delete
    def _selected(self) -> SessionRecord | None:
        options = self.query_one(SessionList)
        if options.highlighted is None:
            self.notify("Select a session in the list first.", title="Sessions")
            return None
        sid = options.get_option_at_index(options.highlighted).id
        return next((s for s in self.sessions if s.id == sid), None)

    def reload_sessions(self) -> None:
        self.sessions = self.app.studio.store.list_sessions()
        options = self.query_one(SessionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options(self._options())
        if self.sessions and highlighted is not None:
            options.highlighted = min(highlighted, len(self.sessions) - 1)
        self.query_one("#sessions-heading", Label).update(self._sessions_heading())
        if resumable(self.sessions) is None:
            for banner in self.query("#resume-banner"):
                banner.remove()

    def rename_selected(self) -> None:
        record = self._selected()
        if record is None:
            return

        def renamed(title: str | None) -> None:
            if not title:
                return
            try:
                self.app.studio.store.rename_session(record.id, title)
            except WorkshopError as exc:
                self.notify(str(exc), title="Not renamed", severity="warning")
                return
            self.reload_sessions()

        self.app.push_screen(AskScreen("A new title for the session (Enter saves, Esc cancels)", value=record.title,
                                       empty="Write the title first"), renamed)

    def delete_selected(self) -> None:
        record = self._selected()
        if record is None:
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            self.app.studio.store.delete_session(record.id)
            self.reload_sessions()
            self.notify(f"Deleted “{record.title}”.", title="Session deleted")

        self.app.push_screen(YesNoScreen(f"Delete the session “{record.title}” ({record.draft_count} drafts)? "
                                         "It cannot be undone. (y/n)"), answered)
