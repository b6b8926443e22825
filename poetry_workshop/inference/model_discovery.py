"""GGUF models already on this machine, found where other tools keep them, never copied.

Sources, each overridable for tests and unusual set-ups:
- the project's models/ folder (set-up, `workshop models get`, exports);
- the Hugging Face cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else ~/.cache/huggingface/hub
  (`models--OWNER--REPO/snapshots/COMMIT/FILE.gguf`, links into `blobs/`);
- LM Studio's models folder: `POETRY_WORKSHOP_LMSTUDIO_MODELS`, else ~/.lmstudio/models and
  ~/.cache/lm-studio/models (`PUBLISHER/REPO/FILE.gguf`);
- Ollama's store: `OLLAMA_MODELS` (Ollama's own variable), else ~/.ollama/models. A manifest
  at `manifests/HOST/NAMESPACE/NAME/TAG` lists layers; the one whose mediaType is
  `application/vnd.ollama.image.model` names the GGUF blob, `blobs/sha256-HEX`.

Only a model's header is read (`read_gguf`): finding a dozen 5 GB files takes well under a
second. Vision projectors (mmproj) and the later shards of a split model are left out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import WorkshopError

LMSTUDIO_ENV = "POETRY_WORKSHOP_LMSTUDIO_MODELS"
OLLAMA_ENV = "OLLAMA_MODELS"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_LIBRARY = "registry.ollama.ai/library/"
_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$", re.IGNORECASE)

SOURCES = ("models/", "HF cache", "LM Studio", "Ollama")


@dataclass(frozen=True)
class FoundModel:
    name: str  # what `workshop models use ROLE NAME` takes
    path: Path  # the file llama.cpp opens (in place, never copied)
    source: str  # one of SOURCES


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def lmstudio_dirs() -> list[Path]:
    if os.environ.get(LMSTUDIO_ENV):
        return [Path(os.environ[LMSTUDIO_ENV]).expanduser()]
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def ollama_dir() -> Path:
    if os.environ.get(OLLAMA_ENV):
        return Path(os.environ[OLLAMA_ENV]).expanduser()
    return Path.home() / ".ollama" / "models"


def _wanted(path: Path) -> bool:
    name = path.name.lower()
    if "mmproj" in name:
        return False
    shard = _LATER_SHARD.search(name)
    return shard is None or shard[1] == "00001"


def _ggufs(folder: Path, depth: int) -> Iterator[Path]:
    """GGUF files up to `depth` folders down, in name order; unreadable folders are skipped."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth > 0:
            yield from _ggufs(entry, depth - 1)
        elif entry.suffix.lower() == ".gguf" and entry.is_file() and _wanted(entry):
            yield entry


def in_models_dir(folder: Path | None = None) -> Iterator[FoundModel]:
    folder = folder or locations.models_dir()
    for path in _ggufs(folder, 1):
        yield FoundModel(path.relative_to(folder).as_posix(), path, "models/")


def in_hf_cache(cache: Path | None = None) -> Iterator[FoundModel]:
    cache = cache or hf_cache_dir()
    for repo in sorted(cache.glob("models--*")):
        owner_repo = repo.name[len("models--"):].replace("--", "/")
        seen: set[str] = set()
        # Newest snapshot first, so a file in several commits is listed once, at its latest.
        snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for snapshot in snapshots:
            for path in _ggufs(snapshot, 3):
                relative = path.relative_to(snapshot).as_posix()
                if relative not in seen:
                    seen.add(relative)
                    yield FoundModel(f"{owner_repo}/{relative}", path, "HF cache")


def in_lmstudio(folders: list[Path] | None = None) -> Iterator[FoundModel]:
    for folder in folders or lmstudio_dirs():
        for path in _ggufs(folder, 3):
            yield FoundModel(path.relative_to(folder).as_posix(), path, "LM Studio")


def _ollama_name(manifest: Path, root: Path) -> str:
    """`registry.ollama.ai/library/qwen3/8b` → `qwen3:8b`; other namespaces keep theirs."""
    parts = manifest.relative_to(root).as_posix()
    name, tag = parts.rsplit("/", 1)
    if name.startswith(OLLAMA_LIBRARY):
        name = name[len(OLLAMA_LIBRARY):]
    return f"{name}:{tag}"


def in_ollama(store: Path | None = None) -> Iterator[FoundModel]:
    store = store or ollama_dir()
    manifests = store / "manifests"
    if not manifests.is_dir():
        return
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
        except (OSError, ValueError, AttributeError):
            continue  # not a manifest this reads; Ollama itself will say what is wrong with it
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER:
                blob = store / "blobs" / str(layer.get("digest", "")).replace(":", "-")
                if blob.is_file():
                    yield FoundModel(_ollama_name(manifest, manifests), blob, "Ollama")
                break


def discover() -> list[FoundModel]:
    """Every model found, each file once (the first source to name it wins)."""
    found: list[FoundModel] = []
    seen: set[Path] = set()
    for source in (in_models_dir(), in_hf_cache(), in_lmstudio(), in_ollama()):
        for model in source:
            real = model.path.resolve()
            if real not in seen:
                seen.add(real)
                found.append(model)
    return found


def find_by_name(name: str, models: list[FoundModel] | None = None) -> FoundModel:
    models = discover() if models is None else models
    exact = [m for m in models if m.name == name]
    if not exact:
        # `qwen3:8b` for Ollama, a bare file name for any other source
        exact = [m for m in models if m.path.name == name or m.name.endswith("/" + name)]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        where = "; ".join(f"{m.name} ({m.source})" for m in exact)
        raise WorkshopError(f"'{name}' names {len(exact)} models: {where}; use the full name or the path")
    raise WorkshopError(f"'{name}': no such model here; `workshop models` lists the models found, "
                        "`workshop models get NAME` fetches one from the catalogue")
