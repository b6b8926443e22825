"""The models table both front ends show: each model with its role, shape and whether it fits.

One row per file: the models serving the roles first, then every model discovered, each
read from its GGUF header (size, quantization, template family, trained context, whether
its template thinks) and weighed against this machine's memory at the configured n_ctx.
A file that cannot be read is a row with its problem, not a failure of the whole list; so
is a role's LoRA adapter that does not fit its base (`adapter_row`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import WorkshopError
from poetry_workshop.inference.catalogue import CATALOGUE, CatalogueEntry
from poetry_workshop.inference.gguf_file import GGUFInfo, read_gguf
from poetry_workshop.inference.memory_fit import MemoryFit, machine_memory, memory_fit
from poetry_workshop.inference.model_choice import ModelChoice, check_adapter
from poetry_workshop.inference.model_discovery import FoundModel, discover


@dataclass(frozen=True)
class ModelRow:
    name: str
    path: Path
    source: str
    roles: tuple[str, ...]
    info: GGUFInfo | None
    fit: MemoryFit | None
    thinking: str  # "on", "off", or "-" for a template that does not think
    problem: str = ""

    @property
    def role_label(self) -> str:
        return "+".join(self.roles) if self.roles else "-"

    @property
    def size(self) -> str:
        return f"{self.info.size_bytes / 1e9:.1f} GB" if self.info else "-"

    @property
    def fits_label(self) -> str:
        if self.fit is None:
            return "-"
        return "yes" if self.fit.fits else "NO"

    @property
    def context(self) -> str:
        n = self.info.context_length if self.info else None
        return f"{n // 1024}k" if n and n >= 1024 else (str(n) if n else "-")


@dataclass(frozen=True)
class AdapterRow:
    """A role's LoRA adapter GGUF under its model's row: what it is, or why it cannot be used."""

    path: Path
    info: GGUFInfo | None
    problem: str = ""

    def describe(self, size) -> str:
        if self.info is None:
            return f"{self.path}  problem: {self.problem}"
        rank = next((shape[1] for name, shape in self.info.tensors.items() if name.endswith(".lora_a")), None)
        alpha = self.info.metadata.get("adapter.lora.alpha")
        shape = f"rank {rank}, alpha {alpha:g}" if rank and alpha is not None else "lora"
        return f"{self.path}  {size(self.info.size_bytes)}  {self.info.architecture}, {shape}"


def adapter_row(choice: ModelChoice) -> AdapterRow:
    try:
        return AdapterRow(choice.adapter, check_adapter(choice))
    except WorkshopError as exc:
        return AdapterRow(choice.adapter, None, str(exc).split(": ", 1)[-1])


def _row(name: str, path: Path, source: str, roles: tuple[str, ...], settings, available: int) -> ModelRow:
    try:
        info = read_gguf(path)
    except WorkshopError as exc:
        return ModelRow(name, path, source, roles, None, None, "-", str(exc).split(": ", 1)[-1])
    if info.kind == "adapter":
        return ModelRow(name, path, source, roles, None, None, "-",
                        "a LoRA adapter, not a model: `workshop models use ROLE BASE --adapter FILE`")
    fit = memory_fit(info, settings.inference.runtime.n_ctx, available)
    if not info.thinking.thinks:
        thinking = "-"
    else:
        wanted = [getattr(settings.inference.thinking, role) for role in roles]
        thinking = "on" if any(wanted) else "off"  # a model new to a role starts with it off
    return ModelRow(name, path, source, roles, info, fit, thinking)


def model_rows(settings, choices: dict[str, ModelChoice], found: list[FoundModel] | None = None,
               available: int | None = None) -> list[ModelRow]:
    available = machine_memory() if available is None else available
    found = discover() if found is None else found
    by_file: dict[Path, list[str]] = {}
    for role, choice in choices.items():
        by_file.setdefault(choice.path.resolve(), []).append(role)
    rows: list[ModelRow] = []
    listed: set[Path] = set()
    known = {m.path.resolve(): m for m in found}
    for choice in choices.values():
        real = choice.path.resolve()
        if real in listed:
            continue
        listed.add(real)
        origin = known.get(real)
        name = origin.name if origin else choice.path.name
        source = origin.source if origin else choice.source
        rows.append(_row(name, choice.path, source, tuple(by_file[real]), settings, available))
    for model in found:
        real = model.path.resolve()
        if real not in listed:
            listed.add(real)
            rows.append(_row(model.name, model.path, model.source, (), settings, available))
    return rows


def catalogue_target(entry: CatalogueEntry) -> Path:
    """Where `workshop models get` puts a catalogue entry."""
    return locations.models_dir() / Path(entry.filename).name


def not_downloaded() -> list[CatalogueEntry]:
    return [e for e in CATALOGUE if not catalogue_target(e).is_file()]
