"""The Models screen: the table, getting a catalogue model while the workshop goes on, and
switching a role's model on the real engine. Each test runs in a fresh project (its own
models/ with the starter) with every model store and the Hub pointed into tmp_path."""

from __future__ import annotations

import asyncio
import shutil
import threading

import pytest
from textual.widgets import DataTable, ProgressBar

from poetry_workshop.inference import starter
from poetry_workshop.inference.catalogue import find_entry
from poetry_workshop.tui.app import create_app
from poetry_workshop.tui.models_screen import ModelsScreen
from poetry_workshop.tui.start_screen import StartScreen
from poetry_workshop.tui.workshop_screen import WorkshopScreen
from poetry_workshop.workshop.studio import Studio
from tests.fakes.hf_hub_server import HubServer
from tests.support.studio import make_studio, settle

ENTRY = find_entry("llama-3.1-8b")


async def until(pilot, condition, rounds: int = 400) -> None:
    """Wait, message round by message round, until `condition()` holds (a download runs on
    its own thread, so there is nothing to await but the app's own queue)."""
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app never got there")


def select(screen: ModelsScreen, key: str) -> None:
    table = screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(key))


async def test_models_screen_lists_roles_and_catalogue_and_opens_from_key_and_palette(models_project, tmp_path):
    app = create_app(make_studio(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        hint = str(app.screen.query_one("#starter-hint").render())
        assert "F2 opens Models" in hint and "135M" in hint
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Models" in titles
        await pilot.press("f2")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        table = screen.query_one(DataTable)
        starter_row = table.get_row(f"file:{models_project.models / starter.FILENAME}")
        assert starter_row == ["both", starter.FILENAME, "models/", "98 MB", "Q4_1", "chatml", "8k", "-", "yes"]
        detail = str(screen.query_one("#model-detail").render())
        assert "llama · Q4_1 · template chatml · 8k context · no thinking" in detail and "at n_ctx 4096" in detail
        catalogue = [table.get_row(k)[1] for k in screen.rows if k.startswith("get:")]
        assert catalogue == ["llama-3.1-8b", "qwen3-8b", "gemma-3-12b", "mistral-nemo", "qwen3-14b"]
        await pilot.press("escape")
        assert isinstance(app.screen, StartScreen)


async def test_get_downloads_with_a_progress_bar_while_the_workshop_goes_on(models_project, tmp_path, starter_gguf,
                                                                            monkeypatch):
    release = threading.Event()
    with HubServer() as hub:
        hub.add_file(ENTRY.repo, ENTRY.filename, starter_gguf)
        hub.faults = [{"pause_after": 30_000_000, "until": release}]
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        app = create_app(make_studio(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            screen = app.screen
            select(screen, f"get:{ENTRY.name}")
            await pilot.press("g")
            download = app.downloads.active[ENTRY.name]
            await until(pilot, lambda: download.done > 0)  # held by the hub after 30 MB
            screen.show_progress()
            bar = screen.query_one(ProgressBar)
            assert bar.display and 0 < bar.progress < bar.total == starter_gguf.stat().st_size
            assert "getting llama-3.1-8b" in str(screen.query_one("#download-status").render())

            await pilot.press("escape")  # the download goes on; the workshop is usable
            app.screen.query_one("#request").value = "a poem about pears"
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, WorkshopScreen)
                        and app.screen.session.latest_critique is not None and not app.screen.busy)
            assert not download.finished

            release.set()
            await until(pilot, lambda: download.finished)
            await pilot.pause()
            assert download.error == ""
            assert (models_project.models / ENTRY.filename).read_bytes() == starter_gguf.read_bytes()
            assert any(n.title == "Download done" for n in app._notifications)
            await pilot.press("f2")
            await pilot.pause()
            row = app.screen.query_one(DataTable).get_row(f"file:{models_project.models / ENTRY.filename}")
            assert row[0] == "-" and row[1] == ENTRY.filename and row[2] == "models/"
            assert f"get:{ENTRY.name}" not in app.screen.rows


@pytest.mark.model
async def test_u_makes_the_selected_model_the_educator_at_once(models_project, tmp_path, small_config, workshop_home,
                                                            starter_gguf):
    other = models_project.models / "SmolLM2-copy.gguf"
    shutil.copyfile(starter_gguf, other)
    studio = Studio.open(small_config, db_path=tmp_path / "sessions.db")
    studio.engine.load()
    app = create_app(studio)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            screen = app.screen
            select(screen, f"get:{ENTRY.name}")
            await pilot.press("p")
            assert any(n.title == "Not downloaded" for n in app._notifications)
            select(screen, f"file:{other}")
            await pilot.press("u")
            await settle(pilot)
            assert studio.choices["educator"].path == other.resolve() and not studio.choices["educator"].is_starter
            assert studio.engine.educator.backend.path == other.resolve()
            saved = (workshop_home / "config.toml").read_text(encoding="utf-8")
            assert f'educator = "{other.resolve()}"' in saved
            assert 'educator_adapter = ""' in saved  # an adapter belongs to the base it left
            table = screen.query_one(DataTable)
            assert table.get_row(f"file:{other}")[0] == "educator"
            assert any(n.title == "Model switched" for n in app._notifications)
            await pilot.press("escape")
            title = str(app.screen.query_one("#start-title").render())
            assert "Poet on the starter model" in title and "Educator and Poet" not in title
    finally:
        studio.close()


async def test_quitting_stops_a_download_and_keeps_it_for_a_resume(models_project, tmp_path, starter_gguf,
                                                                  monkeypatch):
    release = threading.Event()
    with HubServer() as hub:
        hub.add_file(ENTRY.repo, ENTRY.filename, starter_gguf)
        hub.faults = [{"pause_after": 30_000_000, "until": release}]
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        app = create_app(make_studio(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            select(app.screen, f"get:{ENTRY.name}")
            await pilot.press("g")
            download = app.downloads.active[ENTRY.name]
            await until(pilot, lambda: download.done > 0)
        release.set()  # the app has closed: the next chunk finds its worker cancelled
        for _ in range(200):
            if download.finished:
                break
            await asyncio.sleep(0.05)
    assert download.finished and download.error.startswith("stopped")
    partial = models_project.models / ".downloads" / f"{ENTRY.filename}.part"
    assert 0 < partial.stat().st_size < starter_gguf.stat().st_size
    assert not (models_project.models / ENTRY.filename).exists()
