"""Append-only JSONL files that survive a `kill -9`: records, rejects and the cost ledger.

Each record is one complete line, written with a single `write` and flushed to disk before
the next call starts, so a crash loses at most the line being written. A torn last line
(no newline, or not JSON) is moved aside to `<file>.torn-<time>` with a warning before
anything is appended, so a rerun never glues a new record onto half an old one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from poetry_workshop.errors import StoreError


def _torn_tail(data: bytes) -> int | None:
    """Byte offset where an unusable last line starts, or None when the file ends cleanly."""
    if not data:
        return None
    if not data.endswith(b"\n"):
        return data.rfind(b"\n") + 1
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    try:
        json.loads(data[start:])
    except ValueError:
        return start
    return None


def repair_tail(path: Path) -> str | None:
    """Move a torn last line aside; returns a warning for the person, or None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    start = _torn_tail(data)
    if start is None:
        return None
    aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    aside.write_bytes(data[start:])
    with path.open("r+b") as fh:
        fh.truncate(start)
    line = data[:start].count(b"\n") + 1
    return (f"{path}:{line}: the last line was cut off (a crash while writing?); "
            f"it was moved to {aside.name} and will be made again")


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every object in the file, and a warning naming file and line for each bad line."""
    records, warnings = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: not UTF-8 (byte {exc.start}); it is not a file the generators wrote")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            warnings.append(f"{path}:{number}: not valid JSON ({exc.msg}); line ignored")
            continue
        if not isinstance(obj, dict):
            warnings.append(f"{path}:{number}: not a JSON object; line ignored")
            continue
        records.append(obj)
    return records, warnings


class AppendLog:
    """One JSONL file opened for appending; `append` returns only once the line is on disk."""

    def __init__(self, path: Path):
        self.path = path
        self.repair_warning: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.repair_warning = repair_tail(path)
            self._fh = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"{path}: cannot write here ({exc.strerror}); pass another --output")

    def append(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


