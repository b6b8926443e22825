"""Snapshots of the start screen, the workshop screen mid-session, the help screen and the
Models screen, at 80×24 and 120×40, on scripted models so they are the same on every run.

Update them after a deliberate change to the look: pytest tests/test_app_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from poetry_workshop.tui.app import create_app
from tests.support.studio import make_studio, settle

SIZES = [(80, 24), (120, 40)]


async def _mid_session(pilot) -> None:
    pilot.app.screen.query_one("#request").value = "a poem about the tide"
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("r")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_start_screen(snap_compare, tmp_path, size):
    assert snap_compare(create_app(make_studio(tmp_path)), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_workshop_screen_mid_session(snap_compare, tmp_path, size):
    assert snap_compare(create_app(make_studio(tmp_path)), terminal_size=size, run_before=_mid_session)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, tmp_path, size):
    async def open_help(pilot):
        await _mid_session(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(create_app(make_studio(tmp_path)), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_screen(snap_compare, tmp_path, size, models_project):
    async def open_models(pilot):
        await pilot.press("f2")
        await pilot.pause()

    assert snap_compare(create_app(make_studio(tmp_path)), terminal_size=size, run_before=open_models)
