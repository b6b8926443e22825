"""Which models an eval compares: a configuration is a label and a GGUF file per role.

`--run LABEL=educator:PATH,poet:PATH` names one (`LABEL=PATH` puts one file in both roles;
a role left out keeps the model the app would choose for it);
the words `starter` and `current` stand for the starter model in both roles and for the
models `workshop models` would choose. Without any `--run`, the eval compares those two,
or runs one when they are the same files. Every configuration speaks with the persona
prompts the app uses, so what differs between two configurations is only the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.inference.gguf_file import read_gguf, require_chat_template
from poetry_workshop.inference.model_choice import choose_models
from poetry_workshop.names import ROLES

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_RESERVED = ("tie", "split", "failed")  # the judge's verdicts share the column with the labels
RUN_FORM = "LABEL=educator:PATH,poet:PATH (or LABEL=PATH for both roles, or starter, or current)"


@dataclass(frozen=True)
class Configuration:
    label: str
    educator: Path
    poet: Path

    def path(self, role: str) -> Path:
        return {"educator": self.educator, "poet": self.poet}[role]

    def describe(self) -> dict:
        return {"label": self.label, "educator": str(self.educator), "poet": str(self.poet)}


def starter_configuration(settings) -> Configuration:
    starter = locations.resolve_project_path(settings.inference.models.starter)
    return Configuration("starter", starter, starter)


def current_configuration(settings) -> Configuration:
    choices = choose_models(settings)
    return Configuration("current", choices["educator"].path, choices["poet"].path)


def parse_run(spec: str, settings) -> Configuration:
    """One `--run` value as a Configuration; a malformed one is a ConfigError naming it."""
    text = spec.strip()
    if text == "starter":
        return starter_configuration(settings)
    if text == "current":
        return current_configuration(settings)
    label, sep, rest = text.partition("=")
    label = label.strip()
    if not sep or not rest.strip():
        raise ConfigError(f"--run {spec!r}: expected {RUN_FORM}")
    if label in _RESERVED:
        raise ConfigError(f"--run {spec!r}: {label!r} names a judge verdict; choose another label")
    if not _LABEL.match(label):
        raise ConfigError(f"--run {spec!r}: the label {label!r} must be letters, digits, '.', '_' or '-' "
                          "(up to 40), starting with a letter or digit")
    paths: dict[str, Path] = {}
    parts = [p.strip() for p in rest.split(",")]
    if len(parts) == 1 and not any(parts[0].startswith(f"{role}:") for role in ROLES):
        paths = {role: Path(parts[0]).expanduser() for role in ROLES}
    else:
        for part in parts:
            role, colon, value = part.partition(":")
            if not colon or role not in ROLES or not value:
                raise ConfigError(f"--run {spec!r}: {part!r} is not educator:PATH or poet:PATH; expected {RUN_FORM}")
            if role in paths:
                raise ConfigError(f"--run {spec!r}: {role} is given twice")
            paths[role] = Path(value).expanduser()
        # A role left out keeps the model the app would use for it, as `--educator` alone does.
        current = current_configuration(settings)
        for role in ROLES:
            paths.setdefault(role, current.path(role))
    return Configuration(label, paths["educator"], paths["poet"])


def choose_configurations(settings, runs: list[str] | None) -> list[Configuration]:
    """The configurations for this eval, every model file checked before any is loaded."""
    if runs:
        configs = [parse_run(spec, settings) for spec in runs]
    else:
        configs = [starter_configuration(settings), current_configuration(settings)]
        if _same_models(configs[0], configs[1]):
            configs = configs[:1]
    check_configurations(configs)
    return configs


def check_configurations(configs: list[Configuration]) -> None:
    """Labels distinct, every model file a GGUF with a chat template: all before any model loads."""
    if not configs:
        raise ConfigError("no configuration to evaluate; give at least one --run")
    labels = [c.label for c in configs]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice:
        raise ConfigError(f"--run: the label {twice!r} is used twice; give each configuration its own label")
    for config in configs:
        for role in ROLES:
            path = config.path(role)
            if not path.is_file():
                raise ConfigError(f"{path}: {config.label}'s {role} model file not found; give an existing "
                                  "GGUF file (`workshop models` lists what is found)")
            require_chat_template(read_gguf(path))


def _same_models(a: Configuration, b: Configuration) -> bool:
    return all(a.path(role).resolve() == b.path(role).resolve() for role in ROLES)
