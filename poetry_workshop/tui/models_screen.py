"""The Models screen: the models here and the catalogue in one table; switch a role or get one.

`u` / `p` make the selected model the Educator / Poet at once (the studio swaps the engine's
model and saves the choice to the user config). `g` downloads the selected catalogue model
on a worker the app holds (`ModelDownloads`), so the download goes on when this screen is
closed and the workshop stays usable; its progress bar is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, Static

from poetry_workshop import locations
from poetry_workshop.errors import WorkshopError
from poetry_workshop.inference.catalogue import CatalogueEntry
from poetry_workshop.inference.model_list import ModelRow, model_rows, not_downloaded
from poetry_workshop.tui.keys import MODELS_KEYS, bindings

# At 80 columns the table keeps what decides a choice; the selected row's line below it
# always has everything, the template, context and thinking included.
NARROW = ("role", "name", "source", "size", "quant", "fits")
WIDE = ("role", "name", "source", "size", "quant", "template", "ctx", "think", "fits")
WIDE_FROM = 100


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@dataclass
class Download:
    entry: CatalogueEntry
    done: int = 0
    total: int = 0
    error: str = ""
    finished: bool = False


@dataclass
class ModelDownloads:
    """Downloads in progress, held by the app so they outlive the Models screen."""

    active: dict[str, Download] = field(default_factory=dict)

    def start(self, app, entry: CatalogueEntry) -> bool:
        if entry.name in self.active and not self.active[entry.name].finished:
            return False
        state = self.active[entry.name] = Download(entry, total=entry.approx_bytes)

        def fetch() -> None:
            from textual.worker import get_current_worker

            from poetry_workshop.inference.model_download import DownloadStopped, download

            worker = get_current_worker()

            def report(done: int, total: int) -> None:
                state.done, state.total = done, total or state.total
                if worker.is_cancelled:  # the app is closing: stop at this chunk, keep the partial file
                    raise DownloadStopped

            try:
                download(entry, locations.models_dir(), report=report)
            except DownloadStopped:
                state.error = f"stopped; getting {entry.name} again resumes where it stopped"
            except WorkshopError as exc:
                state.error = str(exc)
            finally:
                state.finished = True
                try:
                    app.call_from_thread(app.download_ended, state)
                except RuntimeError:
                    pass  # the app has closed; the partial file is kept for the next try

        app.run_worker(fetch, thread=True, group="download", name=f"download {entry.name}", exit_on_error=False)
        return True

    def running(self) -> list[Download]:
        return [d for d in self.active.values() if not d.finished]


class ModelsScreen(Screen):
    BINDINGS = bindings(MODELS_KEYS)

    def __init__(self):
        super().__init__()
        self.rows: dict[str, ModelRow | CatalogueEntry] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="models"):
            yield Static("", id="models-title")
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="model-detail")
            yield Static("", id="download-status")
            yield ProgressBar(id="download-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        wide = self.app.size.width >= WIDE_FROM
        self.columns, self.name_width = (WIDE, 48) if wide else (NARROW, 32)
        table.add_columns(*self.columns)
        self.refresh_table()
        self.set_interval(0.25, self.show_progress)
        table.focus()

    # ------------------------------------------------------------------ the table
    def refresh_table(self) -> None:
        studio = self.app.studio
        table = self.query_one(DataTable)
        selected = table.cursor_row
        table.clear()
        self.rows = {}
        n_ctx = studio.settings.inference.runtime.n_ctx
        for row in model_rows(studio.settings, studio.choices):
            key = f"file:{row.path}"
            self.rows[key] = row
            role = "both" if len(row.roles) == 2 else row.role_label
            if row.info is None:
                cells = {"role": role, "name": row.name, "source": row.source, "fits": "unreadable"}
            else:
                cells = {"role": role, "name": row.name, "source": row.source, "size": _size(row.info.size_bytes),
                         "quant": row.info.quantization, "template": row.info.template_family, "ctx": row.context,
                         "think": row.thinking, "fits": row.fits_label}
            self._add(table, cells, key)
        for entry in not_downloaded():
            key = f"get:{entry.name}"
            self.rows[key] = entry
            self._add(table, {"role": "-", "name": entry.name, "source": "catalogue", "size": _size(entry.approx_bytes),
                              "quant": entry.quantization, "fits": entry.memory_class}, key)
        if selected is not None and table.row_count:
            table.move_cursor(row=min(selected, table.row_count - 1))
        here = sum(1 for v in self.rows.values() if isinstance(v, ModelRow))
        to_get = len(self.rows) - here
        self.query_one("#models-title", Static).update(
            f"[b]Models[/b] · {here} here · {to_get} to get · fits: this machine at n_ctx {n_ctx}")
        self.show_detail()

    def _add(self, table: DataTable, cells: dict[str, str], key: str) -> None:
        name = cells["name"]
        cells["name"] = name if len(name) <= self.name_width else name[: self.name_width - 1] + "…"
        table.add_row(*(cells.get(column, "-") for column in self.columns), key=key)

    def show_detail(self) -> None:
        """Everything about the selected row, at any width."""
        chosen = self._selected()
        detail = self.query_one("#model-detail", Static)
        if isinstance(chosen, CatalogueEntry):
            detail.update(f"{chosen.name}: {chosen.repo}/{chosen.filename} · {chosen.license} · for {chosen.memory_class} "
                          f"machines · {chosen.note} · g gets it")
        elif chosen is not None and chosen.info is None:
            detail.update(f"{chosen.name} ({chosen.source}): {chosen.problem}")
        elif chosen is not None:
            info, fit = chosen.info, chosen.fit
            thinking = {"-": "no thinking", "on": "thinking on", "off": "thinks, off"}[chosen.thinking]
            verdict = "fits this machine" if fit.fits else "too big for this machine"
            detail.update(f"{chosen.name} ({chosen.source}) · {info.architecture} · {info.quantization} · template "
                          f"{info.template_family} · {chosen.context} context · {thinking} · needs about "
                          f"{fit.needed / 2**30:.1f} GiB at n_ctx {fit.n_ctx}: {verdict}")
        else:
            detail.update("")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def _selected(self) -> ModelRow | CatalogueEntry | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key)

    # ------------------------------------------------------------------ downloads
    def show_progress(self) -> None:
        running = self.app.downloads.running()
        status = self.query_one("#download-status", Static)
        bar = self.query_one("#download-progress", ProgressBar)
        if not running:
            status.update("")
            bar.display = False
            return
        d = running[0]
        bar.display = True
        bar.update(total=max(d.total, 1), progress=d.done)
        more = f" (and {len(running) - 1} more)" if len(running) > 1 else ""
        status.update(f"getting {d.entry.name}: {_size(d.done)} of {_size(d.total)}{more} · Esc: keep working")

    def action_get(self) -> None:
        chosen = self._selected()
        if not isinstance(chosen, CatalogueEntry):
            self.notify("select a catalogue model (source: catalogue) to get it", title="Get")
            return
        if self.app.downloads.start(self.app, chosen):
            self.notify(f"{chosen.license}; downloading it means accepting it ({chosen.page})",
                        title=f"Getting {chosen.name}")
        self.show_progress()

    # ------------------------------------------------------------------ switching
    def _use(self, role: str) -> None:
        chosen = self._selected()
        if isinstance(chosen, CatalogueEntry):
            self.notify(f"{chosen.name} is not here yet: g gets it", title="Not downloaded", severity="warning")
            return
        if chosen is None or chosen.info is None:
            self.notify(chosen.problem if chosen else "nothing selected", title="Cannot use it", severity="warning")
            return
        workshop = next((s for s in self.app.screen_stack if getattr(s, "busy", False)), None)
        if workshop is not None:
            self.notify("the models are busy; stop the generation (Esc on the workshop) first", title="Busy",
                        severity="warning")
            return
        try:
            saved = self.app.studio.use_model(role, chosen.path)
        except WorkshopError as exc:
            self.notify(str(exc), title=f"{role.capitalize()} unchanged", severity="error")
            return
        finally:
            self.app.refresh(repaint=True, layout=True)  # llama.cpp muted the terminal while it loaded
        self.app.models_changed()
        self.refresh_table()
        note = " (thinking off)" if chosen.thinking == "off" else ""
        self.notify(f"the {role.capitalize()} is now {chosen.name}{note}; saved to {saved}", title="Model switched")

    def action_use_educator(self) -> None:
        self._use("educator")

    def action_use_poet(self) -> None:
        self._use("poet")

    def action_back(self) -> None:
        self.app.pop_screen()

