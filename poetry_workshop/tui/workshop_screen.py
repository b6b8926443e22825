"""The workshop screen: poem (with its craft gutter), critique and revision-history panes,
driven from the keyboard; undo of the steps taken in this visit.

Model work runs in one exclusive thread worker at a time; the worker only calls the
session, whose events come back as messages, so the UI thread never waits on llama.cpp.
Failures arrive through `on_worker_state_changed` as titled notifications; the session is
left as it was (the session core rolls a failed step back).
"""

from __future__ import annotations

import asyncio
import difflib
import re
import threading
import time
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Tree
from textual.worker import Worker, WorkerState

from poetry_workshop import locations
from poetry_workshop.errors import WorkshopError
from poetry_workshop.files import write_atomic
from poetry_workshop.tui.ask_screen import AskScreen, YesNoScreen
from poetry_workshop.tui.clipboard import copy_text
from poetry_workshop.tui.craft_gutter import CraftGutter
from poetry_workshop.tui.keys import WORKSHOP_KEYS, bindings, key_label
from poetry_workshop.tui.widgets import DraftHistory, HistoryTree, PoemArea, StatusBar
from poetry_workshop.verse.quotes import locate_quotes, quoted_passages
from poetry_workshop.workshop.session import (
    Checkpoint,
    Notice,
    StepFinished,
    StepStarted,
    TextChunk,
    WorkshopSession,
    validate_text,
)
from poetry_workshop.workshop.store import Node
from poetry_workshop.workshop.transcript import cut_at, cut_note, to_markdown

MODEL_GROUP = "model"
POEM_REFRESH_S = 0.2  # the streaming poem redraws five times a second
CHUNK_BATCH_S = 0.05  # streamed text reaches the UI at most twenty times a second
SPINNER_S = 0.1  # the "reading the prompt" spinner turns ten times a second
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
GUTTER_STREAM_S = 1.0  # the gutter follows a streaming draft once a second (every key while editing)
_TITLES = {"brief": "Brief", "critique": "Critique", "answer": "Answer", "request": "Request", "question": "Question"}


class SessionEvent(Message):
    """A session event (step started, text chunk, step finished, notice) from the worker.

    `tokens` counts the chunks a batched TextChunk stands for."""

    def __init__(self, event, tokens: int = 1) -> None:
        super().__init__()
        self.event = event
        self.tokens = tokens


class EventBridge:
    """Carries session events from the worker thread to the screen, batching text chunks.

    One message per token wakes the UI loop for every token; batching to at most one
    message per CHUNK_BATCH_S keeps keys responsive however fast the model is. Runs on the
    worker thread only."""

    def __init__(self, post):
        self._post = post
        self._texts: list[str] = []
        self._role = ""
        self._last = 0.0

    def __call__(self, event) -> None:
        if isinstance(event, TextChunk):
            self._texts.append(event.text)
            self._role = event.role
            now = time.perf_counter()
            if now - self._last >= CHUNK_BATCH_S:
                self.flush(now)
            return
        self.flush(time.perf_counter())
        self._post(SessionEvent(event))

    def flush(self, now: float) -> None:
        if self._texts:
            self._post(SessionEvent(TextChunk(self._role, "".join(self._texts)), tokens=len(self._texts)))
            self._texts = []
        self._last = now


class WorkshopScreen(Screen):
    BINDINGS = bindings(WORKSHOP_KEYS)

    def __init__(self, studio, session: WorkshopSession):
        super().__init__()
        self.studio = studio
        self.session = session
        self.session.on_event = EventBridge(self.post_message)
        self.cancel: threading.Event | None = None
        self.editing = False
        self._stream = None
        self._poem_pending = ""
        self._poem_flush_scheduled = False
        self._chunks = 0
        self._started = 0.0
        self._last_speed = 0.0
        self._role = ""
        self._reading: str | None = None  # the activity while the model reads its prompt
        self._spinner = None
        self._undo: list[Checkpoint] = []
        self._quoted: list[str] = []
        self._gutter_drawn = 0.0
        self.gutter_on = studio.settings.app.app.gutter

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            with Vertical(id="left", classes="with-gutter" if self.gutter_on else ""):
                with Horizontal(id="poem-row"):
                    yield PoemArea(id="poem")
                    yield CraftGutter(id="gutter", classes="" if self.gutter_on else "hidden")
                yield HistoryTree(id="history")
            with VerticalScroll(id="critique-scroll"):
                yield Markdown("", id="critique")
        yield StatusBar(self._models_text(), id="status")
        yield Footer(compact=True, show_command_palette=False)

    def _models_text(self) -> str:
        # Short enough for an 80-column status bar next to activity, speed and context.
        parts = []
        for choice in self.studio.choices.values():
            name = "starter model — train your own" if choice.is_starter else choice.path.stem
            parts.append((choice.role.capitalize(), name))
        if parts[0][1] == parts[1][1]:
            return parts[0][1]
        return " · ".join(f"{role}: {name}" for role, name in parts)

    def models_changed(self) -> None:
        """Another model serves a role now (the Models or build screen switched it)."""
        status = self.query_one(StatusBar)
        status.models = self._models_text()
        status.refresh_text()
        self.query_one("#critique-scroll").border_subtitle = self.app.critique_hint()

    def on_mount(self) -> None:
        self.query_one("#history").border_title = "Revision history"
        self.query_one("#history").border_subtitle = f"{key_label(self.app.keymap, 'branch')} branches from the selected"
        self.query_one("#critique-scroll").border_title = "Critique"
        self.query_one("#critique-scroll").border_subtitle = self.app.critique_hint()
        self.refresh_from_session()
        self.query_one("#history", HistoryTree).focus()
        if self.session.next_action() in ("brief", "draft", "critique"):
            self._run("Workshop: first draft and critique", self._continue, undoable=False)

    # ------------------------------------------------------------------ state → panes
    @property
    def busy(self) -> bool:
        return any(w.group == MODEL_GROUP and w.is_running for w in self.workers)

    def _shown_reply(self, path: list[Node]) -> Node | None:
        """What the critique pane shows: the newest reply since the current draft; on a
        draft branched back to, its newest critique; before any draft, the brief."""
        for node in reversed(path):
            if node.kind in ("critique", "answer"):
                return node
            if node.kind == "draft":
                critiques = DraftHistory(self.session.tree).critiques(node.id)
                if critiques:
                    return critiques[-1]
                break
        return next((n for n in reversed(path) if n.kind in ("brief", "request")), None)

    def refresh_from_session(self) -> None:
        self.session.refresh()
        path = self.session.path
        draft = self.session.current_draft
        reply = self._shown_reply(path)
        self._show(draft, reply)
        self.query_one(HistoryTree).rebuild(self.session.tree, self.session.record.head_id)
        self.refresh_bindings()

    def _show(self, draft: Node | None, reply: Node | None, extra: str | None = None) -> None:
        """`draft` in the poem pane; `reply` (or, for a selected draft, `extra`: its
        critiques and what changed) in the critique pane."""
        poem = self.query_one(PoemArea)
        critique = self.query_one("#critique", Markdown)
        spans = []
        if draft is not None and reply is not None and reply.kind == "critique":
            spans, _missing = locate_quotes(draft.text, reply.text)
        poem.show(draft.text if draft else "", spans)
        self._quoted = quoted_passages(reply.text) if reply is not None and reply.kind == "critique" else []
        if extra is not None and draft is not None:
            firsts = DraftHistory(self.session.tree).critiques(draft.id)
            self._quoted = quoted_passages(firsts[-1].text) if firsts else []
        self._update_gutter()
        number = self._draft_number(draft) if draft else 0
        author = "you" if draft is not None and draft.author == "person" else "Poet"
        # Short: the pane is 36 columns wide at 80×24.
        title = f"Draft {number} · {author}" if draft else "Poem"
        if self.session.record.status == "accepted" and draft is not None and draft == self.session.current_draft:
            title += " · accepted"
        if draft is not None and draft.meta.get("stopped"):
            title += " · stopped"
        poem.border_title = title
        poem.border_subtitle = (f"cut at {cut_at(draft)} tokens · r again" if draft is not None
                                and cut_at(draft) is not None else "")
        scroll = self.query_one("#critique-scroll", VerticalScroll)
        scroll.scroll_home(animate=False)  # a finished text reads from its top
        if extra is not None:
            scroll.border_title = f"Draft {number}: critiques"
            critique.update(extra)
        elif reply is not None:
            label = _TITLES.get(reply.kind, reply.kind.capitalize())
            if reply.kind == "critique" and reply.meta.get("action") == "follow-up":
                label = "Follow-up"
            scroll.border_title = label + (" — stopped" if reply.meta.get("stopped") else "")
            critique.update(self._reply_markdown(reply))
        else:
            scroll.border_title = "Critique"
            critique.update("")

    def _reply_markdown(self, reply: Node) -> str:
        """A reply as the pane shows it: an answer under its question, a cut marked."""
        text = reply.text
        if reply.kind == "answer" and reply.parent_id in self.session.tree.nodes:
            question = self.session.tree.nodes[reply.parent_id]
            if question.kind == "question":
                text = f"**Question:** {question.text}\n\n**Answer:** {reply.text}"
        note = cut_note(reply)
        return text + (f"\n\n_{note}_" if note else "")

    def _update_gutter(self) -> None:
        if self.gutter_on:
            self.query_one(CraftGutter).show_poem(self.query_one(PoemArea).text, self._quoted)

    def on_text_area_changed(self, event) -> None:
        if event.text_area.id != "poem":
            return
        if not self.busy:
            self._update_gutter()  # live, key by key, while the person edits
            return
        # While the Poet streams, once a second is enough and keeps keys quick.
        now = time.perf_counter()
        if now - self._gutter_drawn >= GUTTER_STREAM_S:
            self._gutter_drawn = now
            self._update_gutter()

    def _draft_number(self, draft: Node) -> int:
        ids = [n.id for n in self.session.tree.drafts()]
        return ids.index(draft.id) + 1 if draft.id in ids else 0

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if self.busy or self.editing or event.node.data is None:
            return
        tree = self.session.tree
        node = tree.nodes.get(event.node.data)
        if node is None:
            return
        if node.kind == "draft":
            self._show(node, None, self._draft_story(node))
        elif node.kind == "question":
            answer = next((c for c in tree.children(node.id) if c.kind == "answer"), None)
            if answer is not None:
                self._show(tree.parent_draft(node.id), answer)
            else:
                self._show(tree.parent_draft(node.id), None, f"**Question:** {node.text}\n\n_No answer yet._")
        else:
            self._show(tree.parent_draft(node.id), node)

    def _draft_story(self, draft: Node) -> str:
        """A selected draft's critiques (each under its heading) and its changes from the draft before."""
        tree = self.session.tree
        parts = []
        for note in DraftHistory(tree).about(draft.id):
            if note.kind != "critique":
                continue
            heading = "Follow-up" if note.meta.get("action") == "follow-up" else "Critique"
            if note.meta.get("stopped"):
                heading += " (stopped)"
            parts.append(f"### {heading}\n\n{self._reply_markdown(note)}")
        if not parts:
            parts.append("_No critique of this draft yet: c asks for one._")
        parent = tree.parent_draft(draft.id)
        if parent is not None:
            if parent.text == draft.text:
                parts.append("### Changes from the previous draft\n\n_No changes._")
            else:
                lines = difflib.unified_diff(parent.text.splitlines(), draft.text.splitlines(),
                                             "previous draft", "this draft", lineterm="")
                parts.append("### Changes from the previous draft\n\n```diff\n" + "\n".join(lines) + "\n```")
        return "\n\n".join(parts)

    # ------------------------------------------------------------------ workers
    def _run(self, description: str, body, undoable: bool = True) -> None:
        if self.busy:
            self.notify("The models are busy. Esc stops the current generation.", title="Busy", severity="warning")
            return
        if self.editing:
            self.notify("Save (Ctrl+S) or cancel (Esc) your edit first.", title="Editing", severity="warning")
            return
        if undoable:
            self._undo.append(self.session.checkpoint(description))
        cancel = self.cancel = threading.Event()
        self.run_worker(lambda: body(cancel), thread=True, exclusive=True, group=MODEL_GROUP,
                        exit_on_error=False, description=description, name=description)

    def _continue(self, cancel: threading.Event) -> None:
        while self.session.next_action() in ("brief", "draft", "critique") and not cancel.is_set():
            node = self.session.step(cancel=cancel)
            if node is None or node.meta.get("stopped"):
                return

    async def on_session_event(self, message: SessionEvent) -> None:
        event = message.event
        status = self.query_one(StatusBar)
        if isinstance(event, StepStarted):
            self._role, self._chunks, self._started = event.role, 0, time.perf_counter()
            self._reading = f"{event.role.capitalize()}: {event.action}…"
            self._turn_spinner()
            if self._spinner is None:
                self._spinner = self.set_interval(SPINNER_S, self._turn_spinner)
            if event.role == "educator":
                critique = self.query_one("#critique", Markdown)
                await critique.update("")
                self.query_one("#critique-scroll").border_title = f"{event.action.capitalize()} — writing"
                self._stream = Markdown.get_stream(critique)
                # Let the stream's task start: cancelling a task that never ran would raise
                # CancelledError into whoever stops it (a fast failure right after this).
                await asyncio.sleep(0)
            else:
                self._poem_pending = ""
                poem = self.query_one(PoemArea)
                poem.show("")
                poem.border_title = f"Poet writing ({event.action})…"
        elif isinstance(event, TextChunk):
            if self._reading is not None:  # the first text: the prompt is read
                status.set_activity(self._reading)
                self._stop_spinner()
            self._chunks += message.tokens
            if event.role == "educator" and self._stream is not None:
                await self._stream.write(event.text)
                # Follow the text as it grows (a no-op while it still fits the pane).
                self.query_one("#critique-scroll", VerticalScroll).scroll_end(animate=False)
            elif event.role == "poet":
                # Batched: redrawing the poem per token would starve key handling.
                self._poem_pending += event.text
                if not self._poem_flush_scheduled:
                    self._poem_flush_scheduled = True
                    self.set_timer(POEM_REFRESH_S, self._flush_poem)
            now = time.perf_counter()
            if now - self._last_speed > 0.5:  # the status bar need not redraw per token
                self._last_speed = now
                rate = self._chunks / max(now - self._started, 1e-6)
                status.set_activity(status.activity, f"{rate:.0f} tok/s")
        elif isinstance(event, StepFinished):
            self._stop_spinner()
            await self._stop_stream()
            context = None
            if event.stats is not None:
                role = event.node.author
                n_ctx = self.studio.engine.role(role).backend.n_ctx
                used = event.stats.prompt_tokens + event.stats.generated_tokens
                context = f"{role} context {used / n_ctx:.0%}"
                speed = f"{event.stats.tokens_per_second:.0f} tok/s"
                if event.stats.lookup_proposed:  # prompt lookup checked copied tokens in batches
                    speed += f" │ lookup {event.stats.lookup_acceptance:.0%} of {event.stats.lookup_proposed}"
                if event.stats.thinking_tokens:  # the reasoning itself is never shown: one collapsed line
                    speed += f" │ thinking… ({event.stats.thinking_tokens} tokens)"
                status.set_activity(status.activity, speed, context)
            self.refresh_from_session()
            if (note := cut_note(event.node)) is not None and event.node.kind == "draft":
                self.notify(f"Draft {self._draft_number(event.node)} {note}", title="Cut", severity="warning")
        elif isinstance(event, Notice):
            title = "Stopped" if event.text.startswith("stopped") else "Context"
            self.notify(event.text, title=title, severity="warning")

    def _turn_spinner(self) -> None:
        """Signs of life while the model reads its prompt (no text comes until it has)."""
        if self._reading is None:
            return
        waited = time.perf_counter() - self._started
        frame = SPINNER[int(waited / SPINNER_S) % len(SPINNER)]
        self.query_one(StatusBar).set_activity(f"{self._reading} {frame} reading the prompt {waited:.0f} s")

    def _stop_spinner(self) -> None:
        self._reading = None
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def _flush_poem(self) -> None:
        self._poem_flush_scheduled = False
        if self._poem_pending and self._role == "poet":
            poem = self.query_one(PoemArea)
            poem.insert(self._poem_pending, poem.document.end)
            self._poem_pending = ""

    async def _stop_stream(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != MODEL_GROUP:
            return
        status = self.query_one(StatusBar)
        if event.state == WorkerState.RUNNING:
            self.refresh_bindings()  # Esc shows while a model works
        if event.state in (WorkerState.ERROR, WorkerState.SUCCESS, WorkerState.CANCELLED):
            self._stop_spinner()
            self._drop_empty_checkpoint()
        if event.state == WorkerState.ERROR:
            await self._stop_stream()
            error = event.worker.error
            message = str(error) if isinstance(error, WorkshopError) else f"{type(error).__name__}: {error}"
            self.notify(message, title="Generation failed", severity="error", timeout=10)
            status.set_activity("idle — the session is as it was")
            self.refresh_from_session()
        elif event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED):
            await self._stop_stream()
            stopped = self.cancel is not None and self.cancel.is_set()
            status.set_activity("stopped" if stopped else "idle", status.speed)
            self.refresh_from_session()

    # ------------------------------------------------------------------ footer
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that do nothing now stay off the footer, so at 80 columns it keeps the rest."""
        if action == "stop":
            return self.busy or self.editing
        if action == "save_edit":
            return self.editing
        if action == "undo":
            return bool(self._undo) and not self.busy
        return True

    def _drop_empty_checkpoint(self) -> None:
        """A step that was stopped before it wrote anything leaves nothing to undo."""
        if self._undo:
            self.session.refresh()
            last = self._undo[-1]
            if (last.head_id == self.session.record.head_id and last.status == self.session.record.status
                    and last.node_ids == frozenset(self.session.tree.nodes)):
                self._undo.pop()
        self.refresh_bindings()

    # ------------------------------------------------------------------ actions
    def action_new(self) -> None:
        if self.busy:
            self.notify("Stop the generation (Esc) before starting something new.", title="Busy", severity="warning")
            return
        self.app.show_start()

    def action_revise(self) -> None:
        critique = self.session.latest_critique
        if critique is None:
            self.notify("There is no critique to revise from yet: press c for one.", title="Revise")
            return
        if self.session.record.status == "accepted":
            self.notify("This poem is accepted. Branch (b) from a draft to keep working.", title="Revise")
            return
        if self.busy:
            self.notify("The models are busy. Esc stops the current generation.", title="Busy", severity="warning")
            return
        if critique.meta.get("stopped") or cut_at(critique) is not None:
            how = "stopped" if critique.meta.get("stopped") else "cut at its token limit"
            self.notify(f"Revising from a critique that was {how}: the Poet sees only its partial text. "
                        "c asks for a whole one.", title="Partial critique", severity="warning")

        def body(cancel):
            node = self.session.revise(cancel)
            if node is not None and not node.meta.get("stopped") and not cancel.is_set():
                self.session.critique(cancel)

        self._run("revision", body)

    def action_critique(self) -> None:
        if self.session.current_draft is None:
            self.notify("There is no draft to critique yet.", title="Critique")
            return
        self._run("critique", lambda cancel: self.session.critique_again(cancel))

    def action_auto(self) -> None:
        rounds = self.studio.settings.app.app.auto_rounds
        if self.session.record.status == "accepted":
            self.notify("This poem is accepted. Branch (b) from a draft to keep working.", title="Auto")
            return
        self.notify(f"Running {rounds} revise/critique rounds. Esc stops.", title="Auto")
        self._run(f"{rounds} auto rounds", lambda cancel: self.session.run_rounds(rounds, cancel))

    def action_ask(self) -> None:
        if self.busy:
            self.notify("The models are busy. Esc stops the current generation.", title="Busy", severity="warning")
            return

        def asked(question: str | None) -> None:
            if question:
                self._run("question", lambda cancel: self.session.ask(question, cancel))

        self.app.push_screen(AskScreen("Ask the Educator a craft question (Enter asks, Esc cancels)",
                                       "what makes a line break work?"), asked)

    def action_edit(self) -> None:
        if self.busy:
            self.notify("Wait for the generation to finish, or stop it (Esc).", title="Busy", severity="warning")
            return
        if self.session.current_draft is None:
            self.notify("There is no draft to edit yet.", title="Edit")
            return
        poem = self.query_one(PoemArea)
        poem.show(self.session.current_draft.text)
        poem.read_only = False
        poem.border_title = "Editing · Ctrl+S saves · Esc cancels"
        self.editing = True
        poem.focus()
        self.refresh_bindings()

    def action_save_edit(self) -> None:
        if not self.editing:
            return
        poem = self.query_one(PoemArea)
        try:
            validate_text(poem.text, "poem")
        except WorkshopError as exc:
            self.notify(str(exc), title="Not saved", severity="warning")
            return
        if poem.text.strip("\n") == self.session.current_draft.text:
            self.notify("No changes to save.", title="Edit")
        else:
            self._undo.append(self.session.checkpoint("edit"))
            node = self.session.edit(poem.text)
            self.notify(f"Saved as draft {self._draft_number(node)}. Press c for a critique.", title="Saved")
        self._end_edit()

    def _end_edit(self) -> None:
        poem = self.query_one(PoemArea)
        poem.read_only = True
        self.editing = False
        self.refresh_from_session()
        self.query_one(HistoryTree).focus()

    def action_stop(self) -> None:
        if self.editing:
            self._end_edit()
            self.notify("Edit cancelled; the draft is unchanged.", title="Edit")
        elif self.busy and self.cancel is not None:
            self.cancel.set()
            self.query_one(StatusBar).set_activity("stopping…")

    async def stop_for_quit(self, within_s: float) -> bool:
        """Cancel a generation at its next token and wait (at most `within_s`) for the partial
        text to be stored, marked stopped. True when nothing is left running."""
        if not self.busy or self.cancel is None:
            return True
        self.cancel.set()
        if self._reading is not None:
            return False  # still reading its prompt: no text to keep, and no token to stop at soon
        workers = [w for w in self.workers if w.group == MODEL_GROUP and w.is_running]
        try:
            await asyncio.wait_for(asyncio.gather(*(w.wait() for w in workers), return_exceptions=True), within_s)
        except TimeoutError:
            return False
        return True

    def action_branch(self) -> None:
        if self.busy:
            self.notify("Stop the generation (Esc) before branching.", title="Busy", severity="warning")
            return
        node = self.query_one(HistoryTree).cursor_node
        if node is None or node.data is None:
            self.notify("Select an entry in the revision history first.", title="Branch")
            return
        self._undo.append(self.session.checkpoint("branch"))
        self.session.branch(node.data)
        if self.session.record.status == "accepted":
            self.session.store.set_status(self.session.record.id, "open")
        self.refresh_from_session()
        kind = self.session.tree.nodes[node.data].kind
        hint = {
            "draft": "press c for a critique of this draft, or e to edit it",
            "critique": "press r for a revision from this critique",
        }.get(kind, "press c for a critique or r for a revision")
        self.notify(f"A new branch starts here: {hint}.", title="Branched")

    def action_accept(self) -> None:
        if self.busy:
            self.notify("Wait for the generation to finish, or stop it (Esc).", title="Busy", severity="warning")
            return
        draft = self.session.current_draft
        if draft is None:
            self.notify("There is no draft to accept yet.", title="Accept")
            return
        number = self._draft_number(draft)
        doubt = None
        if not draft.text.strip():
            doubt = f"Draft {number} is empty."
        elif draft.meta.get("stopped"):
            doubt = f"Draft {number} was stopped before the Poet finished it."
        elif cut_at(draft) is not None:
            doubt = f"Draft {number} was cut at {cut_at(draft)} tokens, maybe mid-line."
        if doubt is None:
            self._accept(draft)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._accept(draft)
            else:
                self.notify("Not accepted. r revises it, e lets you finish it yourself.", title="Accept")

        self.app.push_screen(YesNoScreen(f"{doubt} Accept it as the final poem anyway? (y/n)"), answered)

    def _accept(self, draft: Node) -> None:
        self._undo.append(self.session.checkpoint("accept"))
        self.session.accept()
        self.refresh_from_session()
        self.notify(f"Draft {self._draft_number(draft)} is the final poem. Export it with x.", title="Accepted")

    def action_undo(self) -> None:
        if self.busy or self.editing:
            self.notify("Finish or stop what is running first.", title="Undo", severity="warning")
            return
        while self._undo:
            step = self._undo.pop()
            try:
                gone = self.session.undo(step)
            except WorkshopError as exc:
                if str(exc).startswith("nothing to undo"):
                    continue
                self.notify(str(exc), title="Cannot undo", severity="warning")
                return
            self.refresh_from_session()
            what = f", {gone} entr{'y' if gone == 1 else 'ies'} removed" if gone else ""
            self.notify(f"Undid the {step.label}{what}.", title="Undone")
            return
        self.notify("Nothing to undo in this visit to the session.", title="Undo")
        self.refresh_bindings()

    def action_gutter(self) -> None:
        self.gutter_on = not self.gutter_on
        self.query_one(CraftGutter).set_class(not self.gutter_on, "hidden")
        self.query_one("#left").set_class(self.gutter_on, "with-gutter")
        self._update_gutter()

    # ------------------------------------------------------------------ export
    def export_folder(self) -> Path:
        """Where exports go: the configured folder, else one in the user data folder (never
        the folder the app was started in, unless configured so)."""
        configured = self.studio.settings.app.app.export_dir
        return Path(configured).expanduser() if configured else locations.user_dir() / "exports"

    def _export(self, suffix: str, text: str, what: str) -> None:
        record = self.session.record
        slug = "-".join(re.findall(r"[a-z0-9]+", record.title.lower())[:6]) or "session"
        target = self.export_folder() / f"{slug}-{record.id}{suffix}"
        try:
            write_atomic(target, text)
        except OSError as exc:
            self.notify(f"{target}: {exc.strerror}; set export_dir under [app] in config/app.toml",
                        title="Export failed", severity="error")
            return
        self.notify(str(target.resolve()), title=what, timeout=10)

    def action_export(self) -> None:
        self._export(".md", to_markdown(self.session.record, self.session.tree), "Exported")

    def action_export_poem(self) -> None:
        draft = self.session.current_draft
        if draft is None:
            self.notify("There is no poem to save yet.", title="Poem")
            return
        self._export(".txt", draft.text.rstrip("\n") + "\n", "Poem saved")

    def action_copy(self) -> None:
        draft = self.session.current_draft
        if draft is None:
            self.notify("There is no poem to copy yet.", title="Copy")
            return
        ok, how = copy_text(self.app, draft.text)
        self.notify(how, title="Copied" if ok else "No clipboard", severity="information" if ok else "warning")
