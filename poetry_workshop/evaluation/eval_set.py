"""The eval set: what every configuration is asked to do, fixed and versioned.

Three kinds of item, written for this project (eval/set_v1.toml):
- `brief`: a brief in the Educator's seven fields; the Poet writes a poem from it.
- `critique`: a poem and a deliberately weakened copy of it (its concrete images swapped for
  abstractions and stock phrases); the Educator critiques both, which is the sycophancy test.
- `revision`: a draft and a workshop critique of it; the Poet revises from the critique.

A report names the set by its version string and the sha256 of the file, so two reports
are only compared number for number when they measured the same items.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError

SET_FILE = "set_v1.toml"


def default_set_path() -> Path:
    return locations.project_root() / "eval" / SET_FILE


@dataclass(frozen=True)
class BriefItem:
    id: str
    brief: str


@dataclass(frozen=True)
class CritiqueItem:
    id: str
    poem: str
    weakened: str  # the same poem made worse on purpose
    weakening: str  # what was done to it, for the report's reader


@dataclass(frozen=True)
class RevisionItem:
    id: str
    draft: str
    critique: str


@dataclass(frozen=True)
class EvalSet:
    name: str
    version: str
    sha256: str  # of the set file's bytes
    path: Path
    briefs: tuple[BriefItem, ...]
    critiques: tuple[CritiqueItem, ...]
    revisions: tuple[RevisionItem, ...]

    def limited(self, n: int | None) -> EvalSet:
        """The first `n` items of each kind (all of them when `n` is None)."""
        if n is None:
            return self
        return replace(self, briefs=self.briefs[:n], critiques=self.critiques[:n], revisions=self.revisions[:n])

    @property
    def generations(self) -> int:
        """Model calls one configuration makes on this set."""
        return len(self.briefs) + 2 * len(self.critiques) + len(self.revisions)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "briefs": len(self.briefs), "critiques": len(self.critiques), "revisions": len(self.revisions)}


_FIELDS = {"brief": ("brief",), "critique": ("poem", "weakened", "weakening"), "revision": ("draft", "critique")}


def load_eval_set(path: Path | None = None) -> EvalSet:
    path = Path(path) if path is not None else default_set_path()
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: eval set not found; restore eval/{SET_FILE} from the repository")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable eval set ({exc}); fix the TOML")
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise ConfigError(f"{path}: needs top-level name = \"...\" and version = \"...\" strings")
    seen: set[str] = set()
    items: dict[str, list] = {}
    for kind, fields in _FIELDS.items():
        items[kind] = []
        for number, entry in enumerate(data.get(kind, []), start=1):
            where = f"{path}: [[{kind}]] number {number}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} is not a table; write it as [[{kind}]] with its fields")
            item_id = entry.get("id")
            if not isinstance(item_id, str) or not item_id or item_id in seen:
                raise ConfigError(f"{where}: needs an id string used by no other item")
            seen.add(item_id)
            values = {}
            for field in fields:
                value = entry.get(field)
                if not isinstance(value, str) or not value.strip():
                    raise ConfigError(f"{where} ({item_id}): needs a non-empty {field} string")
                values[field] = value.strip("\n")
            items[kind].append(values | {"id": item_id})
    for entry in items["critique"]:
        if entry["poem"].split() == entry["weakened"].split():
            raise ConfigError(f"{path}: critique item {entry['id']}: its weakened copy is the poem unchanged")
    if not any(items.values()):
        raise ConfigError(f"{path}: holds no [[brief]], [[critique]] or [[revision]] items")
    return EvalSet(
        name=name, version=version, sha256=hashlib.sha256(raw).hexdigest(), path=path,
        briefs=tuple(BriefItem(**e) for e in items["brief"]),
        critiques=tuple(CritiqueItem(**e) for e in items["critique"]),
        revisions=tuple(RevisionItem(**e) for e in items["revision"]),
    )
