"""Training sets up to Modal and finished models down, each file sent once and checked.

The data volume holds each role's training set as `<role>_training/{train,valid}.jsonl`
and an `upload.json` naming every file's sha256. `upload.json` is written last, so it
only ever names files that finished uploading. `upload` sends only files whose sha256
differs from it; the cloud trainer refuses a set whose bytes differ from it
(`verify_upload`), so a half-finished or stale upload is never trained on.

The GGUF volume holds what export published: `<role>.<QUANT>.gguf` and its manifest.
`download` fetches a model only when the manifest's sha256 differs from the local copy,
checks the bytes, and renames it into models/ (the manifest after the model).

Volumes are reached through `Volume`: a Modal volume from this machine, or a mounted
folder inside a Modal container (and in tests).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError, WorkshopError
from poetry_workshop.files import copy_atomic, sha256_of, write_atomic

UPLOAD_MANIFEST = "upload.json"
SPLITS = ("train", "valid")


class Volume(Protocol):
    name: str

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when the volume has no such file."""

    def put(self, files: dict[str, Path]) -> None:
        """Upload local files to the given volume paths, replacing what is there."""

    def fetch(self, path: str, into: Path) -> None:
        """Copy a volume file into a local file."""


class FolderVolume:
    """A volume mounted as a folder: how a Modal container sees it, and the tests' stand-in."""

    def __init__(self, root: Path, name: str = ""):
        self.root = Path(root)
        self.name = name or self.root.name

    def read(self, path: str) -> bytes | None:
        target = self.root / path
        return target.read_bytes() if target.is_file() else None

    def put(self, files: dict[str, Path]) -> None:
        for remote, local in files.items():
            copy_atomic(local, self.root / remote)

    def fetch(self, path: str, into: Path) -> None:
        source = self.root / path
        if not source.is_file():
            raise WorkshopError(f"volume {self.name}: no file {path}")
        copy_atomic(source, into)


class ModalVolume:
    """A named Modal volume, reached over Modal's API with this machine's credentials."""

    def __init__(self, name: str):
        import modal

        self.name = name
        self._volume = modal.Volume.from_name(name, create_if_missing=True)

    def read(self, path: str) -> bytes | None:
        try:
            return b"".join(self._volume.read_file(path))
        except FileNotFoundError:
            return None

    def put(self, files: dict[str, Path]) -> None:
        with self._volume.batch_upload(force=True) as batch:
            for remote, local in files.items():
                batch.put_file(str(local), "/" + remote)

    def fetch(self, path: str, into: Path) -> None:
        with open(into, "wb") as out:
            self._volume.read_file_into_fileobj(path, out)


# ------------------------------------------------------------------------ training sets


def set_files(role: str, settings) -> dict[str, Path]:
    """Volume path → local path of one role's training set (the files that exist)."""
    config = settings.educator_training if role == "educator" else settings.poet_training
    local = {"train": locations.resolve_data_path(config.data.train),
             "valid": locations.resolve_data_path(config.data.valid)}
    return {f"{role}_training/{split}.jsonl": local[split] for split in SPLITS if local[split].is_file()}


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def set_checksums(role: str, settings) -> dict[str, str]:
    """Every split of the set, a missing one as empty: the volume must not keep an old
    validation set that this machine no longer has (upload sends an empty file for it)."""
    files = set_files(role, settings)
    return {f"{role}_training/{split}.jsonl": sha256_of(files[f"{role}_training/{split}.jsonl"])
            if f"{role}_training/{split}.jsonl" in files else EMPTY_SHA256 for split in SPLITS}


def read_upload_manifest(volume: Volume) -> dict[str, str]:
    raw = volume.read(UPLOAD_MANIFEST)
    if raw is None:
        return {}
    try:
        files = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError):
        return {}  # unreadable: treat the volume as empty and send everything again
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


@dataclass
class UploadResult:
    sent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def upload(volume: Volume, roles: Iterable[str], settings, log: Callable[[str], None] = lambda m: None) -> UploadResult:
    """Send each role's training set where its sha256 differs from the volume's manifest."""
    remote = read_upload_manifest(volume)
    wanted: dict[str, Path] = {}
    result = UploadResult()
    checksums = dict(remote)
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.jsonl"
        empty.write_bytes(b"")
        for role in roles:
            files = set_files(role, settings)
            if not any(name.endswith("/train.jsonl") for name in files):
                raise ConfigError(f"no {role} training set to upload; run `workshop data prepare` first")
            for name, digest in set_checksums(role, settings).items():
                checksums[name] = digest
                (result.unchanged if remote.get(name) == digest else result.sent).append(name)
                if remote.get(name) != digest:
                    wanted[name] = files.get(name, empty)
        if wanted:
            log(f"uploading {len(wanted)} file(s) to volume {volume.name}")
            volume.put(wanted)
        if wanted or checksums != remote:
            manifest = Path(tmp) / UPLOAD_MANIFEST
            manifest.write_text(json.dumps({"files": checksums}, indent=2, sort_keys=True), encoding="utf-8")
            volume.put({UPLOAD_MANIFEST: manifest})  # last: it names only files that arrived
    return result


def verify_upload(volume_root: Path, role: str, expected: dict[str, str] | None) -> None:
    """Refuse to train on a set whose bytes differ from what was uploaded (and, when the
    caller sent its own checksums, from the caller's local set)."""
    recorded = read_upload_manifest(FolderVolume(volume_root))
    mine = {name: digest for name, digest in recorded.items() if name.startswith(f"{role}_training/")}
    if not mine:
        raise ConfigError(f"the data volume has no {role} training set; run `workshop cloud upload` first")
    for name, digest in sorted(mine.items()):
        path = volume_root / name
        if not path.is_file() or sha256_of(path) != digest:
            raise ConfigError(f"{name} on the data volume does not match its upload checksum; "
                              "run `workshop cloud upload` again")
    if expected is not None and expected != mine:
        changed = sorted(set(expected.items()) ^ set(mine.items()))
        raise ConfigError(f"the {role} training set on the data volume differs from yours "
                          f"({', '.join(sorted({name for name, _ in changed}))}); run `workshop cloud upload`")


# ------------------------------------------------------------------------------ models


@dataclass
class DownloadResult:
    role: str
    path: Path
    fetched: bool


def gguf_name(role: str, settings) -> str:
    return f"{role}.{settings.export.export.quantization}.gguf"


def download(volume: Volume, role: str, settings, log: Callable[[str], None] = lambda m: None) -> DownloadResult:
    """Fetch the role's published GGUF unless the local copy already has its sha256."""
    name = gguf_name(role, settings)
    raw = volume.read(f"{name}.json")
    if raw is None:
        raise ConfigError(f"volume {volume.name} has no exported {role} model ({name}); "
                          f"run `workshop export {role} --backend modal` first")
    try:
        manifest = json.loads(raw)
        digest = manifest["sha256"]
    except (ValueError, KeyError, TypeError):
        raise WorkshopError(f"volume {volume.name}: {name}.json is not a readable manifest; export {role} again")
    out_dir = locations.resolve_project_path(settings.export.export.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    if target.is_file() and sha256_of(target) == digest:
        write_atomic(out_dir / f"{name}.json", raw.decode("utf-8"))
        return DownloadResult(role, target, False)
    log(f"downloading {name} from volume {volume.name}")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
    os.close(fd)
    try:
        volume.fetch(name, Path(tmp))
        if sha256_of(Path(tmp)) != digest:
            raise WorkshopError(f"{name} from volume {volume.name} does not match its manifest's sha256; "
                                "nothing was replaced; download again")
        os.replace(tmp, target)  # the model first: a manifest never names a missing file
    finally:
        Path(tmp).unlink(missing_ok=True)
    write_atomic(out_dir / f"{name}.json", raw.decode("utf-8"))
    return DownloadResult(role, target, True)
