"""Pilot tests of the app's flows on scripted models; they wait on workers, never on sleeps."""

from __future__ import annotations

import threading

from poetry_workshop.errors import GenerationError
from poetry_workshop.tui.app import create_app
from poetry_workshop.tui.help_screen import HelpScreen, plain_help
from poetry_workshop.tui.start_screen import StartScreen
from poetry_workshop.tui.widgets import QUOTED, HistoryTree, PoemArea
from poetry_workshop.tui.workshop_screen import WorkshopScreen
from tests.fakes.scripted_backend import ScriptedBackend
from tests.support.studio import CRITIQUE, make_studio, settle


async def start_request(app, pilot, text: str = "a poem about the tide") -> WorkshopScreen:
    app.screen.query_one("#request").value = text
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, WorkshopScreen)
    return app.screen


async def revised_and_selected(app, pilot, draft_index: int):
    """Start a session, revise once, and select draft `draft_index` (0-based) in the history."""
    screen = await start_request(app, pilot)
    await pilot.press("r")
    await settle(pilot)
    tree = screen.query_one("#history")
    draft = screen.session.tree.drafts()[draft_index]
    tree.move_cursor(next(n for n in tree.root.children if n.data == draft.id))
    await pilot.pause()
    return screen, tree, draft


def notifications(app) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


async def test_write_flow_shows_poem_critique_history_and_highlights_quotes(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, StartScreen)
        screen = await start_request(app, pilot)
        poem = screen.query_one(PoemArea)
        assert poem.text == "the water leaves\nthe mud keeps count"
        assert "line numbers" and poem.show_line_numbers
        assert screen.query_one("#critique").source == CRITIQUE
        assert {(s.row, s.start, s.end) for s in poem.quoted} == {(0, 0, 16), (1, 0, 19)}
        assert any(h[2] == QUOTED for h in poem._highlights[0])
        history = screen.query_one("#history").root.children
        assert [str(n.label) for n in history] == ["Request", "Brief", "Draft 1 · Poet"]
        assert [str(n.label) for n in history[2].children] == ["Critique"]  # under the draft it is about
        status = str(screen.query_one("#status").render())
        assert "starter model — train your own" in status and "educator context" in status


async def test_the_status_bar_shows_how_many_lookup_candidates_the_model_confirmed(tmp_path):
    from tests.support.studio import scripted_educator

    educator = scripted_educator()
    educator.lookup = (8, 6)
    app = create_app(make_studio(tmp_path, educator=educator))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_request(app, pilot)  # the critique came last
        assert "lookup 75% of 8" in str(screen.query_one("#status").render())


async def test_revise_then_accept_then_export(studio, tmp_path):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("r")
        await settle(pilot)
        assert screen.query_one(PoemArea).text.startswith("the water leaves\nmud counts gulls")
        assert "revision answers the point" in screen.query_one("#critique").source
        assert screen.session.rounds_done == 2
        await pilot.press("a")
        await pilot.pause()
        assert screen.session.record.status == "accepted"
        assert "accepted" in screen.query_one(PoemArea).border_title
        await pilot.press("x")
        await pilot.pause()
        exported = list((tmp_path / "exports").glob("*.md"))
        assert len(exported) == 1 and "## Final poem" in exported[0].read_text(encoding="utf-8")
        assert ("Exported", str(exported[0].resolve())) in notifications(app)


async def test_edit_saves_a_person_draft_and_critique_follows(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("e")
        poem = screen.query_one(PoemArea)
        assert not poem.read_only and poem.has_focus
        poem.move_cursor(poem.document.end)
        await pilot.press("enter", *"salt on the sill")
        await pilot.press("ctrl+s")
        await pilot.pause()
        draft = screen.session.current_draft
        assert draft.author == "person" and draft.text.endswith("salt on the sill")
        assert poem.read_only
        await pilot.press("c")
        await settle(pilot)
        assert screen.session.path[-1].kind == "critique"
        assert "revised the poem" in studio.engine.educator.conversation.turns[-2].content


async def test_escape_cancels_an_edit_without_saving(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        drafts = len(screen.session.tree.drafts())
        await pilot.press("e", "x", "y", "escape")
        await pilot.pause()
        assert len(screen.session.tree.drafts()) == drafts
        assert screen.query_one(PoemArea).text == "the water leaves\nthe mud keeps count"


async def test_ask_answers_in_the_critique_pane(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("enter")  # empty: refused inline
        await pilot.pause()
        assert "Write the question first" in str(app.screen.query_one("#ask-error").render())
        await pilot.press(*"what is enjambment?", "enter")
        await settle(pilot)
        assert app.screen is screen
        source = screen.query_one("#critique").source
        assert source.startswith("**Question:** what is enjambment?") and "**Answer:** Enjambment carries" in source
        assert screen.query_one("#critique-scroll").border_title == "Answer"


async def test_branch_from_draft_one_shows_at_once_and_a_second_critique_is_no_branch(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, tree, first_draft = await revised_and_selected(app, pilot, 0)
        assert screen.query_one(PoemArea).text == first_draft.text  # selecting shows that draft
        assert CRITIQUE in screen.query_one("#critique").source  # ... and its critique
        await pilot.press("b")
        await pilot.pause()
        assert screen.session.record.head_id == first_draft.id
        assert CRITIQUE in screen.query_one("#critique").source  # the draft branched back to keeps its critique
        draft_item = tree.root.children[2]
        assert HistoryTree.PENDING in [str(n.label) for n in draft_item.children]  # the branch shows at once
        await pilot.press("c")
        await settle(pilot)
        assert len(screen.session.tree.children(first_draft.id)) == 2  # two critiques of draft 1
        labels = [str(n.label) for n in tree.root.children]
        assert labels == ["Request", "Brief", "Draft 1 · Poet", "Draft 2 · Poet"]  # no "Branch N" for a critique
        assert [str(n.label) for n in tree.root.children[2].children] == ["Critique", "Critique"]


async def test_tree_shape_after_c_c_k_r_b(studio):
    app = create_app(studio)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("k")
        await pilot.pause()
        await pilot.press(*"why the mud?", "enter")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        tree = screen.query_one(HistoryTree)

        def shape(node) -> list:
            return [(str(c.label), shape(c)) if c.children else str(c.label) for c in node.children]

        assert shape(tree.root) == [
            "Request", "Brief",
            ("Draft 1 · Poet", ["Critique", "Critique", "Critique", "Question: why the mud?", "Answer"]),
            ("Draft 2 · Poet", ["Follow-up"]),
        ]
        # Branch from draft 1's first critique, then revise from it: draft 3 is a branch of draft 1.
        first_critique = tree.root.children[2].children[0]
        tree.move_cursor(first_critique)
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        assert HistoryTree.PENDING in [str(n.label) for n in tree.root.children[2].children]
        await pilot.press("r")
        await settle(pilot)
        assert shape(tree.root) == [
            "Request", "Brief",
            ("Draft 1 · Poet", ["Critique", "Critique", "Critique", "Question: why the mud?", "Answer",
                                ("⑂ Branch 2 from draft 1", [("Draft 3 · Poet", ["Follow-up"])])]),
            ("Draft 2 · Poet", ["Follow-up"]),
        ]
        # Selecting the answer shows its question with it.
        answer = tree.root.children[2].children[4]
        tree.move_cursor(answer)
        await pilot.pause()
        source = screen.query_one("#critique").source
        assert "**Question:** why the mud?" in source and "Enjambment carries" in source


async def test_selecting_a_later_draft_shows_a_line_diff(studio):
    app = create_app(studio)
    async with app.run_test(size=(120, 40)) as pilot:
        screen, _tree, _second = await revised_and_selected(app, pilot, 1)
        diff = screen.query_one("#critique").source
        assert "-the mud keeps count" in diff and "+mud counts gulls" in diff


async def test_stop_keeps_partial_text_marked_and_the_next_action_works(tmp_path):
    release = threading.Event()

    def slow_critique(messages):
        if messages[-1]["content"].startswith("A writer asks"):
            return "Brief."
        return " ".join(["word"] * 50)

    educator = ScriptedBackend(slow_critique)
    studio = make_studio(tmp_path, educator=educator)
    original = educator.generate

    def generate_then_wait(messages, max_tokens, sampling, on_text=None, cancel=None, seed_offset=0):
        def on_text_slow(piece):
            on_text(piece)
            if messages[-1]["content"].startswith("Workshop this draft") and not release.is_set():
                release.set()
                cancel.wait(10)  # the UI's Esc sets this
        return original(messages, max_tokens, sampling, on_text_slow, cancel, seed_offset)

    educator.generate = generate_then_wait
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#request").value = "fog"
        await pilot.press("enter")
        while not release.is_set():
            await pilot.pause(0.01)
        await pilot.press("escape")
        await settle(pilot)
        screen = app.screen
        critique = screen.session.path[-1]
        assert critique.kind == "critique" and critique.meta["stopped"] is True
        assert critique.text == "word"
        assert "stopped" in screen.query_one("#critique-scroll").border_title
        await pilot.press("r")  # the next action works
        await settle(pilot)
        assert screen.session.path[-1].kind == "critique" and not screen.session.path[-1].meta["stopped"]


async def test_failed_generation_is_a_titled_notification_and_changes_nothing(tmp_path):
    def failing(messages):
        if messages[-1]["content"].startswith("A writer asks"):
            return "Brief."
        if "revised the poem" in messages[-1]["content"]:
            raise GenerationError("llama.cpp failed while generating")
        return CRITIQUE

    studio = make_studio(tmp_path, educator=ScriptedBackend(failing))
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        before = dict(screen.session.tree.nodes)
        turns = list(studio.engine.educator.conversation.turns)
        await pilot.press("r")
        await settle(pilot)
        assert ("Generation failed", "llama.cpp failed while generating") in notifications(app)
        # the Poet's revision was committed before the failing follow-up; nothing else changed
        after = screen.session.tree.nodes
        assert set(before) < set(after) and len(after) == len(before) + 1
        assert studio.engine.educator.conversation.turns == turns
        assert app.is_running


async def test_auto_runs_rounds_unattended(studio):
    studio.settings.app.app.auto_rounds = 2
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("o")
        await settle(pilot)
        assert screen.session.rounds_done == 3


async def test_empty_request_is_refused_inline_and_long_paste_truncated(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)
        assert "Write the request first." in str(app.screen.query_one("#request-error").render())
        app.screen.query_one("#paste").load_text("a line of verse\n" * 800)  # 12,800 characters
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, WorkshopScreen)
        assert len(app.screen.session.path[0].text) <= 10_000
        assert any(title == "Truncated" for title, _ in notifications(app))


async def test_restart_offers_to_resume_where_it_stopped(tmp_path):
    studio = make_studio(tmp_path)
    session = studio.start("write", "a poem about moths")
    session.step()  # the brief is committed; then the terminal is killed
    studio.store.close()

    studio2 = make_studio(tmp_path)
    app = create_app(studio2)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = str(app.screen.query_one("#resume-banner").render())
        assert "a poem about moths" in banner
        options = app.screen.query_one("#sessions")
        options.focus()
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, WorkshopScreen) and screen.session.record.id == session.record.id
        assert [n.kind for n in screen.session.path] == ["request", "brief", "draft", "critique"]


async def test_help_screen_lists_remapped_keys_and_palette_has_actions(tmp_path):
    studio = make_studio(tmp_path)
    studio.settings.app.keys["revise"] = "ctrl+r"
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = plain_help(app.keymap)
        assert any("Ctrl+R" in line and "the Poet revises" in line for line in text.splitlines())
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+r")  # the remapped key works
        await settle(pilot)
        assert screen.session.rounds_done == 2
        titles = [c.title for c in app.get_system_commands(screen)]
        for title in ("Revise", "Critique", "Edit", "Ask", "Branch", "Accept", "Stop", "Export", "Copy", "Auto"):
            assert title in titles


async def test_copy_without_clipboard_says_so(studio, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("TERM", "dumb")
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_request(app, pilot)
        await pilot.press("y")
        await pilot.pause()
        assert any(title == "No clipboard" and "export" in message for title, message in notifications(app))


async def test_resizing_keeps_the_panes(studio):
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_request(app, pilot)
        for size in ((120, 40), (80, 24), (200, 60)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            poem = screen.query_one(PoemArea)
            assert poem.size.width > 10 and poem.size.height >= 3
            assert screen.query_one("#critique-scroll").size.width > 20
