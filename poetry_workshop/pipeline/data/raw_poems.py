"""The poems a person brings: `data/raw/good/` and `data/raw/bad/`, or a Hugging Face data set.

A `.txt` file holds one poem, or several separated by a line of `---`; a `.jsonl` file holds
one object per line with a `text` or `poem` field. Anything unusable (not UTF-8, binary,
empty, too large, a malformed line) is skipped with a warning that names the file and line,
and counted; exact duplicates (after whitespace normalisation) are dropped. Nothing here
stops a run: a person with one bad file still gets data from the rest.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from poetry_workshop.config.schema import RawPoemSettings
from poetry_workshop.errors import ConfigError

QUALITIES = ("good", "bad")
_SEPARATOR = re.compile(r"^[ \t]*---+[ \t]*$")


@dataclass(frozen=True)
class RawPoem:
    text: str
    quality: str  # "good" or "bad": which folder it came from
    source: str  # file (and line) it came from, for warnings and records

    @property
    def id(self) -> str:
        return poem_id(self.text)


def normalise(text: str) -> str:
    """Line endings, trailing spaces and surrounding blank lines do not make a new poem."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def poem_id(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]


@dataclass
class RawPoemReport:
    """What was read and what was skipped, with reasons a person can act on."""

    files: int = 0
    poems: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.warnings)

    def warn(self, where: str, why: str) -> None:
        self.warnings.append(f"{where}: {why}")


class RawPoemReader:
    """Reads raw poem files into `RawPoem`s, collecting warnings in `report`."""

    def __init__(self, limits: RawPoemSettings):
        self.limits = limits
        self.report = RawPoemReport()
        self._seen: set[str] = set()

    def read_folder(self, folder: Path, quality: str) -> list[RawPoem]:
        if not folder.is_dir():
            return []
        poems: list[RawPoem] = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.name.startswith(".") or path.suffix.lower() not in (".txt", ".jsonl", ".md"):
                if not path.name.startswith("."):
                    self.report.warn(str(path), "not a .txt or .jsonl file; skipped")
                continue
            poems.extend(self.read_file(path, quality))
        return poems

    def read_raw(self, raw_dir: Path) -> dict[str, list[RawPoem]]:
        """Both folders, good and bad (duplicates are dropped across both)."""
        return {quality: self.read_folder(raw_dir / quality, quality) for quality in QUALITIES}

    def read_file(self, path: Path, quality: str) -> list[RawPoem]:
        self.report.files += 1
        try:
            size = path.stat().st_size
            if size > self.limits.max_file_bytes:
                self.report.warn(str(path), f"{size} bytes is over raw.max_file_bytes "
                                 f"({self.limits.max_file_bytes}); split it or raise the limit")
                return []
            data = path.read_bytes()
        except OSError as exc:
            self.report.warn(str(path), f"cannot be read ({exc.strerror}); skipped")
            return []
        if b"\x00" in data:
            self.report.warn(str(path), "looks binary (NUL bytes); skipped")
            return []
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.report.warn(str(path), f"not UTF-8 (byte {exc.start}); save it as UTF-8")
            return []
        if not text.strip():
            self.report.warn(str(path), "empty; skipped")
            return []
        if path.suffix.lower() == ".jsonl":
            return self._from_jsonl(path, text, quality)
        return self._from_txt(path, text, quality)

    def _from_txt(self, path: Path, text: str, quality: str) -> list[RawPoem]:
        out = []
        pieces: list[tuple[int, list[str]]] = [(1, [])]
        for number, line in enumerate(text.splitlines(), start=1):
            if _SEPARATOR.match(line):
                pieces.append((number + 1, []))
            else:
                pieces[-1][1].append(line)
        for start, lines in pieces:
            lead = next((i for i, line in enumerate(lines) if line.strip()), 0)
            poem = self.accept("\n".join(lines), quality, f"{path}:{start + lead}")
            if poem:
                out.append(poem)
        return out

    def _from_jsonl(self, path: Path, text: str, quality: str) -> list[RawPoem]:
        out = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                self.report.warn(where, f"not valid JSON ({exc.msg}); line skipped")
                continue
            body = obj.get("text", obj.get("poem")) if isinstance(obj, dict) else None
            if not isinstance(body, str):
                self.report.warn(where, "needs a string 'text' or 'poem' field; line skipped")
                continue
            poem = self.accept(body, quality, where)
            if poem:
                out.append(poem)
        return out

    def accept(self, text: str, quality: str, where: str) -> RawPoem | None:
        text = normalise(text)
        if not text:
            return None  # blank space between separators is not a poem worth a warning
        if len(text) < self.limits.min_poem_chars:
            self.report.warn(where, f"{len(text)} characters is shorter than raw.min_poem_chars; skipped")
            return None
        if len(text) > self.limits.max_poem_chars:
            self.report.warn(where, f"{len(text)} characters is over raw.max_poem_chars "
                             f"({self.limits.max_poem_chars}); skipped")
            return None
        key = poem_id(text)
        if key in self._seen:
            self.report.duplicates += 1
            return None
        self._seen.add(key)
        self.report.poems += 1
        return RawPoem(text=text, quality=quality, source=where)


def read_hf_poems(name: str, field_name: str, reader: RawPoemReader, quality: str = "good",
                  split: str = "train") -> list[RawPoem]:
    """Poems from a Hugging Face data set: a hub name, or a local folder (saved or plain files)."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("--from-hf needs the `datasets` package: pip install -e '.[pipeline]'")
    local = Path(name).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_info.json").exists() or (local / "dataset_dict.json").exists()):
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(str(local) if local.exists() else name)
    except FileNotFoundError as exc:
        raise ConfigError(f"--from-hf {name}: no such data set ({exc}); give a hub name or a local folder")
    except Exception as exc:  # datasets raises many kinds; the person needs the name and the reason
        raise ConfigError(f"--from-hf {name}: could not load it ({type(exc).__name__}: {exc})")
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ConfigError(f"--from-hf {name}: no '{split}' split; it has {', '.join(loaded)}")
        loaded = loaded[split]
    if field_name not in loaded.column_names:
        raise ConfigError(f"--from-hf {name}: no field '{field_name}'; its fields are "
                          f"{', '.join(loaded.column_names)} (choose one with --hf-field)")
    out = []
    for index, value in enumerate(loaded[field_name]):
        where = f"{name}[{split}]#{index}"
        if not isinstance(value, str):
            reader.report.warn(where, f"field '{field_name}' is not text; skipped")
            continue
        poem = reader.accept(value, quality, where)
        if poem:
            out.append(poem)
    return out
