"""Which GGUF file serves which role, and whether that is the starter model.

Order of precedence: `--educator/--poet` on the command line, then the config layers, then
the starter model. Front ends show `STARTER_NOTICE` whenever a role runs on the starter.
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


def choose_models(settings, educator: str | None = None, poet: str | None = None) -> dict[str, ModelChoice]:
    models = settings.inference.models
    starter = locations.resolve_project_path(models.starter)
    flags = {"educator": educator, "poet": poet}
    configured = {"educator": models.educator, "poet": models.poet}
    choices = {}
    for role in ROLES:
        if flags[role]:
            path, source = Path(flags[role]).expanduser(), f"--{role} flag"
        elif configured[role]:
            path, source = locations.resolve_project_path(configured[role]), "config"
        else:
            path, source = starter, "starter"
        is_starter = source == "starter" or path.resolve() == starter.resolve()
        choices[role] = ModelChoice(role=role, path=path, is_starter=is_starter, source=source)
    return choices


def starter_notice(choices: dict[str, ModelChoice]) -> str | None:
    roles = [c.role.capitalize() for c in choices.values() if c.is_starter]
    if not roles:
        return None
    who = " and ".join(roles)
    return f"{who} on the {STARTER_NOTICE}"
