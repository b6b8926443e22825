"""One full flow of the app on the real starter model: write → critique → revise → accept."""

from __future__ import annotations

import pytest

from poetry_workshop.tui.app import create_app
from poetry_workshop.tui.ask_screen import YesNoScreen
from poetry_workshop.tui.widgets import PoemArea
from poetry_workshop.tui.workshop_screen import WorkshopScreen
from poetry_workshop.workshop.studio import Studio
from tests.support.studio import settle

pytestmark = pytest.mark.model


async def test_full_flow_on_the_starter_model(small_config, starter_gguf):
    studio = Studio.open(small_config)
    studio.engine.load()  # before the app draws, as `workshop` does
    app = create_app(studio)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            app.screen.query_one("#request").value = "a short poem about a heron at dusk"
            await pilot.press("enter")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, WorkshopScreen)
            assert [n.kind for n in screen.session.path] == ["request", "brief", "draft", "critique"]
            assert screen.query_one(PoemArea).text == screen.session.current_draft.text != ""
            # The critique as written; one cut at its token limit is marked so, after it.
            assert screen.query_one("#critique").source.startswith(screen.session.latest_critique.text)
            await pilot.press("r")
            await settle(pilot)
            assert [n.kind for n in screen.session.path][-2:] == ["draft", "critique"]
            assert screen.session.rounds_done == 2
            await pilot.press("a")
            await pilot.pause()
            if isinstance(app.screen, YesNoScreen):  # a draft cut at the small config's limit asks first
                await pilot.press("y")
                await pilot.pause()
            record = studio.store.get_session(screen.session.record.id)
            assert record.status == "accepted" and record.draft_count == 2
            for node in studio.store.tree(record.id).nodes.values():
                assert "<|im_start|>" not in node.text and "<|im_end|>" not in node.text
            status = str(screen.query_one("#status").render())
            assert "tok/s" in status and "context" in status
    finally:
        studio.close()
