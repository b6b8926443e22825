"""The build screen: make your own Educator and Poet from inside the app, and judge them.

It runs the build chain (pipeline/build/chain.py) on a background thread held by the app,
so the person can go back to the workshop while it runs. The screen shows the chain's state
(each stage with its progress bar, ETA and counts; dollars on Claude for the whole build,
earlier runs included, with the cap and the estimate for the rest; time on Modal; a log) by
polling it twice a second. The state is also saved to data/build/state.json, so
after the app closes, the screen shows where the build stopped and `s` resumes it.

Before a build that may spend money, the screen shows the estimate and asks. The settings
that matter per run are edited here and saved to the user config (Ctrl+S). A finished
export can be made the app's Educator or Poet with one key. `v` runs the eval (the app's
models against the starter) and shows its report.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Log, MarkdownViewer, Select, Static

from poetry_workshop import locations
from poetry_workshop.errors import WorkshopError
from poetry_workshop.names import ROLES, TASK_NAMES
from poetry_workshop.pipeline.build.plan import ChainPlan, ChainState, load_state, plan_stages, targets_for
from poetry_workshop.tui.keys import BUILD_KEYS, bindings

BAR_WIDTH = 12
ROLE_CHOICES = [("Educator and Poet", "both"), ("Educator only", "educator"), ("Poet only", "poet")]
BACKEND_CHOICES = [("this machine", "local"), ("Modal GPUs", "modal")]


def progress_bar(done: int, total: int) -> str:
    if total <= 0:
        return ""
    filled = round(BAR_WIDTH * min(done, total) / total)
    return "█" * filled + "░" * (BAR_WIDTH - filled) + f" {done}/{total}"


def eta_text(seconds: float | None) -> str:
    if not seconds:
        return ""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, before spending money."""

    BINDINGS = [("y", "answer(True)", "Yes"), ("n,escape", "answer(False)", "No")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.text, id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                yield Button("Spend it (y)", id="yes", variant="warning")
                yield Button("Not now (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ReportScreen(ModalScreen[None]):
    """An eval report, as Markdown (the charts are PNG files beside it)."""

    BINDINGS = [("escape,q", "close", "Close")]

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="report-box"):
            yield Static(f"[b]{self.path}[/b]  (charts beside it; Esc closes)", id="report-title")
            yield MarkdownViewer(self.path.read_text(encoding="utf-8"), show_table_of_contents=False)

    def action_close(self) -> None:
        self.dismiss(None)


class BuildScreen(Screen):
    BINDINGS = bindings(BUILD_KEYS)

    def __init__(self):
        super().__init__()
        self._log_lines = 0
        self._shown: ChainState | None = None
        self._spending_seen: tuple | None = None  # the files' stamps when the last build's spending was read
        self._last_spending = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        build = self.app.studio.settings.app.build
        gen = self.app.studio.settings.generation
        with VerticalScroll(id="build"):
            yield Static("[b]Build your own Educator and Poet[/b]", id="build-title")
            yield Static("", id="build-status")
            yield DataTable(id="stages", cursor_type="row", zebra_stripes=True)
            yield Static("", id="build-totals")
            yield Log(id="build-log", max_lines=500)
            yield Label("Settings for the next build (Ctrl+S saves them to your user config)", id="settings-title")
            with Horizontal(classes="settings-row"):
                yield Label("Build", classes="field")
                yield Select(ROLE_CHOICES, value=build.roles, allow_blank=False, id="roles")
                yield Label("on", classes="field")
                yield Select(BACKEND_CHOICES, value=build.backend, allow_blank=False, id="backend")
            with Horizontal(classes="settings-row"):
                yield Label("Base model", classes="field")
                yield Input(build.base_model, placeholder="the training configs' (or: starter)", id="base_model")
                yield Label("Epochs", classes="field")
                yield Input(str(build.epochs), id="epochs", type="integer", classes="short")
            with Horizontal(classes="settings-row"):
                yield Label("Claude model", classes="field")
                yield Input(gen.claude.model, id="claude_model")
                yield Label("Concurrency", classes="field")
                yield Input(str(gen.claude.concurrency), id="concurrency", type="integer", classes="short")
                yield Label("Spend cap $", classes="field")
                yield Input(f"{build.max_cost:g}", id="max_cost", type="number", classes="short")
            yield Label("Records per task (0 skips a task)", classes="field")
            with Horizontal(classes="settings-row", id="limits"):
                for task in TASK_NAMES:
                    with Vertical(classes="limit"):
                        yield Label(task, classes="limit-name")
                        yield Input(str(gen.limits.get(task, 0)), id=f"limit-{task}", type="integer")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#stages", DataTable)
        table.add_columns("stage", "state", "progress", "ETA", "detail")
        self.refresh_state()
        self.set_interval(0.5, self.refresh_state)
        table.focus()

    # ------------------------------------------------------------------ state
    def current_state(self) -> ChainState | None:
        builder = self.app.builder
        if builder.chain is not None:
            return builder.chain.state
        return load_state()

    def refresh_state(self) -> None:
        state = self.current_state()
        if state is None:
            try:
                plan = self.plan_from_fields()
            except WorkshopError:
                plan = ChainPlan()
            state = ChainState(plan=plan.to_dict(), stages=plan_stages(plan))
        self.show_state(state)

    def show_state(self, state: ChainState) -> None:
        table = self.query_one("#stages", DataTable)
        table.clear()
        for stage in state.stages:
            table.add_row(stage.label, stage.state, progress_bar(stage.done, stage.total), eta_text(stage.eta_s),
                          stage.detail[:70], key=stage.id)
        running = self.app.builder.running
        status = state.status if not running else "running"
        hint = {"not started": "s starts the build (it asks before spending)",
                "running": "c cancels at the next record or step; Esc goes back to the workshop while it runs",
                "stopped": "stopped: s resumes where it stopped",
                "failed": "failed: fix what the log says, then s resumes",
                "done": "done: u/p makes the new models the app's own; v compares them with the starter"}.get(status, "")
        error = f"\n[red]{state.error}[/red]" if state.error and not running else ""
        self.query_one("#build-status", Static).update(f"[b]{status}[/b] · {hint}{error}")
        models = ", ".join(f"{role}: {Path(path).name}" for role, path in state.models.items()) or "none yet"
        spending = self.spending()
        claude = spending.describe() if spending is not None else f"Claude ${state.dollars:.4f} spent"
        self.query_one("#build-totals", Static).update(
            f"{claude} · Modal {state.modal_seconds / 60:.1f} min · exported: {models}")
        log = self.query_one("#build-log", Log)
        if state is not self._shown:
            log.clear()
            self._log_lines = 0
            self._shown = state
        new = state.log[self._log_lines:] if len(state.log) >= self._log_lines else state.log
        if new:
            log.write_lines(new)
        self._log_lines = len(state.log)

    def spending(self):
        """The build's whole Claude total: from the running chain, else from the ledger (read
        again only when it or the build's record changed)."""
        from poetry_workshop.pipeline.build.spending import last_build_spending, ledger_file, spending_file

        live = getattr(self.app.builder.chain, "spending", None)
        if live is not None:
            return live
        stamps = []
        for path in (spending_file(), ledger_file()):
            try:
                info = path.stat()
                stamps.append((info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(None)
        if tuple(stamps) != self._spending_seen:
            self._spending_seen = tuple(stamps)
            self._last_spending = last_build_spending()
        return self._last_spending

    # ------------------------------------------------------------------ settings
    def _number(self, field: str, kind=int, minimum: float = 0):
        raw = self.query_one(f"#{field}", Input).value.strip()
        try:
            value = kind(raw)
        except ValueError:
            raise WorkshopError(f"{field.replace('_', ' ')}: {raw!r} is not a number")
        if value < minimum:
            raise WorkshopError(f"{field.replace('_', ' ')} must be at least {minimum:g}, got {raw}")
        return value

    def field_values(self) -> dict:
        return {
            "roles": self.query_one("#roles", Select).value,
            "backend": self.query_one("#backend", Select).value,
            "base_model": self.query_one("#base_model", Input).value.strip(),
            "epochs": self._number("epochs"),
            "max_cost": self._number("max_cost", float),
            "model": self.query_one("#claude_model", Input).value.strip(),
            "concurrency": self._number("concurrency", int, 1),
            "limits": {task: self._number(f"limit-{task}") for task in TASK_NAMES},
        }

    def plan_from_fields(self) -> ChainPlan:
        v = self.field_values()
        roles = ROLES if v["roles"] == "both" else (v["roles"],)
        layers = []
        base = v["base_model"]
        if base:
            if base == "starter":
                base = str(locations.resolve_project_path(self.app.studio.settings.inference.models.starter))
            layers.append(("build screen", {f"{role}_training": {"training": {"base_model": base}} for role in roles}))
        return ChainPlan(roles=roles, backend=v["backend"], targets=targets_for(roles, v["limits"]),
                         epochs=v["epochs"] or None, max_cost=v["max_cost"] or None, model=v["model"] or None,
                         concurrency=v["concurrency"], layers=layers)

    def action_save_settings(self) -> None:
        from poetry_workshop.config.loader import save_user_settings

        try:
            v = self.field_values()
            path = save_user_settings({
                "app": {"build": {"roles": v["roles"], "backend": v["backend"], "base_model": v["base_model"],
                                  "epochs": v["epochs"], "max_cost": v["max_cost"]}},
                "generation": {"claude": {"model": v["model"], "concurrency": v["concurrency"]},
                               "limits": v["limits"]},
            })
        except WorkshopError as exc:
            self.notify(str(exc), title="Not saved", severity="error")
            return
        settings = self.app.studio.settings
        for key in ("roles", "backend", "base_model", "epochs", "max_cost"):
            setattr(settings.app.build, key, v[key])
        settings.generation.claude.model, settings.generation.claude.concurrency = v["model"], v["concurrency"]
        settings.generation.limits.update(v["limits"])
        self.notify(f"saved to {path}", title="Settings")

    # ------------------------------------------------------------------ actions
    def action_start(self) -> None:
        if self.app.builder.running:
            self.notify("a build is running; c cancels it", severity="warning")
            return
        try:
            plan = self.plan_from_fields()
        except WorkshopError as exc:
            self.notify(str(exc), title="Cannot start", severity="error")
            return
        self.query_one("#build-status", Static).update("[b]estimating[/b] · asking the count-tokens endpoint…")
        self.run_worker(lambda: self._estimate_then_ask(plan), thread=True, exclusive=True, group="estimate")

    def _estimate_then_ask(self, plan: ChainPlan) -> None:
        from poetry_workshop.config.loader import load_settings
        from poetry_workshop.pipeline.build.chain import estimate_generation

        text = ""
        try:
            if plan.targets:
                settings = load_settings(self.app.studio.config_path, extra=plan.layers)
                _, text = estimate_generation(settings, plan)
        except WorkshopError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Cannot start", severity="error")
            self.app.call_from_thread(self.refresh_state)
            return
        if text:
            self.app.call_from_thread(
                self.app.push_screen, ConfirmScreen(text + "\n\nStart the build?"),
                lambda yes: self._begin(plan) if yes else self.refresh_state())
        else:
            self.app.call_from_thread(self._begin, plan)

    def _begin(self, plan: ChainPlan) -> None:
        self._shown = None
        try:
            self.app.start_build(plan)
        except WorkshopError as exc:
            self.notify(str(exc), title="Cannot start", severity="error")
        self.refresh_state()

    def action_cancel(self) -> None:
        if not self.app.builder.running:
            self.notify("nothing is running", severity="information")
            return
        self.app.builder.cancel()
        self.notify("stopping at the next record or training step…", title="Cancel")

    def _use(self, role: str) -> None:
        state = self.current_state()
        path = (state.models.get(role) if state else None)
        if not path:
            self.notify(f"no exported {role} yet; build one first", severity="warning")
            return
        try:
            saved = self.app.studio.use_model(role, Path(path))
        except WorkshopError as exc:
            self.notify(str(exc), title=f"{role.capitalize()} unchanged", severity="error")
            return
        finally:
            self.app.refresh(repaint=True, layout=True)  # llama.cpp muted the terminal while it loaded
        self.notify(f"the {role.capitalize()} is now {Path(path).name} (saved to {saved})", title="Model switched")

    def action_use_educator(self) -> None:
        self._use("educator")

    def action_use_poet(self) -> None:
        self._use("poet")

    def action_eval(self) -> None:
        self.notify("running the eval: the app's models against the starter…", title="Eval")
        self.run_worker(self._run_eval, thread=True, exclusive=True, group="eval")

    def _run_eval(self) -> None:
        from poetry_workshop.evaluation.configurations import choose_configurations
        from poetry_workshop.evaluation.run import default_out_dir, run_eval

        settings = self.app.studio.settings
        out = default_out_dir()
        try:
            configs = choose_configurations(settings, None)
            report = run_eval(settings, configs, limit=self.app.eval_limit, out_dir=out,
                              max_tokens=self.app.eval_max_tokens)
        except WorkshopError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Eval", severity="error")
            return
        path = Path(report.files.get("report.md", out / "report.md"))
        self.app.call_from_thread(self.app.refresh, repaint=True, layout=True)
        self.app.call_from_thread(self.app.push_screen, ReportScreen(path))

    def action_back(self) -> None:
        self.app.pop_screen()
