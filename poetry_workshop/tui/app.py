"""The Textual app: screens, app-wide keys, the command palette, key remapping.

`create_app` is the one factory for the command line and the tests. The studio (config,
models, store) is opened and the models loaded before the app starts drawing: llama.cpp
redirects the process's stdout/stderr while it loads, which would blank a running screen.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from poetry_workshop.errors import WorkshopError
from poetry_workshop.pipeline.build.chain import BackgroundBuild
from poetry_workshop.tui.build_screen import BuildScreen
from poetry_workshop.tui.help_screen import HelpScreen
from poetry_workshop.tui.keys import APP_KEYS, BUILD_KEYS, MODELS_KEYS, WORKSHOP_KEYS, bindings, key_label
from poetry_workshop.tui.models_screen import ModelDownloads, ModelsScreen
from poetry_workshop.tui.start_screen import StartScreen
from poetry_workshop.tui.workshop_screen import WorkshopScreen
from poetry_workshop.workshop.studio import Studio

QUIT_WAIT_S = 0.5  # the longest Ctrl+Q waits for a stopped generation to be stored (one token is far less)


class WorkshopApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "Poetry Workshop"
    BINDINGS = bindings(APP_KEYS)

    # The eval the build screen runs: a few items, short generations, so it answers in minutes.
    eval_limit = 4
    eval_max_tokens = 256

    def __init__(self, studio: Studio):
        super().__init__()
        self.studio = studio
        self.keymap = dict(studio.settings.app.keys)
        self.builder = BackgroundBuild()  # held by the app so a build outlives its screen
        self.generation_left_running = False  # set when Ctrl+Q could not wait for a generation
        self.downloads = ModelDownloads()  # likewise a model download and its Models screen

    def on_mount(self) -> None:
        self.set_keymap(self.keymap)
        self.show_start()
        self._build_stages: tuple = ()
        self.set_interval(1.0, self._repaint_after_stage)

    def _repaint_after_stage(self) -> None:
        """llama.cpp mutes the terminal (fd 1 and 2) while export quantizes and validates, so
        frames drawn meanwhile are lost: redraw the whole screen whenever a stage changes."""
        chain = self.builder.chain
        stages = tuple((s.id, s.state) for s in chain.state.stages) if chain is not None else ()
        if stages != self._build_stages:
            self._build_stages = stages
            self.screen.refresh(layout=True)

    # ------------------------------------------------------------------ navigation
    def show_start(self) -> None:
        screen = StartScreen(self.studio.store.list_sessions(), self.studio.notice,
                             self.studio.settings.app.app.max_paste_chars, self.starter_hint())
        self._switch(screen)

    def starter_hint(self) -> str | None:
        """What to expect of the starter and where the way out is, while a role runs on it."""
        if not self.studio.notice:
            return None
        key = key_label(self.keymap, "models")
        return (f"The starter is a 135M model: the loop works, the critique is not good (it may miss what the "
                f"poem is about and rewrite it). {key} opens Models: g gets a real one, u/p switches to one you have.")

    def critique_hint(self) -> str | None:
        """The critique pane's footnote while the Educator is the starter."""
        if not self.studio.choices["educator"].is_starter:
            return None
        return f"starter: expect little · {key_label(self.keymap, 'models')} Models"

    def _switch(self, screen: Screen) -> None:
        # Keep the stack shallow: the start screen and one workshop screen at most.
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if isinstance(self.screen, (StartScreen, WorkshopScreen)):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def start_session(self, mode: str, text: str) -> None:
        try:
            session = self.studio.start(mode, text)
        except WorkshopError as exc:
            self.notify(str(exc), title="Cannot start", severity="error")
            return
        self._switch(WorkshopScreen(self.studio, session))

    def resume_session(self, session_id: str) -> None:
        try:
            session = self.studio.resume(session_id)
        except WorkshopError as exc:
            self.notify(str(exc), title="Cannot resume", severity="error")
            return
        self._switch(WorkshopScreen(self.studio, session))

    # ------------------------------------------------------------------ building models
    def action_build(self) -> None:
        if not isinstance(self.screen, BuildScreen):
            self.push_screen(BuildScreen())

    def start_build(self, plan) -> None:
        def ended(state, error: str) -> None:
            try:
                self.call_from_thread(self._build_ended, state.status, error)
            except RuntimeError:
                pass  # the app is closing; the state file already says how it ended

        self.builder.start(plan, config_path=self.studio.config_path, on_change=lambda state: None, on_end=ended)

    def _build_ended(self, status: str, error: str) -> None:
        if status == "done":
            self.notify("the build finished: F5 shows the new models (u/p switches to them)", title="Build done")
        elif status == "stopped":
            self.notify(error or "stopped", title="Build stopped", severity="warning")
        else:
            self.notify(error or status, title="Build failed", severity="error", timeout=15)

    # ------------------------------------------------------------------ models
    def action_models(self) -> None:
        if not isinstance(self.screen, ModelsScreen):
            self.push_screen(ModelsScreen())

    def download_ended(self, download) -> None:
        name = download.entry.name
        if download.error:
            self.notify(download.error, title=f"{name} not downloaded", severity="error", timeout=15)
        else:
            key = key_label(self.keymap, "models")
            self.notify(f"{name} is downloaded and checked: u/p on the Models screen ({key}) makes it a role's "
                        "model", title="Download done")
        for screen in self.screen_stack:
            if isinstance(screen, ModelsScreen):
                screen.refresh_table()

    def models_changed(self) -> None:
        """A role's model changed: every screen that names the models says the new one."""
        for screen in self.screen_stack:
            if isinstance(screen, WorkshopScreen):
                screen.models_changed()
            elif isinstance(screen, StartScreen):
                screen.set_hint(self.studio.notice, self.starter_hint())

    # ------------------------------------------------------------------ app keys
    async def action_quit(self) -> None:
        """Quit at once: a generation in flight is cancelled at its next token and its
        partial text stored, marked stopped, before the app exits (waited on for at most
        QUIT_WAIT_S, so quitting never hangs on a long generation)."""
        for screen in self.screen_stack:
            if isinstance(screen, WorkshopScreen) and not await screen.stop_for_quit(QUIT_WAIT_S):
                # Still reading its prompt (llama.cpp gives no way to cancel that): nothing
                # was generated, so nothing is lost by leaving it behind.
                self.generation_left_running = True
        self.exit()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            # Installed once and kept: composed once, so opening it stays quick while a
            # model streams.
            if not self.is_screen_installed("help"):
                self.install_screen(HelpScreen(self.keymap), name="help")
            self.push_screen("help")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, WorkshopScreen):
            for key in WORKSHOP_KEYS:
                yield SystemCommand(key.label, key.help, getattr(screen, f"action_{key.action}"))
        if isinstance(screen, BuildScreen):
            for key in BUILD_KEYS:
                yield SystemCommand(f"Build: {key.label}", key.help, getattr(screen, f"action_{key.action}"))
        else:
            yield SystemCommand("Build models", "make your own Educator and Poet (F5)", self.action_build)
        if isinstance(screen, ModelsScreen):
            for key in MODELS_KEYS:
                yield SystemCommand(f"Models: {key.label}", key.help, getattr(screen, f"action_{key.action}"))
        else:
            yield SystemCommand("Models", f"the models here and the catalogue; switch or get one "
                                f"({key_label(self.keymap, 'models')})", self.action_models)
        yield SystemCommand("Help", "every key and what it does", self.action_help)


def create_app(studio: Studio) -> WorkshopApp:
    return WorkshopApp(studio)


def run_app(studio: Studio) -> int:
    """Load both models (before anything is drawn), run the app on an opened studio, then
    end the process at once.

    Every step is committed as it is made, so once the app has exited nothing is left to
    save: the interpreter's teardown of Textual, Rich and llama.cpp (0.3–0.8 s on a small
    machine) is skipped, and so is the wait for a generation still reading its prompt (its
    own event loop, so asyncio does not join the worker thread), so Ctrl+Q ends the process
    within a second even mid-generation."""
    import asyncio
    import os
    import sys

    print("loading the models…", file=sys.stderr)
    studio.engine.load()
    app = create_app(studio)
    app.run(loop=asyncio.new_event_loop())
    if app.generation_left_running:
        studio.store.close()  # the engine is busy on its thread; the process ends it
    else:
        studio.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(app.return_code or 0)
