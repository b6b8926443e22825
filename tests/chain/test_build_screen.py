"""The build screen, driven with Pilot: start → cancel → the app closes → a new app shows
where it stopped → resume → done, against the loopback Claude server and the local backend
(real LoRA training on the starter model, real export); then one key makes the new GGUF
the Educator, and `v` shows an eval report comparing it with the starter. Plus settings
saved to the user config, bad settings, and snapshots of the screen idle and mid-run."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.build.plan import ChainState, StageState, load_state
from poetry_workshop.pipeline.build.spending import BuildSpending
from poetry_workshop.tui.app import create_app
from poetry_workshop.tui.build_screen import BuildScreen, ConfirmScreen, ReportScreen
from poetry_workshop.tui.start_screen import StartScreen
from tests.fakes.claude_server import ClaudeServer
from tests.support.studio import make_studio, settle
from tests.support.training import SMALL_LORA

SIZES = [(80, 24), (120, 40)]


async def open_build(pilot) -> BuildScreen:
    await pilot.press("f5")
    await pilot.pause()
    assert isinstance(pilot.app.screen, BuildScreen)
    return pilot.app.screen


def fill(screen: BuildScreen, **values) -> None:
    for field, value in values.items():
        screen.query_one(f"#{field}").value = value


SMALL_BUILD = {"roles": "educator", "base_model": "starter", "epochs": "1", "concurrency": "1", "max_cost": "1",
               "limit-critiques": "0", "limit-briefs": "3", "limit-lessons": "3", "limit-autopsies": "0",
               "limit-comparisons": "0", "limit-dialogues": "0", "limit-poet-pairs": "0"}


async def wait_for(pilot, condition, timeout: float = 900.0) -> None:
    """Wait (on the app's loop) until `condition()` holds; the build runs on its own thread."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the build"
        await asyncio.sleep(0.2)
        await pilot.pause()


async def start_and_confirm(pilot, screen: BuildScreen) -> None:
    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), timeout=120)
    assert "Claude calls:" in pilot.app.screen.text and "briefs" in pilot.app.screen.text
    await pilot.press("y")
    await wait_for(pilot, lambda: pilot.app.builder.chain is not None, timeout=60)


@pytest.mark.model
async def test_build_cancel_close_resume_switch_and_eval_from_the_app(tmp_path, monkeypatch, starter_gguf):
    monkeypatch.setenv("POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR", f'"{tmp_path / "models"}"')
    for name, value in SMALL_LORA.items():
        monkeypatch.setenv(name, value)
    with ClaudeServer(latency=0.4) as claude:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", claude.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")

        # 1. Start, then cancel during generation: it stops at the next record.
        app = create_app(make_studio(tmp_path / "first", settings=load_settings()))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_build(pilot)
            fill(screen, **SMALL_BUILD)
            await start_and_confirm(pilot, screen)
            chain = app.builder.chain
            await wait_for(pilot, lambda: chain.state.stage("generate:briefs").done >= 1, timeout=120)
            await pilot.press("c")
            await wait_for(pilot, lambda: not app.builder.running, timeout=120)
            assert chain.state.status == "stopped"
            assert chain.state.stage("generate:briefs").state == "stopped"
            assert chain.state.stage("train:educator").state == "not started"
            calls_at_cancel = claude.count("/v1/messages") - claude.count("/v1/messages/count_tokens")
            assert 1 <= calls_at_cancel < 6
        # 2. The app closed. A new one shows where the build stopped, and `s` resumes it.
        saved = load_state()
        assert saved is not None and saved.status == "stopped"
        app = create_app(make_studio(tmp_path / "second", settings=load_settings()))
        from poetry_workshop.inference.engine import Engine
        from poetry_workshop.inference.inference_thread import InferenceThread

        engine: Engine = app.studio.engine
        engine._thread, engine._runtime = InferenceThread(), app.studio.settings.inference.runtime
        app.eval_limit, app.eval_max_tokens = 1, 24
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                screen = await open_build(pilot)
                status = str(screen.query_one("#build-status").render())
                assert "stopped" in status and "s resumes" in status
                assert screen.query_one("#stages").get_row("generate:briefs")[1] == "stopped"
                fill(screen, **SMALL_BUILD)
                await start_and_confirm(pilot, screen)
                chain = app.builder.chain
                # Back to the workshop while it runs; the build goes on, and F5 shows it again.
                await pilot.press("escape")
                await pilot.pause()
                assert isinstance(app.screen, StartScreen) and app.builder.running
                screen = await open_build(pilot)
                await wait_for(pilot, lambda: not app.builder.running)
                assert chain.state.status == "done", chain.state.error
                calls = claude.count("/v1/messages") - claude.count("/v1/messages/count_tokens")
                assert calls == 6  # the records made before the cancel were not asked for again
                states = {s.id: s.state for s in chain.state.stages}
                assert states["generate:briefs"] in ("done", "skipped") and states["export:educator"] == "done"
                gguf = tmp_path / "models" / "educator.Q4_K_M.gguf"
                assert chain.state.models == {"educator": str(gguf)} and gguf.is_file()
                screen.refresh_state()  # what the twice-a-second poll shows
                await pilot.pause()
                assert "educator.Q4_K_M.gguf" in str(screen.query_one("#build-totals").render())
                assert "done" in str(screen.query_one("#build-status").render())

                # Started again, nothing is redone: each stage is up to date.
                fill(screen, **SMALL_BUILD)  # this screen was opened anew, with the saved settings
                await start_and_confirm(pilot, screen)
                chain = app.builder.chain
                await wait_for(pilot, lambda: not app.builder.running, timeout=300)
                states = {s.id: s.state for s in chain.state.stages}
                assert chain.state.status == "done", chain.state.error
                assert states["generate:briefs"] == states["train:educator"] == states["export:educator"] == "skipped"
                assert chain.state.models == {"educator": str(gguf)}
                assert claude.count("/v1/messages") - claude.count("/v1/messages/count_tokens") == 6

                # 3. One key makes it the Educator, now and in the user config.
                await pilot.press("u")
                await pilot.pause()
                assert app.studio.choices["educator"].path == gguf.resolve()
                assert load_settings().inference.models.educator == str(gguf.resolve())

                # 4. The eval compares it with the starter, and the report opens.
                await pilot.press("v")
                await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen), timeout=600)
                report = app.screen.path.read_text(encoding="utf-8")
                assert "starter" in report and "current" in report and "## Educator" in report
        finally:
            engine.close()


async def test_settings_are_saved_to_the_user_config(tmp_path):
    app = create_app(make_studio(tmp_path, settings=load_settings()))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_build(pilot)
        fill(screen, **{"backend": "modal", "max_cost": "2.5", "limit-lessons": "7", "claude_model": "claude-haiku-5-5",
                        "epochs": "2"})
        await pilot.press("ctrl+s")
        await pilot.pause()
    saved = load_settings()
    assert saved.app.build.backend == "modal" and saved.app.build.max_cost == 2.5 and saved.app.build.epochs == 2
    assert saved.generation.limits["lessons"] == 7 and saved.generation.claude.model == "claude-haiku-5-5"
    assert locations.user_config_file().is_file()


async def test_bad_settings_are_named_and_nothing_starts(tmp_path):
    app = create_app(make_studio(tmp_path, settings=load_settings()))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_build(pilot)
        fill(screen, concurrency="0")
        await pilot.press("s")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("concurrency must be at least 1" in m for m in messages), messages
        assert app.builder.chain is None and not isinstance(app.screen, ConfirmScreen)


def running_state() -> ChainState:
    stages = [StageState("generate:briefs", "generate briefs", "done", 3, 3, "3 accepted, 0 rejected, 0 failed", 0.0155),
              StageState("generate:lessons", "generate lessons", "skipped", 3, 3, "up to date: 3 records exist"),
              StageState("gate", "gate", "done", 2, 2, "kept 6 of 6"),
              StageState("prepare", "prepare training sets", "done", 0, 0, "training examples: educator 4"),
              StageState("train:educator", "train educator", "running", 6, 16, "step 6/16, loss 2.914", eta_s=125.0),
              StageState("export:educator", "export educator")]
    return ChainState(plan={}, stages=stages, status="running", dollars=0.0155,
                      log=["briefs: 3 of 3 records (3 new, 0 rejected, 0 failed, $0.0155)", "gate briefs: kept 3 of 3",
                           "prepare educator: 4 training examples", "educator: step 6/16, loss 2.914, 35 tok/s"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_build_screen_idle(snap_compare, tmp_path, size):
    async def open_screen(pilot):
        await open_build(pilot)
        await pilot.pause()

    app = create_app(make_studio(tmp_path, settings=load_settings(environ={})))
    assert snap_compare(app, terminal_size=size, run_before=open_screen)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_build_screen_mid_run(snap_compare, tmp_path, size):
    async def open_mid_run(pilot):
        # What a running chain shows: a resumed build, with what its earlier runs spent.
        pilot.app.builder.chain = SimpleNamespace(state=running_state(),
                                                  spending=BuildSpending("b", 0.0123, 0.0155, 1.0, 0.04))
        screen = await open_build(pilot)
        screen.refresh_state()
        await pilot.pause()

    app = create_app(make_studio(tmp_path, settings=load_settings(environ={})))
    assert snap_compare(app, terminal_size=size, run_before=open_mid_run)

