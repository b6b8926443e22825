"""Which GGUF file serves which role, with which LoRA adapter, and whether that is the starter model.

Order of precedence: `--educator/--poet` on the command line, then the config layers, then
the starter model. A role's adapter (`[models] <role>_adapter`, a LoRA adapter GGUF) is
applied to the configured or starter model; a `--educator/--poet` flag names a whole model
and so drops it. Two roles on one base file with two adapters share the base's weights.
Front ends show `STARTER_NOTICE` whenever a role runs on the starter as shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.inference.starter import NOTICE as STARTER_NOTICE
from poetry_workshop.names import ROLES


@dataclass(frozen=True)
class ModelChoice:
    role: str
    path: Path
    is_starter: bool
    source: str  # "--educator flag", "config", "starter"
    adapter: Path | None = None  # a LoRA adapter GGUF applied to `path` at load


def choose_models(settings, educator: str | None = None, poet: str | None = None,
                  check_adapters: bool = True) -> dict[str, ModelChoice]:
    """Each role's choice. With `check_adapters`, an adapter is checked against its base
    (gguf_file.read_adapter) so a wrong one fails here with one line naming it, not inside
    llama.cpp; the model list passes False and shows the problem in its table instead."""
    models = settings.inference.models
    starter = locations.resolve_project_path(models.starter)
    flags = {"educator": educator, "poet": poet}
    configured = {"educator": models.educator, "poet": models.poet}
    choices = {}
    for role in ROLES:
        adapter_setting = getattr(models, f"{role}_adapter", "")
        if flags[role]:
            path, source = Path(flags[role]).expanduser(), f"--{role} flag"
        elif configured[role]:
            path, source = locations.resolve_project_path(configured[role]), "config"
        else:
            path, source = starter, "starter"
        adapter = locations.resolve_project_path(adapter_setting) if adapter_setting and not flags[role] else None
        is_starter = adapter is None and (source == "starter" or path.resolve() == starter.resolve())
        choices[role] = ModelChoice(role=role, path=path, is_starter=is_starter, source=source, adapter=adapter)
    if check_adapters:
        for choice in choices.values():
            check_adapter(choice)
    return choices


def check_adapter(choice: ModelChoice):
    """The adapter's header, once it is known to fit the role's model; None without one.
    Raises ModelFileError (one line naming the file and the fix) otherwise."""
    if choice.adapter is None:
        return None
    from poetry_workshop.inference.gguf_file import read_adapter, read_gguf

    return read_adapter(choice.adapter, read_gguf(choice.path, tensors=True))


def starter_notice(choices: dict[str, ModelChoice]) -> str | None:
    roles = [c.role.capitalize() for c in choices.values() if c.is_starter]
    if not roles:
        return None
    who = " and ".join(roles)
    return f"{who} on the {STARTER_NOTICE}"


_SOURCES = {"config": "your config", "starter": "the starter model"}


def describe_choices(choices: dict[str, ModelChoice]) -> list[str]:
    """One line per role not on the starter: which file serves it and why, so a run says
    which model it used (the starter has its own notice)."""
    return [f"{c.role.capitalize()}: {c.path.name}{f' + adapter {c.adapter.name}' if c.adapter else ''} "
            f"({_SOURCES.get(c.source, c.source)}; `workshop models` lists the others)"
            for c in choices.values() if not c.is_starter]


def resolve_reference(reference: str, models_dir: Path | None = None) -> Path | None:
    """The file `workshop models use ROLE REFERENCE` means; None means the starter.

    In order: `starter`; a path to a file; a catalogue name (fetched already into models/);
    a model found on this machine (`workshop models` names them)."""
    from poetry_workshop.errors import WorkshopError
    from poetry_workshop.inference.catalogue import find_entry
    from poetry_workshop.inference.model_discovery import find_by_name

    if reference.strip().lower() == "starter":
        return None
    path = Path(reference).expanduser()
    if path.is_file() or (path.suffix.lower() == ".gguf" and path.parent != Path(".")):
        return path.resolve()  # a missing path is reported by the GGUF check, naming it
    entry = find_entry(reference)
    if entry is not None:
        target = (models_dir or locations.models_dir()) / Path(entry.filename).name
        if not target.is_file():
            raise WorkshopError(f"'{entry.name}' is in the catalogue but not downloaded; "
                                f"run `workshop models get {entry.name}` first")
        return target
    return find_by_name(reference).path
