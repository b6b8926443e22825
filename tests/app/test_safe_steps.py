"""Pilot tests of the workshop's safe stops, paste, help, footer, export, sessions, cuts,
waiting and undo, on scripted models; they wait on workers and events, never on sleeps."""

from __future__ import annotations

import threading

from textual.widgets import Footer

from poetry_workshop.tui.app import create_app
from poetry_workshop.tui.ask_screen import YesNoScreen
from poetry_workshop.tui.craft_gutter import CraftGutter
from poetry_workshop.tui.help_screen import HelpScreen, plain_help
from poetry_workshop.tui.keys import KEY_GROUPS
from poetry_workshop.tui.start_screen import StartScreen
from poetry_workshop.tui.widgets import PoemArea
from poetry_workshop.tui.workshop_screen import WorkshopScreen
from tests.app.test_app import notifications, start_request
from tests.fakes.scripted_backend import ScriptedBackend
from tests.support.studio import make_studio, scripted_educator, settle


class GatedPoet(ScriptedBackend):
    """A Poet whose revisions wait for the person's Esc: before any word (`early`) or after
    the first few words."""

    def __init__(self, early: bool):
        super().__init__(self._reply)
        self.early = early
        self.waiting = threading.Event()
        self.count = 0

    def _reply(self, messages) -> str:
        self.count += 1
        return "the water leaves\nthe mud keeps count" if self.count == 1 else "the heron stands\nin the grey water"

    def generate(self, messages, max_tokens, sampling, on_text=None, cancel=None, seed_offset=0):
        if self.count == 0:
            return super().generate(messages, max_tokens, sampling, on_text, cancel, seed_offset)
        if self.early:
            self.waiting.set()
            cancel.wait(10)  # the person stops before the first token
            return super().generate(messages, max_tokens, sampling, on_text, cancel, seed_offset)

        def slow(piece):
            on_text(piece)
            if not self.waiting.is_set():
                self.waiting.set()
                cancel.wait(10)
        return super().generate(messages, max_tokens, sampling, slow, cancel, seed_offset)


async def _stop_when_waiting(pilot, poet: GatedPoet) -> None:
    while not poet.waiting.is_set():
        await pilot.pause(0.01)
    await pilot.press("escape")
    await settle(pilot)


async def test_an_empty_stop_leaves_no_draft_and_the_current_draft_stays(tmp_path):
    poet = GatedPoet(early=True)
    app = create_app(make_studio(tmp_path, poet=poet))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        before = screen.session.current_draft
        await pilot.press("r")
        await _stop_when_waiting(pilot, poet)
        drafts = screen.session.tree.drafts()
        assert len(drafts) == 1 and screen.session.current_draft == before
        assert all(d.text.strip() for d in drafts)
        assert screen.query_one(PoemArea).text == before.text  # the pane shows the draft again
        assert any(title == "Stopped" and "nothing was kept" in text for title, text in notifications(app))
        await pilot.press("a")  # a whole draft is accepted without a question
        await pilot.pause()
        assert screen.session.record.status == "accepted"


async def test_accepting_a_stopped_draft_asks_first(tmp_path):
    poet = GatedPoet(early=False)
    app = create_app(make_studio(tmp_path, poet=poet))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("r")
        await _stop_when_waiting(pilot, poet)
        draft = screen.session.current_draft
        assert draft.meta["stopped"] and draft.text == "the"
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, YesNoScreen)
        assert "stopped before the Poet finished" in str(app.screen.query_one("#yes-no-text").render())
        await pilot.press("n")
        await pilot.pause()
        assert screen.session.record.status == "open"
        await pilot.press("a", "y")
        await pilot.pause()
        assert screen.session.record.status == "accepted"


async def test_revising_from_a_stopped_critique_says_so(tmp_path):
    educator = scripted_educator()
    original = educator.generate
    waiting = threading.Event()

    def slow_critique(messages, max_tokens, sampling, on_text=None, cancel=None, seed_offset=0):
        def slow(piece):
            on_text(piece)
            if messages[-1]["content"].startswith("Workshop this draft") and not waiting.is_set():
                waiting.set()
                cancel.wait(10)
        return original(messages, max_tokens, sampling, slow, cancel, seed_offset)

    educator.generate = slow_critique
    app = create_app(make_studio(tmp_path, educator=educator))
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#request").value = "fog"
        await pilot.press("enter")
        while not waiting.is_set():
            await pilot.pause(0.01)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert any(title == "Partial critique" and "stopped" in text for title, text in notifications(app))


async def test_a_multi_line_paste_into_the_request_field_keeps_every_line(studio):
    from textual import events

    poem = "whose woods these are\nI think I know\n\nhis house is in\nthe village though"
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        request = app.screen.query_one("#request")
        assert request.has_focus
        request.post_message(events.Paste(poem))
        await pilot.pause()
        assert request.value == ""
        paste = app.screen.query_one("#paste")
        assert paste.text == poem and paste.has_focus
        assert any(title == "Pasted as a poem" for title, _ in notifications(app))
        request.post_message(events.Paste("one line only"))  # a one-line paste stays a request
        await pilot.pause()
        assert request.value == "one line only"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, WorkshopScreen)
        assert app.screen.session.path[0].text == poem


async def test_help_is_grouped_by_screen_and_shows_the_keys_table_name(studio):
    app = create_app(studio)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_request(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = plain_help(app.keymap)
        assert "under [keys], by id" in shown
        for heading, _ in KEY_GROUPS:
            assert heading in shown
        # In each group a key means one thing.
        for heading, actions in KEY_GROUPS:
            keys = [k for a in actions for k in app.keymap.get(a.id, a.key).split(",")]
            assert len(keys) == len(set(keys)), heading
    assert "Ctrl+Q" in shown and "F1 or ?" in shown


async def test_the_footer_keeps_export_copy_auto_and_quit_at_80_columns(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        footer = screen.query_one(Footer)
        await pilot.pause()
        visible = {key.key for key in footer.query("FooterKey") if key.region.right <= 80 and key.region.width}
        for key in ("x", "y", "o", "ctrl+q"):
            assert key in visible, (key, sorted(visible))


async def test_export_goes_to_the_user_data_folder_by_default_and_the_poem_alone_as_txt(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("POETRY_WORKSHOP_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    studio = make_studio(tmp_path)
    studio.settings.app.app.export_dir = ""
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("x", "t")
        await pilot.pause()
        folder = screen.export_folder()
        assert folder.is_relative_to(home) and not list(tmp_path.glob("*.md"))
        (md,) = folder.glob("*.md")
        (txt,) = folder.glob("*.txt")
        assert txt.read_text(encoding="utf-8") == "the water leaves\nthe mud keeps count\n"
        shown = notifications(app)
        assert ("Exported", str(md.resolve())) in shown and ("Poem saved", str(txt.resolve())) in shown


async def test_a_cut_is_marked_in_the_pane_and_the_export(tmp_path):
    studio = make_studio(tmp_path)
    studio.settings.inference.max_tokens.critique = 5
    app = create_app(studio)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_request(app, pilot)
        source = screen.query_one("#critique").source
        assert "(cut at 5 tokens: raise `critique` under [inference_config.max_tokens]" in source
        await pilot.press("x")
        await pilot.pause()
        (md,) = (tmp_path / "exports").glob("*.md")
        text = md.read_text(encoding="utf-8")
        assert "Critique of draft 1 (Educator) — cut at 5 tokens" in text and "(cut at 5 tokens:" in text


async def test_a_spinner_shows_while_the_model_reads_its_prompt(tmp_path):
    educator = scripted_educator()
    original = educator.generate
    reading, go_on = threading.Event(), threading.Event()

    def slow_prompt(messages, max_tokens, sampling, on_text=None, cancel=None, seed_offset=0):
        if messages[-1]["content"].startswith("Workshop this draft"):
            reading.set()
            go_on.wait(10)  # the prompt is being read: no token yet
        return original(messages, max_tokens, sampling, on_text, cancel, seed_offset)

    educator.generate = slow_prompt
    app = create_app(make_studio(tmp_path, educator=educator))
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#request").value = "fog"
        await pilot.press("enter")
        while not reading.is_set():
            await pilot.pause(0.01)
        await pilot.pause(0.3)
        status = str(app.screen.query_one("#status").render())
        go_on.set()
        await settle(pilot)
        assert "Educator: critique…" in status and "reading the prompt" in status
        assert "reading the prompt" not in str(app.screen.query_one("#status").render())


async def test_undo_takes_back_an_accept_an_edit_and_a_revision(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        first = screen.session.current_draft
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("e")
        poem = screen.query_one(PoemArea)
        poem.move_cursor(poem.document.end)
        await pilot.press("enter", *"salt", "ctrl+s")
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        assert screen.session.record.status == "accepted" and len(screen.session.tree.drafts()) == 3
        await pilot.press("u")
        await pilot.pause()
        assert screen.session.record.status == "open" and len(screen.session.tree.drafts()) == 3
        await pilot.press("u")
        await pilot.pause()
        assert len(screen.session.tree.drafts()) == 2
        await pilot.press("u")  # the revision and its follow-up go together
        await pilot.pause()
        assert screen.session.current_draft == first and len(screen.session.tree.nodes) == 4
        assert screen.query_one(PoemArea).text == first.text
        await pilot.press("r")  # the conversations were rebuilt: the loop goes on
        await settle(pilot)
        assert len(screen.session.tree.drafts()) == 2


async def test_the_gutter_toggles_and_follows_an_edit(studio):
    app = create_app(studio)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_request(app, pilot)
        gutter = screen.query_one(CraftGutter)
        assert gutter.display and gutter.craft.lines == 2
        assert gutter.quoted == frozenset({0, 1})  # the critique quotes both lines
        await pilot.press("e")
        poem = screen.query_one(PoemArea)
        poem.move_cursor(poem.document.end)
        await pilot.press("enter", *"salt on the sill")
        await pilot.pause()
        assert gutter.craft.lines == 3  # live, before the edit is saved
        await pilot.press("escape", "l")
        await pilot.pause()
        assert not gutter.display
        await pilot.press("l")
        await pilot.pause()
        assert gutter.display and gutter.craft.lines == 2


async def test_sessions_list_times_first_lines_tags_headless_and_renames_and_deletes(tmp_path):
    studio = make_studio(tmp_path)
    kept = studio.start("write", "a poem about moths")
    kept.run(1)
    batch = studio.start("write", "a batch request", origin="batch")
    batch.step()
    studio.store.close()

    studio = make_studio(tmp_path)
    app = create_app(studio)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, StartScreen)
        assert "a poem about moths" in str(screen.query_one("#resume-banner").render())  # not the batch one
        options = screen.query_one("#sessions")
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any("[batch]" in label and "a batch request" in label for label in labels)
        moths = next(label for label in labels if "moths" in label)
        assert "“the water leaves”" in moths and "20" in moths  # the current draft's first line, the time
        options.focus()
        options.highlighted = next(i for i, label in enumerate(labels) if "moths" in label)
        await pilot.press("r")
        await pilot.pause()
        app.screen.query_one("#ask-input").value = "Moths, kept"
        await pilot.press("enter")
        await pilot.pause()
        assert studio.store.get_session(kept.record.id).title == "Moths, kept"
        options.highlighted = next(i for i in range(options.option_count)
                                   if "batch" in str(options.get_option_at_index(i).prompt))
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, YesNoScreen)
        await pilot.press("n")
        await pilot.pause()
        assert len(studio.store.list_sessions()) == 2
        await pilot.press("d", "y")
        await pilot.pause()
        assert [s.title for s in studio.store.list_sessions()] == ["Moths, kept"]
        assert options.option_count == 1
